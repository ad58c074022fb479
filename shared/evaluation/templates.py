"""Subjects enrolled with several photos, on LFW: the template calibration (fitted on the development identities)
and `argus eval identify --shots`, which compares 1, 2 and 3 enrollment photos per person on the other identities.

The split: the development identities are the people of pairsDevTest.txt (the pairs the shipped calibration is
fitted on); everything reported is measured on the other people, as enrolled subjects, probes and strangers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from argus.config import Settings
from argus.evaluation.cache import MISSED, FaceEmbeddings, ProgressCallback
from argus.evaluation.identification import IdentityLists, list_identities, open_set_threshold
from argus.evaluation.lfw import read_pairs
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.profiles import Fusion
from argus.services.facedb.calibration import TEMPLATE_SIZES, TemplateCalibration, fit_template
from argus.services.facedb.templates import NEAR_DUPLICATE, adds_information, most_redundant, template_vector

SHOTS = (1, 2, 3)
STRANGERS = 1000  # never-enrolled people of the test side, one photo each
FAR_TARGET = 0.01
DEFAULT_FEEDBACK_FACES: int = Settings.model_fields["feedback_max_faces"].default  # the service's cap


def development_identities(lfw_dir: Path, pairs_file: str | Path = "pairsDevTest.txt") -> set[str]:
    """The people of the development pairs: calibration is fitted on them and nothing is reported on them."""
    return {
        name.split("/")[0] for pair in read_pairs(Path(lfw_dir) / pairs_file) for name in (pair.path_a, pair.path_b)
    }


def side(lists: IdentityLists, people: set[str], *, inside: bool) -> IdentityLists:
    """The identities in (inside) or outside `people`."""
    return IdentityLists(
        {p: images for p, images in lists.multi.items() if (p in people) == inside},
        {p: images for p, images in lists.single.items() if (p in people) == inside},
    )


def templates_of(fusion: Fusion, embeddings: FaceEmbeddings, photos: Sequence[Sequence[str]]) -> np.ndarray:
    """Each subject's template vector (templates.py) from its enrollment photos' fused embeddings."""
    return np.stack([template_vector(fusion, embeddings.rows(names)) for names in photos])


def model_cosines(fusion: Fusion, probes: np.ndarray, templates: np.ndarray) -> np.ndarray:
    """Per-model cosines of every probe against every template: (probes, templates, k), by matrix products (the
    pairwise arrays of whole vectors would not fit for long galleries)."""
    parts = zip(fusion.split(probes), fusion.split(templates), fusion.shares, strict=True)
    return np.stack([(p @ t.T) / share for p, t, share in parts], axis=-1)


def fit_template_calibrations(
    fusion: Fusion, embeddings: FaceEmbeddings, development: IdentityLists, false_accept_rate: float
) -> tuple[TemplateCalibration, ...]:
    """The template sizes' calibrations from the development people: each with enough photos enrolled with its
    first n, probed with the rest (genuine) and by every photo of everybody else (impostors)."""
    found = {name for name, status in zip(embeddings.names, embeddings.status, strict=True) if status != MISSED}
    everyone = [name for images in (*development.multi.values(), *development.single.values()) for name in images]
    everyone = [name for name in everyone if name in found]
    owner = np.array([name.split("/")[0] for name in everyone])
    probes = embeddings.rows(everyone)
    fitted = []
    for faces in TEMPLATE_SIZES:
        people = [p for p, images in development.multi.items() if len(images) > faces]
        templates = templates_of(fusion, embeddings, [development.multi[p][:faces] for p in people])
        cosines = model_cosines(fusion, probes, templates)
        enrolled = {name for p in people for name in development.multi[p][:faces]}
        genuine = (owner[:, None] == np.array(people)[None, :]) & np.array([n not in enrolled for n in everyone])[
            :, None
        ]
        impostor = owner[:, None] != np.array(people)[None, :]
        fitted.append(fit_template(faces, cosines[genuine], cosines[impostor], fusion.shares, false_accept_rate))
    return tuple(fitted)


@dataclass(frozen=True)
class ShotsRow:
    shots: int  # enrollment photos per person
    rule: str  # "template" (the product's) or "nearest face" (before templates)
    rank1: float
    dir_at_far: float  # DIR at FAR 1% measured on the strangers
    threshold_at_far: float
    own_threshold: float  # Identify's own for a template of this size, in a gallery of this many subjects
    own_dir: float
    own_far: float  # share of strangers reaching Identify's own threshold


@dataclass(frozen=True)
class ShotsResult:
    people: int
    probes: int  # the same probes for every row: each person's photos after the largest shot count
    strangers: int
    rows: tuple[ShotsRow, ...]
    feedback: tuple[FeedbackRow, ...] = ()
    model: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "people": self.people,
            "probes": self.probes,
            "strangers": self.strangers,
            "rows": [row.__dict__ for row in self.rows],
            "feedback": [row.__dict__ for row in self.feedback],
        }


@dataclass(frozen=True)
class FeedbackRow:
    run: str
    confirmed: int  # feedback faces that joined a template
    rejected: int  # impostor examples recorded
    dir_at_far: float  # on the later probes, DIR at FAR 1% on the held-out strangers
    returning_far: float  # share of returning strangers (rejected once) taken for somebody on their next photo


def _open_set(scores: np.ndarray, truth: np.ndarray, stranger_best: np.ndarray) -> tuple[float, float, float]:
    """(rank-1, DIR at FAR_TARGET, its threshold) for a probes x subjects score matrix."""
    best = scores.argmax(axis=1)
    correct = best == truth
    threshold = open_set_threshold(stranger_best, FAR_TARGET)
    return float(correct.mean()), float((correct & (scores.max(axis=1) >= threshold)).mean()), threshold


def evaluate_shots(
    fusion: Fusion,
    embeddings: FaceEmbeddings,
    test: IdentityLists,
    own_threshold: Callable[[int, int], float],
    shots: Sequence[int] = SHOTS,
    strangers: int = STRANGERS,
) -> ShotsResult:
    """1:K with 1, 2, 3 enrollment photos per person, beside each other on the same probes and strangers; the
    product's template rule and the nearest-face rule before it. own_threshold(subjects, faces) is Identify's."""
    most = max(shots)
    people = [p for p, images in test.multi.items() if len(images) > most]
    probe_names = [name for p in people for name in test.multi[p][most:]]
    truth = np.array([people.index(name.split("/")[0]) for name in probe_names])
    stranger_names = [images[0] for images in test.single.values()][:strangers]
    probes, others = embeddings.rows(probe_names), embeddings.rows(stranger_names)
    rows = []
    for n in shots:
        photos = [test.multi[p][:n] for p in people]
        templates = templates_of(fusion, embeddings, photos)
        scores, stranger_scores = probes @ templates.T, others @ templates.T
        threshold = own_threshold(len(people), n)
        rank1, dir_at, at = _open_set(scores, truth, stranger_scores.max(axis=1))
        correct = scores.argmax(axis=1) == truth
        rows.append(
            ShotsRow(
                n,
                "template",
                rank1,
                dir_at,
                at,
                threshold,
                float((correct & (scores.max(axis=1) >= threshold)).mean()),
                float((stranger_scores.max(axis=1) >= threshold).mean()),
            )
        )
        if n > 1:
            nearest = np.stack([(probes @ embeddings.rows(p).T).max(axis=1) for p in photos], axis=1)
            stranger_nearest = np.stack([(others @ embeddings.rows(p).T).max(axis=1) for p in photos], axis=1)
            rank1, dir_at, at = _open_set(nearest, truth, stranger_nearest.max(axis=1))
            rows.append(ShotsRow(n, "nearest face", rank1, dir_at, at, math.nan, math.nan, math.nan))
    return ShotsResult(len(people), len(probe_names), len(stranger_names), tuple(rows))


class _Gallery:
    """The subjects of the feedback runs as the service keeps them: each one's template faces, the faces feedback
    added, and its rejected impostor examples."""

    def __init__(self, fusion: Fusion, faces: list[np.ndarray], rule: str, max_feedback: int, near: float) -> None:
        self.fusion, self.rule, self.max_feedback, self.near = fusion, rule, max_feedback, near
        self.faces = [np.atleast_2d(f) for f in faces]
        self.added = [0] * len(faces)
        self.impostors: list[list[np.ndarray]] = [[] for _ in faces]
        self.confirmed = self.rejected = 0

    def scores(self, probes: np.ndarray) -> np.ndarray:
        """Probes x subjects: the template score, or -1 where the subject's rejections rule the probe out."""
        templates = np.stack([template_vector(self.fusion, f) for f in self.faces])
        scores = probes @ templates.T
        for subject, examples in enumerate(self.impostors):
            if not examples or self.rule == "none":
                continue
            nearest = (probes @ np.stack(examples).T).max(axis=1)
            if self.rule == "veto":  # closer to a rejected impostor than to the template
                scores[nearest >= scores[:, subject], subject] = -1.0
            else:  # "bar": the subject's bar raised above the best score a rejected impostor reached
                bar = float((np.stack(examples) @ templates[subject]).max())
                scores[scores[:, subject] <= bar, subject] = -1.0
        return np.asarray(scores)

    def confirm(self, subject: int, face: np.ndarray) -> None:
        """ConfirmDecision's rule: a face that adds information joins; past the cap the most redundant feedback
        face is retired (enrolled faces never are)."""
        if not adds_information(self.faces[subject], face, self.near):
            return
        self.faces[subject] = np.vstack([self.faces[subject], face])
        self.added[subject] += 1
        self.confirmed += 1
        if self.added[subject] > self.max_feedback:
            enrolled = len(self.faces[subject]) - self.added[subject]
            retired = enrolled + most_redundant(self.faces[subject][enrolled:])
            self.faces[subject] = np.delete(self.faces[subject], retired, axis=0)
            self.added[subject] -= 1

    def reject(self, subject: int, face: np.ndarray) -> None:
        self.impostors[subject].append(face)
        self.rejected += 1


