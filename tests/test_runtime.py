"""The session layer picks a provider that really works and reports it."""

from __future__ import annotations

import numpy as np
import pytest

from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.models.runtime import CPU, CUDA, choose_providers, usable_gpu_providers
from argus.models.store import ModelStore
from argus.services.detector.faces import YunetModel


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
    with pytest.raises(ModelUnavailable, match="argus models pull yunet-s"):
        YunetModel(empty, settings)
