"""Embedding profiles: which networks embed a face, and how their vectors are fused into one.

A collection is bound to one profile. A single-model profile uses that network's unit vector as is. A fusion
profile L2-normalises each network's vector, subtracts that network's mean vector where `centred` says so (dlib's
vectors share a large common direction: any two faces score about 0.83), renormalises, concatenates and divides by
sqrt(k). The fused cosine is then the mean of the per-model cosines, and each model's cosine can be read back
from the fused vectors (`model_cosines`), which is what score fusion needs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from argus.errors import InvalidInput


@dataclass(frozen=True)
class ProfileMember:
    model: str  # a manifest name, e.g. "dlib-resnet"
    centred: bool = False  # subtract the model's mean vector before fusing


@dataclass(frozen=True)
class EmbeddingProfile:
    name: str
    members: tuple[ProfileMember, ...]
    summary: str

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(member.model for member in self.members)

    @property
    def fused(self) -> bool:
        return len(self.members) > 1

    @property
    def needs_means(self) -> tuple[str, ...]:
        return tuple(member.model for member in self.members if member.centred)


PROFILES: dict[str, EmbeddingProfile] = {
    profile.name: profile
    for profile in (
        EmbeddingProfile("mobilefacenet", (ProfileMember("mobilefacenet"),), "MobileFaceNet alone (fastest)"),
        EmbeddingProfile("dlib", (ProfileMember("dlib-resnet"),), "the CC0 dlib ResNet alone"),
        EmbeddingProfile(
            "mobilefacenet+dlib",
            (ProfileMember("mobilefacenet"), ProfileMember("dlib-resnet", centred=True)),
            "MobileFaceNet and dlib fused (dlib centred)",
        ),
        EmbeddingProfile(
            "mobilefacenet+dlib+faceres",
            (
                ProfileMember("mobilefacenet"),
                ProfileMember("dlib-resnet", centred=True),
                ProfileMember("hse-faceres", centred=True),
            ),
            "MobileFaceNet, dlib and HSE FaceRes fused (dlib and FaceRes centred)",
        ),
    )
}


def get_profile(name: str) -> EmbeddingProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise InvalidInput(f"unknown embedding profile {name!r}; known: {', '.join(PROFILES)}") from None


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


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
        for piece, mean in zip(self.split(parts), self.means, strict=True):
            if mean is not None:
                present = np.linalg.norm(piece, axis=-1, keepdims=True) > 0
                piece = l2_normalise(piece - mean) * present
            pieces.append(piece)
        return (np.concatenate(pieces, axis=-1) / math.sqrt(len(pieces))).astype(np.float32)

    def model_cosines(self, fused_a: np.ndarray, fused_b: np.ndarray) -> np.ndarray:
        """Each model's (centred) cosine between fused vectors: (..., k). Their mean is the fused cosine."""
        k = len(self.dimensions)
        pairs = zip(self.split(fused_a), self.split(fused_b), strict=True)
        return np.stack([k * np.sum(a * b, axis=-1) for a, b in pairs], axis=-1)
