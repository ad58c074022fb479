"""A subject searched as one template: how its faces become one score, and how feedback keeps the template small.

The rule was chosen by measurement (`argus eval identify --shots 1,2,3`, on the identities of LFW's development
pairs, reported on the others): the template is each model's mean face vector, renormalised, and a probe's score is
its fused cosine to that centroid. Against the nearest face (the rule before templates), the mean of the
similarities and the mean of the top two, the centroid gave the best DIR at FAR 1% with two and three faces on the
development side (99.1% and 99.3% against 98.2% and 99.1% for the nearest face) and held it on the test side
(96.6% and 97.6% against 96.1% and 97.1%); with one face every rule is the same. Cohort, Z- and T-normalisations of
the score and a penalty by the runner-up subject gave nothing on the development side and were left out.

Pure functions over fused vectors (rows of unit length, the profile's Fusion output): no database, no index.
"""

from __future__ import annotations

import math

import numpy as np

from argus.profiles import Fusion

# A face confirmed by feedback adds nothing when a face of the template is this close to it already (fused cosine):
# the same photo, or frames of one moment. Of the 9,215 pairs of LFW photos of one person, 3 reach it (99.9% are
# below 0.93), and all three are the same scene a moment apart.
NEAR_DUPLICATE = 0.95


def template_vector(fusion: Fusion, faces: np.ndarray) -> np.ndarray:
    """One subject's faces (n, d) as the fused vector of its template: per model, the mean of the faces' parts
    renormalised to the model's share, so the template is a unit vector and its cosines split by model like a
    face's. One face is its own template."""
    faces = np.atleast_2d(np.asarray(faces, dtype=np.float32))
    if faces.shape[0] == 1:
        return np.array(faces[0])
    pieces = []
    for piece, share in zip(fusion.split(faces), fusion.shares, strict=True):
        mean = piece.mean(axis=0)
        norm = float(np.linalg.norm(mean))
        pieces.append(mean / max(norm, 1e-12) * math.sqrt(share) if norm > 0 else mean)
    return np.concatenate(pieces).astype(np.float32)


def most_redundant(faces: np.ndarray) -> int:
    """The row whose loss costs the template least: the face most similar to another face of it (ties: the
    earliest). Needs at least two faces."""
    faces = np.asarray(faces, dtype=np.float32)
    if faces.shape[0] < 2:
        raise ValueError("a template of one face has nothing redundant")
    similarity = faces @ faces.T
    np.fill_diagonal(similarity, -np.inf)
    return int(np.argmax(similarity.max(axis=1)))


def adds_information(template_faces: np.ndarray, face: np.ndarray, near_duplicate: float) -> bool:
    """Whether a face is worth adding: no face of the template is already at or above `near_duplicate` cosine to
    it (the same photo again, or a burst of frames of one moment)."""
    faces = np.atleast_2d(np.asarray(template_faces, dtype=np.float32))
    return faces.shape[0] == 0 or float((faces @ np.asarray(face, dtype=np.float32)).max()) < near_duplicate


def impostor_veto(similarity: float, probe: np.ndarray, impostors: np.ndarray) -> bool:
    """Whether a probe is at least as close to one of the subject's rejected impostor examples as it is to the
    subject's template: then it is taken for that impostor, not for the subject, whatever the threshold."""
    examples = np.atleast_2d(np.asarray(impostors, dtype=np.float32))
    if examples.shape[0] == 0 or examples.shape[1] == 0:
        return False
    return float((examples @ np.asarray(probe, dtype=np.float32)).max()) >= similarity
