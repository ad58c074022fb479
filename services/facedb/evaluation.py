"""How well the face pipeline recognises people: LFW verification (official pair protocols) and identification.

Plain functions over the LFW folder and a `LocalFaceAnalyzer`, so the CLI, a test or a notebook call them alike.
Every figure starts from the embeddings of the same few thousand images, so those are cached on disk
(`EmbeddingCache`) and repeated `argus eval` / `argus calibrate` runs only redo the arithmetic.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from argus.imaging import decode_image
from argus.profiles import EmbeddingProfile, Fusion
from argus.services.detector.faces import DetectedFace
from argus.services.facedb.calibration import (
    TAIL_SAMPLES,
    Calibration,
    accuracy_threshold,
    fit_calibration,
    fit_probability,
)
from argus.services.facedb.pipeline import LocalFaceAnalyzer

IMAGES_SUBDIR = "lfw-deepfunneled"
FAR_TARGETS = (1e-3, 1e-2)
IDENTIFY_FAR_TARGETS = (0.01, 0.001)  # open-set: share of never-enrolled people taken for somebody
GALLERY_SIZES = (100, 500, None)  # people enrolled in `argus eval identify`; None: all of them
# A face the default threshold misses is looked for again this leniently: LFW guarantees a face in every image,
# so a weak detection of it beats a zero vector.
RETRY_SCORE_THRESHOLD = 0.3
# Bump when the way an image becomes an embedding changes, so stale caches are not reused.
log = logging.getLogger(__name__)

CACHE_VERSION = 2
MIN_IMPOSTOR_PAIRS = 10 * TAIL_SAMPLES  # below this the open-set tail is not fitted
_CHUNK = 64  # images decoded and in flight at once
_NO_PIXEL_LIMIT = 1 << 40  # evaluation images are trusted files, not requests

ProgressCallback = Callable[[int, int], None]  # (images done, images to do)


# ---------------------------------------------------------------------------------------------------------- pairs


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


# ----------------------------------------------------------------------------------------------------- embeddings

FOUND, RETRIED, MISSED = 0, 1, 2  # how an image's face was found: default threshold, lenient retry, not at all


@dataclass(frozen=True)
class FaceEmbeddings:
    """One embedding per image (zeros where no face was found) and how each face was found."""

    names: tuple[str, ...]
    vectors: np.ndarray  # (N, d) float32, unit rows or zeros
    status: np.ndarray  # (N,) int8: FOUND, RETRIED or MISSED

    @cached_property
    def index(self) -> dict[str, int]:
        return {name: row for row, name in enumerate(self.names)}

    def rows(self, names: Sequence[str]) -> np.ndarray:
        return self.vectors[[self.index[name] for name in names]]

    @property
    def retried(self) -> int:
        return int(np.count_nonzero(self.status == RETRIED))

    @property
    def missed(self) -> int:
        return int(np.count_nonzero(self.status == MISSED))

    @property
    def missed_names(self) -> list[str]:
        return [name for name, status in zip(self.names, self.status, strict=True) if status == MISSED]

    def fused(self, fusion: Fusion) -> FaceEmbeddings:
        """The profile's embeddings from the per-model vectors (a missed face stays a zero vector)."""
        return FaceEmbeddings(self.names, fusion.fuse(self.vectors), self.status)


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


def closest_to_centre(faces: Sequence[DetectedFace], height: int, width: int) -> DetectedFace | None:
    """The face whose box centre is nearest the image centre: LFW crops are centred on their subject, while the
    largest or most confident face is sometimes a bystander."""
    if not faces:
        return None
    cx, cy = width / 2, height / 2
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


