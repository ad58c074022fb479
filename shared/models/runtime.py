"""One session layer over ONNX Runtime: picks the execution provider that really works, loads, warms up.

onnxruntime-gpu lists the CUDA and TensorRT providers whenever it is installed, GPU or not, and prints a page of
errors when it then fails to load them. So the GPU is only tried after checking, quietly, that a CUDA device
answers and that the provider library's own dependencies resolve.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from prometheus_client import Gauge

from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.models.manifest import ModelSpec
from argus.models.store import ModelStore

log = logging.getLogger(__name__)

MODEL_PROVIDER = Gauge(
    "argus_model_loaded",
    "Models loaded, by the execution provider they run on",
    ["model", "version", "provider"],
)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"

ort.set_default_logger_severity(3)  # errors only: provider probing is ours to report, once


def _cuda_device_count() -> int:
    """Devices the CUDA driver reports, or 0 when there is no driver or no device."""
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:
        return 0
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return 0
    return count.value


def _provider_library_loads(name: str) -> bool:
    library = Path(ort.__file__).parent / "capi" / f"libonnxruntime_providers_{name}.so"
    if not library.is_file():
        return False
    with contextlib.suppress(Exception), open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        ort.preload_dlls()  # finds CUDA and cuDNN from the nvidia-* pip packages when they are installed
    try:
        ctypes.CDLL(str(library))
    except OSError as exc:
        log.debug("%s provider unusable: %s", name, exc)
        return False
    return True


@lru_cache
def usable_gpu_providers() -> tuple[str, ...]:
    available = set(ort.get_available_providers())
    if CUDA not in available or _cuda_device_count() == 0 or not _provider_library_loads("cuda"):
        return ()
    usable = [CUDA]
    if TENSORRT in available and _provider_library_loads("tensorrt"):
        usable.insert(0, TENSORRT)
    return tuple(usable)


def choose_providers(device: str, require_gpu: bool) -> list[str]:
    """The provider list to ask ONNX Runtime for, in order of preference; fails fast when a GPU is required."""
    gpu = usable_gpu_providers()
    wants_gpu = require_gpu or device in ("cuda", "tensorrt")
    if wants_gpu and not gpu:
        raise ModelUnavailable(
            "a GPU was required (ARGUS_DEVICE or ARGUS_REQUIRE_GPU) but none is usable: no CUDA device answered "
            "or the CUDA/cuDNN libraries are not installed; set ARGUS_DEVICE=cpu to run on the CPU"
        )
    if device == "cpu":
        return [CPU]
    if device == "tensorrt":
        if TENSORRT not in gpu:
            raise ModelUnavailable("ARGUS_DEVICE=tensorrt but the TensorRT libraries are not usable")
        return [TENSORRT, CUDA, CPU]
    return [CUDA, CPU] if gpu else [CPU]


class OnnxModel:
    """A model declared in the manifest, loaded once per process and warmed up.

    Subclasses add the pre- and post-processing; `prepare_graph` lets one fix an export's quirks at load time.
    """

    spec: ModelSpec

    def __init__(self, store: ModelStore, settings: Settings, *, spec: ModelSpec | None = None) -> None:
        if spec is not None:  # one class for several models of the same kind (e.g. one network per style)
            self.spec = spec
        path = store.require(self.spec)
        graph = self.prepare_graph(onnx.load(str(path)))
        options = ort.SessionOptions()
        options.intra_op_num_threads = settings.intra_op_threads
        options.inter_op_num_threads = settings.inter_op_threads
        options.log_severity_level = 3
        providers = choose_providers(settings.device, settings.require_gpu)
        try:
            self.session = ort.InferenceSession(graph.SerializeToString(), options, providers=providers)
        except Exception as exc:  # ORT raises its own types; turn them into one the services understand
            raise ModelUnavailable(f"model {self.spec.ref} failed to load from {path}: {exc}") from exc
        self.provider = self.session.get_providers()[0]
        if settings.require_gpu and self.provider == CPU:
            raise ModelUnavailable(f"model {self.spec.ref} fell back to the CPU but ARGUS_REQUIRE_GPU is set")
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [output.name for output in self.session.get_outputs()]
        MODEL_PROVIDER.labels(self.spec.name, self.spec.version, self.provider).set(1)
        log.info("model %s loaded on %s", self.spec.ref, self.provider)
        if settings.warmup:
            started = time.perf_counter()
            self.run(self.warmup_input())
            log.info("model %s warmed up in %.0f ms", self.spec.ref, 1e3 * (time.perf_counter() - started))

    def prepare_graph(self, graph: onnx.ModelProto) -> onnx.ModelProto:
        return graph

    def warmup_input(self) -> np.ndarray:
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        """One forward pass over a batch (first axis); returns every output, batch first."""
        return self.session.run(self.output_names, {self.input_name: batch})
