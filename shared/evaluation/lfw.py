"""LFW verification by its official pair protocols (pairs.txt, ten folds; pairsDevTest.txt, development), and the
calibration fitted on the development pairs.

Plain functions over the LFW folder and a `LocalFaceAnalyzer`, so the CLI, a test or a notebook call them alike.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from argus.evaluation.cache import MISSED, EmbeddingCache, FaceEmbeddings, ProgressCallback
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.evaluation.verification import VerificationResult, in_fold_fusion_accuracy, verification_metrics
from argus.profiles import EmbeddingProfile, Fusion
from argus.services.facedb.calibration import TAIL_SAMPLES, Calibration, fit_calibration

log = logging.getLogger(__name__)

IMAGES_SUBDIR = "lfw-deepfunneled"
MIN_IMPOSTOR_PAIRS = 10 * TAIL_SAMPLES  # below this the open-set tail is not fitted


@dataclass(frozen=True)
class Pair:
    path_a: str  # relative to lfw-deepfunneled/, e.g. "Abel_Pacheco/Abel_Pacheco_0001.jpg"
    path_b: str
    same: bool
    fold: int  # 0-based; pairsDevTest is a single fold 0


def lfw_image_name(person: str, index: int) -> str:
    """LFW's file naming: Name/Name_000i.jpg with a 4-digit, 1-based index."""
    return f"{person}/{person}_{index:04d}.jpg"


def read_pairs(path: Path) -> list[Pair]:
    """Reads pairs.txt (header `folds<TAB>n`) or pairsDevTest.txt (header `n`): per fold n same then n different.

    The header counts are checked against the lines, so a truncated or concatenated file fails loudly instead of
    silently shifting the folds.
    """
    path = Path(path)
    numbered = [(number, line.split()) for number, line in enumerate(path.read_text().splitlines(), 1)]
    numbered = [(number, fields) for number, fields in numbered if fields]
    if not numbered:
        raise ValueError(f"{path}: empty pairs file")
    header_line, header = numbered[0]
    try:
        counts = [int(value) for value in header]
    except ValueError:
        raise ValueError(f"{path}: line {header_line}: header must be `folds<TAB>pairs` or `pairs`") from None
    if len(counts) == 2:
        folds, per_class = counts
    elif len(counts) == 1:
        folds, per_class = 1, counts[0]
    else:
        raise ValueError(f"{path}: line {header_line}: header must be `folds<TAB>pairs` or `pairs`, got {header}")
    if folds < 1 or per_class < 1:
        raise ValueError(f"{path}: header counts must be positive, got {header}")
    body = numbered[1:]
    expected = folds * 2 * per_class
    if len(body) != expected:
        raise ValueError(
            f"{path}: header says {folds} fold(s) x ({per_class} same + {per_class} different) = {expected} pairs, "
            f"but the file has {len(body)} pair lines"
        )
    pairs = []
    for position, (number, fields) in enumerate(body):
        fold, offset = divmod(position, 2 * per_class)
        same = offset < per_class
        try:
            if same:
                if len(fields) != 3:
                    raise ValueError(f"expected a same-person line `Name i j`, got {' '.join(fields)!r}")
                name, i, j = fields[0], int(fields[1]), int(fields[2])
                a, b = lfw_image_name(name, i), lfw_image_name(name, j)
            else:
                if len(fields) != 4:
                    raise ValueError(f"expected a different-person line `NameA i NameB j`, got {' '.join(fields)!r}")
                i, j = int(fields[1]), int(fields[3])
                a, b = lfw_image_name(fields[0], i), lfw_image_name(fields[2], j)
            if i < 1 or j < 1:
                raise ValueError("image indices start at 1")
        except ValueError as exc:
            raise ValueError(f"{path}: line {number}: {exc}") from None
        pairs.append(Pair(a, b, same, fold))
    return pairs