def _read_image(path: Path) -> np.ndarray:
    """Decodes exactly as the services do (Pillow, EXIF-upright, BGR), so the figures hold for them."""
    data = path.read_bytes()
    return decode_image(data, max_bytes=len(data), max_pixels=_NO_PIXEL_LIMIT)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class EmbeddingCache:
    """Embeds LFW images with the product pipeline and keeps the result in an .npz under DATA_DIR/cache.

    The cache file is keyed by the model, the flip setting, the detector settings and the list of files (names and
    sizes), so changing any of them recomputes; embeddings already in another cache file made with the same
    pipeline are reused, so the dev pairs, the test pairs and identification share their common images.
    """

    def __init__(
        self,
        analyzer: LocalFaceAnalyzer,
        image_root: Path,
        models: Sequence[str],
        *,
        cache_dir: Path | None = None,
        retry_score_threshold: float = RETRY_SCORE_THRESHOLD,
    ) -> None:
        self.analyzer = analyzer
        self.models = analyzer.embedder.check_models(models)
        self.refs = analyzer.embedder.refs(self.models)
        self.image_root = Path(image_root)
        self.cache_dir = cache_dir or analyzer.settings.data_dir / "cache"
        self.retry_score_threshold = retry_score_threshold

    @property
    def pipeline_key(self) -> str:
        """Everything besides the file list that decides the embeddings."""
        detector, embedder = self.analyzer.detector, self.analyzer.embedder
        options = detector.defaults
        # Every face_* setting, so a new detector knob invalidates old caches without anyone remembering to.
        face_settings = sorted((k, v) for k, v in self.analyzer.settings.model_dump().items() if k.startswith("face_"))
        parts = (
            f"v{CACHE_VERSION}",
            ",".join(self.refs),
            f"flip={embedder.flip}",
            detector.model.spec.ref,
            f"score={options.score_threshold}",
            f"nms={options.iou_threshold}",
            f"retry={self.retry_score_threshold}",
            f"max_side={detector.max_side}",
            f"settings={face_settings}",
            "choice=centre",
        )
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]

    def _prefix(self) -> str:
        models = "+".join(self.models).replace("/", "-")
        return f"lfw-{models}-flip{int(self.analyzer.embedder.flip)}-{self.pipeline_key}"

    def cache_path(self, names: Sequence[str]) -> Path:
        return self.cache_dir / f"{self._prefix()}-{self._files_key(sorted(set(names)))}.npz"

    def _files_key(self, names: Sequence[str]) -> str:
        lines = []
        for name in names:
            path = self.image_root / name
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                raise FileNotFoundError(f"LFW image {name} is missing under {self.image_root}") from None
            lines.append(f"{name}\t{size}")
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]

    def embeddings(self, names: Sequence[str], progress: ProgressCallback | None = None) -> FaceEmbeddings:
        """Embeddings of these images (relative to image_root), sorted by name, from the cache when possible."""
        wanted = sorted(set(names))
        path = self.cache_path(wanted)
        cached = self._load(path)
        if cached is not None and list(cached.names) == wanted:
            return cached
        known = self._reusable(wanted)
        todo = [name for name in wanted if name not in known]
        computed = self._compute(todo, progress)
        dimension = sum(self.analyzer.embedder.dimensions(self.models))
        vectors = np.zeros((len(wanted), dimension), dtype=np.float32)
        status = np.zeros(len(wanted), dtype=np.int8)
        for row, name in enumerate(wanted):
            vectors[row], status[row] = known[name] if name in known else computed[name]
        result = FaceEmbeddings(tuple(wanted), vectors, status)
        self._save(path, result)
        return result

    def _load(self, path: Path) -> FaceEmbeddings | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                return FaceEmbeddings(tuple(str(n) for n in data["names"]), data["vectors"], data["status"])
        except (OSError, KeyError, ValueError):
            return None

    def _reusable(self, wanted: Sequence[str]) -> dict[str, tuple[np.ndarray, int]]:
        """Embeddings of wanted images found in other cache files of the same pipeline (files are checked by name
        and size through the file key, so only files whose key still matches are trusted)."""
        wanted_set = set(wanted)
        known: dict[str, tuple[np.ndarray, int]] = {}
        for other in sorted(self.cache_dir.glob(f"{self._prefix()}-*.npz")):
            cached = self._load(other)
            try:
                if cached is None or other.name != self.cache_path(cached.names).name:
                    continue
            except FileNotFoundError:  # made when images existed that are gone now
                continue
            for name, vector, status in zip(cached.names, cached.vectors, cached.status, strict=True):
                if name in wanted_set:
                    known[name] = (vector, int(status))
        return known

    def _save(self, path: Path, result: FaceEmbeddings) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                np.savez(stream, names=np.array(result.names), vectors=result.vectors, status=result.status)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def _compute(self, names: Sequence[str], progress: ProgressCallback | None) -> dict[str, tuple[np.ndarray, int]]:
        """Detect, keep the centre face (retrying leniently when there is none), align and embed, a chunk at a time.

        These are the detector and embedder calls of LocalFaceAnalyzer.analyze_image, but only the chosen face is
        embedded and a missed face gets a second, lenient look.
        """
        detector, embedder = self.analyzer.detector, self.analyzer.embedder
        defaults = detector.defaults
        lenient = replace(defaults, score_threshold=self.retry_score_threshold)
        dimension = sum(embedder.dimensions(self.models))
        results: dict[str, tuple[np.ndarray, int]] = {}
        done = 0
        with ThreadPoolExecutor(max_workers=4) as pool:
            for chunk in _chunks(names, _CHUNK):
                images = list(pool.map(_read_image, [self.image_root / name for name in chunk]))
                found = detector.detect(images, defaults)
                chosen = [closest_to_centre(faces, *im.shape[:2]) for faces, im in zip(found, images, strict=True)]
                status = [FOUND if face else MISSED for face in chosen]
                misses = [i for i, face in enumerate(chosen) if face is None]
                if misses:
                    again = detector.detect([images[i] for i in misses], lenient)
                    for i, faces in zip(misses, again, strict=True):
                        chosen[i] = closest_to_centre(faces, *images[i].shape[:2])
                        status[i] = RETRIED if chosen[i] else MISSED
                hits = [i for i, face in enumerate(chosen) if face is not None]
                vectors = embedder.embed(
                    [images[i] for i in hits],
                    [np.asarray(chosen[i].landmarks, dtype=np.float64) for i in hits],  # type: ignore[union-attr]
                    self.models,
                )
                by_index = {i: embedding.concatenated() for i, embedding in zip(hits, vectors, strict=True)}
                for i, name in enumerate(chunk):
                    vector = by_index.get(i, np.zeros(dimension, dtype=np.float32))
                    results[name] = (vector.astype(np.float32), status[i])
                done += len(chunk)
                if progress:
                    progress(done, len(names))
        return results


