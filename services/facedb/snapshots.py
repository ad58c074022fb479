"""Snapshots of the FAISS indexes, so that a restart loads each index instead of reading every face back.

One file per collection, named by its id: FAISS's own serialisation of the index, with the change sequence it
reflects, the collection's name and profile, and a SHA-256 over all of it. A file that is missing, truncated, of
another format or whose checksum does not match is skipped with a log line: the caller rebuilds that collection from
the database. A snapshot only saves time; the database stays the truth.

    magic (8 bytes) | payload length (u64) | payload (FAISS) | meta (JSON) | meta length (u32) | SHA-256 (32 bytes)
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import faiss

from argus.errors import InvalidInput
from argus.files import atomic_file, private_dir
from argus.services.facedb.index import FaceIndex, IndexKinds

log = logging.getLogger(__name__)

MAGIC = b"ARGUSIX1"
SUFFIX = ".faiss-snapshot"
_LENGTH = struct.Struct("<Q")
_META_LENGTH = struct.Struct("<I")
_DIGEST = hashlib.sha256().digest_size
_CHUNK = 1 << 22


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


class _HashingWriter:
    """Writes to a file and hashes what it writes: FAISS streams its serialisation through `write`."""

    def __init__(self, stream: BinaryIO) -> None:
        self.stream = stream
        self.digest = hashlib.sha256()
        self.written = 0

    def write(self, data: bytes) -> None:
        self.stream.write(data)
        self.digest.update(data)
        self.written += len(data)


def save_snapshot(folder: Path, collection_id: int, name: str, index: FaceIndex, sequence: int) -> Path:
    """Writes the index's snapshot whole or not at all, in a folder only this user can read (it holds people's face
    vectors).

    `sequence` is the last change the index is known to reflect: read it before the call. The index may take later
    changes while the call waits for it; that is harmless, as the catch-up replays them and replaying is idempotent.
    The index is streamed to a temporary file (argus.files.atomic_file; not built in memory first: a million
    256-d faces are 1 GB) while changes to it wait; searches go on. The flush to disk and the rename come after,
    with changes flowing again.
    """
    target = path_of(private_dir(folder), collection_id)
    with atomic_file(target, private=True) as stream:
        writer = _HashingWriter(stream)
        stream.write(MAGIC + _LENGTH.pack(0))  # the payload's length is known once it is written
        with index.faiss_index() as held:
            if held is None:
                raise ValueError(f"collection {name}: an index of unknown dimension has nothing to save")
            faiss.write_index(held, faiss.PyCallbackIOWriter(writer.write))  # type: ignore[attr-defined]
            faces = int(held.ntotal)
        meta = json.dumps(
            {
                "collection_id": collection_id,
                "name": name,
                "profile": index.profile or "",
                "sequence": sequence,
                "faces": faces,
                "dimension": index.dimension,
            },
            sort_keys=True,
        ).encode()
        tail = meta + _META_LENGTH.pack(len(meta))
        stream.write(tail)
        stream.seek(len(MAGIC))
        stream.write(_LENGTH.pack(writer.written))
        digest = hashlib.sha256(MAGIC + _LENGTH.pack(writer.written))
        digest.update(writer.digest.digest())
        digest.update(tail)
        stream.seek(0, os.SEEK_END)
        stream.write(digest.digest())
    return target


def _read_exact(stream: BinaryIO, count: int) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise Corrupt("truncated")
    return data


def _checked_meta(stream: BinaryIO, size: int) -> tuple[dict[str, Any], int]:
    """(meta, payload length) of a file whose layout and checksum hold; Corrupt otherwise. Reads it whole once."""
    if size < len(MAGIC) + _LENGTH.size + _META_LENGTH.size + _DIGEST:
        raise Corrupt("too short")
    head = _read_exact(stream, len(MAGIC) + _LENGTH.size)
    if head[: len(MAGIC)] != MAGIC:
        raise Corrupt("not a snapshot")
    (length,) = _LENGTH.unpack(head[len(MAGIC) :])
    meta_end = size - _DIGEST
    if len(head) + length + _META_LENGTH.size > meta_end:
        raise Corrupt("truncated")
    payload = hashlib.sha256()
    remaining = length
    while remaining:
        chunk = _read_exact(stream, min(_CHUNK, remaining))
        payload.update(chunk)
        remaining -= len(chunk)
    tail = _read_exact(stream, meta_end - len(head) - length)
    stored = _read_exact(stream, _DIGEST)
    digest = hashlib.sha256(head)
    digest.update(payload.digest())
    digest.update(tail)
    if digest.digest() != stored:
        raise Corrupt("checksum mismatch")
    (meta_length,) = _META_LENGTH.unpack(tail[-_META_LENGTH.size :])
    if meta_length != len(tail) - _META_LENGTH.size:
        raise Corrupt("bad meta length")
    meta = json.loads(tail[:meta_length])
    if not isinstance(meta, dict):
        raise Corrupt("bad meta")
    return meta, length


def _payload_reader(stream: BinaryIO, length: int) -> Callable[[int], bytes]:
    """What FAISS reads the index through: at most the payload, never the meta after it."""
    left = [length]

    def read(count: int) -> bytes:
        data = stream.read(min(count, left[0]))
        left[0] -= len(data)
        return data

    return read


def load_snapshot(path: Path, kinds: IndexKinds | None = None) -> Snapshot:
    """One snapshot file, checked; Corrupt (or OSError) when it cannot be used."""
    with path.open("rb") as stream:
        meta, length = _checked_meta(stream, os.fstat(stream.fileno()).st_size)
        stream.seek(len(MAGIC) + _LENGTH.size)
        try:
            read = faiss.read_index(faiss.PyCallbackIOReader(_payload_reader(stream, length)))  # type: ignore[attr-defined]
        except RuntimeError as exc:  # FAISS refuses what it cannot parse
            raise Corrupt(f"FAISS cannot read it: {exc}") from None
    try:
        collection_id, sequence, faces = int(meta["collection_id"]), int(meta["sequence"]), int(meta["faces"])
        name, profile = str(meta["name"]), str(meta["profile"])
    except (KeyError, TypeError, ValueError):
        raise Corrupt("incomplete meta") from None
    if path.name != path_of(path.parent, collection_id).name or int(read.ntotal) != faces:
        raise Corrupt("meta does not match the file")
    try:
        restored = FaceIndex.restore(read, profile, kinds)
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
