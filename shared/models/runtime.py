"""One session layer over ONNX Runtime: picks the execution provider that really works; loads a model when asked
(once, under a lock), warms it up, unloads it.

onnxruntime-gpu lists the CUDA and TensorRT providers whenever it is installed, GPU or not, and prints a page of
errors when it then fails to load them. So the GPU is only tried after checking, quietly, that a CUDA device
answers and that the provider library's own dependencies resolve.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from prometheus_client import Gauge

from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.models.manifest import INT8_BUILDS, ModelSpec
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


@dataclass(frozen=True)
class RunsOn:
    """Where and how a loaded model really runs, as status pages and logs report it."""

    provider: str  # ONNX Runtime's execution provider, e.g. "CPUExecutionProvider"
    precision: str  # "int8" or "fp32"


@dataclass(frozen=True)
class LoadedSession:
    """An open session and what load() read off it; replaced whole, so a pass in flight keeps a consistent one."""

    session: ort.InferenceSession
    provider: str  # the provider ONNX Runtime really chose, first of the session's list
    precision: str  # "int8" when the model's int8 build runs, else "fp32"
    input_names: list[str]
    output_names: list[str]


class OnnxModel:
    """A model declared in the manifest: loaded on `load()` (or on first use), warmed up, and unloaded on demand.

    Construction is cheap and touches no file. `load()` verifies the file against the manifest, opens the session
    and warms it up, once, under a lock, so concurrent callers share one session. Holders that must fail at start
    (every service does) call `load()` when they are made. Subclasses add the pre- and post-processing through the
    hooks: `prepare_graph` fixes an export's quirks, `_load` opens the session, `_predict` runs one pass;
    `providers()` and `session_options()` are defaults from the settings that a subclass may override.
    """

    spec: ModelSpec

    def __init__(self, store: ModelStore, settings: Settings, *, spec: ModelSpec | None = None) -> None:
        if spec is not None:  # one class for several models of the same kind (e.g. one network per style)
            self.spec = spec
        self.store = store
        self.settings = settings
        self._lock = threading.Lock()
        self._loaded: LoadedSession | None = None

    # --- defaults a subclass may override ---------------------------------------------------------------------

    def providers(self) -> list[str]:
        """The execution providers to ask for, in order of preference: the configured device, if it really works."""
        return choose_providers(self.settings.device, self.settings.require_gpu)

    def session_options(self) -> ort.SessionOptions:
        """The configured thread counts (0 lets ONNX Runtime choose) and spinning, and ONNX Runtime's own log kept
        to errors."""
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.settings.intra_op_threads
        options.inter_op_num_threads = self.settings.inter_op_threads
        spinning = "1" if self.settings.ort_allow_spinning else "0"
        options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
        options.add_session_config_entry("session.inter_op.allow_spinning", spinning)
        options.log_severity_level = 3
        return options

    def prepare_graph(self, graph: onnx.ModelProto) -> onnx.ModelProto:
        return graph

    def warmup_input(self) -> np.ndarray:
        raise NotImplementedError

    # --- lifecycle --------------------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self._loaded is not None

    def load(self) -> None:
        """Loads and warms up the model unless it is loaded; a call racing another waits for the one session.
        Raises ModelUnavailable when the file is missing or fails its sha256 check, or no session opens."""
        self._require()

    def unload(self) -> None:
        """Lets the session go (passes in flight finish on it); the next use loads the model again."""
        with self._lock:
            loaded, self._loaded = self._loaded, None
        if loaded is not None:
            MODEL_PROVIDER.labels(self.spec.name, self.spec.version, loaded.provider).dec()
            log.info("model %s unloaded", self.spec.ref)

    def _require(self) -> LoadedSession:
        loaded = self._loaded  # read once: unload() may clear it meanwhile
        if loaded is not None:
            return loaded
        with self._lock:
            if self._loaded is None:
                self._loaded = self._open()
            return self._loaded

    def _weights(self) -> tuple[Path, str]:
        """The verified file to run and its precision: the int8 build where ARGUS_INT8 is on, the model has one and
        it runs on the CPU only; the fp32 file otherwise. An int8 build missing from the store is a warning, not
        a failure: the fp32 file gives the same network's vectors, only slower."""
        build = INT8_BUILDS.get(self.spec.name)
        if build is not None and self.settings.int8 and self.providers() == [CPU]:
            try:
                return self.store.require(build), "int8"
            except ModelUnavailable as exc:
                log.warning("%s; %s runs in fp32 until then", exc, self.spec.ref)
        return self.store.require(self.spec), "fp32"

    def _open(self) -> LoadedSession:
        path, precision = self._weights()
        session = self._load(path)
        loaded = LoadedSession(
            session,
            session.get_providers()[0],
            precision,
            [node.name for node in session.get_inputs()],
            [node.name for node in session.get_outputs()],
        )
        if self.settings.require_gpu and loaded.provider == CPU:
            raise ModelUnavailable(f"model {self.spec.ref} fell back to the CPU but ARGUS_REQUIRE_GPU is set")
        log.info("model %s loaded on %s (%s)", self.spec.ref, loaded.provider, precision)
        if self.settings.warmup:
            started = time.perf_counter()
            self._predict(loaded, self.warmup_input())
            log.info("model %s warmed up in %.0f ms", self.spec.ref, 1e3 * (time.perf_counter() - started))
        MODEL_PROVIDER.labels(self.spec.name, self.spec.version, loaded.provider).inc()
        return loaded

    def _load(self, path: Path) -> ort.InferenceSession:
        """The session over the verified file, with this model's providers and options."""
        graph = self.prepare_graph(onnx.load(str(path)))
        options, providers = self.session_options(), self.providers()
        try:
            return ort.InferenceSession(graph.SerializeToString(), options, providers=providers)
        except Exception as exc:  # ORT raises its own types; turn them into one the services understand
            raise ModelUnavailable(f"model {self.spec.ref} failed to load from {path}: {exc}") from exc

    def _predict(self, loaded: LoadedSession, batch: np.ndarray) -> list[np.ndarray]:
        """One pass; the batch feeds the first input."""
        outputs: list[np.ndarray] = loaded.session.run(loaded.output_names, {loaded.input_names[0]: batch})
        return outputs

    # --- use --------------------------------------------------------------------------------------------------

    def run(self, *inputs: np.ndarray) -> list[np.ndarray]:
        """One forward pass over a batch (first axis), loading the model first if need be; every output, batch
        first."""
        return self._predict(self._require(), *inputs)

    @property
    def session(self) -> ort.InferenceSession:
        return self._require().session

    @property
    def provider(self) -> str:
        return self._require().provider

    @property
    def precision(self) -> str:
        return self._require().precision

    @property
    def runs_on(self) -> RunsOn:
        loaded = self._require()
        return RunsOn(loaded.provider, loaded.precision)

    @property
    def input_names(self) -> list[str]:
        return self._require().input_names

    @property
    def output_names(self) -> list[str]:
        return self._require().output_names
