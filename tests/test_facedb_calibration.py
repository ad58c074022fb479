"""Threshold and probability calibration: hand-worked thresholds, the logistic curve, the JSON file and its loading."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from argus.config import Settings
from argus.errors import InvalidInput, ModelUnavailable
from argus.models.manifest import MANIFEST
from argus.profiles import PROFILES, Fusion, get_profile
from argus.services.facedb.calibration import (
    Calibration,
    accuracy_threshold,
    default_calibration_path,
    fit_calibration,
    load_calibration,
)


def test_threshold_separable_is_the_midpoint_of_the_gap() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8])
    same = np.array([False, False, False, True, True, True])
    assert accuracy_threshold(scores, same) == pytest.approx((0.45, 1.0))


def test_threshold_picks_the_widest_of_two_tied_plateaus() -> None:
    # Accepting >= 0.35 and accepting >= 0.6 both get 5 of 6 right; the gaps are (0.2, 0.35] and (0.4, 0.6].
    scores = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.8])
    same = np.array([False, False, True, False, True, True])
    threshold, accuracy = accuracy_threshold(scores, same)
    assert accuracy == pytest.approx(5 / 6)
    assert threshold == pytest.approx(0.5)


def test_threshold_is_the_middle_of_an_adjacent_plateau() -> None:
    # A same and a different pair share 0.5: thresholds in (0.3, 0.5] and (0.5, 0.7] all get 5 of 6 right.
    scores = np.array([0.1, 0.3, 0.5, 0.5, 0.7, 0.9])
    same = np.array([False, False, True, False, True, True])
    threshold, accuracy = accuracy_threshold(scores, same)
    assert accuracy == pytest.approx(5 / 6)
    assert threshold == pytest.approx(0.5)


def test_threshold_at_the_ends() -> None:
    assert accuracy_threshold(np.array([0.2, 0.4]), np.array([True, True])) == pytest.approx((0.2, 1.0))
    threshold, accuracy = accuracy_threshold(np.array([0.2, 0.4]), np.array([False, False]))
    assert accuracy == 1.0 and threshold > 0.4


def test_threshold_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        accuracy_threshold(np.array([0.1, 0.2]), np.array([True]))
    with pytest.raises(ValueError):
        accuracy_threshold(np.array([]), np.array([], dtype=bool))
    with pytest.raises(ValueError):
        accuracy_threshold(np.array([np.nan, 0.2]), np.array([True, False]))


def _synthetic(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Same pairs around 0.6, different around 0.0, overlapping enough that many pairs pin the threshold down."""
    rng = np.random.default_rng(seed)
    scores = np.concatenate([rng.normal(0.6, 0.2, 1000), rng.normal(0.0, 0.2, 1000)])
    return scores, np.arange(2000) < 1000


SINGLE = Fusion(get_profile("mobilefacenet"), (4,), {})


def _fit(scores: np.ndarray, same: np.ndarray, **kwargs: object) -> Calibration:
    """A single-model calibration: the per-model cosine is the score itself."""
    return fit_calibration(SINGLE, ("m@1",), scores, scores[:, None], same, **kwargs)  # type: ignore[arg-type]


def _calibration(**changes: object) -> Calibration:
    fields = dict(
        profile="mobilefacenet",
        models=("m@1",),
        dimensions=(4,),
        weights=(1.0,),
        means={},
        threshold=0.3,
        coef=(21.0,),
        intercept=-6.0,
        pairs_file="pairsDevTest.txt",
        pairs=1000,
        accuracy=0.985,
        flip_augmentation=True,
        created="2025-01-02",
    )
    return Calibration(**{**fields, **changes})  # type: ignore[arg-type]


def test_fit_calibration_threshold_and_probability() -> None:
    scores, same = _synthetic()
    calibration = _fit(scores, same, pairs_file="some/dir/pairs.txt", created=date(2025, 1, 2))
    assert calibration.threshold == pytest.approx(0.3, abs=0.05)
    assert calibration.pairs == 2000 and calibration.pairs_file == "pairs.txt" and calibration.created == "2025-01-02"
    assert calibration.accuracy == pytest.approx(np.mean((scores >= calibration.threshold) == same))
    assert calibration.coef[0] > 10  # nearly unregularised: a sharp sigmoid, not sklearn's default shrinkage
    grid = np.linspace(-1, 1, 201)
    probabilities = calibration.probability(grid[:, None])
    assert isinstance(probabilities, np.ndarray) and probabilities.shape == grid.shape
    assert np.all(np.diff(probabilities) > 0)
    assert probabilities[0] < 0.01 and probabilities[-1] > 0.99
    at_threshold = calibration.probability(calibration.threshold)
    assert isinstance(at_threshold, float) and 0.4 < at_threshold < 0.6
    assert calibration.probability(0.3) == pytest.approx(0.5, abs=0.05)  # the classes are symmetric about 0.3


