"""Image decoding under limits, and the letterbox, on hand-worked numbers."""

from __future__ import annotations

import io
import struct
import threading
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps
from pydantic import ValidationError

from argus.config import Settings
from argus.errors import InvalidInput, Overloaded
from argus.imaging import (
    ImageHeader,
    ImageLimits,
    PixelBudget,
    check_request_images,
    decode_image,
    decode_request_images,
    letterbox,
    round_up,
    shrink,
)

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
    """libjpeg-turbo refuses it, and Pillow's decode, tried next, names the fault."""
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


REQUEST = ImageLimits(max_images=4, max_bytes=1 << 20, max_pixels=1_000_000, max_request_pixels=2_000_000)


def shape_of(image: np.ndarray) -> tuple[int, ...]:
    return image.shape


def test_request_images_name_the_bad_one_and_the_count_limit() -> None:
    good = encode(Image.new("RGB", (8, 8)), "PNG")
    budget = PixelBudget(REQUEST.max_pixels)
    with pytest.raises(InvalidInput, match="image 1:"):
        decode_request_images([good, b"junk"], REQUEST, budget, shape_of)
    with pytest.raises(InvalidInput, match="5 images; the limit is 4"):
        decode_request_images([good] * 5, REQUEST, budget, shape_of)
    with pytest.raises(InvalidInput, match="no images"):
        decode_request_images([], REQUEST, budget, shape_of)
    assert decode_request_images([good, good], REQUEST, budget, shape_of) == [(8, 8, 3), (8, 8, 3)]


def test_the_request_pixel_budget_is_checked_from_the_headers_before_decoding() -> None:
    """Three headers of 1000x1000 (each within the per-image limit) and no pixel data: the request is refused for
    its 3 Mpx in all, not for the missing data, so nothing was decoded."""
    images = [png_header_only(1000, 1000)] * 3
    with pytest.raises(InvalidInput, match="3 images hold 3000000 pixels in all; the limit is 2000000"):
        decode_request_images(images, REQUEST, PixelBudget(REQUEST.max_pixels), shape_of)
    with pytest.raises(InvalidInput, match="3000000 pixels in all"):
        check_request_images(images, REQUEST)
    assert check_request_images(images[:2], REQUEST) == [ImageHeader("PNG", 1000, 1000)] * 2


def test_request_images_are_decoded_one_at_a_time_within_the_budget() -> None:
    """A budget of exactly one image still serves a request of three: each is decoded, used and let go in turn."""
    data = encode(Image.new("RGB", (100, 100)), "PNG")
    budget = PixelBudget(100 * 100)
    free_while_used = decode_request_images([data] * 3, REQUEST, budget, lambda image: budget.free)
    assert free_while_used == [0, 0, 0]
    assert budget.free == 100 * 100


def test_a_busy_pixel_budget_refuses_as_overloaded() -> None:
    budget = PixelBudget(1000, wait_s=0.05)
    with budget.reserve(800):
        with pytest.raises(Overloaded, match="retry later"), budget.reserve(300):
            pass
        with budget.reserve(200):  # what is left still serves
            assert budget.free == 0
    assert budget.free == 1000


def test_a_waiting_image_gets_the_pixels_returned_by_another() -> None:
    budget = PixelBudget(1000, wait_s=5)
    held = threading.Event()

    def hold_briefly() -> None:
        with budget.reserve(1000):
            held.set()
            time.sleep(0.2)

    thread = threading.Thread(target=hold_briefly)
    thread.start()
    held.wait(5)
    with budget.reserve(1000):
        assert budget.free == 0
    thread.join()


def test_pixel_limits_below_one_image_are_refused() -> None:
    for setting in ("max_request_pixels", "max_pixels_in_flight"):
        with pytest.raises(ValidationError, match=f"ARGUS_{setting.upper()}"):
            Settings(max_image_pixels=1000, **{setting: 999})


def _pillow_decode(data: bytes) -> np.ndarray:
    """How images decoded before 16-bit PNGs were handled: 8-bit images must still decode to the very same pixels."""
    image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    return cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2BGR)


@pytest.mark.parametrize("name", ["obama.jpg", "deepface_img2.jpg", "two_people.jpg"])
def test_eight_bit_photos_decode_to_the_same_pixels_as_before(images_dir: Path, name: str) -> None:
    data = (images_dir / "faces" / name).read_bytes()
    assert np.array_equal(decode_image(data, max_bytes=len(data), max_pixels=1 << 30), _pillow_decode(data))


@pytest.mark.parametrize("mode", ["L", "LA", "P", "RGBA", "CMYK"])
def test_other_eight_bit_modes_decode_as_before(mode: str) -> None:
    image = Image.effect_noise((64, 48), 60).convert(mode)
    data = encode(image, "JPEG" if mode == "CMYK" else "PNG")
    assert np.array_equal(decode_image(data, **LIMITS), _pillow_decode(data))


