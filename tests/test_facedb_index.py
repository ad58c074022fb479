"""The index kind follows the collection's size, built aside without losing changes; snapshots round-trip and a
damaged one is refused. (The exact index's own behaviour is tested in test_facedb_storage.py.)"""

from __future__ import annotations

import logging
import os
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from argus.services.facedb import index as index_module
from argus.services.facedb.index import FaceIndex, IndexKinds, ReadWriteLock
from argus.services.facedb.snapshots import load_snapshots, path_of, save_snapshot

# Every list searched: the approximate index answers exactly, so results can be compared with the truth.
SMALL = IndexKinds(ann_min_faces=1000, probe_fraction=1.0)


def unit(rng: np.random.Generator, count: int, dimension: int = 32) -> np.ndarray:
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def ids_found(index: FaceIndex, query: np.ndarray) -> set[int]:
    return set(np.asarray(index.search(query, index.size)[1][0]).tolist())


def test_kinds_follow_the_size_with_hysteresis() -> None:
    kinds = IndexKinds(ann_min_faces=10_000, probe_fraction=0.2)
    assert kinds.wanted(9_999, None) == 0 and kinds.wanted(10_000, None) == kinds.nlist(10_000) == 400
    assert kinds.nprobe(400) == 80 and kinds.nprobe(3) == 1 and kinds.nlist(10) == 10
    assert kinds.wanted(20_000, 400) == 400  # within 2x of the 566 lists 20k faces would get: kept
    assert kinds.wanted(80_000, 400) == kinds.nlist(80_000) == 1131  # moved past it: retrained
    assert kinds.wanted(5_000, 400) == 400 and kinds.wanted(4_999, 400) == 0  # exact again below half the threshold


def test_a_large_index_turns_approximate_and_keeps_its_api() -> None:
    rng = np.random.default_rng(1)
    gallery = unit(rng, 1500)
    index = FaceIndex(kinds=SMALL)
    index.add(np.arange(1500) + 10, gallery)
    assert index.settle(60) and index.kind.startswith("ivf") and index.size == 1500
    similarities, found = index.search(gallery[:50], 3)
    np.testing.assert_array_equal(found[:, 0], np.arange(50) + 10)  # every face finds itself first
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=1e-5)
    np.testing.assert_allclose(index.vectors([12, 10]), gallery[[2, 0]], atol=1e-6)
    assert index.remove([10, 99_999]) == 1 and 10 not in index and 10 not in ids_found(index, gallery[0])
    index.add([11], gallery[1:2])  # replaying an add replaces, never duplicates
    assert index.size == 1499 and 11 in index
    with pytest.raises(KeyError):
        index.vectors([10])
    index.remove(np.arange(1001) + 10)  # below half the threshold: exact again
    assert index.settle(60) and index.kind == "flat" and index.size == 499
    assert ids_found(index, gallery[0]) == set(range(1011, 1510))


def test_removed_faces_leave_stale_entries_until_a_rebuild_clears_them() -> None:
    rng = np.random.default_rng(7)
    gallery = unit(rng, 2400)
    index = FaceIndex(kinds=SMALL)
    index.rebuild(np.arange(2400), gallery)
    assert index.settle(60) and index.kind.startswith("ivf")
    with index.held() as (_, approximate):
        assert approximate is not None and approximate.ntotal == 2400
    index.remove(np.arange(400))  # 400 stale entries for 2000 faces: under a quarter, kept
    assert index.settle(60)
    with index.held() as (_, approximate):
        assert approximate is not None and approximate.ntotal == 2400
    assert not set(range(400)) & ids_found(index, gallery[0])  # never found, though still in the FAISS index
    index.remove(np.arange(400, 600))  # 600 for 1800: past a quarter, rebuilt without them
    assert index.settle(60)
    with index.held() as (_, approximate):
        assert approximate is not None and approximate.ntotal == 1800
    assert ids_found(index, gallery[0]) == set(range(600, 2400))


