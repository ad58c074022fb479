"""The embeddings of a data set's images, computed once by the product's models and kept on disk.

Every face figure (LFW verification, identification, calibration) starts from the embeddings of the same few
thousand images, so repeated `argus eval` / `argus calibrate` runs only redo the arithmetic.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path

import numpy as np

from argus.evaluation.images import chunks, read_image
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.files import atomic_write
from argus.profiles import Fusion
from argus.services.detector.faces import DetectedFace

# A face the default threshold misses is looked for again this leniently: LFW guarantees a face in every image,
# so a weak detection of it beats a zero vector.
RETRY_SCORE_THRESHOLD = 0.3
# Bump when the way an image becomes an embedding changes, so stale caches are not reused.
CACHE_VERSION = 2
_CHUNK = 64  # images decoded and in flight at once

FOUND, RETRIED, MISSED = 0, 1, 2  # how an image's face was found: default threshold, lenient retry, not at all

ProgressCallback = Callable[[int, int], None]  # (images done, images to do)


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


def closest_to_centre(faces: Sequence[DetectedFace], height: int, width: int) -> DetectedFace | None:
    """The face whose box centre is nearest the image centre: LFW crops are centred on their subject, while the
    largest or most confident face is sometimes a bystander."""
    if not faces:
        return None
    cx, cy = width / 2, height / 2
    return min(faces, key=lambda f: ((f.box[0] + f.box[2]) / 2 - cx) ** 2 + ((f.box[1] + f.box[3]) / 2 - cy) ** 2)


def detection_key_parts(analyzer: LocalFaceAnalyzer, retry_score_threshold: float) -> tuple[str, ...]:
    """What decides which face of an image is found and where: the detector, its options and every face_* setting
    (so a new detector knob invalidates old caches without anyone remembering to), and the centre-face rule."""
    detector = analyzer.detector
    options = detector.defaults
    face_settings = sorted((k, v) for k, v in analyzer.settings.model_dump().items() if k.startswith("face_"))
    return (
        detector.model.spec.ref,
        f"score={options.score_threshold}",
        f"nms={options.iou_threshold}",
        f"retry={retry_score_threshold}",
        f"max_side={detector.max_side}",
        f"settings={face_settings}",
        "choice=centre",
    )


def files_key(image_root: Path, names: Sequence[str]) -> str:
    """The images by name and size: a cache made for other files, or files since changed, has another key."""
    lines = []
    for name in names:
        path = image_root / name
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise FileNotFoundError(f"LFW image {name} is missing under {image_root}") from None
        lines.append(f"{name}\t{size}")
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CentreFaces:
    """One chunk of images with the face each is taken for (None where even the lenient look found none)."""

    names: Sequence[str]
    images: list[np.ndarray]
    faces: list[DetectedFace | None]
    status: list[int]  # FOUND, RETRIED or MISSED


def centre_faces(
    analyzer: LocalFaceAnalyzer, image_root: Path, names: Sequence[str], retry_score_threshold: float
) -> Iterator[CentreFaces]:
    """The images a chunk at a time, each with its face closest to the centre, a missed one looked for again
    leniently: the detector calls every LFW cache makes, so all of them take the same face."""
    detector = analyzer.detector
    lenient = replace(detector.defaults, score_threshold=retry_score_threshold)
    with ThreadPoolExecutor(max_workers=4) as pool:
        for chunk in chunks(names, _CHUNK):
            images = list(pool.map(read_image, [image_root / name for name in chunk]))
            found = detector.detect(images, detector.defaults)
            chosen = [closest_to_centre(faces, *im.shape[:2]) for faces, im in zip(found, images, strict=True)]
            status = [FOUND if face else MISSED for face in chosen]
            misses = [i for i, face in enumerate(chosen) if face is None]
            if misses:
                again = detector.detect([images[i] for i in misses], lenient)
                for i, faces in zip(misses, again, strict=True):
                    chosen[i] = closest_to_centre(faces, *images[i].shape[:2])
                    status[i] = RETRIED if chosen[i] else MISSED
            yield CentreFaces(chunk, images, chosen, status)


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
        parts = (
            f"v{CACHE_VERSION}",
            ",".join(self.refs),
            # an int8 build gives the same network's vectors, but not the same bits: its figures are its own
            "precision=" + ",".join(self.analyzer.embedder.models[name].precision for name in self.models),
            f"flip={self.analyzer.embedder.flip}",
            *detection_key_parts(self.analyzer, self.retry_score_threshold),
        )
        return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]

    def _prefix(self) -> str:
        models = "+".join(self.models).replace("/", "-")
        return f"lfw-{models}-flip{int(self.analyzer.embedder.flip)}-{self.pipeline_key}"

    def cache_path(self, names: Sequence[str]) -> Path:
        return self.cache_dir / f"{self._prefix()}-{files_key(self.image_root, sorted(set(names)))}.npz"

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
        buffer = io.BytesIO()
        np.savez(buffer, names=np.array(result.names), vectors=result.vectors, status=result.status)
        atomic_write(path, buffer.getvalue(), private=True)  # embeddings of faces: the owner's alone

    def _compute(self, names: Sequence[str], progress: ProgressCallback | None) -> dict[str, tuple[np.ndarray, int]]:
        """Detect, keep the centre face (retrying leniently when there is none), align and embed, a chunk at a time.

        These are the detector and embedder calls of LocalFaceAnalyzer.analyze_image, but only the chosen face is
        embedded and a missed face gets a second, lenient look.
        """
        embedder = self.analyzer.embedder
        dimension = sum(embedder.dimensions(self.models))
        results: dict[str, tuple[np.ndarray, int]] = {}
        done = 0
        for chunk in centre_faces(self.analyzer, self.image_root, names, self.retry_score_threshold):
            hits = [(i, face) for i, face in enumerate(chunk.faces) if face is not None]
            vectors = embedder.embed(
                [chunk.images[i] for i, _ in hits],
                [np.asarray(face.landmarks, dtype=np.float64) for _, face in hits],
                self.models,
            )
            by_index = {i: embedding.concatenated() for (i, _), embedding in zip(hits, vectors, strict=True)}
            for i, name in enumerate(chunk.names):
                vector = by_index.get(i, np.zeros(dimension, dtype=np.float32))
                results[name] = (vector.astype(np.float32), chunk.status[i])
            done += len(chunk.names)
            if progress:
                progress(done, len(names))
        return results