def test_score_fusion_weighs_the_more_telling_model_more() -> None:
    """Two models' cosines of the same pairs: the second separates same from different far better, so the
    logistic regression leans on it, and the fused probability beats either model's alone."""
    rng = np.random.default_rng(5)
    same = np.arange(2000) < 1000
    weak = np.where(same, 0.3, 0.0) + rng.normal(0, 0.25, 2000)
    strong = np.where(same, 0.6, 0.0) + rng.normal(0, 0.15, 2000)
    fusion = Fusion(get_profile("mobilefacenet+dlib"), (2, 2), {"dlib-resnet": np.array([0.0, 1.0])})
    cosines = np.stack([weak, strong], axis=1)
    calibration = fit_calibration(fusion, ("a@1", "b@1"), cosines.mean(axis=1), cosines, same)
    assert calibration.coef[1] > 2 * calibration.coef[0] > 0
    assert calibration.means == {"dlib-resnet": (0.0, 1.0)}
    decided = calibration.probability(cosines) >= 0.5
    assert np.mean(decided == same) > max(np.mean((strong >= 0.3) == same), np.mean((weak >= 0.15) == same))


def test_fit_calibration_survives_separable_pairs_and_needs_both_classes() -> None:
    calibration = _fit(np.array([0.1, 0.2, 0.3, 0.6, 0.7, 0.8]), np.arange(6) >= 3)
    assert np.isfinite(calibration.coef[0]) and calibration.probability(0.8) > calibration.probability(0.1)
    with pytest.raises(ValueError):
        _fit(np.array([0.1, 0.2]), np.array([True, True]))


def test_json_round_trip(tmp_path: Path) -> None:
    calibration = _calibration()
    assert Calibration.from_json(calibration.to_json()) == calibration
    path = tmp_path / "nested" / "m.json"
    calibration.save(path)
    assert Calibration.load(path) == calibration
    assert json.loads(path.read_text())["threshold"] == 0.3
    assert [p.name for p in path.parent.iterdir()] == ["m.json"]  # no temporary file left behind


def test_from_json_rejects_bad_files() -> None:
    good = json.loads(_calibration().to_json())
    with pytest.raises(ValueError, match="JSON"):
        Calibration.from_json("{not json")
    with pytest.raises(ValueError, match="threshold"):
        Calibration.from_json(json.dumps({k: v for k, v in good.items() if k != "threshold"}))
    with pytest.raises(ValueError):
        Calibration.from_json(json.dumps({**good, "coef": "steep"}))
    with pytest.raises(ValueError):
        Calibration.from_json(json.dumps({**good, "intercept": float("nan")}))
    with pytest.raises(ValueError, match="one coefficient and one dimension per model"):
        Calibration.from_json(json.dumps({**good, "coef": [1.0, 2.0]}))
    with pytest.raises(ValueError, match=r"fitted with weights \(0\.5,\), but profile mobilefacenet now"):
        Calibration.from_json(json.dumps({**good, "weights": [0.5]}))
    with pytest.raises(ValueError, match="does not fit its profile"):  # dlib is centred: its mean is needed
        Calibration.from_json(
            json.dumps(
                {
                    **good,
                    "profile": "mobilefacenet+dlib",
                    "models": ["a@1", "b@1"],
                    "dimensions": [4, 4],
                    "coef": [1, 1],
                }
            )
        )
    assert Calibration.from_json(json.dumps({**good, "added_later": 1})).models == ("m@1",)


def test_default_path_is_named_after_the_profile() -> None:
    path = default_calibration_path("mobilefacenet+dlib")
    assert path.name == "mobilefacenet+dlib.json" and path.parent.name == "calibration"
    with pytest.raises(InvalidInput):
        default_calibration_path("../evil")


def test_load_calibration_honours_the_setting_and_refuses_other_profiles(tmp_path: Path) -> None:
    mine = _calibration()
    mine.save(tmp_path / "mobilefacenet.json")
    assert load_calibration(Settings(calibration_dir=tmp_path), "mobilefacenet") == mine
    _calibration(profile="dlib").save(tmp_path / "mobilefacenet.json")
    with pytest.raises(ModelUnavailable, match="fitted for profile dlib, not mobilefacenet"):
        load_calibration(Settings(calibration_dir=tmp_path), "mobilefacenet")
    with pytest.raises(ModelUnavailable, match="does not exist"):
        load_calibration(Settings(calibration_dir=tmp_path), "dlib")
    (tmp_path / "dlib.json").write_text("{")
    with pytest.raises(ModelUnavailable, match="unreadable"):
        load_calibration(Settings(calibration_dir=tmp_path), "dlib")
    with pytest.raises(InvalidInput, match="unknown embedding profile"):
        load_calibration(Settings(), "no-such-profile")


