"""What each query quality level (argus.services.facedb.quality) costs and gains on LFW: the share of probe images it
drops, and the FAR and TAR at the profile's calibrated 1:1 threshold on the pairs it keeps (both faces passed).

The bars are chosen on the development pairs (pairsDevTest.txt) and reported on the test pairs (pairs.txt). Each
image's face is the one its embedding was made from (the centre face, found again leniently when the default
threshold misses it), so its measures and its similarities belong together; the measures are cached on disk like
the embeddings, and the similarities come from the embedding cache.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from argus.alignment import align_face, face_crop, sharpness
from argus.evaluation.cache import (
    RETRY_SCORE_THRESHOLD,
    ProgressCallback,
    centre_faces,
    detection_key_parts,
    files_key,
)
from argus.evaluation.lfw import IMAGES_SUBDIR, Pair, lfw_embeddings, pair_images, read_pairs, score_pairs, select_pairs
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.files import atomic_write
from argus.services.facedb.calibration import Calibration
from argus.services.facedb.quality import MEASURES, QUALITY_LEVELS, QualityBars, QualityVerdict, assess

# Bump when the way an image becomes its measures changes, so stale caches are not reused.
QUALITY_CACHE_VERSION = 1
QUANTILES = (0.005, 0.01, 0.05, 0.1, 0.5, 0.9, 0.95, 0.99, 0.995)  # of each measure over a split's images


@dataclass(frozen=True)
class ImageMeasures:
    """The raw measures of each image's face (NaN where none was found); the pose is derived when judged, so a
    change to the pose estimate needs no new detection."""

    names: tuple[str, ...]
    boxes: np.ndarray  # (N, 4) x1, y1, x2, y2
    scores: np.ndarray  # (N,) detection score
    landmarks: np.ndarray  # (N, 5, 2)
    sharpness: np.ndarray  # (N,) as AnalyzedFace.sharpness: variance of the Laplacian of the aligned crop

    def verdicts(self, bars: QualityBars) -> dict[str, QualityVerdict]:
        return {
            name: assess((x1, y1, x2, y2), float(score), points, float(sharp), bars)
            for name, (x1, y1, x2, y2), score, points, sharp in zip(
                self.names, self.boxes.tolist(), self.scores, self.landmarks, self.sharpness, strict=True
            )
        }


class QualityCache:
    """Detects LFW images with the product's detector and keeps each centre face's measures in an .npz under
    DATA_DIR/cache, keyed by the detector's settings and the list of files (names and sizes)."""

    def __init__(
        self,
        analyzer: LocalFaceAnalyzer,
        image_root: Path,
        *,
        cache_dir: Path | None = None,
        retry_score_threshold: float = RETRY_SCORE_THRESHOLD,
    ) -> None:
        self.analyzer = analyzer
        self.image_root = Path(image_root)
        self.cache_dir = cache_dir or analyzer.settings.data_dir / "cache"
        self.retry_score_threshold = retry_score_threshold

    @property
    def pipeline_key(self) -> str:
        """Everything besides the file list that decides the measures: the detector and its settings."""
        parts = (f"v{QUALITY_CACHE_VERSION}", *detection_key_parts(self.analyzer, self.retry_score_threshold))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]

    def cache_path(self, names: Sequence[str]) -> Path:
        return self.cache_dir / f"lfw-quality-{self.pipeline_key}-{files_key(self.image_root, names)}.npz"

    def measures(self, names: Sequence[str], progress: ProgressCallback | None = None) -> ImageMeasures:
        """The measures of these images (relative to image_root), sorted by name, from the cache when possible."""
        wanted = sorted(set(names))
        path = self.cache_path(wanted)
        cached = self._load(path)
        if cached is not None and list(cached.names) == wanted:
            return cached
        computed = self._compute(wanted, progress)
        buffer = io.BytesIO()
        np.savez(
            buffer,
            names=np.array(computed.names),
            boxes=computed.boxes,
            scores=computed.scores,
            landmarks=computed.landmarks,
            sharpness=computed.sharpness,
        )
        atomic_write(path, buffer.getvalue(), private=True)  # face positions in people's photos: the owner's alone
        return computed

    @staticmethod
    def _load(path: Path) -> ImageMeasures | None:
        try:
            with np.load(path, allow_pickle=False) as data:
                return ImageMeasures(
                    tuple(str(n) for n in data["names"]),
                    data["boxes"],
                    data["scores"],
                    data["landmarks"],
                    data["sharpness"],
                )
        except (OSError, KeyError, ValueError):
            return None

    def _compute(self, names: Sequence[str], progress: ProgressCallback | None) -> ImageMeasures:
        """The detector calls of EmbeddingCache._compute (the same face is chosen), and the sharpness the embedder
        computes from the face crop, without embedding."""
        count = len(names)
        boxes, scores = np.full((count, 4), np.nan), np.full(count, np.nan)
        landmarks, sharp = np.full((count, 5, 2), np.nan), np.full(count, np.nan)
        done = 0
        for chunk in centre_faces(self.analyzer, self.image_root, names, self.retry_score_threshold):
            for i, face in enumerate(chunk.faces):
                if face is None:
                    continue
                row, points = done + i, np.asarray(face.landmarks, dtype=np.float64)
                crop = face_crop(chunk.images[i], points)
                boxes[row], scores[row], landmarks[row] = face.box, face.score, points
                sharp[row] = sharpness(align_face(crop.image, crop.landmarks))
            done += len(chunk.names)
            if progress:
                progress(done, count)
        return ImageMeasures(tuple(names), boxes, scores, landmarks, sharp)