# --------------------------------------------------------------------------------------------------- verification


@dataclass(frozen=True)
class OperatingPoint:
    far_target: float
    tar: float  # share of same-person pairs accepted
    far: float  # false-accept rate actually reached (<= far_target)
    threshold: float  # accept when cosine >= threshold


@dataclass(frozen=True, eq=False)
class VerificationResult:
    protocol: str  # "10-fold" style cross-validation, or "best-threshold" when there is one fold only
    pairs: int
    folds: int
    accuracy: float  # mean held-out accuracy over the folds
    accuracy_std: float  # np.std over the folds, as LFW papers report it
    threshold: float  # mean of the per-fold thresholds
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    operating_points: tuple[OperatingPoint, ...]  # TAR at FAR targets, over all pairs
    auc: float
    mean_same: float  # mean cosine of same-person pairs
    mean_different: float
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    roc_thresholds: np.ndarray
    model: str = ""
    pairs_file: str = ""
    # Score fusion: a logistic regression over the per-model cosines, fitted on the other folds, tested on each.
    fusion_accuracy: float | None = None
    fusion_accuracy_std: float | None = None
    images: int = 0
    retried: int = 0  # images whose face was only found at the lenient retry threshold
    missed: int = 0  # images with no face at all (zero embedding: such a pair scores 0)
    seconds: float = 0.0

    def tar_at(self, far_target: float) -> float:
        for point in self.operating_points:
            if math.isclose(point.far_target, far_target):
                return point.tar
        raise KeyError(f"no operating point at FAR {far_target}")

    def as_dict(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-safe: plain floats and lists; the ROC's infinite first threshold becomes null."""
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "model": self.model,
            "pairs_file": self.pairs_file,
            "pairs": self.pairs,
            "folds": self.folds,
            "images": self.images,
            "retried": self.retried,
            "missed": self.missed,
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "fusion_accuracy": self.fusion_accuracy,
            "fusion_accuracy_std": self.fusion_accuracy_std,
            "threshold": self.threshold,
            "fold_accuracies": list(self.fold_accuracies),
            "fold_thresholds": list(self.fold_thresholds),
            "tar_at_far": [
                {"far_target": p.far_target, "tar": p.tar, "far": p.far, "threshold": p.threshold}
                for p in self.operating_points
            ],
            "auc": self.auc,
            "mean_same": self.mean_same,
            "mean_different": self.mean_different,
            "seconds": self.seconds,
        }
        if curve:
            data["roc"] = {
                "fpr": [float(v) for v in self.roc_fpr],
                "tpr": [float(v) for v in self.roc_tpr],
                "thresholds": [float(v) if math.isfinite(v) else None for v in self.roc_thresholds],
            }
        return data


