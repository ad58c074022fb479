"""LFW evaluation: pair files, the 10-fold protocol and TAR@FAR on hand-worked scores, the ROC plot, and one small
run of the real models (pairs, identification, cache, a photo without a face)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.config import Settings
from argus.evaluation.cache import FOUND, MISSED, RETRIED, EmbeddingCache, closest_to_centre
from argus.evaluation.identification import evaluate_identification, list_identities, open_set_threshold
from argus.evaluation.lfw import IMAGES_SUBDIR, Pair, evaluate_lfw, read_pairs, select_pairs
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.evaluation.plots import plot_roc
from argus.evaluation.verification import in_fold_fusion_accuracy, tar_at_far, verification_metrics
from argus.models.manifest import DLIB_RESNET, MOBILEFACENET
from argus.models.store import ModelStore
from argus.services.detector.faces import DetectedFace
from argus.services.facedb.calibration import load_calibration

# ------------------------------------------------------------------------------------------------------ read_pairs


def test_read_pairs_ten_fold_format(tmp_path: Path) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text("2\t1\nAbel_Pacheco\t1\t4\nAl_Gore\t2\tTom_Cruise\t10\nBo\t3\t12\nCy\t1\tDi\t2")  # no final newline
    pairs = read_pairs(path)
    assert pairs == [
        Pair("Abel_Pacheco/Abel_Pacheco_0001.jpg", "Abel_Pacheco/Abel_Pacheco_0004.jpg", True, 0),
        Pair("Al_Gore/Al_Gore_0002.jpg", "Tom_Cruise/Tom_Cruise_0010.jpg", False, 0),
        Pair("Bo/Bo_0003.jpg", "Bo/Bo_0012.jpg", True, 1),
        Pair("Cy/Cy_0001.jpg", "Di/Di_0002.jpg", False, 1),
    ]


def test_read_pairs_dev_format(tmp_path: Path) -> None:
    path = tmp_path / "pairsDevTest.txt"
    path.write_text("2\nA\t1\t2\nB\t1\t3\nA\t1\tB\t1\nC\t2\tD\t1\n\n")
    pairs = read_pairs(path)
    assert [p.same for p in pairs] == [True, True, False, False]
    assert {p.fold for p in pairs} == {0}
    assert pairs[3] == Pair("C/C_0002.jpg", "D/D_0001.jpg", False, 0)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2\t2\nA\t1\t2\nA\t1\tB\t1\n", "4 pair lines|= 8 pairs"),  # header promises more than the file has
        ("1\nA\t1\t2\nA\t1\tB\t1\nC\t1\t2\n", "3 pair lines"),
        ("ten\nA\t1\t2\nA\t1\tB\t1\n", "header"),
        ("1\t1\t1\nA\t1\t2\nA\t1\tB\t1\n", "header"),
        ("1\nA\t1\tB\t2\nA\t1\tB\t1\n", "line 2: expected a same-person line"),
        ("1\nA\t1\t2\nA\t1\t2\n", "line 3: expected a different-person line"),
        ("1\nA\t0\t2\nA\t1\tB\t1\n", "start at 1"),
        ("", "empty"),
    ],
)
def test_read_pairs_rejects_bad_files(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_pairs(path)


def test_real_pair_files_parse(eval_dir: Path) -> None:
    test_pairs = read_pairs(eval_dir / "lfw" / "pairs.txt")
    dev_pairs = read_pairs(eval_dir / "lfw" / "pairsDevTest.txt")
    assert len(test_pairs) == 6000 and sum(p.same for p in test_pairs) == 3000
    assert sorted({p.fold for p in test_pairs}) == list(range(10))
    assert len(dev_pairs) == 1000 and sum(p.same for p in dev_pairs) == 500


def test_select_pairs_keeps_both_kinds_per_fold() -> None:
    pairs = [Pair(f"{f}{s}{i}", "x", s, f) for f in range(3) for s in (True, False) for i in range(5)]
    chosen = select_pairs(pairs, limit_folds=2, pairs_per_fold=4)
    assert len(chosen) == 8
    assert sorted((p.fold, p.same) for p in chosen) == sorted([(f, s) for f in (0, 1) for s in (True, False)] * 2)


# ------------------------------------------------------------------------------------------------------- metrics


def test_separable_scores_are_perfect() -> None:
    rng = np.random.default_rng(1)
    same = np.tile([True, False], 300)
    scores = np.where(same, rng.uniform(0.5, 0.9, same.size), rng.uniform(-0.2, 0.3, same.size))
    result = verification_metrics(scores, same, np.repeat(np.arange(10), 60))
    assert result.protocol == "10-fold" and result.folds == 10 and result.pairs == 600
    assert result.accuracy == 1.0 and result.accuracy_std == 0.0 and result.auc == 1.0
    assert result.tar_at(1e-3) == 1.0 and result.tar_at(1e-2) == 1.0
    assert 0.3 < result.threshold < 0.5


def test_ten_fold_uses_the_other_folds_threshold() -> None:
    # Fold 0 separates at (0.2, 0.6) -> 0.4; fold 1 at (0.3, 0.35) -> 0.325. Fold 0 is tested at 0.325 (all right),
    # fold 1 at 0.4, which rejects its same pair at 0.35 (3 of 4 right).
    scores = np.array([0.6, 0.7, 0.1, 0.2, 0.35, 0.9, 0.3, 0.0])
    same = np.array([True, True, False, False, True, True, False, False])
    folds = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    result = verification_metrics(scores, same, folds)
    assert result.fold_thresholds == pytest.approx((0.325, 0.4))
    assert result.fold_accuracies == pytest.approx((1.0, 0.75))
    assert result.accuracy == pytest.approx(0.875) and result.accuracy_std == pytest.approx(0.125)
    assert result.threshold == pytest.approx(0.3625)


def test_single_fold_scores_its_own_best_threshold() -> None:
    scores = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.8])
    same = np.array([False, False, True, False, True, True])
    result = verification_metrics(scores, same, np.zeros(6, dtype=int))
    assert result.protocol == "best-threshold"
    assert result.accuracy == pytest.approx(5 / 6) and result.threshold == pytest.approx(0.5)


def test_tar_at_far_takes_the_lowest_threshold_within_the_far() -> None:
    # 1000 impostors at 0.000 .. 0.999. FAR <= 1e-3 allows one (0.999); FAR <= 1e-2 allows ten (0.990 .. 0.999),
    # and the genuine pairs at 0.9895 still fit under that, while 0.989 would be the eleventh impostor.
    impostors = np.arange(1000) / 1000
    genuine = np.array([0.9995] * 30 + [0.995] * 20 + [0.9895] * 10 + [0.5] * 40)
    scores = np.concatenate([genuine, impostors])
    same = np.arange(scores.size) < genuine.size
    strict, loose = tar_at_far(scores, same, 1e-3), tar_at_far(scores, same, 1e-2)
    assert (strict.tar, strict.far, strict.threshold) == pytest.approx((0.3, 0.001, 0.999))
    assert (loose.tar, loose.far, loose.threshold) == pytest.approx((0.6, 0.01, 0.9895))
    result = verification_metrics(scores, same, np.arange(scores.size) % 10)
    assert result.tar_at(1e-3) == pytest.approx(0.3) and result.tar_at(1e-2) == pytest.approx(0.6)
    with pytest.raises(KeyError):
        result.tar_at(0.5)


def test_metrics_reject_bad_input() -> None:
    with pytest.raises(ValueError, match="both"):
        verification_metrics(np.array([0.1, 0.2]), np.array([True, True]), np.array([0, 1]))
    with pytest.raises(ValueError):
        verification_metrics(np.array([0.1, 0.2]), np.array([True, False]), np.array([0]))


def test_as_dict_is_json_and_plot_is_a_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    same = np.tile([True, False], 500)
    scores = np.where(same, rng.normal(0.6, 0.15, same.size), rng.normal(0.0, 0.15, same.size))
    result = verification_metrics(scores, same, np.repeat(np.arange(10), 100))
    data = json.loads(json.dumps(result.as_dict()))
    assert data["roc"]["thresholds"][0] is None  # sklearn's infinite first threshold
    assert len(data["roc"]["fpr"]) == len(data["roc"]["tpr"]) and data["tar_at_far"][0]["far_target"] == 1e-3
    assert "roc" not in result.as_dict(curve=False)
    path = plot_roc(result, tmp_path / "plots" / "roc.png")
    image = cv2.imread(str(path))
    assert image is not None and image.shape == (600, 800, 3)
    assert (image < 128).any() and (image == 255).all(axis=2).mean() > 0.5  # drawn on, mostly white


# -------------------------------------------------------------------------------------------- helpers on faces


def _face(cx: float, cy: float, side: float, score: float = 0.9) -> DetectedFace:
    box = (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
    return DetectedFace(box, score, tuple((cx, cy) for _ in range(5)))


def test_closest_to_centre_prefers_the_subject_over_a_bigger_or_surer_bystander() -> None:
    subject = _face(125, 120, 90, score=0.7)
    bystander = _face(30, 200, 120, score=0.99)
    assert closest_to_centre([bystander, subject], 250, 250) is subject
    assert closest_to_centre([], 250, 250) is None


def test_open_set_threshold() -> None:
    best = np.array([0.1, 0.5, 0.2, 0.45, 0.3] + [0.0] * 95)  # 100 strangers
    assert open_set_threshold(best, 0.01) == pytest.approx(0.45)  # one may pass (0.5); 0.45 must not
    assert open_set_threshold(best, 0.01) > 0.45
    assert open_set_threshold(best, 0.0) > 0.5
    assert open_set_threshold(np.zeros(0), 0.01) == -1.0


def test_list_identities_splits_by_count(tmp_path: Path) -> None:
    for person, count in (("Ann", 3), ("Bob", 1), ("Cid", 2), ("Dee", 1)):
        (tmp_path / person).mkdir()
        for index in range(count, 0, -1):
            (tmp_path / person / f"{person}_{index:04d}.jpg").write_bytes(b"")
    lists = list_identities(tmp_path)
    assert lists.multi == {
        "Ann": [f"Ann/Ann_000{i}.jpg" for i in (1, 2, 3)],
        "Cid": ["Cid/Cid_0001.jpg", "Cid/Cid_0002.jpg"],
    }
    assert list(lists.single) == ["Bob", "Dee"]
    limited = list_identities(tmp_path, limit_identities=1)
    assert list(limited.multi) == ["Ann"] and list(limited.single) == ["Bob"]


# --------------------------------------------------------------------------------------------- the real models


@pytest.fixture
def analyzer(store: ModelStore, settings: Settings, tmp_path: Path) -> Iterator[LocalFaceAnalyzer]:
    """Real detector and embedder, with the embedding cache under this test's own folder."""
    built = LocalFaceAnalyzer(store, settings.model_copy(update={"data_dir": tmp_path}))
    yield built
    built.close()


