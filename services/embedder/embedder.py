"""Face embeddings with MobileFaceNet: aligned 112x112 crops in, L2-normalised 128-d vectors out."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from argus.batching import DynamicBatcher
from argus.config import Settings
from argus.models.manifest import MOBILEFACENET
from argus.models.runtime import OnnxModel
from argus.models.store import ModelStore
from argus.services.embedder.align import ALIGNED_SIZE, align_face, sharpness


class MobileFaceNetModel(OnnxModel):
    spec = MOBILEFACENET

    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, 3, ALIGNED_SIZE, ALIGNED_SIZE), dtype=np.float32)


def to_input(face_bgr: np.ndarray) -> np.ndarray:
    """A 112x112 BGR uint8 crop to the network's input: RGB, CHW, (x - 127.5) / 128."""
    rgb = face_bgr[:, :, ::-1].astype(np.float32)
    return np.ascontiguousarray(((rgb - 127.5) / 128.0).transpose(2, 0, 1))


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


@dataclass(frozen=True)
class FaceEmbedding:
    vector: np.ndarray  # (128,) float32, unit length
    sharpness: float
    aligned: np.ndarray  # the 112x112 BGR crop that was embedded


class FaceEmbedder:
    """Aligns and embeds faces; crops of concurrent callers share forward passes."""

    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.model = MobileFaceNetModel(store, settings)
        self.flip = settings.flip_augmentation
        self.batcher = DynamicBatcher.for_model(self.model, settings, max_batch_size=max(settings.max_batch_size, 32))

    @property
    def model_ref(self) -> str:
        return self.model.spec.ref

    @property
    def dimension(self) -> int:
        return int(self.model.session.get_outputs()[0].shape[-1])

    def embed_aligned(self, crops: list[np.ndarray]) -> list[FaceEmbedding]:
        """Embeds 112x112 BGR crops. With flip augmentation each crop's mirror is embedded too and the two
        vectors are summed before normalising, which is steadier under pose and lighting."""
        inputs = [to_input(crop) for crop in crops]
        futures = [self.batcher.submit(tensor) for tensor in inputs]
        if self.flip:
            futures += [self.batcher.submit(np.ascontiguousarray(tensor[:, :, ::-1])) for tensor in inputs]
        raw = np.stack([future.result()[0] for future in futures])
        if self.flip:
            raw = raw[: len(crops)] + raw[len(crops) :]
        vectors = l2_normalise(raw.astype(np.float32))
        return [FaceEmbedding(vector, sharpness(crop), crop) for vector, crop in zip(vectors, crops, strict=True)]

    def embed(self, images: list[np.ndarray], landmarks: list[np.ndarray]) -> list[FaceEmbedding]:
        """Aligns each face by its five landmarks (x, y in its image) and embeds it."""
        crops = [align_face(image, points) for image, points in zip(images, landmarks, strict=True)]
        return self.embed_aligned(crops)

    def close(self) -> None:
        self.batcher.close()
