"""In-memory indexes for 1:K search, one per collection.

The database (storage.FaceStore) is the source of truth; an index is a derived cache of the collection's
embeddings keyed by face id. It is rebuilt from the database (or loaded from a snapshot, snapshots.py) at start and
then kept in step with the database's changes by the follower (replication.py), its one writer. Losing it loses
nothing.

Vectors are L2-normalised before they go in or are searched, so the inner product ranked by is the cosine
similarity the thresholds are calibrated on.

Every index keeps the exact vectors (vector_store.py); a search's similarities are always computed on them. Below
ARGUS_FACEDB_ANN_MIN_FACES that is the whole search (brute force: no training, no recall loss). Above it an
approximate FAISS index proposes the candidates: IVF (about 4 sqrt(N) k-means lists, the share
ARGUS_FACEDB_ANN_PROBE_FRACTION of them visited) over 4-bit product-quantised codes scanned with SIMD (fast scan,
16 bytes per face at d=256), the best RESCORED of which are scored exactly. Visiting many lists of small codes is
what buys recall at a low latency: uniform vectors (no clusters, the worst case) needed a fifth of the lists for
recall@1 0.99 at 1M faces, which over full vectors read 200 MB per search. A removal leaves its entry in the
approximate index (the exact scoring drops it); the index is rebuilt once a quarter of it is stale.
The approximate index is built by a background thread, trained and filled aside while searches keep running, with
the changes made meanwhile replayed before the swap. bench/facedb_scale_bench.py measures both kinds (latency,
recall against exact, memory, build time).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput
from argus.services.facedb.vector_store import VectorStore

log = logging.getLogger(__name__)

# The settings' defaults, chosen from bench/facedb_scale_bench.py: exact search's p99 passes a few ms past about 50k
# faces; visiting a fifth of the lists keeps recall@1 >= 0.99 on genuine probes from 50k to 1M faces.
DEFAULT_ANN_MIN_FACES: int = Settings.model_fields["facedb_ann_min_faces"].default
DEFAULT_PROBE_FRACTION: float = Settings.model_fields["facedb_ann_probe_fraction"].default
DEFAULT_SEARCH_THREADS: int = Settings.model_fields["search_threads"].default
TRAIN_PER_LIST = 20  # k-means sample per list: FAISS suggests 39, but training time is the build's cost, not recall
PQ_DIMS = 8  # dimensions per 4-bit product-quantiser code of the approximate index
RESCORED = 200  # candidates of the approximate index scored exactly per query (at least the k asked for)
STALE_SHARE = 0.25  # rebuild the approximate index once this share of its entries is removed or replaced faces


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

    def wanted(self, size: int, lists: int) -> int:
        """The IVF list count the index should have at this size (0: exact only), or the current `lists` while it
        is good enough. Hysteresis keeps a collection that hovers around a boundary from being rebuilt over and over:
        it goes back to exact below half the threshold, and is retrained once the size has moved 4x past its lists."""
        if lists:
            keep = size >= self.ann_min_faces // 2 and self.nlist(size) / 2 <= lists <= 2 * self.nlist(size)
            return lists if keep else (self.nlist(size) if size >= self.ann_min_faces else 0)
        return self.nlist(size) if size >= self.ann_min_faces else 0


def _subquantizers(dimension: int) -> int:
    """Product-quantiser parts of the approximate index: one 4-bit code per PQ_DIMS dimensions (16 bytes per face
    at d=256), or the largest count below that which divides the dimension."""
    return next(m for m in range(max(1, dimension // PQ_DIMS), 0, -1) if dimension % m == 0)


def _new_accelerator(sample: np.ndarray, nlist: int, nprobe: int) -> faiss.IndexIVFPQFastScan:
    """An approximate index trained on these (normalised) vectors, empty: IVF lists of 4-bit product-quantised
    codes scanned with SIMD (FAISS's fast scan). Its scores are rough; it only proposes candidates."""
    dimension = sample.shape[1]
    index = faiss.IndexIVFPQFastScan(
        faiss.IndexFlatIP(dimension), dimension, nlist, _subquantizers(dimension), 4, faiss.METRIC_INNER_PRODUCT
    )
    index.cp.min_points_per_centroid = 1  # a small sample is a choice here, not a mistake to warn about
    index.pq.cp.min_points_per_centroid = 1
    index.train(np.ascontiguousarray(sample))
    index.nprobe = nprobe
    return index


def _lists(index: faiss.Index | None) -> int:
    return int(index.nlist) if isinstance(index, faiss.IndexIVF) else 0


@dataclass
class _Build:
    """A background build in progress: the changes made since it started, replayed before the swap."""

    generation: int
    changes: list[tuple[np.ndarray, np.ndarray | None]]  # (ids, vectors) an add, (ids, None) a remove
    thread: threading.Thread | None = None


class FaceIndex:
    """One collection's cosine-similarity index: the exact vectors (VectorStore), and above a size an approximate
    index over them that proposes candidates. Searches (and serialisation) run concurrently; changes are exclusive
    (FAISS writes are not thread-safe, and a search must never see an index half-way through a change)."""

    def __init__(
        self, dimension: int | None = None, profile: str | None = None, kinds: IndexKinds | None = None
    ) -> None:
        self.profile = profile  # the embedding profile of its vectors; None for an index made empty on first use
        self.kinds = kinds or IndexKinds()
        self._lock = ReadWriteLock()
        self._store: VectorStore | None = None if dimension is None else VectorStore(dimension)
        self._accelerator: faiss.IndexIVFPQFastScan | None = None
        self._generation = 0  # bumped by rebuild(): a background build of older content is thrown away
        self._build: _Build | None = None

    @classmethod
    def restore(
        cls, store: VectorStore, accelerator: faiss.Index | None, profile: str, kinds: IndexKinds | None = None
    ) -> FaceIndex:
        """A FaceIndex around parts read back from a snapshot (see `held`)."""
        if accelerator is not None and not (
            isinstance(accelerator, faiss.IndexIVFPQFastScan) and int(accelerator.d) == store.dimension
        ):
            raise InvalidInput(f"not an approximate index a FaceIndex makes: {type(accelerator).__name__}")
        restored = cls(store.dimension, profile, kinds)
        with restored._lock.writing():
            restored._store = store
            if accelerator is not None:
                accelerator.nprobe = restored.kinds.nprobe(int(accelerator.nlist))
                restored._accelerator = accelerator
            restored._schedule()
        return restored

    @property
    def dimension(self) -> int | None:
        """Set by the constructor or by the first vectors added; None while unknown."""
        return None if self._store is None else self._store.dimension

    @property
    def size(self) -> int:
        with self._lock.reading():
            return 0 if self._store is None else len(self._store)

    @property
    def kind(self) -> str:
        """ "flat" or "ivf<lists>,pq<parts>x4", for logs and benches."""
        with self._lock.reading():
            return "flat" if self._accelerator is None else self.kind_of(self._accelerator)

    def __len__(self) -> int:
        return self.size

    def __contains__(self, face_id: object) -> bool:
        with self._lock.reading():
            return self._store is not None and face_id in self._store

    @contextmanager
    def held(self) -> Iterator[tuple[VectorStore | None, faiss.Index | None]]:
        """The exact store and the approximate index, unchanged while the block runs (searches go on, changes
        wait): to serialise them."""
        with self._lock.reading():
            yield self._store, self._accelerator

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
        """Replaces the whole content with these faces (see `rebuild_from`)."""
        self.rebuild_from([(_as_ids(ids), vectors)])

    def rebuild_from(self, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> None:
        """Replaces the whole content with faces given a chunk at a time, so that a large collection is never held
        twice. The new content is built aside (searches keep running on the old one) and is exact, ready at once;
        a large one then gets its approximate index in the background."""
        store: VectorStore | None = None
        for ids, vectors in chunks:
            prepared = self._prepare(vectors, None if store is None else store.dimension)
            checked = self._checked_ids(ids, prepared.shape[0])
            if prepared.shape[0] == 0:
                continue
            store = store or VectorStore(prepared.shape[1])
            if store.present(checked).any():
                raise InvalidInput("face ids must be unique")
            store.put(checked, prepared)
        with self._lock.writing():
            if store is None and self._store is not None:
                store = VectorStore(self._store.dimension)
            self._store, self._accelerator = store, None
            self._generation += 1
            self._schedule()

    def add(self, ids: Iterable[int] | np.ndarray, vectors: np.ndarray) -> None:
        """Adds faces; an id already present is replaced, so replaying an add is harmless."""
        with self._lock.writing():
            prepared = self._prepare(vectors, self.dimension)
            id_array = self._checked_ids(ids, prepared.shape[0])
            if prepared.shape[0] == 0:
                return
            if self._store is None:
                self._store = VectorStore(prepared.shape[1])
            self._store.put(id_array, prepared)
            if self._accelerator is not None:
                self._accelerator.add_with_ids(prepared, id_array)  # a replaced face's old entry goes stale
            if self._build is not None:
                self._build.changes.append((id_array, prepared))
            self._schedule()

    def remove(self, ids: Iterable[int] | np.ndarray) -> int:
        """Removes faces by id; ids not in the index are ignored. Returns how many were removed."""
        with self._lock.writing():
            if self._store is None:
                return 0
            id_array = _as_ids(ids)
            removed = self._store.remove(id_array.tolist())
            if removed:  # their entries stay in the approximate index, stale: the exact scoring drops them
                if self._build is not None:
                    self._build.changes.append((id_array, None))
                self._schedule()
            return removed

    def vectors(self, ids: Iterable[int] | np.ndarray) -> np.ndarray:
        """The stored (normalised) vectors of these faces, in order; the ids must be in the index."""
        id_array = _as_ids(ids)
        with self._lock.reading():
            if self._store is None:
                raise KeyError("the index is empty")
            missing = id_array[~self._store.present(id_array)]
            if missing.size:
                raise KeyError(f"faces {missing.tolist()} are not in the index")
            return self._store.get(id_array)

    def search(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k most similar faces of each query, best first: (similarities (M, k') float32, ids (M, k') int64).

        k' = min(k, size): asking for more than the index holds is not an error, and an empty index answers
        (M, 0) arrays. Similarities are always exact. An exact search fills every slot; an approximate one may
        not, and its holes rank last (similarity -inf, id -1).
        """
        if k < 1:
            raise InvalidInput(f"k must be at least 1, got {k}")
        self.kinds.use_threads()
        with self._lock.reading():
            queries = self._prepare(vectors, self.dimension)
            n = queries.shape[0]
            store = self._store
            if store is None or not len(store) or n == 0:
                return np.empty((n, 0), dtype=np.float32), np.empty((n, 0), dtype=np.int64)
            k = min(k, len(store))
            if self._accelerator is None:
                return store.search(queries, k)
            # Deeper by the share of its entries that are stale (removed, replaced, or replayed twice by a build).
            entries = int(self._accelerator.ntotal)
            depth = min(entries, math.ceil(max(k, RESCORED) * entries / len(store)))
            _, candidates = self._accelerator.search(queries, depth)
            similarities = np.full((n, k), -np.inf, dtype=np.float32)
            ids = np.full((n, k), -1, dtype=np.int64)
            for row, (query, proposed) in enumerate(zip(queries, candidates, strict=True)):
                scores, found = store.rescore(query, proposed, k)
                similarities[row, : found.size], ids[row, : found.size] = scores, found
        filled = (ids >= 0).any(axis=0)  # drop trailing columns that are empty in every row
        keep = int(np.flatnonzero(filled).max()) + 1 if filled.any() else 0
        return similarities[:, :keep], ids[:, :keep]

    def _stale_entries(self) -> int:
        """Entries of the approximate index no face owns any more: every face has one current entry, so the rest
        are removed faces, replaced vectors and twins a build replayed."""
        if self._accelerator is None or self._store is None:
            return 0
        return int(self._accelerator.ntotal) - len(self._store)

    @staticmethod
    def kind_of(index: faiss.IndexIVFPQFastScan) -> str:
        return f"ivf{index.nlist},pq{index.pq.M}x4"

    # --- the kind follows the size ----------------------------------------------------------------------------

    def _schedule(self) -> None:
        """Under the write lock: drops the approximate index below its size, and starts building one in the
        background when the size calls for a new one or too much of the current one went stale."""
        if self._build is not None or self._store is None:
            return
        size, lists = len(self._store), _lists(self._accelerator)
        wanted = self.kinds.wanted(size, lists)
        if wanted == 0:
            self._accelerator = None  # exact again: nothing to build
            return
        if wanted == lists and self._stale_entries() <= STALE_SHARE * size:
            return
        build = self._build = _Build(self._generation, [])
        build.thread = threading.Thread(target=self._build_aside, args=(build,), name="index-build", daemon=True)
        build.thread.start()

    def _build_aside(self, build: _Build) -> None:
        """The background build: train on a sample, fill with the store's content a block at a time (changes wait
        only while a block is copied), replay what changed meanwhile, swap."""
        self.kinds.use_threads()
        try:
            with self._lock.reading():
                store = self._store
                assert store is not None, "scheduled for a store"
                lists = self.kinds.wanted(len(store), _lists(self._accelerator))
                sample = store.sample(TRAIN_PER_LIST * lists, np.random.default_rng(0))
                blocks = store.chunk_count()
                build.changes.clear()
            index = _new_accelerator(sample, lists, self.kinds.nprobe(lists))
            del sample
            for number in range(blocks):
                with self._lock.reading():
                    if build.generation != self._generation:
                        break
                    ids, vectors = store.chunk(number)
                if ids.size:
                    index.add_with_ids(vectors, ids)
        except Exception:
            log.exception("building the approximate index aside failed; the current one stays")
            with self._lock.writing():
                self._build = None
            return
        with self._lock.writing():
            if build.generation == self._generation:
                for changed, added in build.changes:  # an add copied in already leaves a stale twin: harmless
                    if added is not None:
                        index.add_with_ids(added, changed)
                self._accelerator = index
                log.info("index of %d faces is now approximate (%s)", len(store), self.kind_of(index))
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
    """A FaceIndex per collection name. The store is the truth; the follower builds these from it."""

    def __init__(self, transform: VectorTransform = _as_stored, kinds: IndexKinds | None = None) -> None:
        self.transform = transform
        self.kinds = kinds or IndexKinds()
        self._lock = threading.Lock()
        self._indexes: dict[str, FaceIndex] = {}

    def build(self, profile: str, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> FaceIndex:
        """A new index of these (ids, stored vectors) chunks, not yet installed."""
        index = FaceIndex(profile=profile, kinds=self.kinds)
        index.rebuild_from((ids, self.transform(profile, stored)) for ids, stored in chunks if len(ids))
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
