"""In-memory FAISS indexes for 1:K search, one per collection.

The database (storage.FaceStore) is the source of truth; an index is a derived cache of the collection's
embeddings keyed by face id. It is rebuilt from the database (or loaded from a snapshot, snapshots.py) at start and
then kept in step with the database's changes by the follower (replication.py), its one writer. Losing it loses
nothing.

Vectors are L2-normalised before they go in or are searched, so the inner product FAISS ranks by is the cosine
similarity the thresholds are calibrated on.

The kind of index follows the collection's size (`IndexKinds`): below ARGUS_FACEDB_ANN_MIN_FACES an exact flat index
(IndexFlatIP: brute force, no training, no recall loss); above it an approximate one (IndexIVFFlat: about 4 sqrt(N)
k-means lists, the share ARGUS_FACEDB_ANN_PROBE_FRACTION of them searched, so a search does about that share of the
flat one's work). The switch is made by a background thread that trains and fills the new index aside and swaps it
in; searches keep running on the old one meanwhile, and changes made during the build are replayed onto the new one.
bench/facedb_scale_bench.py measures both kinds (latency, recall against exact, memory, build time).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import faiss
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput

if TYPE_CHECKING:
    from argus.services.facedb.storage import FaceStore

log = logging.getLogger(__name__)

# The settings' defaults, chosen from bench/facedb_scale_bench.py: flat search's p99 passes a few ms at about 50k
# faces; visiting a fifth of the lists keeps recall@1 >= 0.99 on genuine probes from 10k to 1M faces.
DEFAULT_ANN_MIN_FACES: int = Settings.model_fields["facedb_ann_min_faces"].default
DEFAULT_PROBE_FRACTION: float = Settings.model_fields["facedb_ann_probe_fraction"].default
DEFAULT_SEARCH_THREADS: int = Settings.model_fields["search_threads"].default
TRAIN_PER_LIST = 20  # k-means sample per list: FAISS suggests 39, but training time is the start's cost, not recall
ADD_CHUNK = 65_536  # vectors put into a new index per step, to bound the temporaries


def _as_ids(ids: Iterable[int] | np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids, dtype=np.int64))


class ReadWriteLock:
    """Many readers at once, or one writer. A waiting writer holds new readers back, so writes are not starved by a
    stream of searches. Not reentrant."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._condition:
            while self._writing or self._writers_waiting:
                self._condition.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                if not self._readers:
                    self._condition.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._condition:
            self._writers_waiting += 1
            while self._writing or self._readers:
                self._condition.wait()
            self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


@dataclass(frozen=True)
class IndexKinds:
    """Which FAISS index a collection of a given size gets, and how it is searched."""

    ann_min_faces: int = DEFAULT_ANN_MIN_FACES
    probe_fraction: float = DEFAULT_PROBE_FRACTION
    threads: int = DEFAULT_SEARCH_THREADS

    @classmethod
    def of(cls, settings: Settings) -> IndexKinds:
        return cls(settings.facedb_ann_min_faces, settings.facedb_ann_probe_fraction, settings.search_threads)

    def use_threads(self) -> None:
        """FAISS's thread count (OpenMP's) belongs to the calling thread: set it on every thread that searches or
        builds, since gRPC's workers and the build thread would otherwise use every core each."""
        faiss.omp_set_num_threads(self.threads)

    @staticmethod
    def nlist(size: int) -> int:
        """IVF lists for this many faces: about 4 sqrt(N), the usual balance of list scans against centroid scans
        (and never more lists than faces to train them on)."""
        return max(1, min(size, round(4 * math.sqrt(size))))

    def nprobe(self, nlist: int) -> int:
        """Lists a search visits: a share of them, as recall at a given share barely changes with the size."""
        return max(1, min(nlist, math.ceil(self.probe_fraction * nlist)))

    def wanted(self, size: int, current: faiss.Index | None) -> int:
        """The IVF list count the index should have at this size (0: flat), or the current one while it is good
        enough. Hysteresis keeps a collection that hovers around a boundary from being rebuilt over and over: IVF
        goes back to flat below half the threshold, and is retrained once the size has moved 4x past its lists."""
        lists = int(current.nlist) if isinstance(current, faiss.IndexIVF) else 0
        if lists:
            keep = size >= self.ann_min_faces // 2 and self.nlist(size) / 2 <= lists <= 2 * self.nlist(size)
            return lists if keep else (self.nlist(size) if size >= self.ann_min_faces else 0)
        return self.nlist(size) if size >= self.ann_min_faces else 0


