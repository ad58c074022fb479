"""Decoding untrusted image bytes, within limits, into BGR arrays, and the letterbox that model inputs need."""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from argus.errors import InvalidInput

ACCEPTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP"})

# Our own pixel limit (a setting) is checked from the header below; Pillow's fixed one would only preempt it.
Image.MAX_IMAGE_PIXELS = None


def decode_image(data: bytes, *, max_bytes: int, max_pixels: int) -> np.ndarray:
    """Returns an HxWx3 uint8 BGR image, upright per its EXIF orientation, or raises InvalidInput.

    The pixel limit is checked from the header before any pixel is decoded, so a decompression bomb costs nothing.
    """
    if not data:
        raise InvalidInput("image is empty: send the encoded bytes of a JPEG, PNG, WebP or BMP file")
    if len(data) > max_bytes:
        raise InvalidInput(f"image is {len(data)} bytes; the limit is {max_bytes} bytes")
    try:
        image = Image.open(io.BytesIO(data))
        if image.format not in ACCEPTED_FORMATS:
            raise InvalidInput(f"image format {image.format} is not accepted; send JPEG, PNG, WebP or BMP")
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidInput(f"image has zero size ({width}x{height})")
        if width * height > max_pixels:
            raise InvalidInput(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels} pixels")
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = image.convert("RGB")
    except InvalidInput:
        raise
    except UnidentifiedImageError:
        raise InvalidInput("bytes are not a recognisable image; send a JPEG, PNG, WebP or BMP file") from None
    except (
        OSError,
        SyntaxError,
        ValueError,
        Image.DecompressionBombError,
        Image.DecompressionBombWarning,
    ) as exc:
        raise InvalidInput(f"image could not be decoded (truncated or corrupt?): {exc}") from None
    return cv2.cvtColor(np.asarray(rgb), cv2.COLOR_RGB2BGR)


def encode_jpeg(image_bgr: np.ndarray, quality: int = 95) -> bytes:
    ok, buffer = cv2.imencode(".jpg", image_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return buffer.tobytes()


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


def decode_request_images(
    encoded: list[bytes], *, max_images: int, max_bytes: int, max_pixels: int
) -> list[np.ndarray]:
    """Decodes the images of one request; a bad one fails the whole request, naming which image it was."""
    if not encoded:
        raise InvalidInput("the request holds no images; send at least one")
    if len(encoded) > max_images:
        raise InvalidInput(f"the request holds {len(encoded)} images; the limit is {max_images} per call")
    images = []
    for index, data in enumerate(encoded):
        try:
            images.append(decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels))
        except InvalidInput as exc:
            raise InvalidInput(f"image {index}: {exc}") from None
    return images