def test_small_real_evaluation(analyzer: LocalFaceAnalyzer, eval_dir: Path, tmp_path: Path) -> None:
    lfw = eval_dir / "lfw"
    calibration = load_calibration(Settings(calibration_dir=None), "mobilefacenet+dlib")
    fusion = calibration.fusion()
    result = evaluate_lfw(analyzer, lfw, fusion, "pairsDevTest.txt", pairs_per_fold=40)
    assert result.pairs == 40 and result.pairs_file == "pairsDevTest.txt"
    assert result.model == f"mobilefacenet+dlib ({MOBILEFACENET.ref}, {DLIB_RESNET.ref})"
    assert result.missed == 0 and result.images > 40
    assert result.accuracy > 0.85 and result.auc > 0.9
    assert result.mean_same > 0.4 and abs(result.mean_different) < 0.2
    assert result.fusion_accuracy is None  # one fold: no held-out fold to test the score fusion on
    cache_files = sorted(p.name.split("-flip")[0] for p in (tmp_path / "cache").glob("*.npz"))
    assert cache_files == ["lfw-dlib-resnet", "lfw-mobilefacenet"]  # one cache per model, shared by profiles
    again = evaluate_lfw(analyzer, lfw, fusion, "pairsDevTest.txt", pairs_per_fold=40)  # from the cache
    assert again.accuracy == result.accuracy and np.array_equal(again.roc_tpr, result.roc_tpr)

    identified = evaluate_identification(
        analyzer,
        lfw,
        fusion,
        lambda size: calibration.identify_threshold(size, 0.01),
        gallery_sizes=(5, None),
        limit_identities=20,
    )
    small, everyone = identified.galleries
    assert (small.identities, everyone.identities, identified.open_set_probes) == (5, 20, 20)
    assert everyone.probes > small.probes >= 5
    for gallery in identified.galleries:
        assert gallery.rank1 > 0.85 and gallery.rank5 >= gallery.rank1
        assert gallery.dir_at_threshold <= gallery.rank1 and 0 <= gallery.open_set_far <= 1
        assert gallery.dir_at(0.01) >= gallery.dir_at(0.001)
    assert everyone.threshold >= small.threshold  # a bigger gallery needs a higher threshold
    assert identified.missed == 0
    assert json.loads(json.dumps(identified.as_dict()))["galleries"][1]["identities"] == 20


