"""Embedding profiles: which networks embed a face, and how their vectors are fused into one.

A collection is bound to one profile. A single-model profile uses that network's unit vector as is. A fusion
profile L2-normalises each network's vector, subtracts that network's mean vector where `centred` says so (dlib's
vectors share a large common direction: any two faces score about 0.83), renormalises, scales each part by the
square root of its weight's share and concatenates. The fused cosine is then the weighted mean of the per-model
cosines, and each model's cosine can be read back from the fused vectors (`model_cosines`), which is what score
fusion needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from argus.errors import InvalidInput, shown


@dataclass(frozen=True)
class ProfileMember:
    model: str  # a manifest name, e.g. "dlib-resnet"
    centred: bool = False  # subtract the model's mean vector before fusing
    weight: float = 1.0  # its share of the fused cosine, relative to the other members'


@dataclass(frozen=True)
class EmbeddingProfile:
    name: str
    members: tuple[ProfileMember, ...]
    summary: str

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(member.model for member in self.members)

    @property
    def needs_means(self) -> tuple[str, ...]:
        return tuple(member.model for member in self.members if member.centred)


PROFILES: dict[str, EmbeddingProfile] = {
    profile.name: profile
    for profile in (
        EmbeddingProfile("mobilefacenet", (ProfileMember("mobilefacenet"),), "MobileFaceNet alone (fastest)"),
        EmbeddingProfile("dlib", (ProfileMember("dlib-resnet"),), "the CC0 dlib ResNet alone"),
        # The weights were chosen on LFW's development split (see the README's Accuracy section): dlib helps 1:1
        # verification most, but its impostor scores have the heavier tail, so the open set wants less of it.
        EmbeddingProfile(
            "mobilefacenet+dlib",
            (ProfileMember("mobilefacenet", weight=0.8), ProfileMember("dlib-resnet", centred=True, weight=0.2)),
            "MobileFaceNet and dlib fused (dlib centred; weights 0.8 / 0.2)",
        ),
        EmbeddingProfile(
            "mobilefacenet+dlib+faceres",
            (
                ProfileMember("mobilefacenet", weight=0.7),
                ProfileMember("dlib-resnet", centred=True, weight=0.2),
                ProfileMember("hse-faceres", centred=True, weight=0.1),
            ),
            "MobileFaceNet, dlib and HSE FaceRes fused (dlib and FaceRes centred; weights 0.7 / 0.2 / 0.1)",
        ),
    )
}


def get_profile(name: str) -> EmbeddingProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput(f"unknown embedding profile {shown(name)}; known: {', '.join(PROFILES)}") from None


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    normalised: np.ndarray = vectors / np.maximum(norms, 1e-12)
    return normalised


class Fusion:
    """A profile with its fitted mean vectors: turns per-model unit vectors into the profile's embedding."""

    def __init__(self, profile: EmbeddingProfile, dimensions: Sequence[int], means: Mapping[str, np.ndarray]) -> None:
        if len(dimensions) != len(profile.members):
            raise ValueError(f"profile {profile.name} has {len(profile.members)} models, got {len(dimensions)} sizes")
        missing = [model for model in profile.needs_means if model not in means]
        if missing:
            raise ValueError(f"profile {profile.name} centres {', '.join(missing)} but no mean vector was given")
        self.profile = profile
        self.dimensions = tuple(int(d) for d in dimensions)
        total = sum(member.weight for member in profile.members)
        self.shares = tuple(member.weight / total for member in profile.members)
        self.means = [np.asarray(means[m.model], dtype=np.float32) if m.centred else None for m in profile.members]
        for member, mean, size in zip(profile.members, self.means, self.dimensions, strict=True):
            if mean is not None and mean.shape != (size,):
                raise ValueError(f"the mean of {member.model} has shape {mean.shape}, expected ({size},)")

    @property
    def dimension(self) -> int:
        return sum(self.dimensions)

    def split(self, parts: np.ndarray) -> list[np.ndarray]:
        """Concatenated per-model vectors (..., sum of dims) back into one array per model."""
        return np.split(np.asarray(parts, dtype=np.float32), np.cumsum(self.dimensions)[:-1], axis=-1)

    def fuse(self, parts: np.ndarray) -> np.ndarray:
        """(..., sum of dims) concatenated per-model unit vectors -> (..., sum of dims) unit fused vectors.

        A single uncentred model passes through unchanged. A zero row (no face) stays zero."""
        pieces = []
        for piece, mean, share in zip(self.split(parts), self.means, self.shares, strict=True):
            if mean is not None:
                present = np.linalg.norm(piece, axis=-1, keepdims=True) > 0
                piece = l2_normalise(piece - mean) * present
            pieces.append(piece * math.sqrt(share))
        return np.concatenate(pieces, axis=-1).astype(np.float32)

    def model_cosines(self, fused_a: np.ndarray, fused_b: np.ndarray) -> np.ndarray:
        """Each model's (centred) cosine between fused vectors: (..., k). Their weighted mean (by the members'
        shares) is the fused cosine."""
        pairs = zip(self.split(fused_a), self.split(fused_b), self.shares, strict=True)
        return np.stack([np.sum(a * b, axis=-1) / share for a, b, share in pairs], axis=-1)
