"""Face embeddings: landmarks in, one L2-normalised vector per requested network out.

Every face is first cut out as a FaceCrop (the stored form of an enrolled face) and each network's crop is fitted
from that, so a face re-embedded later from its stored crop gets exactly the vector it would get from the photo.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

import numpy as np

from argus.alignment import FaceCrop, align_face, face_crop, sharpness
from argus.batching import DynamicBatcher
from argus.config import Settings
from argus.errors import InvalidInput, ModelUnavailable
from argus.models.store import ModelStore
from argus.profiles import l2_normalise
from argus.services.embedder.models import EMBEDDING_MODELS, EmbeddingModel


@dataclass(frozen=True)
class FaceEmbedding:
    vectors: dict[str, np.ndarray]  # model name -> unit vector, in the order asked for
    sharpness: float
    crop: FaceCrop

    def concatenated(self) -> np.ndarray:
        return np.concatenate(list(self.vectors.values())).astype(np.float32)


def side_by_side(settings: Settings, networks: int) -> Settings:
    """The settings each of `networks` sessions runs with when they run side by side (a face's passes through every
    network are queued at once). Left to ONNX Runtime, every session takes a thread per core, so two networks on two
    cores fight for them: measured through the services, one thread each made Embed of one face 17.0 ms against
    20.3 ms (6 of 6 alternated pairs), at about 10% on 16 faces per call in one process. An operator's own
    ARGUS_INTRA_OP_THREADS is kept."""
    if settings.intra_op_threads or networks < 2:
        return settings
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return settings.model_copy(update={"intra_op_threads": max(1, cores // networks)})


class FaceEmbedder:
    """Holds the configured networks; crops of concurrent callers share forward passes, per network."""

    def __init__(self, store: ModelStore, settings: Settings, models: Sequence[str] | None = None) -> None:
        names = list(models or settings.embedding_models)
        unknown = [name for name in names if name not in EMBEDDING_MODELS]
        if unknown:
            raise ModelUnavailable(
                f"unknown embedding model(s) {', '.join(unknown)}; known: {', '.join(EMBEDDING_MODELS)}"
            )
        self.flip = settings.flip_augmentation
        settings = side_by_side(settings, len(names))
        self.models: dict[str, EmbeddingModel] = {}
        self.batchers: dict[str, DynamicBatcher] = {}
        try:
            for name in names:
                model = EMBEDDING_MODELS[name](store, settings)
                self.models[name] = model
                model.load()  # here, so a missing or corrupt file fails the embedder at start
                self.batchers[name] = DynamicBatcher.for_model(
                    model, settings, max_batch_size=max(settings.max_batch_size, 32)
                )
        except BaseException:
            self.close()
            raise

    @property
    def default_models(self) -> tuple[str, ...]:
        return (next(iter(self.models)),)

    def refs(self, names: Sequence[str]) -> list[str]:
        return [self.models[name].spec.ref for name in names]

    def dimensions(self, names: Sequence[str]) -> list[int]:
        return [self.models[name].dimension for name in names]

    def check_models(self, names: Sequence[str]) -> tuple[str, ...]:
        """The models to run (the default when none are named); a model this embedder does not hold is refused."""
        chosen = tuple(names) or self.default_models
        if len(set(chosen)) != len(chosen):
            raise InvalidInput(f"a model is named twice in {', '.join(chosen)}")
        unknown = [name for name in chosen if name not in EMBEDDING_MODELS]
        if unknown:
            raise InvalidInput(f"unknown embedding model(s) {', '.join(unknown)}; known: {', '.join(EMBEDDING_MODELS)}")
        absent = [name for name in chosen if name not in self.models]
        if absent:
            raise ModelUnavailable(
                f"this embedder does not run {', '.join(absent)}; it runs {', '.join(self.models)} "
                "(set ARGUS_EMBEDDER_MODELS)"
            )
        return chosen

    def _submit(self, name: str, crops: Sequence[FaceCrop]) -> list[Future[list[np.ndarray]]]:
        """Queues one network's forward passes: each face, then (with flip augmentation) each face's mirror image."""
        model, batcher = self.models[name], self.batchers[name]
        inputs = [model.to_input(model.crop(crop.image, crop.landmarks)) for crop in crops]
        if self.flip:
            inputs += [model.mirrored(tensor) for tensor in inputs]
        return batcher.submit_many(inputs)

    def _vectors(self, name: str, futures: list[Future[list[np.ndarray]]], count: int) -> np.ndarray:
        """(count, d) unit vectors. With flip augmentation the two raw outputs of a face are summed before
        normalising, which is steadier under pose and lighting."""
        output = self.models[name].embedding_output
        raw = np.stack([future.result()[output] for future in futures]).astype(np.float32)
        if self.flip:
            raw = raw[:count] + raw[count:]
        return l2_normalise(raw)

    def embed_crops(self, crops: Sequence[FaceCrop], models: Sequence[str] = ()) -> list[FaceEmbedding]:
        chosen = self.check_models(models)
        if not crops:
            return []
        # Every network's passes are queued before any is awaited, so the networks run side by side.
        pending = {name: self._submit(name, crops) for name in chosen}
        per_model = {name: self._vectors(name, futures, len(crops)) for name, futures in pending.items()}
        return [
            FaceEmbedding(
                {name: per_model[name][row] for name in chosen},
                sharpness(align_face(crop.image, crop.landmarks)),
                crop,
            )
            for row, crop in enumerate(crops)
        ]

    def embed(
        self, images: Sequence[np.ndarray], landmarks: Sequence[np.ndarray], models: Sequence[str] = ()
    ) -> list[FaceEmbedding]:
        """Cuts each face by its five landmarks (x, y in its image) and embeds it with each model."""
        crops = [face_crop(image, points) for image, points in zip(images, landmarks, strict=True)]
        return self.embed_crops(crops, models)

    def close(self) -> None:
        for batcher in self.batchers.values():
            batcher.close()
