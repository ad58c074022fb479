"""The committed stubs (typed ones included) match the .proto files, every domain error has its status, and the
package list matches the folders."""

from __future__ import annotations

import tomllib
from pathlib import Path

import grpc

from argus import errors, keys, protogen
from argus.grpc_status import STATUS_OF, status_of

REPO = Path(protogen.__file__).resolve().parent.parent


def test_generated_stubs_match_the_protos(tmp_path: Path) -> None:
    fresh = {p.relative_to(tmp_path): p.read_text() for p in protogen.generate(tmp_path)}
    committed = {
        p.relative_to(protogen.STUB_ROOT): p.read_text()
        for p in protogen.STUB_ROOT.rglob("*_pb2*")
        if p.suffix in {".py", ".pyi"}  # not the bytecode in __pycache__
    }
    assert fresh.keys() == committed.keys(), "stubs added or removed: run `python -m argus.protogen`"
    stale = [str(name) for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stubs out of date with protos/: {stale}; run `python -m argus.protogen`"


def test_every_proto_is_versioned_and_named_after_its_path() -> None:
    for proto in protogen.proto_files():
        relative = proto.relative_to(protogen.PROTO_ROOT)
        package = ".".join(relative.parent.parts)
        assert relative.parts[0] == "argus" and relative.parent.name.startswith("v"), relative
        assert f"package {package};" in proto.read_text(), relative


def test_package_list_covers_every_python_folder() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    roots = {Path(folder): name for name, folder in config["package-dir"].items()}
    found = set()
    for folder, package in roots.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder)
            found.add(".".join([package, *relative.parts]))
    assert found == set(config["packages"])


def test_every_domain_error_has_its_own_status() -> None:
    """A new error class left out of the table would reach callers as INTERNAL."""
    for module in (errors, keys):
        for name, kind in vars(module).items():
            if isinstance(kind, type) and issubclass(kind, errors.ArgusError) and kind.__module__ == module.__name__:
                if kind.__subclasses__():  # a base (ArgusError, keys.Denied): its subclasses say the status
                    continue
                assert kind in STATUS_OF, f"{module.__name__}.{name} has no status in argus.grpc_status.STATUS_OF"
    assert status_of(keys.PermissionDenied("no", "scope")) is grpc.StatusCode.PERMISSION_DENIED
    assert status_of(errors.ArgusError("unexpected")) is grpc.StatusCode.INTERNAL