def fit_means(embeddings: FaceEmbeddings, profile: EmbeddingProfile, dimensions: Sequence[int]) -> Fusion:
    """The profile's fusion with each centred model's mean unit vector taken over these (development) images."""
    found = embeddings.vectors[embeddings.status != MISSED]
    pieces = np.split(found, np.cumsum(dimensions)[:-1], axis=1)
    means = {
        member.model: piece.mean(axis=0)
        for member, piece in zip(profile.members, pieces, strict=True)
        if member.centred
    }
    return Fusion(profile, dimensions, means)


def pair_rows(embeddings: FaceEmbeddings, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of each pair's first and second image, row by row."""
    return embeddings.rows([pair.path_a for pair in pairs]), embeddings.rows([pair.path_b for pair in pairs])


def score_pairs(embeddings: FaceEmbeddings, pairs: Sequence[Pair]) -> np.ndarray:
    """Cosine similarity of each pair (embeddings are unit vectors; a missed face scores 0 against anything)."""
    a, b = pair_rows(embeddings, pairs)
    cosines: np.ndarray = np.einsum("ij,ij->i", a, b).astype(np.float64)
    return cosines


def select_pairs(
    pairs: Sequence[Pair], limit_folds: int | None = None, pairs_per_fold: int | None = None
) -> list[Pair]:
    """The first limit_folds folds, and of each the first pairs_per_fold // 2 same and as many different pairs."""
    kept = [pair for pair in pairs if limit_folds is None or pair.fold < limit_folds]
    if pairs_per_fold is None:
        return kept
    half = max(1, pairs_per_fold // 2)
    counts: dict[tuple[int, bool], int] = {}
    selected = []
    for pair in kept:
        key = (pair.fold, pair.same)
        if counts.get(key, 0) < half:
            counts[key] = counts.get(key, 0) + 1
            selected.append(pair)
    return selected


def lfw_embeddings(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    names: Sequence[str],
    models: Sequence[str],
    progress: ProgressCallback | None = None,
) -> FaceEmbeddings:
    """The per-model vectors of these LFW images (names relative to the images folder), concatenated in the order
    of `models`. Each model has its own cache, so profiles sharing a model share its embeddings."""
    root = Path(lfw_dir) / IMAGES_SUBDIR
    per_model = [EmbeddingCache(analyzer, root, [model]).embeddings(names, progress) for model in models]
    first = per_model[0]
    return FaceEmbeddings(first.names, np.concatenate([e.vectors for e in per_model], axis=1), first.status)


def pair_images(pairs: Sequence[Pair]) -> list[str]:
    return [name for pair in pairs for name in (pair.path_a, pair.path_b)]


def development_fusion(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    profile: EmbeddingProfile,
    pairs_file: str | Path = "pairsDevTest.txt",
    progress: ProgressCallback | None = None,
) -> Fusion:
    """The profile's fusion with its means fitted on the development split's images (never the test pairs)."""
    return _development(analyzer, lfw_dir, profile, pairs_file, progress)[2]


def _development(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    profile: EmbeddingProfile,
    pairs_file: str | Path,
    progress: ProgressCallback | None,
) -> tuple[list[Pair], FaceEmbeddings, Fusion]:
    """The development pairs, their images' per-model vectors, and the profile's fusion with means fitted on them."""
    pairs = read_pairs(Path(lfw_dir) / pairs_file)
    embeddings = lfw_embeddings(analyzer, lfw_dir, pair_images(pairs), profile.models, progress)
    return pairs, embeddings, fit_means(embeddings, profile, analyzer.embedder.dimensions(profile.models))


def evaluate_lfw(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    fusion: Fusion,
    pairs_file: str | Path = "pairs.txt",
    limit_folds: int | None = None,
    *,
    pairs_per_fold: int | None = None,
    progress: ProgressCallback | None = None,
) -> VerificationResult:
    """Verification accuracy of a profile on an LFW pairs file: pairs.txt is the test protocol, pairsDevTest.txt
    the development split. With several folds, score fusion by logistic regression is reported in-fold too."""
    started = time.perf_counter()
    pairs = select_pairs(read_pairs(Path(lfw_dir) / pairs_file), limit_folds, pairs_per_fold)
    models = fusion.profile.models
    embeddings = lfw_embeddings(analyzer, lfw_dir, pair_images(pairs), models, progress).fused(fusion)
    same, folds = np.array([p.same for p in pairs]), np.array([p.fold for p in pairs])
    result = verification_metrics(score_pairs(embeddings, pairs), same, folds)
    fusion_accuracy: tuple[float | None, float | None] = (None, None)
    if len(np.unique(folds)) > 1:
        fusion_accuracy = in_fold_fusion_accuracy(fusion.model_cosines(*pair_rows(embeddings, pairs)), same, folds)
    return replace(
        result,
        model=f"{fusion.profile.name} ({', '.join(analyzer.embedder.refs(models))})",
        pairs_file=Path(pairs_file).name,
        fusion_accuracy=fusion_accuracy[0],
        fusion_accuracy_std=fusion_accuracy[1],
        images=len(embeddings.names),
        retried=embeddings.retried,
        missed=embeddings.missed,
        seconds=time.perf_counter() - started,
    )


def impostor_scores(embeddings: FaceEmbeddings) -> np.ndarray:
    """Cosines of every pair of images of different people (by LFW folder), skipping images without a face."""
    found = embeddings.status != MISSED
    vectors = embeddings.vectors[found]
    people = np.array([name.split("/")[0] for name, ok in zip(embeddings.names, found, strict=True) if ok])
    upper = np.triu_indices(len(vectors), k=1)
    similarities = (vectors @ vectors.T)[upper]
    different: np.ndarray = similarities[people[upper[0]] != people[upper[1]]]
    return different


def calibrate_lfw(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    profile: EmbeddingProfile,
    pairs_file: str | Path = "pairsDevTest.txt",
    *,
    progress: ProgressCallback | None = None,
) -> Calibration:
    """Fits a profile's fusion means, threshold, probability model and impostor tail (for open-set thresholds) on
    LFW's development pairs and their images, never on the test pairs."""
    pairs, raw, fusion = _development(analyzer, lfw_dir, profile, pairs_file, progress)
    embeddings = raw.fused(fusion)
    impostors = impostor_scores(embeddings)
    if impostors.size < MIN_IMPOSTOR_PAIRS:
        log.warning(
            "only %d impostor pairs among the images of %s: too few for open-set thresholds, so Identify will use "
            "the 1:1 threshold; calibrate on more pairs (pairsDevTest.txt has 1.2 million)",
            impostors.size,
            Path(pairs_file).name,
        )
    calibration = fit_calibration(
        fusion,
        analyzer.embedder.refs(profile.models),
        score_pairs(embeddings, pairs),
        fusion.model_cosines(*pair_rows(embeddings, pairs)),
        np.array([p.same for p in pairs]),
        pairs_file=Path(pairs_file).name,
        flip_augmentation=analyzer.embedder.flip,
        impostor_scores=impostors if impostors.size >= MIN_IMPOSTOR_PAIRS else None,
    )
    if calibration.impostors is None:
        return calibration
    # Templates of several faces, on every photo of the development people (their pairs hold only some).
    from argus.evaluation.identification import list_identities
    from argus.evaluation.templates import development_identities, fit_template_calibrations, side

    development = side(
        list_identities(Path(lfw_dir) / IMAGES_SUBDIR), development_identities(lfw_dir, pairs_file), inside=True
    )
    names = [name for images in (*development.multi.values(), *development.single.values()) for name in images]
    photos = lfw_embeddings(analyzer, lfw_dir, names, profile.models, progress).fused(fusion)
    single_face_far = calibration.impostors.rate_at(calibration.threshold)
    return replace(calibration, templates=fit_template_calibrations(fusion, photos, development, single_face_far))