def held_back_builds(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Makes every background build wait, once it has started (the first event), until released (the second)."""
    started, release = threading.Event(), threading.Event()
    build = index_module._new_accelerator

    def held_back(*args: object) -> object:
        started.set()
        release.wait(30)
        return build(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(index_module, "_new_accelerator", held_back)
    return started, release


def test_changes_during_a_background_build_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    gallery = unit(rng, 1300)
    started, release = held_back_builds(monkeypatch)
    index = FaceIndex(kinds=SMALL)
    index.add(np.arange(1200), gallery[:1200])
    assert started.wait(30)
    index.add(np.arange(1200, 1300), gallery[1200:])  # while the IVF index is trained aside
    index.remove(np.arange(100))
    index.add([150], gallery[150:151])
    assert index.kind == "flat" and ids_found(index, gallery[0]) == set(range(100, 1300))  # searches go on
    release.set()
    assert index.settle(60) and index.kind.startswith("ivf")
    assert index.size == 1200 and ids_found(index, gallery[0]) == set(range(100, 1300))
    np.testing.assert_allclose(index.vectors([1299]), gallery[1299:1300], atol=1e-6)


def test_a_rebuild_during_a_build_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    gallery = unit(rng, 1200)
    started, release = held_back_builds(monkeypatch)
    index = FaceIndex(kinds=SMALL)
    index.add(np.arange(1200), gallery)
    assert started.wait(30)
    index.rebuild(np.arange(5000, 6100), gallery[:1100])  # the build under way is of content now gone
    release.set()
    assert index.settle(60) and index.kind.startswith("ivf")
    assert ids_found(index, gallery[0]) == set(range(5000, 6100))


def test_searches_run_on_while_the_kind_changes_under_them() -> None:
    rng = np.random.default_rng(6)
    gallery = unit(rng, 1600)
    index = FaceIndex(kinds=SMALL)
    index.add(np.arange(900), gallery[:900])
    errors: list[BaseException] = []
    done = threading.Event()

    def reader() -> None:
        try:
            while not done.is_set():
                similarities, found = index.search(gallery[:4], 3)
                assert (found[:, 0] == np.arange(4)).all() and (similarities[:, 0] > 0.999).all()
        except BaseException as error:
            errors.append(error)

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    for i in range(900, 1600, 50):  # across the threshold: the IVF build starts, and changes land during it
        index.add(np.arange(i, i + 50), gallery[i : i + 50])
    assert index.settle(60)
    done.set()
    for thread in readers:
        thread.join()
    assert errors == [] and index.kind.startswith("ivf") and index.size == 1600


def test_searches_share_the_lock_and_writes_do_not() -> None:
    lock = ReadWriteLock()
    inside = threading.Event()
    order: list[str] = []

    def second_reader() -> None:
        with lock.reading():
            inside.set()

    def writer() -> None:
        with lock.writing():
            order.append("write")

    with lock.reading():
        reader = threading.Thread(target=second_reader)
        reader.start()
        assert inside.wait(10)  # a second reader got in while the first held the lock
        writing = threading.Thread(target=writer)
        writing.start()
        writing.join(0.2)
        assert writing.is_alive()  # the writer waits for the reader
        order.append("read done")
    writing.join(10)
    reader.join(10)
    assert order == ["read done", "write"]


# Snapshots.


@pytest.mark.parametrize("kinds", [IndexKinds(), SMALL], ids=["flat", "ivf"])
def test_a_snapshot_round_trips(tmp_path: Path, kinds: IndexKinds) -> None:
    rng = np.random.default_rng(4)
    gallery = unit(rng, 1200)
    index = FaceIndex(profile="mobilefacenet+dlib", kinds=kinds)
    index.rebuild(np.arange(1200) * 3, gallery)
    assert index.settle(60)
    folder = tmp_path / "snapshots"
    written = save_snapshot(folder, 7, "staff", index, 42)
    assert written == path_of(folder, 7)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and stat.S_IMODE(written.stat().st_mode) == 0o600
    assert [p.name for p in folder.iterdir()] == [written.name]  # no temporary left behind

    (snapshot,) = load_snapshots(folder, kinds).values()
    assert (snapshot.collection_id, snapshot.name, snapshot.profile, snapshot.sequence) == (
        7,
        "staff",
        "mobilefacenet+dlib",
        42,
    )
    loaded = snapshot.index
    assert loaded.kind == index.kind and loaded.size == 1200 and loaded.profile == "mobilefacenet+dlib"
    for face_index in (index, loaded):
        np.testing.assert_array_equal(face_index.search(gallery[:20], 1)[1][:, 0], np.arange(20) * 3)
    np.testing.assert_allclose(loaded.vectors([9]), gallery[3:4], atol=1e-6)
    loaded.add([1], gallery[:1])  # and it takes changes
    assert 1 in loaded and loaded.remove([0]) == 1


def _damaged(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "payload byte":
        data[100] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "meta byte":
        data[-40] ^= 0x01
        path.write_bytes(bytes(data))
    elif how == "magic":
        path.write_bytes(b"NOTASNAP" + data[8:])
    elif how == "renamed":
        path.rename(path.with_name("8" + path.name[1:]))  # the meta says collection 7


@pytest.mark.parametrize("how", ["truncated", "empty", "payload byte", "meta byte", "magic", "renamed"])
def test_a_damaged_snapshot_is_skipped_and_logged(tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture) -> None:
    rng = np.random.default_rng(5)
    index = FaceIndex(profile="p")
    index.rebuild(np.arange(300), unit(rng, 300))
    good = FaceIndex(profile="p")
    good.rebuild(np.arange(5), unit(rng, 5))
    save_snapshot(tmp_path, 7, "damaged", index, 1)
    save_snapshot(tmp_path, 9, "good", good, 2)
    _damaged(path_of(tmp_path, 7), how)
    with caplog.at_level(logging.WARNING):
        snapshots = load_snapshots(tmp_path)
    assert list(snapshots) == [9] and snapshots[9].index.size == 5  # the other collection is unaffected
    assert "unusable" in caplog.text and "rebuilt from the database" in caplog.text


def test_no_folder_no_snapshots(tmp_path: Path) -> None:
    assert load_snapshots(tmp_path / "missing") == {}
    with pytest.raises(ValueError):
        save_snapshot(tmp_path, 1, "empty", FaceIndex(), 0)  # nothing known to save
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]
