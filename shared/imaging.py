"""Decoding untrusted image bytes, within limits, into BGR arrays, and the letterbox that model inputs need.

A request's images are checked from their headers alone (format, size, pixel counts, the request's pixel budget)
before any pixel is decoded, then decoded one at a time, each within a reservation of the server's PixelBudget: a
request holds one full-size image at a time, and the server a bounded number of decoded pixels whatever the load.
"""

from __future__ import annotations

import ctypes
import io
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import cv2
import numpy as np
import simplejpeg
from PIL import Image, ImageOps, UnidentifiedImageError

from argus.config import Settings
from argus.errors import InvalidInput, Overloaded

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N", "I"})  # greyscale beyond 8 bits (PNG)
TURBO_JPEG_MODES = frozenset({"RGB", "L"})  # JPEGs libjpeg-turbo decodes straight to BGR (not CMYK)
EXIF_ORIENTATION = 0x0112
BAND_BYTES = 8 << 20  # the most of an image copied out at once while decoding
PIXEL_WAIT_S = 10.0  # how long a request waits for its share of the server's PixelBudget before it is refused
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD_BYTES = 4 << 20  # measured: 2 concurrent 36 Mpx decodes peak at about 520 MB and give it all back

# Our own pixel limit (a setting) is checked from the header below; Pillow's fixed one would only preempt it.
Image.MAX_IMAGE_PIXELS = None

_DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)

T = TypeVar("T")


@dataclass(frozen=True)
class ImageHeader:
    """What an image's header says, read without decoding a pixel."""

    format: str
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class ImageLimits:
    """What one request may send: images, bytes and pixels per image, and decoded pixels in all."""

    max_images: int
    max_bytes: int
    max_pixels: int
    max_request_pixels: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        return cls(
            settings.max_images_per_request,
            settings.max_image_bytes,
            settings.max_image_pixels,
            settings.max_request_pixels,
        )