def _new_flat(dimension: int) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))


def _new_ivf(vectors: np.ndarray, nlist: int, nprobe: int) -> faiss.IndexIVFFlat:
    """An IVF index trained on a sample of these (normalised) vectors, empty."""
    dimension = vectors.shape[1]
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.min_points_per_centroid = 1  # a small sample is a choice here, not a mistake to warn about
    sample = min(vectors.shape[0], TRAIN_PER_LIST * nlist)
    rows = np.random.default_rng(0).choice(vectors.shape[0], size=sample, replace=False) if sample else []
    index.train(np.ascontiguousarray(vectors[np.sort(rows)]))
    # A hash table from face id to list position: reconstruct() (vectors()) by id, and remove_ids() without a scan.
    index.set_direct_map_type(faiss.DirectMap.Hashtable)  # type: ignore[attr-defined]  # not in faiss's stubs
    index.nprobe = nprobe
    return index


def _remove(index: faiss.Index, ids: np.ndarray) -> int:
    # IVF's hash table direct map removes an explicit list of ids; the flat IDMap2 takes any selector.
    selector = faiss.IDSelectorArray(ids.size, faiss.swig_ptr(ids)) if isinstance(index, faiss.IndexIVF) else None
    return int(index.remove_ids(selector or faiss.IDSelectorBatch(ids)))


