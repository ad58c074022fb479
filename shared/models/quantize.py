"""Static int8 builds of a network: ONNX Runtime's QDQ quantiser over the fp32 file, with activation ranges that are
measured once and committed (argus/models/calibration), so building needs no calibration data and gives the same
bytes on every machine with the same quantiser.

Why ranges and not a calibration run at build time: a calibration run computes the ranges with the machine's own
float kernels, whose last bits differ between CPUs, and a range a bit off changes the output file. A committed table
makes the build a pure function of the fp32 file, the table and the tool version, so its sha256 can be pinned.

Weights are int8 per output channel with a 7-bit range (`reduce_range`), activations uint8: the 7 bits keep the
u8 x s8 products of CPUs without VNNI from saturating. Measured on dlib (300 LFW test faces, 1 - cosine to fp32):
8.3e-4 as is, 5.5e-4 with its last layer (a small MatMul) kept in fp32 at no measurable cost in speed, 3.7e-4 with
full 8-bit weights as well; keeping any one convolution in fp32 changed it by under 15%: the error is spread over
every layer's uint8 activations.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

RANGES_FORMAT = 1


def quantiser_version() -> str:
    """The version of ONNX Runtime, whose quantiser an int8 build's sha256 is pinned to (either wheel, CPU or GPU)."""
    import onnxruntime

    return str(onnxruntime.__version__)


def _prepared(fp32: Path, work: Path) -> Path:
    """The fp32 graph as the quantiser wants it: shapes inferred and batch norms folded into the convolutions. The
    ranges are keyed by this graph's tensor names, so measuring and building both start here."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = work / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    return prepared


def measure_ranges(fp32: Path, batches: Iterable[np.ndarray]) -> dict[str, tuple[float, float]]:
    """Every activation's (lowest, highest) value over the batches (each fed to the first input): the MinMax
    calibration of the network on these inputs."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, create_calibrator

    class Feed(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self, name: str) -> None:
            self.batches = iter(batches)
            self.name = name

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {self.name: batch}

    with tempfile.TemporaryDirectory(prefix="argus-calibrate-") as work_name:
        work = Path(work_name)
        prepared = _prepared(fp32, work)
        input_name = onnx.load(str(prepared)).graph.input[0].name
        calibrator = create_calibrator(
            prepared, augmented_model_path=str(work / "augmented.onnx"), calibrate_method=CalibrationMethod.MinMax
        )
        calibrator.collect_data(Feed(input_name))
        computed = calibrator.compute_data()
    return {
        name: (float(np.asarray(lowest).reshape(-1)[0]), float(np.asarray(highest).reshape(-1)[0]))
        for name, (lowest, highest) in ((name, data.range_value) for name, data in computed.data.items())
    }


def ranges_document(
    model_ref: str, calibration_set: str, ranges: Mapping[str, tuple[float, float]], tool_version: str
) -> dict[str, Any]:
    """The committed table: what was measured, on what, with which tool, and the ranges sorted by tensor."""
    return {
        "format": RANGES_FORMAT,
        "model": model_ref,
        "calibration_set": calibration_set,
        "method": "MinMax",
        "tool": f"onnxruntime=={tool_version}",
        "ranges": {name: [lowest, highest] for name, (lowest, highest) in sorted(ranges.items())},
    }


def ranges_path(name: str) -> Path:
    """A committed ranges table, by its file name."""
    return Path(str(files("argus.models") / "calibration" / name))


def load_ranges(path: Path) -> dict[str, tuple[float, float]]:
    document = json.loads(path.read_text())
    if document.get("format") != RANGES_FORMAT:
        raise ValueError(f"{path.name}: ranges format {document.get('format')!r}, expected {RANGES_FORMAT}")
    return {name: (float(lowest), float(highest)) for name, (lowest, highest) in document["ranges"].items()}


def build_int8(
    fp32: Path, ranges: Mapping[str, tuple[float, float]], output: Path, fp32_nodes: Sequence[str] = ()
) -> None:
    """Writes the static QDQ int8 build of fp32 to output, with these activation ranges; the nodes named in
    fp32_nodes stay in fp32."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorData, TensorsData, save_tensors_data

    table = TensorsData(
        CalibrationMethod.MinMax,
        {
            name: TensorData(lowest=np.array([lowest], np.float32), highest=np.array([highest], np.float32))
            for name, (lowest, highest) in ranges.items()
        },
    )
    with tempfile.TemporaryDirectory(prefix="argus-quantize-") as work_name:
        work = Path(work_name)
        prepared = _prepared(fp32, work)
        cache = work / "ranges.json"
        save_tensors_data(table, cache)
        quantize_static(
            prepared,
            output,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            reduce_range=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
            calibration_cache_path=cache,
            nodes_to_exclude=list(fp32_nodes),
        )
