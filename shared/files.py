"""Files that hold people's data (face crops, embeddings, keys, job results) are the owner's alone."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


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


def _tighten(path: Path, mode: int) -> None:
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode and path.stat().st_uid == os.getuid():
        os.chmod(path, mode)
        log.warning("%s was readable by others (mode %o); made it %o", path, current, mode)
