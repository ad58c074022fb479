"""Reading face vectors out of PostgreSQL's binary COPY format in bulk: what rebuilding an index from the database
reads, a million rows at a time.

`COPY (SELECT id, embedding, dimension ...) TO STDOUT (FORMAT BINARY)` sends rows of one fixed size when every
embedding has the same dimension, as a collection's do: parsed here as a NumPy structured array, block by block,
instead of row by row (measured at 1M faces: about 1 s against psycopg's 6 s per-row parser). Every row's field
count, lengths and dimension are checked, so a row of another shape is refused, never misread.

Format (PostgreSQL docs, "COPY", binary format): an 11-byte signature, a 32-bit flags field, a 32-bit header
extension length and the extension; per row a 16-bit field count, then per field a 32-bit length and the bytes, all
integers in network byte order; a 16-bit -1 after the last row.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np

SIGNATURE = b"PGCOPY\n\xff\r\n\x00"
_HEADER = struct.Struct(">II")  # flags, extension length
_ROW_START = struct.Struct(">hiqi")  # field count, id length, id, embedding length
TRAILER = b"\xff\xff"
FIELDS = 3  # id (int8), embedding (bytea), dimension (int4)
VECTOR = np.dtype("<f4")  # how the embeddings are stored (storage.models)


class CopyFormatError(ValueError):
    """A COPY stream that is not rows of (int8 id, bytea embedding, int4 dimension) of one dimension."""


def _row_type(dimension: int) -> np.dtype:
    return np.dtype(
        [
            ("fields", ">i2"),
            ("id_length", ">i4"),
            ("id", ">i8"),
            ("vector_length", ">i4"),
            ("vector", VECTOR, (dimension,)),
            ("dimension_length", ">i4"),
            ("dimension", ">i4"),
        ]
    )


def face_chunks(blocks: Iterable[bytes | memoryview], rows_per_chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(int64 ids, float32 (n, d) vectors) chunks of at most `rows_per_chunk` rows, from the raw blocks of a binary
    COPY of (id, embedding, dimension) rows. CopyFormatError for anything else."""
    buffer = bytearray()
    source = iter(blocks)

    def fill(size: int) -> bool:
        while len(buffer) < size:
            block = next(source, None)
            if block is None:
                return False
            buffer.extend(block)
        return True

    if not fill(len(SIGNATURE) + _HEADER.size) or not buffer.startswith(SIGNATURE):
        raise CopyFormatError("not a binary COPY stream")
    _, extension = _HEADER.unpack_from(buffer, len(SIGNATURE))
    start = len(SIGNATURE) + _HEADER.size + extension
    if not fill(start + len(TRAILER)):
        raise CopyFormatError("truncated header")
    del buffer[:start]
    if buffer[: len(TRAILER)] == TRAILER and not fill(len(TRAILER) + 1):
        return  # no rows
    if not fill(_ROW_START.size):
        raise CopyFormatError("truncated row")
    _, _, _, vector_length = _ROW_START.unpack_from(buffer)
    if vector_length <= 0 or vector_length % VECTOR.itemsize:
        raise CopyFormatError(f"an embedding of {vector_length} bytes")
    dimension = vector_length // VECTOR.itemsize
    row_type = _row_type(dimension)
    while True:
        more = fill(rows_per_chunk * row_type.itemsize + len(TRAILER))
        count = min(rows_per_chunk, len(buffer) // row_type.itemsize)
        if not more:  # the last rows: the stream then ends with the trailer, exactly
            count = (len(buffer) - len(TRAILER)) // row_type.itemsize
            if count < 0 or buffer[count * row_type.itemsize :] != TRAILER:
                raise CopyFormatError("rows of another shape, or a truncated stream")
        if count:
            rows = np.frombuffer(buffer, row_type, count)
            shaped = (
                (rows["fields"] == FIELDS)
                & (rows["id_length"] == 8)
                & (rows["vector_length"] == vector_length)
                & (rows["dimension_length"] == 4)
                & (rows["dimension"] == dimension)
            )
            if not shaped.all():
                raise CopyFormatError("rows of another shape, or embeddings of several dimensions")
            yield rows["id"].astype(np.int64), rows["vector"].astype(np.float32)
            del rows
            del buffer[: count * row_type.itemsize]
        if not more:
            return
