"""The session layer picks a provider that really works and reports it."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.models.runtime import CPU, CUDA, choose_providers, usable_gpu_providers
from argus.models.store import ModelStore
from argus.services.detector.faces import YunetModel
from argus.services.embedder.embedder import side_by_side


def test_cpu_is_always_available() -> None:
    assert choose_providers("cpu", require_gpu=False) == [CPU]


def test_auto_uses_the_gpu_only_when_usable() -> None:
    providers = choose_providers("auto", require_gpu=False)
    assert providers[-1] == CPU
    assert (CUDA in providers) == bool(usable_gpu_providers())


def test_requiring_a_gpu_fails_fast_without_one() -> None:
    if usable_gpu_providers():
        assert choose_providers("auto", require_gpu=True)[0] in (CUDA, "TensorrtExecutionProvider")
    else:
        with pytest.raises(ModelUnavailable, match="GPU was required"):
            choose_providers("auto", require_gpu=True)
        with pytest.raises(ModelUnavailable, match="ARGUS_DEVICE=cpu"):
            choose_providers("cuda", require_gpu=False)


def test_model_reports_the_provider_it_runs_on(store: ModelStore, settings: Settings) -> None:
    model = YunetModel(store, settings)
    assert model.provider == CPU  # the test settings ask for the CPU
    outputs = model.run(np.zeros((2, 3, 64, 64), dtype=np.float32))
    assert len(outputs) == 12 and outputs[0].shape[0] == 2


def test_missing_model_fails_to_load_with_instructions(tmp_path: object, settings: Settings) -> None:
    empty = ModelStore(settings.data_dir / "no-models")
    model = YunetModel(empty, settings)  # making one touches no file; loading checks it
    with pytest.raises(ModelUnavailable, match="argus models pull yunet-s"):
        model.load()
    assert not model.loaded


def test_a_model_loads_once_and_unloads(store: ModelStore, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    model = YunetModel(store, settings)
    assert not model.loaded
    gauge = {"model": model.spec.name, "version": model.spec.version, "provider": CPU}
    before = REGISTRY.get_sample_value("argus_model_loaded", gauge) or 0.0
    opened: list[Path] = []
    open_session = model._load

    def counted(path: Path) -> object:
        opened.append(path)
        return open_session(path)

    monkeypatch.setattr(model, "_load", counted)
    with ThreadPoolExecutor(4) as pool:  # callers racing to load share one session
        list(pool.map(lambda _: model.load(), range(4)))
    assert len(opened) == 1
    session = model.session
    model.load()
    assert model.loaded and model.session is session
    assert REGISTRY.get_sample_value("argus_model_loaded", gauge) == before + 1
    model.unload()
    assert not model.loaded
    assert REGISTRY.get_sample_value("argus_model_loaded", gauge) == before
    model.unload()  # unloading twice is harmless
    outputs = model.run(np.zeros((1, 3, 64, 64), dtype=np.float32))  # using it loads it again
    assert model.loaded and model.session is not session and len(outputs) == 12


def test_session_options_come_from_the_settings(store: ModelStore, settings: Settings) -> None:
    model = YunetModel(store, settings.model_copy(update={"intra_op_threads": 3, "inter_op_threads": 2}))
    options = model.session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 2)


def test_networks_run_side_by_side_share_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedder's networks run at once: each gets its share of the cores, not a thread per core each; an
    operator's own thread count, and a lone network, are left as they are."""
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(8)), raising=False)
    settings = Settings()
    assert side_by_side(settings, 2).intra_op_threads == 4
    assert side_by_side(settings, 3).intra_op_threads == 2
    assert side_by_side(settings, 1).intra_op_threads == 0
    assert side_by_side(Settings(intra_op_threads=6), 2).intra_op_threads == 6
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0}, raising=False)
    assert side_by_side(settings, 2).intra_op_threads == 1