def _open(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """The image opened lazily (Pillow reads the header only), after the checks a header allows."""
    if not data:
        raise InvalidInput("image is empty: send the encoded bytes of a JPEG, PNG, WebP or BMP file")
    if len(data) > max_bytes:
        raise InvalidInput(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise InvalidInput("bytes are not a recognisable image; send a JPEG, PNG, WebP or BMP file") from None
    except _DECODE_ERRORS as exc:
        raise InvalidInput(f"image could not be decoded (truncated or corrupt?): {exc}") from None
    if image.format not in ACCEPTED_FORMATS:
        raise InvalidInput(f"image format {image.format} is not accepted; send JPEG, PNG, WebP or BMP")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"image has zero size ({width}x{height})")
    if width * height > max_pixels:
        raise InvalidInput(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels")
    return image


def read_header(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageHeader:
    """The format and size of an image, checked against the limits from its header alone; InvalidInput otherwise.
    A header-valid image may still turn out truncated when it is decoded."""
    image = _open(data, max_bytes=max_bytes, max_pixels=max_pixels)
    assert image.format is not None  # _open accepted it
    return ImageHeader(image.format, *image.size)


def _eight_bit(image: Image.Image) -> Image.Image:
    """16-bit greyscale scaled to 8 bits. Pillow's own conversion clips at 255, so nearly every pixel of a 16-bit
    photo would come out white; 16-bit RGB(A) PNGs Pillow already reads at 8 bits (the high byte)."""
    if image.mode not in SIXTEEN_BIT_MODES:
        return image
    wide = np.asarray(image).astype(np.uint32)
    wide += 128
    wide //= 257  # 65535 / 257 = 255: rounds to the nearest 8-bit value
    return Image.fromarray(np.minimum(wide, 255).astype(np.uint8), "L")


def _bgr(image: Image.Image) -> np.ndarray:
    """The pixels as a BGR array, copied out (and converted to RGB) a band of rows at a time: besides the decoded
    image and the result only one band's copies exist, where a whole-image conversion and tobytes would add two
    full-size copies. Conversions to RGB are per pixel, so band by band gives the very same values."""
    width, height = image.size
    bgr = np.empty((height, width, 3), dtype=np.uint8)
    rows = max(1, BAND_BYTES // (4 * width))
    for top in range(0, height, rows):
        band = image.crop((0, top, width, min(height, top + rows)))
        if band.mode != "RGB":
            band = band.convert("RGB")
        pixels = np.frombuffer(band.tobytes("raw", "BGR"), dtype=np.uint8)
        bgr[top : top + band.height] = pixels.reshape(band.height, width, 3)
    return bgr


def upright(bgr: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels turned as EXIF orientation 1-8 says they are to be shown (what Pillow's exif_transpose does)."""
    if orientation == 2:
        return cv2.flip(bgr, 1)
    if orientation == 3:
        return cv2.rotate(bgr, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(bgr, 0)
    if orientation == 5:
        return cv2.transpose(bgr)
    if orientation == 6:
        return cv2.rotate(bgr, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.rotate(cv2.transpose(bgr), cv2.ROTATE_180)
    if orientation == 8:
        return cv2.rotate(bgr, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return bgr


def _decode_turbo_jpeg(data: bytes, image: Image.Image) -> np.ndarray | None:
    """A colour or grey JPEG decoded by libjpeg-turbo straight into a BGR array: one buffer and no conversion
    copies, about 2.5x faster than through Pillow, and the same pixels (the same library decodes them). None where
    Pillow should have the last word: libjpeg-turbo's own header disagrees with the one the limits were checked on,
    or it reports a flaw (a truncated file, stray bytes) that Pillow decodes past or names in its own terms."""
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
        if (width, height) != image.size:
            return None
        bgr = simplejpeg.decode_jpeg(data, colorspace="BGR")
    except ValueError:
        return None
    orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    return upright(bgr, orientation if isinstance(orientation, int) else 1)


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Returns an HxWx3 uint8 BGR image, upright per its EXIF orientation, or raises InvalidInput.

    The pixel limit is checked from the header before any pixel is decoded, so a decompression bomb costs nothing.
    """
    image = _open(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if image.format == "JPEG" and image.mode in TURBO_JPEG_MODES:
        fast = _decode_turbo_jpeg(data, image)
        if fast is not None:
            return fast
    try:
        image.load()
        ImageOps.exif_transpose(image, in_place=True)
        return _bgr(_eight_bit(image))
    except _DECODE_ERRORS as exc:
        raise InvalidInput(f"image could not be decoded (truncated or corrupt?): {exc}") from None


@dataclass(frozen=True)
class Letterbox:
    """How an image was placed on a model's canvas: scaled by `scale`, pasted at the top-left corner."""

    image: np.ndarray
    scale: float


def letterbox(image: np.ndarray, height: int, width: int, pad_value: int) -> Letterbox:
    """Resizes keeping the aspect ratio so the image fits height x width, pads right and bottom with pad_value."""
    src_h, src_w = image.shape[:2]
    scale = min(height / src_h, width / src_w)
    new_w, new_h = max(1, round(src_w * scale)), max(1, round(src_h * scale))
    canvas = np.full((height, width, image.shape[2]), pad_value, dtype=image.dtype)
    resized = (
        image if (new_w, new_h) == (src_w, src_h) else cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    )
    canvas[:new_h, :new_w] = resized
    return Letterbox(canvas, scale)


def round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def shrink(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The image made smaller, to size (width, height), without aliasing: bilinear to a whole multiple k of the size
    (k = 2 for a scale under 2, which enlarges; otherwise the whole part of the scale, which shrinks by under 2),
    then k x k box averages. cv2.INTER_AREA gives about the same pixels (0.1-0.3 of 255 apart on average) but its path
    for a scale that is not a whole number cost 2.5 ms for 626x1200 to 334x640, one thread, against 1.0 ms here."""
    width, height = size
    scale = min(image.shape[1] / width, image.shape[0] / height)
    multiple = max(2, int(scale))
    multiplied = (multiple * width, multiple * height)
    if multiplied != (image.shape[1], image.shape[0]):  # a whole-number scale needs the box averages alone
        image = cv2.resize(image, multiplied, interpolation=cv2.INTER_LINEAR)
    shrunk: np.ndarray = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return shrunk


def thumbnail_jpeg(image: bytes, max_side: int, quality: int = 85) -> bytes:
    """A stored image (one of ours, a face crop) shrunk to fit max_side, as JPEG: a console's thumbnail. Never
    enlarged."""
    with Image.open(io.BytesIO(image)) as opened:
        small = opened.convert("RGB")
    small.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    encoded = io.BytesIO()
    small.save(encoded, format="JPEG", quality=quality)
    return encoded.getvalue()


def return_large_buffers_to_the_os() -> None:
    """Makes glibc serve every allocation of MMAP_THRESHOLD_BYTES or more from its own mapping, unmapped when freed.
    By default glibc raises that threshold as buffers are freed, after which a decoded image's blocks come from
    per-thread heaps that keep the memory once the image is dropped: under concurrent calls resident memory then
    grows far past the decoded pixels a PixelBudget allows. Elsewhere (another C library) nothing changes."""
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)


class PixelBudget:
    """The decoded pixels a server holds at once, across all its calls. Concurrent requests multiply memory, so
    each image reserves its pixels before it is decoded and returns them once the full-size image is dropped; a
    request that cannot get them within wait_s is refused as overloaded (RESOURCE_EXHAUSTED: retry later).
    Reservations are granted first come, first served, so a large image is not starved by a stream of small ones."""

    def __init__(self, capacity: int, wait_s: float = PIXEL_WAIT_S) -> None:
        return_large_buffers_to_the_os()  # the budget bounds memory only if dropped images give theirs back
        self.capacity = capacity
        self.wait_s = wait_s
        self._free = capacity
        self._waiting: deque[object] = deque()
        self._cond = threading.Condition()

    @classmethod
    def from_settings(cls, settings: Settings) -> PixelBudget:
        return cls(settings.max_pixels_in_flight)

    @property
    def free(self) -> int:
        with self._cond:
            return self._free

    @contextmanager
    def reserve(self, pixels: int) -> Iterator[None]:
        pixels = min(pixels, self.capacity)  # the settings keep capacity >= the per-image limit
        ticket = object()
        with self._cond:
            self._waiting.append(ticket)
            try:
                granted = self._cond.wait_for(
                    lambda: self._waiting[0] is ticket and self._free >= pixels, timeout=self.wait_s
                )
            finally:
                self._waiting.remove(ticket)
                self._cond.notify_all()  # the next in line may fit now
            if not granted:
                raise Overloaded(
                    f"the server is decoding {self.capacity - self._free} pixels for other calls (limit "
                    f"{self.capacity}) and this image needs {pixels}; retry later"
                )
            self._free -= pixels
        try:
            yield
        finally:
            with self._cond:
                self._free += pixels
                self._cond.notify_all()


def check_request_images(encoded: Sequence[bytes], limits: ImageLimits) -> list[ImageHeader]:
    """Every image's header checked, and their pixels summed against the request's budget, before anything is
    decoded; a bad image fails the whole request, naming which one it was."""
    if not encoded:
        raise InvalidInput("the request holds no images; send at least one")
    if len(encoded) > limits.max_images:
        raise InvalidInput(f"the request holds {len(encoded)} images; the limit is {limits.max_images} per call")
    headers = []
    for index, data in enumerate(encoded):
        try:
            headers.append(read_header(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels))
        except InvalidInput as exc:
            raise InvalidInput(f"image {index}: {exc}") from None
    check_request_pixels(headers, limits)
    return headers


def check_request_pixels(headers: Sequence[ImageHeader], limits: ImageLimits) -> None:
    """The request's pixel budget: what decoding all its images would cost, known from their headers."""
    total = sum(header.pixels for header in headers)
    if total > limits.max_request_pixels:
        raise InvalidInput(
            f"the request's {len(headers)} images hold {total} pixels in all; the limit is "
            f"{limits.max_request_pixels} per call: send fewer or smaller images"
        )


def decode_request_images(
    encoded: Sequence[bytes], limits: ImageLimits, budget: PixelBudget, use: Callable[[np.ndarray], T]
) -> list[T]:
    """`use` applied to each image of a request, in order. All headers are checked first (check_request_images);
    then each image is decoded within a reservation of the budget, handed to `use` and let go before the next is
    decoded, so what `use` returns must not keep the full-size image."""
    headers = check_request_images(encoded, limits)
    results = []
    for index, (data, header) in enumerate(zip(encoded, headers, strict=True)):
        with budget.reserve(header.pixels):
            try:
                image = decode_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)
            except InvalidInput as exc:
                raise InvalidInput(f"image {index}: {exc}") from None
            results.append(use(image))
            del image
    return results