def feedback_runs(
    fusion: Fusion,
    embeddings: FaceEmbeddings,
    test: IdentityLists,
    own_threshold: Callable[[int, int], float],
    *,
    later_from: int = 3,
    strangers: int = STRANGERS,
    max_feedback: int = DEFAULT_FEEDBACK_FACES,
    near_duplicate: float = NEAR_DUPLICATE,
) -> tuple[FeedbackRow, ...]:
    """One-shot enrollment, then probes arrive in time order (photos 2 and 3 of each person, and people never
    enrolled, some of whom come back later) and the ground truth confirms or rejects each answer as an operator
    would: a person is confirmed as who they are, a wrong name and a stranger's match are rejected. Measured after:
    DIR at FAR 1% on each person's later photos (the 3-shot protocol's probes) against held-out strangers, and how
    many returning strangers are taken for somebody again on their next photo, at Identify's own threshold."""
    people = [p for p, images in test.multi.items() if len(images) > later_from]
    position = {p: row for row, p in enumerate(people)}
    returning = [p for p, images in test.multi.items() if len(images) <= later_from]
    stream = [(name, position[p]) for p in people for name in test.multi[p][1:later_from]]
    stream += [(test.multi[p][0], -1) for p in returning]
    stream += [(images[0], -1) for images in list(test.single.values())[strangers:]]
    order = np.random.default_rng(15).permutation(len(stream))
    later = [name for p in people for name in test.multi[p][later_from:]]
    truth = np.array([position[name.split("/")[0]] for name in later])
    held_out = embeddings.rows([images[0] for images in test.single.values()][:strangers])
    comeback = embeddings.rows([test.multi[p][1] for p in returning])
    rows = []
    for run, feedback, rule in (
        ("no feedback", False, "none"),
        ("confirm only", True, "none"),
        ("confirm + reject (veto)", True, "veto"),
        ("confirm + reject (raised bar)", True, "bar"),
    ):
        gallery = _Gallery(
            fusion, [embeddings.rows(test.multi[p][:1]) for p in people], rule, max_feedback, near_duplicate
        )
        for at in order if feedback else ():
            name, who = stream[at]
            face = embeddings.rows([name])[0]
            scores = gallery.scores(face[None, :])[0]
            best = int(np.argmax(scores))
            matched = scores[best] >= own_threshold(len(people), len(gallery.faces[best]))
            if matched and best != who:
                gallery.reject(best, face)
            if who >= 0:
                gallery.confirm(who, face)
        _, dir_at, _ = _open_set(gallery.scores(embeddings.rows(later)), truth, gallery.scores(held_out).max(axis=1))
        back = gallery.scores(comeback)
        bars = np.array([own_threshold(len(people), len(f)) for f in gallery.faces])
        returning_far = float((back >= bars[None, :]).any(axis=1).mean()) if len(returning) else 0.0
        rows.append(FeedbackRow(run, gallery.confirmed, gallery.rejected, dir_at, returning_far))
    return tuple(rows)


def evaluate_templates(
    analyzer: LocalFaceAnalyzer,
    lfw_dir: Path,
    fusion: Fusion,
    own_threshold: Callable[[int, int], float],
    shots: Sequence[int] = SHOTS,
    progress: ProgressCallback | None = None,
) -> ShotsResult:
    """`argus eval identify --shots`: evaluate_shots on the people outside the development pairs, with the
    feedback runs beside it."""
    from argus.evaluation.lfw import IMAGES_SUBDIR, lfw_embeddings

    lists = list_identities(Path(lfw_dir) / IMAGES_SUBDIR)
    test = side(lists, development_identities(lfw_dir), inside=False)
    names = [name for images in (*test.multi.values(), *test.single.values()) for name in images]
    embeddings = lfw_embeddings(analyzer, lfw_dir, names, fusion.profile.models, progress).fused(fusion)
    result = evaluate_shots(fusion, embeddings, test, own_threshold, shots)
    result = replace(result, feedback=feedback_runs(fusion, embeddings, test, own_threshold))
    model = f"{fusion.profile.name} ({', '.join(analyzer.embedder.refs(fusion.profile.models))})"
    return replace(result, model=model)
