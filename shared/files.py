"""Files that hold people's data (face crops, embeddings, keys, job results) are the owner's alone, and a file is
replaced whole or not at all."""

from __future__ import annotations

import logging
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
SHARED_FILE_MODE = 0o644  # what atomic_write leaves a file that is not private: others may read it


def private_dir(path: Path) -> Path:
    """Creates the folder (and its parents) readable by this user only; an existing one that others can read or
    enter is tightened, and the change is logged."""
    path = path.expanduser()
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    _tighten(path, PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Creates the file (empty, if new) readable by this user only, in a private folder; an existing one is
    tightened. Call it before another library creates the file with the process's umask."""
    private_dir(path.parent)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(descriptor)
    _tighten(path, PRIVATE_FILE_MODE)
    return path


@contextmanager
def atomic_file(path: Path, *, private: bool = False) -> Iterator[BinaryIO]:
    """A stream whose content replaces the file whole or not at all: written to a temporary file beside it, flushed
    to disk and renamed over it when the block ends, removed if the block raises, so a reader or a crash never sees
    half a file. For content too big to hold in memory (an index snapshot); `private` makes the file (and its
    folder) this user's alone."""
    folder = private_dir(path.parent) if private else path.parent
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w+b") as stream:
            os.fchmod(stream.fileno(), PRIVATE_FILE_MODE if private else SHARED_FILE_MODE)
            yield stream
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write(path: Path, data: bytes | str, *, private: bool = False) -> Path:
    """Writes the file whole or not at all (see atomic_file)."""
    with atomic_file(path, private=private) as stream:
        stream.write(data.encode() if isinstance(data, str) else data)
    return path


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode and path.stat().st_uid == os.getuid():
        os.chmod(path, mode)
        log.warning("%s was readable by others (mode %o); made it %o", path, current, mode)
