"""Image decoding under limits, and the letterbox, on hand-worked numbers."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from argus.errors import InvalidInput
from argus.imaging import decode_image, decode_request_images, letterbox, round_up

LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1_000_000}


def encode(image: Image.Image, fmt: str, **kwargs: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height; the pixel data is absent."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP"])
def test_accepted_formats_decode_to_bgr(fmt: str) -> None:
    rgb = Image.new("RGB", (40, 30), (255, 0, 0))
    decoded = decode_image(encode(rgb, fmt), **LIMITS)
    assert decoded.shape == (30, 40, 3)
    assert decoded.dtype == np.uint8
    blue, green, red = decoded[15, 20].astype(int)
    assert red > 200 and green < 40 and blue < 40


def test_exif_orientation_is_applied() -> None:
    image = Image.new("RGB", (40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    decoded = decode_image(encode(image, "JPEG", exif=exif), **LIMITS)
    assert decoded.shape[:2] == (40, 20)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a recognisable image"),
        (png_header_only(0, 10), "image"),
    ],
)
def test_bad_bytes_are_invalid_input(data: bytes, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_image(data, **LIMITS)


def test_truncated_jpeg_is_invalid_input() -> None:
    data = encode(Image.effect_noise((200, 200), 50).convert("RGB"), "JPEG")
    with pytest.raises(InvalidInput, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], **LIMITS)


def test_decompression_bomb_is_refused_from_the_header() -> None:
    with pytest.raises(InvalidInput, match="100000000 pixels; the limit is 1000000"):
        decode_image(png_header_only(10_000, 10_000), **LIMITS)


def test_oversize_bytes_are_refused() -> None:
    with pytest.raises(InvalidInput, match="the limit is 100 bytes"):
        decode_image(b"x" * 101, max_bytes=100, max_pixels=10)


def test_unaccepted_format_is_named() -> None:
    with pytest.raises(InvalidInput, match="GIF is not accepted"):
        decode_image(encode(Image.new("RGB", (4, 4)), "GIF"), **LIMITS)


def test_request_images_name_the_bad_one_and_the_count_limit() -> None:
    good = encode(Image.new("RGB", (8, 8)), "PNG")
    with pytest.raises(InvalidInput, match="image 1:"):
        decode_request_images([good, b"junk"], max_images=4, **LIMITS)
    with pytest.raises(InvalidInput, match="5 images; the limit is 4"):
        decode_request_images([good] * 5, max_images=4, **LIMITS)
    with pytest.raises(InvalidInput, match="no images"):
        decode_request_images([], max_images=4, **LIMITS)


def test_letterbox_scales_to_fit_and_pads_right_and_bottom() -> None:
    image = np.full((100, 200, 3), 7, dtype=np.uint8)
    boxed = letterbox(image, 416, 416, pad_value=114)
    assert boxed.scale == pytest.approx(2.08)  # min(416/100, 416/200)
    assert boxed.image.shape == (416, 416, 3)
    assert (boxed.image[:208, :416] == 7).all()  # 100 * 2.08 = 208 rows of image
    assert (boxed.image[208:] == 114).all()


def test_letterbox_of_a_tall_image() -> None:
    boxed = letterbox(np.zeros((640, 320, 3), dtype=np.uint8), 416, 416, pad_value=114)
    assert boxed.scale == pytest.approx(0.65)
    assert (boxed.image[:, :208] == 0).all()
    assert (boxed.image[:, 208:] == 114).all()


def test_round_up() -> None:
    assert [round_up(v, 32) for v in (1, 32, 33, 661)] == [32, 32, 64, 672]