def tar_at_far(similarities: np.ndarray, same: np.ndarray, far_target: float) -> OperatingPoint:
    """The operating point with the smallest threshold (so the most true accepts) whose false-accept rate is at most
    far_target; thresholds are the observed scores, accepting scores >= threshold."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(same, similarities, drop_intermediate=False)
    index = int(np.flatnonzero(fpr <= far_target)[-1])  # fpr rises as the threshold falls; fpr[0] is 0
    return OperatingPoint(far_target, float(tpr[index]), float(fpr[index]), float(thresholds[index]))


def verification_metrics(
    similarities: np.ndarray, same: np.ndarray, folds: np.ndarray, far_targets: Sequence[float] = FAR_TARGETS
) -> VerificationResult:
    """LFW's protocol: per fold, the accuracy-maximising threshold of the other folds is tested on it; mean and std
    over folds. With one fold (pairsDevTest) the threshold is chosen and scored on the same pairs (optimistic).
    TAR at FAR, AUC and the ROC are over all pairs."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(similarities, dtype=np.float64).ravel()
    labels = np.asarray(same, dtype=bool).ravel()
    fold_ids = np.asarray(folds).ravel()
    if not scores.size == labels.size == fold_ids.size:
        raise ValueError(f"{scores.size} similarities, {labels.size} labels and {fold_ids.size} fold ids")
    if labels.all() or not labels.any():
        raise ValueError("verification needs both same-person and different-person pairs")
    unique_folds = np.unique(fold_ids)
    accuracies, thresholds = [], []
    if unique_folds.size == 1:
        threshold, accuracy = accuracy_threshold(scores, labels)
        accuracies, thresholds = [accuracy], [threshold]
    else:
        for fold in unique_folds:
            held_out = fold_ids == fold
            threshold, _ = accuracy_threshold(scores[~held_out], labels[~held_out])
            accuracies.append(float(np.mean((scores[held_out] >= threshold) == labels[held_out])))
            thresholds.append(threshold)
    fpr, tpr, roc_thresholds = roc_curve(labels, scores)
    return VerificationResult(
        protocol="best-threshold" if unique_folds.size == 1 else f"{unique_folds.size}-fold",
        pairs=int(scores.size),
        folds=int(unique_folds.size),
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        threshold=float(np.mean(thresholds)),
        fold_accuracies=tuple(accuracies),
        fold_thresholds=tuple(thresholds),
        operating_points=tuple(tar_at_far(scores, labels, far) for far in far_targets),
        auc=float(roc_auc_score(labels, scores)),
        mean_same=float(scores[labels].mean()),
        mean_different=float(scores[~labels].mean()),
        roc_fpr=fpr,
        roc_tpr=tpr,
        roc_thresholds=roc_thresholds,
    )