@dataclass(frozen=True)
class LevelFigures:
    """One quality level on one split: the probe images it drops and the errors on the pairs it keeps."""

    level: str
    bars: QualityBars
    images: int
    dropped: int
    below: dict[str, int]  # images dropped, by the first measure they fell below
    genuine: int  # same-person pairs kept
    impostor: int  # different-person pairs kept
    true_accepts: int
    false_accepts: int

    @property
    def dropped_share(self) -> float:
        return self.dropped / self.images if self.images else 0.0

    @property
    def far(self) -> float:
        return self.false_accepts / self.impostor if self.impostor else float("nan")

    @property
    def tar(self) -> float:
        return self.true_accepts / self.genuine if self.genuine else float("nan")


@dataclass(frozen=True)
class SplitFigures:
    pairs_file: str
    pairs: int
    images: int
    levels: tuple[LevelFigures, ...]  # in the order of QUALITY_LEVELS
    quantiles: dict[str, tuple[float, ...]]  # each measure (|yaw|, |pitch|) at QUANTILES over the split's images


@dataclass(frozen=True)
class QualityResult:
    profile: str
    threshold: float  # the calibrated 1:1 threshold on the fused cosine
    development: SplitFigures
    test: SplitFigures
    missed: int  # images without a face at all (measures NaN: dropped at every level but none)
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        def split(figures: SplitFigures) -> dict[str, Any]:
            return {
                "pairs_file": figures.pairs_file,
                "pairs": figures.pairs,
                "images": figures.images,
                "quantiles": {"at": list(QUANTILES), **{k: list(v) for k, v in figures.quantiles.items()}},
                "levels": [
                    {
                        "level": row.level,
                        "bars": asdict(row.bars),
                        "images": row.images,
                        "dropped": row.dropped,
                        "dropped_share": row.dropped_share,
                        "below": row.below,
                        "genuine_pairs": row.genuine,
                        "impostor_pairs": row.impostor,
                        "true_accepts": row.true_accepts,
                        "false_accepts": row.false_accepts,
                        "far": row.far if row.impostor else None,  # None: no pair of the kind was kept
                        "tar": row.tar if row.genuine else None,
                    }
                    for row in figures.levels
                ],
            }

        return {
            "profile": self.profile,
            "threshold": self.threshold,
            "missed": self.missed,
            "seconds": self.seconds,
            "development": split(self.development),
            "test": split(self.test),
        }


def _split_figures(
    pairs_file: str,
    pairs: Sequence[Pair],
    similarities: np.ndarray,
    threshold: float,
    verdicts: Mapping[str, Mapping[str, QualityVerdict]],
) -> SplitFigures:
    images = sorted(set(pair_images(pairs)))
    same = np.array([pair.same for pair in pairs])
    accepted = similarities >= threshold
    levels = []
    for level, by_image in verdicts.items():
        failed = [by_image[name].below for name in images if by_image[name].below]
        kept = np.array([by_image[p.path_a].passed and by_image[p.path_b].passed for p in pairs], dtype=bool)
        levels.append(
            LevelFigures(
                level=level,
                bars=QUALITY_LEVELS[level],
                images=len(images),
                dropped=len(failed),
                below={measure: failed.count(measure) for measure in MEASURES},
                genuine=int(np.count_nonzero(kept & same)),
                impostor=int(np.count_nonzero(kept & ~same)),
                true_accepts=int(np.count_nonzero(kept & same & accepted)),
                false_accepts=int(np.count_nonzero(kept & ~same & accepted)),
            )
        )
    measured = [next(iter(verdicts.values()))[name] for name in images]  # any level's: measures ignore the bars
    values = {
        "face_size": [v.face_size for v in measured],
        "sharpness": [v.sharpness for v in measured],
        "detection_score": [v.detection_score for v in measured],
        "abs_yaw": [abs(v.yaw) for v in measured],
        "abs_pitch": [abs(v.pitch) for v in measured],
    }
    quantiles = {
        measure: tuple(float(q) for q in np.nanquantile(np.asarray(column), QUANTILES))
        for measure, column in values.items()
    }
    return SplitFigures(pairs_file, len(pairs), len(images), tuple(levels), quantiles)


def evaluate_quality(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    calibration: Calibration,
    *,
    development_file: str = "pairsDevTest.txt",
    test_file: str = "pairs.txt",
    limit_pairs: int | None = None,
    progress: ProgressCallback | None = None,
    measure_progress: ProgressCallback | None = None,
) -> QualityResult:
    """Every quality level on the development and the test pairs (with limit_pairs, that many of the first fold of
    each, half same, half different), at the calibration's 1:1 threshold."""
    started = time.perf_counter()
    splits = {
        name: select_pairs(read_pairs(Path(lfw_dir) / name), 1 if limit_pairs else None, limit_pairs)
        for name in (development_file, test_file)
    }
    images = sorted({image for pairs in splits.values() for image in pair_images(pairs)})
    fusion = calibration.fusion()
    embeddings = lfw_embeddings(analyzer, lfw_dir, images, fusion.profile.models, progress).fused(fusion)
    measures = QualityCache(analyzer, Path(lfw_dir) / IMAGES_SUBDIR).measures(images, measure_progress)
    verdicts = {level: measures.verdicts(bars) for level, bars in QUALITY_LEVELS.items()}
    development, test = (
        _split_figures(name, pairs, score_pairs(embeddings, pairs), calibration.threshold, verdicts)
        for name, pairs in splits.items()
    )
    return QualityResult(
        profile=fusion.profile.name,
        threshold=calibration.threshold,
        development=development,
        test=test,
        missed=int(np.count_nonzero(np.isnan(measures.scores))),
        seconds=time.perf_counter() - started,
    )
