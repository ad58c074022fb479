"""The exact vectors of one collection's faces, by face id: what every search answer is scored on.

Rows live in fixed-size blocks, so the store grows without ever copying what it holds, and a face is added, replaced
or removed in O(1) (a removed face's row is zeroed, so its vector is gone from memory, and reused). Small
collections are searched here directly (exact, brute force); large ones through an approximate index (index.py)
whose candidates are then scored here, so a similarity is always the exact one and a removed face can never be
returned, whatever the approximate index still holds.

Memory per face: 4 d bytes of vector, 8 of id, and about 100 of Python dict entry (id -> row).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import faiss
import numpy as np

BLOCK_ROWS = 1 << 16  # 64 MB per block at d=256: the unit of growth, of snapshot chunks and of background copies
NO_ROW = -1


class VectorStore:
    """Face id -> float32 vector of one dimension. Not thread-safe: FaceIndex holds its lock around every call."""

    def __init__(self, dimension: int) -> None:
        if dimension < 1:
            raise ValueError(f"a vector needs at least one dimension, got {dimension}")
        self.dimension = dimension
        self._blocks: list[np.ndarray] = []  # (BLOCK_ROWS, d) float32 each
        # (BLOCK_ROWS,) int64 each: 1 + the face id of every row, 0 for a free one (zeros take no memory until written)
        self._tags: list[np.ndarray] = []
        self._row_of: dict[int, int] = {}
        self._free: list[int] = []  # rows freed by removals, reused first
        self._end = 0  # rows ever handed out: every row at or past it is unused

    @classmethod
    def of(cls, dimension: int, chunks: Iterable[tuple[np.ndarray, np.ndarray]]) -> VectorStore:
        """A store filled from (ids, vectors) chunks, a chunk at a time (a large collection is never held twice)."""
        store = cls(dimension)
        for ids, vectors in chunks:
            store.put(ids, vectors)
        return store

    def __len__(self) -> int:
        return len(self._row_of)

    def __contains__(self, face_id: object) -> bool:
        return face_id in self._row_of

    def _new_rows(self, count: int) -> np.ndarray:
        reused = [self._free.pop() for _ in range(min(count, len(self._free)))]
        fresh = np.arange(self._end, self._end + count - len(reused), dtype=np.int64)
        self._end += fresh.size
        while len(self._blocks) * BLOCK_ROWS < self._end:
            self._blocks.append(np.zeros((BLOCK_ROWS, self.dimension), dtype=np.float32))
            self._tags.append(np.zeros(BLOCK_ROWS, dtype=np.int64))
        return np.concatenate([np.asarray(reused, dtype=np.int64), fresh])

    def _rows(self, ids: np.ndarray) -> np.ndarray:
        return np.fromiter((self._row_of[face_id] for face_id in ids.tolist()), dtype=np.int64, count=ids.size)

    def put(self, ids: np.ndarray, vectors: np.ndarray) -> int:
        """Adds these faces (unique ids, (N, d) vectors), replacing those already present; returns how many were."""
        rows = np.fromiter((self._row_of.get(face_id, NO_ROW) for face_id in ids.tolist()), np.int64, count=ids.size)
        new = rows == NO_ROW
        rows[new] = self._new_rows(int(new.sum()))
        self._row_of.update(zip(ids[new].tolist(), rows[new].tolist(), strict=True))
        if ids.size and new.all() and rows[-1] - rows[0] == ids.size - 1 and (np.diff(rows) == 1).all():
            self._write_run(int(rows[0]), ids, vectors)  # the bulk case: a run of fresh rows, copied by slices
            return 0
        blocks, offsets = np.divmod(rows, BLOCK_ROWS)
        for block in np.unique(blocks).tolist():
            here = blocks == block
            self._blocks[block][offsets[here]] = vectors[here]
            self._tags[block][offsets[here]] = ids[here] + 1
        return int(ids.size - new.sum())

    def _write_run(self, row: int, ids: np.ndarray, vectors: np.ndarray) -> None:
        done = 0
        while done < ids.size:
            block, offset = divmod(row + done, BLOCK_ROWS)
            count = min(ids.size - done, BLOCK_ROWS - offset)
            self._blocks[block][offset : offset + count] = vectors[done : done + count]
            self._tags[block][offset : offset + count] = ids[done : done + count] + 1
            done += count

    def remove(self, ids: Iterable[int]) -> int:
        """Removes the faces present among these ids, zeroing their rows; returns how many there were."""
        rows = [row for row in (self._row_of.pop(face_id, None) for face_id in ids) if row is not None]
        for row in rows:
            block, offset = divmod(row, BLOCK_ROWS)
            self._blocks[block][offset] = 0.0
            self._tags[block][offset] = 0
        self._free.extend(rows)
        return len(rows)

    def get(self, ids: np.ndarray) -> np.ndarray:
        """The vectors of these faces, in order (KeyError for an id not present)."""
        blocks, offsets = np.divmod(self._rows(ids), BLOCK_ROWS)
        found = np.empty((ids.size, self.dimension), dtype=np.float32)
        for block in np.unique(blocks).tolist():
            here = blocks == block
            found[here] = self._blocks[block][offsets[here]]
        return found

    def present(self, ids: np.ndarray) -> np.ndarray:
        """A boolean mask: which of these ids the store holds."""
        return np.fromiter((face_id in self._row_of for face_id in ids.tolist()), dtype=bool, count=ids.size)

    def _used(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vectors, tags) views of every block's handed-out rows, free ones included."""
        for number, (block, tags) in enumerate(zip(self._blocks, self._tags, strict=True)):
            used = min(BLOCK_ROWS, self._end - number * BLOCK_ROWS)
            if used > 0:
                yield block[:used], tags[:used]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Exact top-k by inner product: (similarities (M, k'), ids (M, k')), k' = min(k, len), best first."""
        k = min(k, len(self))
        best_scores, best_ids = [], []
        for vectors, tags in self._used():
            live = int(np.count_nonzero(tags))
            if not live:
                continue
            # FAISS's brute force (SIMD, about twice numpy's matrix product here), deep enough to pass the free rows.
            scores, rows = faiss.knn(queries, vectors, min(tags.size, k + tags.size - live), faiss.METRIC_INNER_PRODUCT)
            ids = tags[rows] - 1
            scores[ids < 0] = -np.inf
            best_scores.append(scores)
            best_ids.append(ids)
        if not best_scores:
            return np.empty((queries.shape[0], 0), np.float32), np.empty((queries.shape[0], 0), np.int64)
        scores, ids = np.concatenate(best_scores, axis=1), np.concatenate(best_ids, axis=1)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return np.take_along_axis(scores, order, axis=1), np.take_along_axis(ids, order, axis=1)

    def rescore(self, query: np.ndarray, candidates: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k best of these candidate ids for one query, by exact similarity: those not present (removed) and
        repeats are dropped. (similarities (k',), ids (k',)), best first."""
        unique = np.unique(candidates[candidates >= 0])
        live = unique[self.present(unique)]
        scores = self.get(live) @ query
        order = np.argsort(-scores, kind="stable")[:k]
        return scores[order], live[order]

    def chunk_count(self) -> int:
        return len(self._blocks)

    def chunk(self, number: int) -> tuple[np.ndarray, np.ndarray]:
        """One block's faces, copied (ids, vectors): a background build copies a block at a time under the lock."""
        block, tags = self._blocks[number], self._tags[number]
        live = tags != 0
        return tags[live] - 1, block[live]

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Every face, (ids, vectors) copies a block at a time: for snapshots and for building a store aside."""
        for number in range(self.chunk_count()):
            ids, vectors = self.chunk(number)
            if ids.size:
                yield ids, vectors

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Up to `count` vectors of distinct faces picked at random, copied: what an approximate index trains on."""
        ids = self.ids()
        if count < ids.size:
            ids = np.sort(rng.choice(ids, size=count, replace=False))
        return self.get(ids)

    def ids(self) -> np.ndarray:
        return np.fromiter(self._row_of, dtype=np.int64, count=len(self._row_of))