def test_score_fusion_is_cross_validated_in_fold() -> None:
    """Model 2 tells the pairs apart, model 1 is noise: the in-fold regression learns that from the other folds."""
    rng = np.random.default_rng(0)
    same = np.tile(np.arange(100) < 50, 4)
    folds = np.repeat(np.arange(4), 100)
    cosines = np.stack([rng.normal(0, 0.3, 400), np.where(same, 0.5, 0.0) + rng.normal(0, 0.1, 400)], axis=1)
    accuracy, std = in_fold_fusion_accuracy(cosines, same, folds)
    assert accuracy > 0.95 and 0 <= std < 0.05
    shuffled, _ = in_fold_fusion_accuracy(cosines, rng.permutation(same), folds)
    assert shuffled < 0.7  # labels that carry nothing cannot be learnt on other folds


def test_cache_reuses_embeddings_and_reports_faceless_images(
    analyzer: LocalFaceAnalyzer, eval_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "lfw"
    source = eval_dir / "lfw" / IMAGES_SUBDIR / "Aaron_Peirsol"
    shutil.copytree(source, root / "Aaron_Peirsol")
    (root / "Blank").mkdir()
    cv2.imwrite(str(root / "Blank" / "Blank_0001.jpg"), np.full((250, 250, 3), 128, dtype=np.uint8))
    faces = sorted(f"Aaron_Peirsol/{p.name}" for p in (root / "Aaron_Peirsol").iterdir())[:2]
    names = [*faces, "Blank/Blank_0001.jpg"]

    cache = EmbeddingCache(analyzer, root, ["mobilefacenet"])
    embeddings = cache.embeddings(names)
    assert list(embeddings.names) == sorted(names)
    assert embeddings.missed == 1 and embeddings.missed_names == ["Blank/Blank_0001.jpg"]
    assert not embeddings.rows(["Blank/Blank_0001.jpg"]).any()
    assert list(embeddings.status[[embeddings.index[n] for n in faces]]) == [FOUND, FOUND]
    assert np.linalg.norm(embeddings.rows(faces), axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert embeddings.status[embeddings.index["Blank/Blank_0001.jpg"]] == MISSED

    def no_compute(self: EmbeddingCache, todo: list[str], progress: object) -> dict[str, object]:
        assert not todo, f"recomputed {todo}"
        return {}

    monkeypatch.setattr(EmbeddingCache, "_compute", no_compute)
    subset = cache.embeddings(faces[:1])  # a different file list: a new cache file, filled from the first one
    assert np.array_equal(subset.vectors[0], embeddings.rows(faces[:1])[0])
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    with pytest.raises(FileNotFoundError, match="missing"):
        cache.embeddings(["Nobody/Nobody_0001.jpg"])


def test_a_face_missed_at_the_default_threshold_is_found_leniently(
    store: ModelStore, settings: Settings, eval_dir: Path, tmp_path: Path
) -> None:
    strict = LocalFaceAnalyzer(store, settings.model_copy(update={"data_dir": tmp_path, "face_score_threshold": 1.0}))
    try:
        embeddings = EmbeddingCache(strict, eval_dir / "lfw" / IMAGES_SUBDIR, ["mobilefacenet"]).embeddings(
            ["Aaron_Peirsol/Aaron_Peirsol_0001.jpg"]
        )
    finally:
        strict.close()
    assert embeddings.retried == 1 and embeddings.missed == 0
    assert embeddings.status[0] == RETRIED and np.linalg.norm(embeddings.vectors[0]) == pytest.approx(1.0, abs=1e-5)