def _fill(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    for start in range(0, ids.size, ADD_CHUNK):
        index.add_with_ids(vectors[start : start + ADD_CHUNK], ids[start : start + ADD_CHUNK])


def _upsert(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray) -> None:
    """Adds, replacing any of these ids already present (FAISS itself would keep both)."""
    _remove(index, ids)
    _fill(index, ids, vectors)


def index_ids(index: faiss.Index) -> np.ndarray:
    """Every face id an index (flat IDMap2 or IVF) holds."""
    if isinstance(index, faiss.IndexIDMap2):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    if lists is None:
        return np.empty(0, dtype=np.int64)
    sizes = [(i, lists.list_size(i)) for i in range(ivf.nlist)]
    parts = [faiss.rev_swig_ptr(lists.get_ids(i), size).copy() for i, size in sizes if size]
    return np.concatenate([np.empty(0, dtype=np.int64), *parts]).astype(np.int64)


@dataclass
class _Build:
    """A background rebuild in progress: the changes made since it copied the content, replayed before the swap."""

    generation: int
    changes: list[tuple[np.ndarray, np.ndarray | None]]  # (ids, vectors) an add, (ids, None) a remove
    thread: threading.Thread | None = None


class FaceIndex:
    """One collection's cosine-similarity index. Searches (and serialisation) run concurrently; changes are
    exclusive (FAISS writes are not thread-safe, and a search must never see an index half-way through a change)."""

    def __init__(
        self, dimension: int | None = None, profile: str | None = None, kinds: IndexKinds | None = None
    ) -> None:
        self.profile = profile  # the embedding profile of its vectors; None for an index made empty on first use
        self.kinds = kinds or IndexKinds()
        self._lock = ReadWriteLock()
        self._dimension = dimension
        self._index: faiss.Index | None = None if dimension is None else _new_flat(dimension)
        self._ids: set[int] = set()  # to make add() an upsert, and `in` cheap, without asking FAISS
        self._generation = 0  # bumped by rebuild(): a background build of older content is thrown away
        self._build: _Build | None = None

    @classmethod
    def restore(cls, index: faiss.Index, profile: str, kinds: IndexKinds | None = None) -> FaceIndex:
        """A FaceIndex around a FAISS index read back from a snapshot (see `faiss_index`)."""
        restored = cls(int(index.d), profile, kinds)
        if isinstance(index, faiss.IndexIVF):
            index.nprobe = restored.kinds.nprobe(int(index.nlist))
        elif not isinstance(index, faiss.IndexIDMap2):
            raise InvalidInput(f"not an index a FaceIndex makes: {type(index).__name__}")
        with restored._lock.writing():
            restored._index = index
            restored._ids = set(index_ids(index).tolist())
            restored._schedule()
        return restored

    @property
    def dimension(self) -> int | None:
        """Set by the constructor or by the first vectors added; None while unknown."""
        return self._dimension

    @property
    def size(self) -> int:
        with self._lock.reading():
            return len(self._ids)

    @property
    def kind(self) -> str:
        """ "flat" or "ivf<lists>", for logs and benches."""
        with self._lock.reading():
            return f"ivf{self._index.nlist}" if isinstance(self._index, faiss.IndexIVF) else "flat"

    def __len__(self) -> int:
        return self.size

    def __contains__(self, face_id: object) -> bool:
        with self._lock.reading():
            return face_id in self._ids

    @contextmanager
    def faiss_index(self) -> Iterator[faiss.Index | None]:
        """The FAISS index, held unchanged while the block runs (searches go on, changes wait): to serialise it."""
        with self._lock.reading():
            yield self._index

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
        """Replaces the whole content. Builds the new index aside, so searches keep running on the old one. The new
        index is flat, ready at once; a large one is then made approximate in the background."""
        id_array = _as_ids(ids)
        if id_array.shape[0] == 0:
            prepared, index = None, None
        else:
            prepared = self._prepare(vectors, None)
            id_array = self._checked_ids(id_array, prepared.shape[0])
            index = _new_flat(prepared.shape[1])
            _fill(index, id_array, prepared)
        with self._lock.writing():
            if prepared is not None:
                self._dimension = prepared.shape[1]
            self._index = index if index is not None or self._dimension is None else _new_flat(self._dimension)
            self._ids = set(id_array.tolist())
            self._generation += 1
            self._schedule()

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Adds faces; an id already present is replaced, so replaying an add is harmless."""
        with self._lock.writing():
            prepared = self._prepare(vectors, self._dimension)
            id_array = self._checked_ids(ids, prepared.shape[0])
            if prepared.shape[0] == 0:
                return
            if self._index is None:
                self._dimension = prepared.shape[1]
                self._index = _new_flat(self._dimension)
            present = np.asarray([face_id for face_id in id_array.tolist() if face_id in self._ids], dtype=np.int64)
            if present.size:
                _remove(self._index, present)
            self._index.add_with_ids(prepared, id_array)
            self._ids.update(id_array.tolist())
            if self._build is not None:
                self._build.changes.append((id_array, prepared))
            self._schedule()

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Removes faces by id; ids not in the index are ignored. Returns how many were removed."""
        with self._lock.writing():
            present = np.asarray([face_id for face_id in _as_ids(ids).tolist() if face_id in self._ids], np.int64)
            if not present.size or self._index is None:
                return 0
            removed = _remove(self._index, present)
            self._ids.difference_update(present.tolist())
            if self._build is not None:
                self._build.changes.append((present, None))
            self._schedule()
            return removed

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of these faces, in order; the ids must be in the index."""
        id_array = _as_ids(ids)
        with self._lock.reading():
            if self._index is None:
                raise KeyError("the index is empty")
            missing = [face_id for face_id in id_array.tolist() if face_id not in self._ids]
            if missing:
                raise KeyError(f"faces {missing} are not in the index")
            return np.asarray(self._index.reconstruct_batch(id_array))

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar faces of each query, best first: (similarities (M, k') float32, ids (M, k') int64).

        k' = min(k, size): asking for more than the index holds is not an error, and an empty index answers
        (M, 0) arrays. A flat index fills every slot; an approximate one may not, and its holes rank last.
        """
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
        self.kinds.use_threads()
        with self._lock.reading():
            queries = self._prepare(vectors, self._dimension)
            n = queries.shape[0]
            if self._index is None or not self._ids or n == 0:
                return np.empty((n, 0), dtype=np.float32), np.empty((n, 0), dtype=np.int64)
            similarities, ids = self._index.search(queries, min(k, len(self._ids)))
        # Drop trailing columns that are empty in every row, and let any other hole rank last.
        filled = (ids >= 0).any(axis=0)
        keep = int(filled.nonzero()[0].max()) + 1 if filled.any() else 0
        similarities, ids = similarities[:, :keep], ids[:, :keep]
        similarities[ids < 0] = -np.inf
        return similarities, ids

    # --- the kind follows the size ----------------------------------------------------------------------------

    def _current_lists(self) -> int:
        return int(self._index.nlist) if isinstance(self._index, faiss.IndexIVF) else 0

    def _schedule(self) -> None:
        """Under the write lock: starts a background rebuild when the index's kind no longer suits its size."""
        if self._build is not None or self._index is None:
            return
        if self.kinds.wanted(len(self._ids), self._index) == self._current_lists():
            return
        build = self._build = _Build(self._generation, [])
        build.thread = threading.Thread(target=self._rebuild_kind, args=(build,), name="index-build", daemon=True)
        build.thread.start()

    def _rebuild_kind(self, build: _Build) -> None:
        """The background build: copy the content, build the wanted kind aside, replay what changed, swap."""
        self.kinds.use_threads()
        try:
            with self._lock.reading():  # no change can land while the content is copied
                generation = self._generation
                ids = np.fromiter(self._ids, dtype=np.int64, count=len(self._ids))
                vectors = self._index.reconstruct_batch(ids) if ids.size and self._index is not None else None
                lists = self.kinds.wanted(ids.size, self._index)
                build.changes.clear()
            index: faiss.Index | None = None
            if vectors is not None:
                index = _new_ivf(vectors, lists, self.kinds.nprobe(lists)) if lists else _new_flat(vectors.shape[1])
                _fill(index, ids, vectors)
            del vectors
        except Exception:
            log.exception("building the index aside failed; the current one stays")
            with self._lock.writing():
                self._build = None
            return
        with self._lock.writing():
            if index is not None and generation == self._generation:
                for changed, added in build.changes:
                    if added is None:
                        _remove(index, changed)
                    else:
                        _upsert(index, changed, added)
                self._index = index
                log.info("index of %d faces is now %s", len(self._ids), f"IVF, {lists} lists" if lists else "flat")
            self._build = None
            self._schedule()  # it may have grown past the new kind while it was built

    def settle(self, timeout_s: float | None = None) -> bool:
        """Waits until no background build is running (tests, benches, before a snapshot); True when none is."""
        with self._lock.reading():
            build = self._build
        while build is not None and build.thread is not None:
            build.thread.join(timeout_s)
            if build.thread.is_alive():
                return False
            with self._lock.reading():
                build = self._build
        return True


# (profile, stored vectors) -> the vectors the index holds: the face database fuses each model's vectors here.
VectorTransform = Callable[[str, np.ndarray], np.ndarray]


def _as_stored(profile: str, vectors: np.ndarray) -> np.ndarray:
    return vectors


class IndexRegistry:
    """A FaceIndex per collection name. The store is the truth; this is rebuilt from it at start."""

    def __init__(self, transform: VectorTransform = _as_stored, kinds: IndexKinds | None = None) -> None:
        self.transform = transform
        self.kinds = kinds or IndexKinds()
        self._lock = threading.Lock()
        self._indexes: dict[str, FaceIndex] = {}

    def build(self, profile: str, ids: np.ndarray, stored: np.ndarray) -> FaceIndex:
        """A new index of these stored vectors, not yet installed."""
        index = FaceIndex(profile=profile, kinds=self.kinds)
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
                index = self._indexes[name] = FaceIndex(kinds=self.kinds)
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
