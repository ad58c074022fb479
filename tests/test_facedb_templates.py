"""Subject templates and their calibration, on hand-worked numbers: the centroid rule, redundancy, the impostor veto,
and thresholds that differ by template size."""

from __future__ import annotations

import math

import numpy as np
import pytest

from argus.config import Settings
from argus.profiles import Fusion, get_profile
from argus.services.facedb.calibration import (
    Calibration,
    ImpostorTail,
    TemplateCalibration,
    fit_impostor_tail,
    load_calibration,
)
from argus.services.facedb.templates import adds_information, impostor_veto, most_redundant, template_vector


def single_model() -> Fusion:
    """mobilefacenet alone, uncentred: fused vectors are the model's own unit vectors."""
    return Fusion(get_profile("mobilefacenet"), (3,), {})


def test_the_template_is_the_renormalised_mean_of_each_model() -> None:
    fusion = single_model()
    faces = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    # mean (0.5, 0.5, 0) renormalised: (1/sqrt 2, 1/sqrt 2, 0)
    assert template_vector(fusion, faces) == pytest.approx([math.sqrt(0.5), math.sqrt(0.5), 0.0])
    one = np.array([[0.6, 0.8, 0.0]], dtype=np.float32)
    assert template_vector(fusion, one) == pytest.approx([0.6, 0.8, 0.0])


def test_a_fused_template_keeps_each_models_share() -> None:
    profile = get_profile("mobilefacenet+dlib")
    fusion = Fusion(profile, (2, 2), {m.model: np.zeros(2, np.float32) for m in profile.members if m.centred})
    a, b = fusion.shares
    faces = np.array([[math.sqrt(a), 0, math.sqrt(b), 0], [0, math.sqrt(a), math.sqrt(b), 0]], dtype=np.float32)
    centre = template_vector(fusion, faces)
    # first model: mean (1/2, 1/2) of unit vectors -> (1/sqrt 2, 1/sqrt 2) * sqrt(a); second: unchanged
    assert centre == pytest.approx([math.sqrt(a / 2), math.sqrt(a / 2), math.sqrt(b), 0.0], abs=1e-6)
    assert float(np.linalg.norm(centre)) == pytest.approx(1.0)


def test_the_most_redundant_face_is_the_one_closest_to_another() -> None:
    faces = np.array([[1.0, 0.0], [0.99, math.sqrt(1 - 0.99**2)], [0.0, 1.0]], dtype=np.float32)
    # faces 0 and 1 are 0.99 apart; the tie goes to the earlier
    assert most_redundant(faces) == 0
    with pytest.raises(ValueError):
        most_redundant(faces[:1])


def test_a_face_adds_information_unless_a_near_duplicate_is_there() -> None:
    template = np.array([[1.0, 0.0]], dtype=np.float32)
    assert adds_information(template, np.array([0.8, 0.6]), near_duplicate=0.95)
    assert not adds_information(template, np.array([0.96, math.sqrt(1 - 0.96**2)]), near_duplicate=0.95)
    assert adds_information(np.empty((0, 2), np.float32), np.array([1.0, 0.0]), near_duplicate=0.95)


def test_a_probe_closer_to_a_rejected_impostor_is_vetoed() -> None:
    impostors = np.array([[0.0, 1.0]], dtype=np.float32)
    probe = np.array([0.6, 0.8], dtype=np.float32)  # 0.8 to the impostor
    assert impostor_veto(0.7, probe, impostors)
    assert not impostor_veto(0.9, probe, impostors)
    assert not impostor_veto(0.1, probe, np.empty((0, 0), np.float32))


def tail(start: float) -> ImpostorTail:
    scores = np.random.default_rng(0).normal(start - 0.2, 0.05, 20_000)
    return fit_impostor_tail(scores)


def test_rate_at_inverts_score_at() -> None:
    fitted = tail(0.3)
    for probability in (0.2, 0.01, 1e-3, 1e-5):
        assert fitted.rate_at(fitted.score_at(probability)) == pytest.approx(probability, rel=1e-6)


def test_each_template_size_has_its_own_threshold() -> None:
    base = load_calibration(Settings(), "mobilefacenet+dlib")
    two = TemplateCalibration(2, 0.40, base.coef, base.intercept, tail(0.5), 10, 1000)
    three = TemplateCalibration(3, 0.45, base.coef, base.intercept, tail(0.6), 10, 1000)
    calibration = Calibration(**{**base.__dict__, "templates": (two, three)})
    assert calibration.threshold_for(1) == base.threshold
    assert (calibration.threshold_for(2), calibration.threshold_for(3), calibration.threshold_for(9)) == (
        0.40,
        0.45,
        0.45,
    )
    # the open-set bar of a size is its tail's, never below its 1:1 threshold
    assert calibration.identify_threshold(100, 0.01, 2) == pytest.approx(two.impostors.gallery_threshold(100, 0.01))
    assert calibration.identify_threshold(100, 0.01, 1) == base.identify_threshold(100, 0.01)
    with pytest.raises(ValueError, match="distinct sizes"):
        Calibration(**{**base.__dict__, "templates": (three, two)})


def test_the_shipped_calibration_keeps_the_false_accept_rate_across_sizes() -> None:
    calibration = load_calibration(Settings(), "mobilefacenet+dlib")
    assert [t.faces for t in calibration.templates] == [2, 3]
    assert calibration.impostors is not None
    single = calibration.impostors.rate_at(calibration.threshold)
    for template in calibration.templates:
        assert template.impostors is not None and template.impostor_pairs >= 10_000
        assert template.impostors.rate_at(template.threshold) == pytest.approx(single, rel=0.05)
