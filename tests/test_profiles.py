"""Embedding profiles and their fusion, on hand-worked vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.errors import InvalidInput
from argus.models.manifest import MANIFEST
from argus.profiles import PROFILES, Fusion, get_profile

FUSED = get_profile("mobilefacenet+dlib")


def test_every_profile_names_embedding_models_of_the_manifest() -> None:
    for profile in PROFILES.values():
        assert profile.models and all(MANIFEST[m].task == "face-embedding" for m in profile.models)
    assert get_profile("dlib").needs_means == () and FUSED.needs_means == ("dlib-resnet",)
    with pytest.raises(InvalidInput, match="unknown embedding profile 'arcface'"):
        get_profile("arcface")


def test_a_single_uncentred_model_passes_through() -> None:
    fusion = Fusion(get_profile("mobilefacenet"), (3,), {})
    vectors = np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(fusion.fuse(vectors), vectors)


def test_fusion_centres_renormalises_and_weighs_the_cosines() -> None:
    # Model A (2-d) as is, weight 0.8; model B (2-d) centred on (0.6, 0.8), weight 0.2.
    assert [m.weight for m in FUSED.members] == [0.8, 0.2]
    fusion = Fusion(FUSED, (2, 2), {"dlib-resnet": np.array([0.6, 0.8])})
    a = np.array([1.0, 0.0, 0.6, 0.8 + 0.5])  # B minus its mean: (0, 0.5) -> (0, 1)
    b = np.array([0.0, 1.0, 0.6 + 0.3, 0.8])  # B minus its mean: (0.3, 0) -> (1, 0)
    c = np.array([1.0, 0.0, 0.6, 0.8 + 0.1])  # the same centred direction as a
    d = np.array([1.0, 0.0, 0.6 + 0.2, 0.8])  # A agrees with a, B does not
    fused = fusion.fuse(np.stack([a, b, c, d]))
    big, small = math.sqrt(0.8), math.sqrt(0.2)
    np.testing.assert_allclose(fused[0], [big, 0, 0, small], atol=1e-6)
    np.testing.assert_allclose(fused[1], [0, big, small, 0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1, atol=1e-6)
    # Per-model cosines come back whole; the fused cosine is their weighted mean.
    np.testing.assert_allclose(fusion.model_cosines(fused[0], fused[2]), [1, 1], atol=1e-6)
    np.testing.assert_allclose(fusion.model_cosines(fused[0], fused[1]), [0, 0], atol=1e-6)
    np.testing.assert_allclose(fusion.model_cosines(fused[0], fused[3]), [1, 0], atol=1e-6)
    np.testing.assert_allclose(fusion.model_cosines(fused[:2], fused[1:3]), [[0, 0], [0, 0]], atol=1e-6)
    assert float(fused[0] @ fused[3]) == pytest.approx(0.8)


def test_a_missing_face_stays_a_zero_vector() -> None:
    fusion = Fusion(FUSED, (2, 2), {"dlib-resnet": np.array([0.6, 0.8])})
    np.testing.assert_array_equal(fusion.fuse(np.zeros((1, 4))), np.zeros((1, 4)))


def test_fusion_checks_its_means() -> None:
    with pytest.raises(ValueError, match="centres dlib-resnet but no mean"):
        Fusion(FUSED, (2, 2), {})
    with pytest.raises(ValueError, match=r"shape \(3,\), expected \(2,\)"):
        Fusion(FUSED, (2, 2), {"dlib-resnet": np.zeros(3)})
    with pytest.raises(ValueError, match="has 2 models, got 1 sizes"):
        Fusion(FUSED, (4,), {"dlib-resnet": np.zeros(4)})