def pair_rows(embeddings: FaceEmbeddings, pairs: Sequence[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """The embeddings of each pair's first and second image, row by row."""
    return embeddings.rows([pair.path_a for pair in pairs]), embeddings.rows([pair.path_b for pair in pairs])


def score_pairs(embeddings: FaceEmbeddings, pairs: Sequence[Pair]) -> np.ndarray:
    """Cosine similarity of each pair (embeddings are unit vectors; a missed face scores 0 against anything)."""
    a, b = pair_rows(embeddings, pairs)
    return np.einsum("ij,ij->i", a, b).astype(np.float64)


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


def in_fold_fusion_accuracy(model_cosines: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Score fusion as binary classification, cross-validated like LFW's protocol: per fold, a logistic regression
    over the per-model cosines is fitted on the other folds and decides (P >= 0.5) the held-out one."""
    accuracies = []
    for fold in np.unique(folds):
        held_out = folds == fold
        coef, intercept = fit_probability(model_cosines[~held_out], same[~held_out])
        z = model_cosines[held_out] @ np.asarray(coef) + intercept
        accuracies.append(float(np.mean((z >= 0) == same[held_out])))
    return float(np.mean(accuracies)), float(np.std(accuracies))


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
    return similarities[people[upper[0]] != people[upper[1]]]


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
    return fit_calibration(
        fusion,
        analyzer.embedder.refs(profile.models),
        score_pairs(embeddings, pairs),
        fusion.model_cosines(*pair_rows(embeddings, pairs)),
        np.array([p.same for p in pairs]),
        pairs_file=Path(pairs_file).name,
        flip_augmentation=analyzer.embedder.flip,
        impostor_scores=impostors if impostors.size >= MIN_IMPOSTOR_PAIRS else None,
    )


# ------------------------------------------------------------------------------------------------------- ROC plot

_WHITE, _BLACK, _GRID, _CURVE, _MARK = (255, 255, 255), (0, 0, 0), (225, 225, 225), (180, 90, 20), (30, 30, 200)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def plot_roc(result: VerificationResult, path: Path, *, size: tuple[int, int] = (800, 600)) -> Path:
    """Draws TAR against FAR (log scale, 1e-4 to 1) as a PNG, with AUC, accuracy and TAR@FAR written on it."""
    width, height = size
    left, right, top, bottom = 90, 30, 60, 80
    plot_w, plot_h = width - left - right, height - top - bottom
    canvas = np.full((height, width, 3), 255, dtype=np.uint8)
    x_lo, x_hi = -4.0, 0.0
    visible = result.roc_tpr[result.roc_fpr >= 10**x_lo]
    lowest = float(min(visible.min(), result.roc_tpr[-1])) if visible.size else 0.0
    y_lo = min(0.9, math.floor(lowest * 10) / 10)
    y_step = 0.1 if 1 - y_lo > 0.3 else 0.05 if 1 - y_lo > 0.15 else 0.02

    def px(far: np.ndarray | float, tar: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        fx = (np.log10(np.clip(far, 10**x_lo, 10**x_hi)) - x_lo) / (x_hi - x_lo)
        fy = (np.clip(tar, y_lo, 1.0) - y_lo) / (1.0 - y_lo)
        return np.round(left + fx * plot_w).astype(int), np.round(top + (1 - fy) * plot_h).astype(int)

    for decade in range(int(x_lo), int(x_hi) + 1):
        x, _ = px(10.0**decade, 1.0)
        cv2.line(canvas, (int(x), top), (int(x), top + plot_h), _GRID, 1)
        label = f"1e{decade}" if decade else "1"
        cv2.putText(canvas, label, (int(x) - 14, top + plot_h + 22), _FONT, 0.5, _BLACK, 1, cv2.LINE_AA)
    for k in range(round((1 - y_lo) / y_step) + 1):
        value = y_lo + k * y_step
        _, y = px(1.0, value)
        cv2.line(canvas, (left, int(y)), (left + plot_w, int(y)), _GRID, 1)
        cv2.putText(canvas, f"{value:.2f}", (left - 48, int(y) + 5), _FONT, 0.5, _BLACK, 1, cv2.LINE_AA)
    cv2.rectangle(canvas, (left, top), (left + plot_w, top + plot_h), _BLACK, 1)

    xs, ys = px(result.roc_fpr, result.roc_tpr)
    cv2.polylines(canvas, [np.stack([xs, ys], axis=1).astype(np.int32)], False, _CURVE, 2, cv2.LINE_AA)
    for point in result.operating_points:
        x, y = px(max(point.far_target, 10**x_lo), point.tar)
        cv2.circle(canvas, (int(x), int(y)), 5, _MARK, -1, cv2.LINE_AA)
        text = f"TAR {point.tar:.3f} @ FAR {point.far_target:g}"
        cv2.putText(canvas, text, (int(x) + 8, int(y) + 18), _FONT, 0.45, _MARK, 1, cv2.LINE_AA)

    title = f"LFW {result.pairs_file or 'pairs'} ROC" + (f" - {result.model}" if result.model else "")
    cv2.putText(canvas, title, (left, 30), _FONT, 0.65, _BLACK, 1, cv2.LINE_AA)
    summary = [
        f"AUC {result.auc:.4f}",
        f"accuracy {100 * result.accuracy:.2f}% +/- {100 * result.accuracy_std:.2f} ({result.protocol})",
        f"threshold {result.threshold:.3f}, {result.pairs} pairs",
    ]
    for line, text in enumerate(summary):
        cv2.putText(canvas, text, (left + plot_w - 390, top + plot_h - 70 + 22 * line), _FONT, 0.5, _BLACK, 1)
    cv2.putText(
        canvas, "FAR (false accept rate, log scale)", (left + plot_w // 2 - 150, height - 25), _FONT, 0.55, _BLACK, 1
    )
    label = np.full((30, 260, 3), 255, dtype=np.uint8)
    cv2.putText(label, "TAR (true accept rate)", (5, 21), _FONT, 0.55, _BLACK, 1, cv2.LINE_AA)
    label = cv2.rotate(label, cv2.ROTATE_90_COUNTERCLOCKWISE)
    y0 = top + (plot_h - label.shape[0]) // 2
    canvas[y0 : y0 + label.shape[0], 5 : 5 + label.shape[1]] = label

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"could not write {path}")
    return path


# ------------------------------------------------------------------------------------------------- identification


@dataclass(frozen=True)
class OpenSetPoint:
    far_target: float  # share of strangers allowed to be taken for somebody
    threshold: float  # the lowest threshold that keeps the strangers' measured rate at most far_target
    dir: float  # detection and identification rate there: best match right AND at or above the threshold


@dataclass(frozen=True)
class GalleryResult:
    identities: int  # enrolled: identities with >= 2 images, one (the first) image each
    probes: int  # their other images
    rank1: float  # share of probes whose best match is their own identity
    rank5: float
    # The threshold Identify itself uses at this gallery size (the calibrated impostor-tail rule), and what it gives.
    threshold: float
    dir_at_threshold: float
    open_set_far: float  # share of strangers (never enrolled) whose best similarity reaches `threshold`
    points: tuple[OpenSetPoint, ...]  # DIR at measured false-accept rates (thresholds set on these strangers)

    def dir_at(self, far_target: float) -> float:
        for point in self.points:
            if math.isclose(point.far_target, far_target):
                return point.dir
        raise KeyError(f"no open-set point at FAR {far_target}")


@dataclass(frozen=True)
class IdentificationResult:
    galleries: tuple[GalleryResult, ...]  # smallest first
    open_set_probes: int  # identities with one image, never enrolled
    far_target: float  # the open-set false-accept rate the calibrated thresholds aim at
    model: str = ""
    images: int = 0
    retried: int = 0
    missed: int = 0  # images without a face; a missed probe counts as wrongly identified
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = {name: getattr(self, name) for name in self.__dataclass_fields__ if name != "galleries"}
        data["galleries"] = [
            {
                **{name: getattr(g, name) for name in g.__dataclass_fields__ if name != "points"},
                **{f"dir_at_far_{p.far_target:g}": p.dir for p in g.points},
                **{f"threshold_at_far_{p.far_target:g}": p.threshold for p in g.points},
            }
            for g in self.galleries
        ]
        return data


@dataclass(frozen=True)
class IdentityLists:
    multi: dict[str, list[str]] = field(default_factory=dict)  # identity -> image names (index order), >= 2 images
    single: dict[str, list[str]] = field(default_factory=dict)  # exactly one image


def list_identities(image_root: Path, limit_identities: int | None = None) -> IdentityLists:
    """Identities (folders) of LFW present on disk, split by image count; the first limit_identities of each kind
    (by name) when limited, to make small runs."""
    multi: dict[str, list[str]] = {}
    single: dict[str, list[str]] = {}
    for folder in sorted(p for p in Path(image_root).iterdir() if p.is_dir()):
        images = sorted(f"{folder.name}/{file.name}" for file in folder.glob("*.jpg"))
        if len(images) >= 2 and (limit_identities is None or len(multi) < limit_identities):
            multi[folder.name] = images
        elif len(images) == 1 and (limit_identities is None or len(single) < limit_identities):
            single[folder.name] = images
    return IdentityLists(multi, single)


def open_set_threshold(stranger_best: np.ndarray, far_target: float) -> float:
    """The lowest threshold (accepting best similarity >= threshold) at which at most far_target of the strangers
    are accepted: just above the best similarity of the k-th most similar stranger, k = floor(far_target * n) + 1."""
    if stranger_best.size == 0:
        return -1.0
    ranked = np.sort(stranger_best)[::-1]
    allowed = math.floor(far_target * ranked.size)
    if allowed >= ranked.size:
        return float(ranked[-1])
    return float(np.nextafter(ranked[allowed], np.inf))


def _gallery_result(
    embeddings: FaceEmbeddings,
    lists: IdentityLists,
    people: Sequence[str],
    threshold: float,
    far_targets: Sequence[float],
) -> GalleryResult:
    gallery_names = [lists.multi[person][0] for person in people]
    probe_names = [name for person in people for name in lists.multi[person][1:]]
    position = {person: row for row, person in enumerate(people)}
    probe_truth = np.array([position[name.split("/")[0]] for name in probe_names], dtype=np.int64)
    stranger_names = [images[0] for images in lists.single.values()]

    gallery = embeddings.rows(gallery_names)
    probe_scores = embeddings.rows(probe_names) @ gallery.T
    ranked = np.argsort(-probe_scores, axis=1)[:, : min(5, len(people))]
    probe_missed = embeddings.status[[embeddings.index[n] for n in probe_names]] == MISSED
    best = probe_scores[np.arange(len(probe_names)), ranked[:, 0]]
    correct = (ranked[:, 0] == probe_truth) & ~probe_missed
    in_top = (ranked == probe_truth[:, None]).any(axis=1) & ~probe_missed
    stranger_best = (embeddings.rows(stranger_names) @ gallery.T).max(axis=1) if stranger_names else np.zeros(0)
    points = []
    for far in far_targets:
        at = open_set_threshold(stranger_best, far)
        points.append(OpenSetPoint(far, at, float((correct & (best >= at)).mean())))
    return GalleryResult(
        identities=len(people),
        probes=len(probe_names),
        rank1=float(correct.mean()),
        rank5=float(in_top.mean()),
        threshold=float(threshold),
        dir_at_threshold=float((correct & (best >= threshold)).mean()),
        open_set_far=float((stranger_best >= threshold).mean()) if stranger_names else 0.0,
        points=tuple(points),
    )


def evaluate_identification(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    fusion: Fusion,
    threshold_at: Callable[[int], float],
    *,
    gallery_sizes: Sequence[int | None] = GALLERY_SIZES,
    far_targets: Sequence[float] = IDENTIFY_FAR_TARGETS,
    limit_identities: int | None = None,
    progress: ProgressCallback | None = None,
) -> IdentificationResult:
    """1:K search on LFW, open set. For each gallery size N (None: every multi-image identity), the first N
    identities (by name) are enrolled with their first image and probed with the rest; the single-image identities
    are strangers, never enrolled. threshold_at(N) is the threshold Identify would use with N people enrolled."""
    started = time.perf_counter()
    image_root = Path(lfw_dir) / IMAGES_SUBDIR
    lists = list_identities(image_root, limit_identities)
    if not lists.multi:
        raise ValueError(f"no identity with two or more images under {image_root}")
    everyone = list(lists.multi)
    sizes = sorted({min(size or len(everyone), len(everyone)) for size in gallery_sizes})
    names = [name for images in lists.multi.values() for name in images] + [i[0] for i in lists.single.values()]
    raw = lfw_embeddings(analyzer, lfw_dir, names, fusion.profile.models, progress)
    embeddings = raw.fused(fusion)
    galleries = tuple(
        _gallery_result(embeddings, lists, everyone[:size], threshold_at(size), far_targets) for size in sizes
    )
    return IdentificationResult(
        galleries=galleries,
        open_set_probes=len(lists.single),
        far_target=far_targets[0],
        model=f"{fusion.profile.name} ({', '.join(analyzer.embedder.refs(fusion.profile.models))})",
        images=len(embeddings.names),
        retried=embeddings.retried,
        missed=embeddings.missed,
        seconds=time.perf_counter() - started,
    )
