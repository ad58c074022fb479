"""Snapshots of the indexes, so that a restart loads each index instead of reading every face back.

One file per collection, named by its id: the exact vectors, FAISS's own serialisation of the approximate index
when there is one, with the change sequence they reflect, the collection's name and profile, and a SHA-256 over all
of it. A file that is missing, truncated, of another format or whose checksum does not match is skipped with a log
line: the caller rebuilds that collection from the database. A snapshot only saves time; the database stays the
truth. Both ways stream a block of faces at a time, so neither holds a large collection twice.

    magic (8) | meta length (u32) | meta (JSON) | chunks | 0 (u32) | FAISS length (u64) | FAISS | SHA-256 (32)
    chunk: faces n (u32) | ids (n int64) | vectors (n x d float32)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np

from argus.errors import InvalidInput
from argus.files import atomic_file, private_dir
from argus.services.facedb.index import FaceIndex, IndexKinds
from argus.services.facedb.vector_store import BLOCK_ROWS, VectorStore

log = logging.getLogger(__name__)

MAGIC = b"ARGUSIX2"
SUFFIX = ".faiss-snapshot"
MAX_META = 1 << 16
MAX_DIMENSION = 1 << 16
_COUNT = struct.Struct("<I")
_LENGTH = struct.Struct("<Q")
_DIGEST = hashlib.sha256().digest_size
_IDS = np.dtype("<i8")
_VECTORS = np.dtype("<f4")


@dataclass(frozen=True)
class Snapshot:
    collection_id: int
    name: str
    profile: str
    sequence: int  # the last change the index reflects: catch up from the change after it
    index: FaceIndex


class Corrupt(Exception):
    """A snapshot file that cannot be trusted."""


def path_of(folder: Path, collection_id: int) -> Path:
    return folder / f"{collection_id}{SUFFIX}"


class _Hashing:
    """A file written or read through a running SHA-256, never past its declared end."""

    def __init__(self, stream: BinaryIO, size: int = 0) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.left = size  # reading: bytes before the digest not yet read

    def write(self, data: bytes | memoryview) -> None:
        self.stream.write(data)
        self.digest.update(data)

    def read(self, count: int) -> bytes:
        if count > self.left:
            raise Corrupt("truncated")
        data = self.stream.read(count)
        if len(data) != count:
            raise Corrupt("truncated")
        self.left -= count
        self.digest.update(data)
        return data


def save_snapshot(folder: Path, collection_id: int, name: str, index: FaceIndex, sequence: int) -> Path:
    """Writes the index's snapshot whole or not at all, in a folder only this user can read (it holds people's face
    vectors; a removed face's is not in it).

    `sequence` is the last change the index is known to reflect: read it before the call. The index may take later
    changes while the call waits for it; that is harmless, as the catch-up replays them and replaying is idempotent.
    The index is streamed to a temporary file (argus.files.atomic_file) while changes to it wait; searches go on.
    The flush to disk and the rename come after, with changes flowing again.
    """
    target = path_of(private_dir(folder), collection_id)
    with atomic_file(target, private=True) as stream:
        writer = _Hashing(stream)
        with index.held() as (store, accelerator):
            if store is None:
                raise ValueError(f"collection {name}: an index of unknown dimension has nothing to save")
            meta = json.dumps(
                {
                    "collection_id": collection_id,
                    "name": name,
                    "profile": index.profile or "",
                    "sequence": sequence,
                    "faces": len(store),
                    "dimension": store.dimension,
                },
                sort_keys=True,
            ).encode()
            writer.write(MAGIC + _COUNT.pack(len(meta)) + meta)
            for ids, vectors in store.chunks():
                writer.write(_COUNT.pack(ids.size))
                writer.write(np.ascontiguousarray(ids, _IDS).data)
                writer.write(np.ascontiguousarray(vectors, _VECTORS).data)
            serialised = faiss.serialize_index(accelerator) if accelerator is not None else np.empty(0, np.uint8)
        writer.write(_COUNT.pack(0) + _LENGTH.pack(serialised.size))
        writer.write(serialised.data)
        stream.write(writer.digest.digest())
    return target


def _meta(reader: _Hashing) -> dict[str, Any]:
    if reader.read(len(MAGIC)) != MAGIC:
        raise Corrupt("not a snapshot")
    (length,) = _COUNT.unpack(reader.read(_COUNT.size))
    if length > MAX_META:
        raise Corrupt("bad meta length")
    try:
        meta = json.loads(reader.read(length))
    except ValueError:
        raise Corrupt("bad meta") from None
    if not isinstance(meta, dict):
        raise Corrupt("bad meta")
    return meta


def _chunks(reader: _Hashing, dimension: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The file's (ids, vectors) chunks, up to the end marker."""
    while True:
        (count,) = _COUNT.unpack(reader.read(_COUNT.size))
        if not count:
            return
        if count > BLOCK_ROWS:
            raise Corrupt("bad chunk")
        ids = np.frombuffer(reader.read(count * _IDS.itemsize), _IDS).astype(np.int64)
        vectors = np.frombuffer(reader.read(count * dimension * _VECTORS.itemsize), _VECTORS).reshape(count, dimension)
        yield ids, vectors


