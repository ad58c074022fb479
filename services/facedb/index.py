"""In-memory FAISS indexes for 1:K search, one per collection.

The database (storage.FaceStore) is the source of truth; an index is a derived cache of the collection's
embeddings keyed by face id. It is rebuilt from the database at start (`IndexRegistry.rebuild_all`) and then kept in
step by the service: add after an enrollment commits, remove after a delete commits. Losing it loses nothing.

Vectors are L2-normalised before they go in or are searched, so the inner product FAISS ranks by is the cosine
similarity the thresholds are calibrated on. IndexFlatIP is exact (brute force): no training, no recall loss, and
fast enough for galleries up to about a million faces on one CPU.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import faiss
import numpy as np

from argus.errors import InvalidInput

if TYPE_CHECKING:
    from argus.services.facedb.storage import FaceStore


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))


class FaceIndex:
    """One collection's exact cosine-similarity index. Every method takes the lock: FAISS writes are not thread-safe,
    and a search must never see an index half-way through a change."""

    def __init__(self, dimension: int | None = None, profile: str | None = None) -> None:
        self.profile = profile  # the embedding profile of its vectors; None for an index made empty on first use
        self._lock = threading.RLock()
        self._dimension = dimension
        self._index: faiss.IndexIDMap2 | None = None if dimension is None else self._new_index(dimension)
        self._ids: set[int] = set()  # to make add() an upsert without asking FAISS (IDMap2 would keep duplicates)

    @staticmethod
    def _new_index(dimension: int) -> faiss.IndexIDMap2:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def dimension(self) -> int | None:
        """Set by the constructor or by the first vectors added; None while unknown."""
        return self._dimension

    @property
    def size(self) -> int:
        with self._lock:
            return 0 if self._index is None else int(self._index.ntotal)

    def __len__(self) -> int:
        return self.size

    def __contains__(self, face_id: object) -> bool:
        with self._lock:
            return face_id in self._ids

    def _prepare(self, vectors: np.ndarray, dimension: int | None) -> np.ndarray:
        """Validated, L2-normalised, contiguous float32 (N, d) copy of the vectors."""
        array = np.array(vectors, dtype=np.float32, copy=True, ndmin=2)
        if array.ndim != 2:
            raise InvalidInput(f"vectors must be (N, d), got shape {array.shape}")
        if dimension is not None and array.shape[1] != dimension:
            raise InvalidInput(f"this index holds {dimension}-dimensional vectors, got {array.shape[1]}")
        if not np.isfinite(array).all():
            raise InvalidInput("vectors contain NaN or infinite values")
        norms = np.linalg.norm(array, axis=1)
        if array.shape[0] and not (norms > 0).all():
            raise InvalidInput("a zero vector has no direction to compare")
        array /= norms[:, None]
        return np.ascontiguousarray(array)

    def _checked_ids(self, ids: Iterable[int] | np.ndarray, count: int) -> np.ndarray:
        id_array = _as_ids(ids)
        if id_array.ndim != 1 or id_array.shape[0] != count:
            raise InvalidInput(f"{count} vectors need {count} ids, got shape {id_array.shape}")
        if np.unique(id_array).shape[0] != count:
            raise InvalidInput("face ids must be unique")
        if count and id_array.min() < 0:
            raise InvalidInput("face ids must not be negative (-1 means 'no result' to FAISS)")
        return id_array

    def rebuild(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Replaces the whole content. Builds the new index aside, so searches keep running on the old one."""
        id_array = _as_ids(ids)
        if id_array.shape[0] == 0:
            with self._lock:
                self._index = None if self._dimension is None else self._new_index(self._dimension)
                self._ids = set()
            return
        prepared = self._prepare(vectors, None)
        id_array = self._checked_ids(id_array, prepared.shape[0])
        index = self._new_index(prepared.shape[1])
        index.add_with_ids(prepared, id_array)
        with self._lock:
            self._dimension = prepared.shape[1]
            self._index = index
            self._ids = set(id_array.tolist())

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Adds faces; an id already present is replaced, so replaying an add is harmless."""
        with self._lock:
            prepared = self._prepare(vectors, self._dimension)
            id_array = self._checked_ids(ids, prepared.shape[0])
            if prepared.shape[0] == 0:
                return
            if self._index is None:
                self._dimension = prepared.shape[1]
                self._index = self._new_index(self._dimension)
            present = [face_id for face_id in id_array.tolist() if face_id in self._ids]
            if present:
                self._index.remove_ids(faiss.IDSelectorBatch(_as_ids(present)))
            self._index.add_with_ids(prepared, id_array)
            self._ids.update(id_array.tolist())

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Removes faces by id; ids not in the index are ignored. Returns how many were removed."""
        with self._lock:
            present = [face_id for face_id in _as_ids(ids).tolist() if face_id in self._ids]
            if not present or self._index is None:
                return 0
            removed = int(self._index.remove_ids(faiss.IDSelectorBatch(_as_ids(present))))
            self._ids.difference_update(present)
            return removed

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of these faces, in order; the ids must be in the index."""
        with self._lock:
            if self._index is None:
                raise KeyError("the index is empty")
            return np.stack([self._index.reconstruct(int(face_id)) for face_id in _as_ids(ids)])

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar faces of each query, best first: (similarities (M, k') float32, ids (M, k') int64).

        k' = min(k, size): asking for more than the index holds is not an error, and an empty index answers
        (M, 0) arrays. Exhaustive search fills every slot, so no -1 ids come back.
        """
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
        with self._lock:
            queries = self._prepare(vectors, self._dimension)
            n = queries.shape[0]
            if self._index is None or self._index.ntotal == 0 or n == 0:
                return np.empty((n, 0), dtype=np.float32), np.empty((n, 0), dtype=np.int64)
            similarities, ids = self._index.search(queries, min(k, int(self._index.ntotal)))
        # Defence in depth: drop trailing columns that are empty in every row, and let any other hole rank last.
        filled = (ids >= 0).any(axis=0)
        keep = int(filled.nonzero()[0].max()) + 1 if filled.any() else 0
        similarities, ids = similarities[:, :keep], ids[:, :keep]
        similarities[ids < 0] = -np.inf
        return similarities, ids


