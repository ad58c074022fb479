"""Reading a data set's images: decoded exactly as the services decode a request, a chunk at a time."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from argus.imaging import decode_image

_NO_PIXEL_LIMIT = 1 << 40  # evaluation images are trusted files, not requests
DETECTION_CHUNK = 16  # images a detector evaluation has in flight: enough to fill the batcher, little memory

Item = TypeVar("Item")


def read_image(path: Path) -> np.ndarray:
    """Decodes as the services do (Pillow, EXIF-upright, BGR), so the figures measured hold for them."""
    data = path.read_bytes()
    return decode_image(data, max_bytes=len(data), max_pixels=_NO_PIXEL_LIMIT)


def chunks(items: Sequence[Item], size: int) -> Iterator[Sequence[Item]]:
    """The items a chunk at a time: decoded and in flight together, so memory stays bounded on any data set."""
    for start in range(0, len(items), size):
        yield items[start : start + size]