def load_snapshot(path: Path, kinds: IndexKinds | None = None) -> Snapshot:
    """One snapshot file, checked; Corrupt (or OSError) when it cannot be used. Read once, a chunk at a time; the
    checksum is compared before anything read is used."""
    with path.open("rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        reader = _Hashing(stream, size - _DIGEST)
        meta = _meta(reader)
        try:
            collection_id, sequence, faces = int(meta["collection_id"]), int(meta["sequence"]), int(meta["faces"])
            name, profile, dimension = str(meta["name"]), str(meta["profile"]), int(meta["dimension"])
        except (KeyError, TypeError, ValueError):
            raise Corrupt("incomplete meta") from None
        if not 0 < dimension <= MAX_DIMENSION:
            raise Corrupt("bad dimension")
        store = VectorStore.of(dimension, _chunks(reader, dimension))
        (length,) = _LENGTH.unpack(reader.read(_LENGTH.size))
        serialised = reader.read(length)
        if reader.left or stream.read(_DIGEST + 1) != reader.digest.digest():
            raise Corrupt("checksum mismatch")
    if path.name != path_of(path.parent, collection_id).name or len(store) != faces:
        raise Corrupt("meta does not match the file")
    try:
        accelerator = faiss.deserialize_index(np.frombuffer(serialised, np.uint8)) if length else None
    except RuntimeError as exc:  # FAISS refuses what it cannot parse
        raise Corrupt(f"FAISS cannot read it: {exc}") from None
    try:
        restored = FaceIndex.restore(store, accelerator, profile, kinds)
    except InvalidInput as exc:
        raise Corrupt(str(exc)) from None
    return Snapshot(collection_id, name, profile, sequence, restored)


def load_snapshots(folder: Path, kinds: IndexKinds | None = None) -> dict[int, Snapshot]:
    """Every usable snapshot in the folder by collection id. A file that cannot be used is left out, with a log line
    saying why: the caller rebuilds that collection from the database (and its next snapshot replaces the file)."""
    snapshots: dict[int, Snapshot] = {}
    if not folder.is_dir():
        return snapshots
    for path in sorted(folder.glob(f"*{SUFFIX}")):
        try:
            snapshot = load_snapshot(path, kinds)
        except (Corrupt, OSError, ValueError) as exc:
            log.warning("index snapshot %s is unusable (%s); that collection is rebuilt from the database", path, exc)
            continue
        snapshots[snapshot.collection_id] = snapshot
    return snapshots


def remove_snapshot(folder: Path, collection_id: int) -> None:
    """Deletes a dropped collection's snapshot, if any."""
    path_of(folder, collection_id).unlink(missing_ok=True)
