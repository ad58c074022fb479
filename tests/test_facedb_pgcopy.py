"""The binary COPY reader an index rebuild reads PostgreSQL through, on streams built by hand from the format's
definition (the PostgreSQL docs' "Binary Format"), cut into blocks at awkward places."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from argus.services.facedb.storage.pgcopy import SIGNATURE, CopyFormatError, face_chunks


def row(face_id: int, vector: list[float], dimension: int | None = None) -> bytes:
    embedding = np.asarray(vector, dtype="<f4").tobytes()
    size = len(vector) if dimension is None else dimension
    return (
        struct.pack(">hiq", 3, 8, face_id) + struct.pack(">i", len(embedding)) + embedding + struct.pack(">ii", 4, size)
    )


def stream(*rows: bytes, extension: bytes = b"") -> bytes:
    return SIGNATURE + struct.pack(">II", 0, len(extension)) + extension + b"".join(rows) + b"\xff\xff"


def blocks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def test_rows_come_in_chunks_whatever_the_block_boundaries() -> None:
    data = stream(row(7, [1.0, 0.0]), row(9, [0.5, -0.25]), row(2**40, [3.0, 4.0]), extension=b"ext!")
    assert len(data) == 11 + 8 + 4 + 3 * (2 + 12 + 4 + 8 + 8) + 2  # each row: 34 bytes for d=2
    for size in (1, 5, 34, len(data)):
        chunks = list(face_chunks(blocks(data, size), rows_per_chunk=2))
        assert [ids.tolist() for ids, _ in chunks] == [[7, 9], [2**40]]
        np.testing.assert_array_equal(np.concatenate([v for _, v in chunks]), [[1, 0], [0.5, -0.25], [3, 4]])
        assert all(v.dtype == np.float32 and ids.dtype == np.int64 for ids, v in chunks)


def test_no_rows_no_chunks() -> None:
    assert list(face_chunks([stream()], 10)) == []


@pytest.mark.parametrize(
    "data",
    [
        b"not a copy stream at all",
        stream(row(1, [1.0, 0.0]))[:-1],  # no trailer: truncated
        stream(row(1, [1.0, 0.0]), row(2, [1.0, 0.0, 0.0])),  # two dimensions in one stream
        stream(row(1, [1.0, 0.0], dimension=3)),  # the dimension column disagrees with the bytes
        stream(row(1, [1.0, 0.0]))[:-3] + b"\xff\xff",  # a row cut short
        stream(row(1, [1.0, 0.0])) + b"junk",  # bytes after the trailer
    ],
    ids=["garbage", "truncated", "mixed dimensions", "wrong dimension", "short row", "trailing bytes"],
)
def test_anything_else_is_refused(data: bytes) -> None:
    with pytest.raises(CopyFormatError):
        list(face_chunks(blocks(data, 7), 10))