@pytest.mark.parametrize("profile", list(PROFILES))
def test_shipped_calibrations_load_and_are_plausible(profile: str) -> None:
    calibration = load_calibration(Settings(calibration_dir=None), profile)
    assert calibration.profile == profile and len(calibration.models) == len(PROFILES[profile].members)
    assert [ref.split("@")[0] for ref in calibration.models] == list(PROFILES[profile].models)
    assert calibration.models[0] == MANIFEST[PROFILES[profile].models[0]].ref
    assert calibration.pairs_file == "pairsDevTest.txt" and calibration.pairs == 1000
    assert calibration.accuracy > 0.97 and calibration.impostors is not None
    # Fitted with the embedder as it runs by default: flip augmentation changes the scores a little.
    assert calibration.flip_augmentation == Settings.model_fields["flip_augmentation"].default
    assert all(c > 0 for c in calibration.coef)  # every model's agreement raises P(same)
    fusion = calibration.fusion()
    assert fusion.dimension == sum(calibration.dimensions)
    low, high = np.full(len(calibration.models), 0.0), np.full(len(calibration.models), 1.0)
    assert calibration.probability(low) < 0.01 and calibration.probability(high) > 0.99


# --------------------------------------------------------------------------- open-set thresholds (impostor tail)


def test_impostor_tail_quantiles_and_exponential_extrapolation() -> None:
    from argus.services.facedb.calibration import TAIL_SAMPLES, fit_impostor_tail

    # 100,000 impostor scores spread evenly over [-1, 1): P(S >= s) = (1 - s) / 2 until the tail takes over.
    scores = np.linspace(-1, 1, 100_000, endpoint=False)
    tail = fit_impostor_tail(scores)
    assert tail.pairs == 100_000 and tail.rate == pytest.approx(TAIL_SAMPLES / 100_000)
    assert tail.score_at(0.5) == pytest.approx(0.0, abs=1e-3)
    assert tail.score_at(0.1) == pytest.approx(0.8, abs=1e-3)
    # above the start the tail is exponential with the mean excess as its scale
    assert tail.start == pytest.approx(0.98, abs=1e-3)
    assert tail.scale == pytest.approx(0.01, abs=1e-3)
    assert tail.score_at(tail.rate / np.e) == pytest.approx(tail.start + tail.scale)


def test_gallery_threshold_grows_with_the_gallery() -> None:
    from argus.services.facedb.calibration import fit_impostor_tail

    tail = fit_impostor_tail(np.random.default_rng(0).normal(0.0, 0.1, 200_000))
    # one enrolled person: the single-face quantile; many: each stranger has many chances to look like someone
    assert tail.gallery_threshold(1, 0.01) == pytest.approx(tail.score_at(0.01))
    thresholds = [tail.gallery_threshold(n, 0.01) for n in (1, 10, 100, 1000, 10_000)]
    assert thresholds == sorted(thresholds) and thresholds[-1] > thresholds[0] + 0.1
    # P(max of N >= t) = 1 - (1 - p)^N with p the per-face rate at t
    n, far = 100, 0.05
    per_face = 1 - (1 - far) ** (1 / n)
    assert tail.gallery_threshold(n, far) == pytest.approx(tail.score_at(per_face))
    with pytest.raises(ValueError, match="too few"):
        fit_impostor_tail(np.zeros(100))


def test_identify_threshold_never_falls_below_the_verify_threshold() -> None:
    from dataclasses import replace

    from argus.services.facedb.calibration import fit_impostor_tail

    tail = fit_impostor_tail(np.random.default_rng(1).normal(0.0, 0.1, 50_000))
    calibration = _fit(np.array([0.1, 0.2, 0.6, 0.7]), np.array([False, False, True, True]), impostor_scores=None)
    assert calibration.identify_threshold(1000, 0.01) == calibration.threshold  # no tail: the 1:1 threshold
    older = json.loads(calibration.to_json())
    del older["impostors"]  # files written before open-set thresholds still load
    assert Calibration.from_json(json.dumps(older)).impostors is None
    strict = replace(calibration, impostors=tail)
    assert strict.identify_threshold(1, 0.5) == calibration.threshold
    assert strict.identify_threshold(10_000, 0.01) > calibration.threshold
    assert Calibration.from_json(strict.to_json()) == strict


def test_shipped_calibration_has_an_open_set_tail() -> None:
    from argus.services.facedb.calibration import default_calibration_path

    shipped = Calibration.load(default_calibration_path("mobilefacenet"))
    assert shipped.impostors is not None and shipped.impostors.pairs > 100_000
    # measured on all of LFW: 1% of 2,880 strangers pass at 0.497 against 1,588 people
    assert 0.45 < shipped.identify_threshold(1588, 0.01) < 0.55
    assert shipped.identify_threshold(2, 0.01) < shipped.identify_threshold(500, 0.01)
