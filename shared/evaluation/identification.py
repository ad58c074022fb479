"""LFW as a 1:K search, open set: rank-1 and rank-5, and the detection-and-identification rate at measured
false-accept rates, for galleries of growing size, with never-enrolled people as strangers."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from argus.evaluation.cache import MISSED, FaceEmbeddings, ProgressCallback
from argus.evaluation.lfw import IMAGES_SUBDIR, lfw_embeddings
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.profiles import Fusion

IDENTIFY_FAR_TARGETS = (0.01, 0.001)  # open-set: share of never-enrolled people taken for somebody
GALLERY_SIZES = (100, 500, None)  # people enrolled in `argus eval identify`; None: all of them


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
