"""Generates the Python stubs in `argus.proto` from the .proto files in `protos/`.

Run `python -m argus.protogen` after editing a .proto file. A test regenerates the stubs into a temporary folder
and compares them byte for byte, so the committed stubs can never drift from the contract.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = REPO_ROOT / "protos"
STUB_ROOT = Path(__file__).resolve().parent / "proto"

# protoc writes `from argus.detector.v1 import ...`; the stubs live one level down, in `argus.proto`.
_IMPORT = re.compile(r"^from argus\.(\w+)\.v(\d+) import", re.MULTILINE)


def proto_files(root: Path = PROTO_ROOT) -> list[Path]:
    return sorted(root.rglob("*.proto"))


def generate(out_dir: Path, proto_root: Path = PROTO_ROOT) -> list[Path]:
    """Writes `<service>/v1/*_pb2.py`, `*_pb2.pyi`, `*_pb2_grpc.py` and `*_pb2_grpc.pyi` (typed stubs, by
    mypy-protobuf, so calls through a stub are type-checked) under out_dir; returns the files written."""
    from grpc_tools import protoc  # dev dependencies: only needed to regenerate

    include = Path(protoc.__file__).parent / "_proto"
    typed_stubs = Path(sys.executable).parent / "protoc-gen-mypy_grpc"
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{proto_root}",
            f"-I{include}",
            f"--python_out={tmp}",
            f"--pyi_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--plugin=protoc-gen-mypy_grpc={typed_stubs}",
            f"--mypy_grpc_out={tmp}",
            *(str(p.relative_to(proto_root)) for p in proto_files(proto_root)),
        ]
        if protoc.main(args) != 0:
            raise RuntimeError("protoc failed; see the messages above")
        written: list[Path] = []
        for src in sorted((Path(tmp) / "argus").rglob("*.py*")):
            dst = out_dir / src.relative_to(Path(tmp) / "argus")
            dst.parent.mkdir(parents=True, exist_ok=True)
            dst.write_text(_IMPORT.sub(r"from argus.proto.\1.v\2 import", src.read_text()))
            written.append(dst)
        packages = {out_dir} | {p.parent for p in written} | {p.parent.parent for p in written}
        for package in packages:
            (package / "__init__.py").touch()
        return written


def main() -> int:
    shutil.rmtree(STUB_ROOT, ignore_errors=True)
    files = generate(STUB_ROOT)
    print(f"wrote {len(files)} stub files under {STUB_ROOT.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
