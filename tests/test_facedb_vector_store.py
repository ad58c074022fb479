"""The exact vector store under every index: rows by id, reused after removal, exact search and rescoring."""

from __future__ import annotations

import numpy as np
import pytest

from argus.services.facedb import vector_store
from argus.services.facedb.vector_store import VectorStore

E1, E2, E3 = np.eye(3, dtype=np.float32)


def test_put_replace_remove_and_reuse_a_row() -> None:
    store = VectorStore(3)
    assert store.put(np.array([10, 20]), np.stack([E1, E2])) == 0
    assert len(store) == 2 and 10 in store and 30 not in store
    assert store.put(np.array([20, 30]), np.stack([E3, E1])) == 1  # 20 replaced, 30 new
    np.testing.assert_array_equal(store.get(np.array([20, 10, 30])), np.stack([E3, E1, E1]))
    assert store.remove([10, 99]) == 1 and 10 not in store
    store.put(np.array([40]), E2[None])  # takes the row 10 freed: nothing grows
    assert store._end == 3 and store.get(np.array([40]))[0].tolist() == [0, 1, 0]
    with pytest.raises(KeyError):
        store.get(np.array([10]))
    np.testing.assert_array_equal(store.present(np.array([10, 20, 30, 40])), [False, True, True, True])
    assert sorted(store.ids().tolist()) == [20, 30, 40]


def test_a_removed_vector_is_zeroed_and_never_found() -> None:
    store = VectorStore(3)
    store.put(np.array([1, 2, 3]), np.stack([E1, E2, E3]))
    store.remove([2])
    assert not store._blocks[0][1].any()  # gone from memory, not only unlisted
    query = (0.6 * E1 + 0.8 * E2)[None]  # nearest to the removed face
    scores, ids = store.search(query, 3)
    assert ids.tolist() == [[1, 3]]  # k' = min(k, 2 faces left)
    np.testing.assert_allclose(scores, [[0.6, 0.0]], atol=1e-6)
    scores, ids = store.rescore(E1, np.array([2, 1, 1, -1, 3]), 5)  # removed, repeated and empty ids dropped
    assert ids.tolist() == [1, 3] and scores.tolist() == [1.0, 0.0]


def test_search_across_blocks_is_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(vector_store, "BLOCK_ROWS", 4)  # 10 faces over 3 blocks
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((10, 5)).astype(np.float32)
    store = VectorStore.of(5, [(np.arange(6), vectors[:6]), (np.arange(6, 10), vectors[6:])])
    assert store.chunk_count() == 3 and [ids.size for ids, _ in store.chunks()] == [4, 4, 2]
    queries = rng.standard_normal((2, 5)).astype(np.float32)
    scores, ids = store.search(queries, 4)
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :4]
    np.testing.assert_array_equal(ids, truth)
    np.testing.assert_allclose(scores, np.take_along_axis(queries @ vectors.T, truth, axis=1), rtol=1e-6)
    sample = store.sample(3, np.random.default_rng(1))
    assert sample.shape == (3, 5) and all(any(np.array_equal(row, v) for v in vectors) for row in sample)