def sixteen_bit_png(bgr: np.ndarray) -> bytes:
    """The 16-bit PNG of an 8-bit image (each value v as v * 257, i.e. the same brightness)."""
    ok, buffer = cv2.imencode(".png", bgr.astype(np.uint16) * 257)
    assert ok
    return buffer.tobytes()


def test_a_sixteen_bit_grey_png_decodes_to_its_eight_bit_values(images_dir: Path) -> None:
    """Pillow opens it as I;16 and its own conversion clips at 255: the photo came out white."""
    data = (images_dir / "faces" / "obama.jpg").read_bytes()
    grey = cv2.cvtColor(decode_image(data, max_bytes=len(data), max_pixels=1 << 30), cv2.COLOR_BGR2GRAY)
    wide = sixteen_bit_png(grey)
    assert Image.open(io.BytesIO(wide)).mode == "I;16"
    decoded = decode_image(wide, max_bytes=len(wide), max_pixels=1 << 30)
    assert np.array_equal(decoded, cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR))


def test_sixteen_bit_grey_values_are_scaled_not_clipped() -> None:
    ramp = np.array([[0, 128, 129, 257, 32768, 65280, 65535]], dtype=np.uint16)
    decoded = decode_image(cv2.imencode(".png", ramp)[1].tobytes(), **LIMITS)
    assert decoded[0, :, 0].tolist() == [0, 0, 1, 1, 128, 254, 255]


@pytest.mark.parametrize("channels", [3, 4])
def test_sixteen_bit_colour_pngs_decode_to_their_eight_bit_values(images_dir: Path, channels: int) -> None:
    data = (images_dir / "faces" / "biden2.jpg").read_bytes()
    bgr = decode_image(data, max_bytes=len(data), max_pixels=1 << 30)
    source = bgr if channels == 3 else np.dstack([bgr, np.full(bgr.shape[:2], 255, np.uint8)])
    wide = sixteen_bit_png(source)
    assert np.array_equal(decode_image(wide, max_bytes=len(wide), max_pixels=1 << 30), bgr)


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


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_turns_a_jpeg_as_pillow_does(orientation: int) -> None:
    """libjpeg-turbo decodes JPEGs without Pillow, and upright() turns them: each of the eight orientations must
    give Pillow's exif_transpose pixel for pixel (an asymmetric noise image shows any wrong turn or flip)."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    data = encode(Image.effect_noise((64, 40), 80).convert("RGB"), "JPEG", exif=exif)
    assert np.array_equal(decode_image(data, **LIMITS), _pillow_decode(data))


def test_a_grey_jpeg_decodes_as_pillow_does() -> None:
    data = encode(Image.effect_noise((64, 48), 60).convert("L"), "JPEG")
    decoded = decode_image(data, **LIMITS)
    assert decoded.shape == (48, 64, 3)
    assert np.array_equal(decoded, _pillow_decode(data))


def test_a_jpeg_with_stray_bytes_still_decodes_as_pillow_does() -> None:
    """Stray bytes before the end marker are a flaw decoders treat differently; the pixels must still be Pillow's."""
    clean = encode(Image.effect_noise((64, 48), 60).convert("RGB"), "JPEG")
    data = clean[:-2] + b"\x00\x00\x00" + clean[-2:]
    assert np.array_equal(decode_image(data, **LIMITS), _pillow_decode(data))


def test_shrink_by_a_whole_number_averages_each_block() -> None:
    image = np.array([[0, 2, 10, 10], [4, 6, 10, 30], [1, 1, 8, 8], [1, 1, 8, 8]], dtype=np.uint8)[:, :, None]
    image = np.repeat(image, 3, axis=2)
    np.testing.assert_array_equal(shrink(image, (2, 2))[:, :, 0], [[3, 15], [1, 8]])


@pytest.mark.parametrize("size", [(334, 640), (600, 1150), (250, 479), (100, 191)])
def test_shrink_gives_about_inter_areas_pixels_at_any_scale(images_dir: Path, size: tuple[int, int]) -> None:
    photo = cv2.imread(str(images_dir / "faces" / "obama2.jpg"))  # 626x1200
    shrunk = shrink(photo, size)
    assert shrunk.shape == (size[1], size[0], 3) and shrunk.dtype == np.uint8
    area = cv2.resize(photo, size, interpolation=cv2.INTER_AREA)
    assert np.abs(shrunk.astype(float) - area).mean() < 0.5
    flat = np.full_like(photo, 77)
    assert (shrink(flat, size) == 77).all()


def test_shrink_does_not_alias() -> None:
    stripes = np.zeros((100, 626, 3), dtype=np.uint8)
    stripes[:, ::2] = 255  # the finest detail there is: one-pixel stripes, which no smaller image can hold
    assert cv2.resize(stripes, (334, 53), interpolation=cv2.INTER_LINEAR).std() > 60  # bilinear aliases them
    shrunk = shrink(stripes, (334, 53))
    assert shrunk.std() < 12 and abs(float(shrunk.mean()) - 127.5) < 2  # grey, as an eye would see them
