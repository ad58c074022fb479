"""What may import what: the services talk through contracts, and the tools (evaluation, the CLI) sit on top.

Read from the source with `ast`, so a forbidden import fails here even in a function body no other test runs; and
checked in a fresh interpreter, so the face database is seen to start without the model runtime.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = "argus.services."
TOOLS = ("argus.cli", "argus.evaluation")  # the only shared modules that may reach into a service

# The other services' modules a service may import: the jobs worker runs detections through the detector's facade
# (with the option types it takes, its pure option parsing and its response messages, which a detection job's result
# reuses), and runs the stylizer in process. Every other service stands alone.
ALLOWED_ACROSS_SERVICES: dict[str, tuple[str, ...]] = {
    "jobs": (
        "argus.services.detector.service",
        "argus.services.detector.options",
        "argus.services.detector.responses",
        "argus.services.detector.faces.FaceOptions",
        "argus.services.detector.objects.ObjectOptions",
        "argus.services.stylizer",
    ),
}


def _module_name(path: Path) -> str:
    """The dotted name a source file is imported as (shared/ is `argus`, services/ is `argus.services`)."""
    relative = path.relative_to(ROOT)
    parts = ["argus"] if relative.parts[0] == "shared" else ["argus", "services"]
    parts += relative.with_suffix("").parts[1:]
    return ".".join(part for part in parts if part != "__init__")


def _sources() -> Iterator[tuple[str, Path]]:
    for folder in ("shared", "services"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "proto" not in path.relative_to(ROOT).parts:
                yield _module_name(path), path


def _imports(path: Path) -> set[str]:
    """Every module the file names in an import, anywhere in it; `from a import b` counts as `a.b` (b may be a
    module or a name in a, and the rules below match on prefixes either way)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _service_of(module: str) -> str | None:
    return module.removeprefix(SERVICES).split(".")[0] if module.startswith(SERVICES) else None


def test_services_import_no_other_service_beyond_what_is_allowed() -> None:
    wrong = []
    for module, path in _sources():
        service = _service_of(module)
        if service is None:
            continue
        allowed = ALLOWED_ACROSS_SERVICES.get(service, ())
        for name in sorted(_imports(path)):
            target = _service_of(name)
            if target not in (None, service) and not any(_within(name, prefix) for prefix in allowed):
                wrong.append(f"{module} imports {name}")
    assert not wrong, "\n".join(wrong)


def test_only_the_tools_import_the_services() -> None:
    wrong = []
    for module, path in _sources():
        if _within(module, "argus.services") or any(_within(module, tool) for tool in TOOLS):
            continue
        wrong += [f"{module} imports {name}" for name in sorted(_imports(path)) if name.startswith(SERVICES)]
    assert not wrong, "\n".join(wrong)


def test_no_service_imports_the_tools() -> None:
    wrong = []
    for module, path in _sources():
        if _within(module, "argus.services"):
            names = _imports(path)
            wrong += [f"{module} imports {name}" for name in sorted(names) if any(_within(name, t) for t in TOOLS)]
    assert not wrong, "\n".join(wrong)


# The transport layer: the only modules that may import gRPC (or argus.auth, its side of auth). Everything else is
# domain code that takes plain values and raises plain exceptions (argus.grpc_status maps them).
TRANSPORT = (
    "argus.auth",
    "argus.client",
    "argus.grpc_status",
    "argus.health",
    "argus.server",
    "argus.supervisor",
    "argus.cli",
    "argus.protogen",
    "argus.services.gateway",  # transport through and through: HTTP in, gRPC out, no domain of its own
)
TRANSPORT_IN_A_SERVICE = ("servicer", "server", "remote_analysis")


def test_only_the_transport_layer_knows_grpc() -> None:
    wrong = []
    for module, path in _sources():
        if any(_within(module, layer) for layer in TRANSPORT) or module.rsplit(".", 1)[-1] in TRANSPORT_IN_A_SERVICE:
            continue
        wrong += [
            f"{module} imports {name}"
            for name in sorted(_imports(path))
            if _within(name, "grpc") or name.startswith("grpc_") or _within(name, "argus.auth")
        ]
    assert not wrong, "\n".join(wrong)


def _loaded_after(module: str) -> list[str]:
    """The modules a fresh interpreter holds after importing this one."""
    code = f"import json, sys\nimport {module}\nprint(json.dumps(sorted(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    loaded: list[str] = json.loads(result.stdout.splitlines()[-1])
    return loaded


@pytest.mark.parametrize(
    ("module", "left_out"),
    [
        # The face database serves through the detector and embedder services: their code and the model runtime
        # stay out of its process.
        ("argus.services.facedb.server", ("onnxruntime", "argus.services.detector", "argus.services.embedder")),
        # The analysis contract is plain data and a Protocol: nothing of a transport or a model runtime.
        ("argus.analysis", ("grpc", "onnxruntime", "argus.services")),
    ],
)
def test_importing_leaves_out(module: str, left_out: tuple[str, ...]) -> None:
    loaded = _loaded_after(module)
    pulled_in = [name for name in loaded if any(_within(name, unwanted) for unwanted in left_out)]
    assert not pulled_in, f"importing {module} loads {pulled_in}"