# (profile, stored vectors) -> the vectors the index holds: the face database fuses each model's vectors here.
VectorTransform = Callable[[str, np.ndarray], np.ndarray]


def _as_stored(profile: str, vectors: np.ndarray) -> np.ndarray:
    return vectors


class IndexRegistry:
    """A FaceIndex per collection name. The store is the truth; this is rebuilt from it at start."""

    def __init__(self, transform: VectorTransform = _as_stored) -> None:
        self.transform = transform
        self._lock = threading.Lock()
        self._indexes: dict[str, FaceIndex] = {}

    def build(self, profile: str, ids: np.ndarray, stored: np.ndarray) -> FaceIndex:
        """A new index of these stored vectors, not yet installed."""
        index = FaceIndex(profile=profile)
        index.rebuild(ids, self.transform(profile, stored) if len(ids) else stored)
        return index

    def load(self, name: str, store: FaceStore) -> FaceIndex:
        """A new index of the collection's faces as the store holds them now, not yet installed."""
        profile = store.get_collection(name).profile
        return self.build(profile, *store.embeddings(name))

    def rebuild_all(self, store: FaceStore) -> dict[str, int]:
        """Loads every collection's faces from the store; returns faces per collection. Run it before serving:
        an add that lands while it runs could be lost."""
        fresh = {collection.name: self.load(collection.name, store) for collection in store.list_collections()}
        with self._lock:
            self._indexes = fresh
        return {name: index.size for name, index in fresh.items()}

    def rebuild(self, name: str, store: FaceStore) -> FaceIndex:
        """Reloads one collection from the store (e.g. after an index update failed)."""
        index = self.load(name, store)
        self.install(name, index)
        return index

    def install(self, name: str, index: FaceIndex) -> None:
        """Puts a prepared index in place at once: searches see the old one or the new one, never a mixture."""
        with self._lock:
            self._indexes[name] = index

    def get(self, name: str) -> FaceIndex:
        """The collection's index, created empty on first use: the caller checks that the collection exists."""
        with self._lock:
            index = self._indexes.get(name)
            if index is None:
                index = self._indexes[name] = FaceIndex()
            return index

    def drop(self, name: str) -> None:
        with self._lock:
            self._indexes.pop(name, None)

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._indexes)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._indexes
