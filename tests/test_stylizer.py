"""The stylizer: size rules and style-vector arithmetic on hand-worked numbers, then every style on a real photo."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from argus.config import Settings
from argus.errors import InvalidInput
from argus.models.manifest import FAST_STYLES, MANIFEST
from argus.models.store import ModelStore
from argus.services.stylizer.styles import (
    DEFAULT_MAX_SIDE,
    Stylizer,
    blend_style,
    centre_crop_square,
    target_size,
    working_size,
)

FIXED = ["candy", "mosaic", "rain-princess", "udnie"]

# --- pure helpers ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("height", "width", "max_side", "expected"),
    [
        (480, 640, 1024, (480, 640)),  # fits and is already a multiple of 4
        (481, 642, 1024, (480, 644)),  # 120.25 -> 120 * 4; 160.5 rounds half up -> 161 * 4
        (1000, 3000, 1024, (340, 1024)),  # scale 1024/3000: 341.33 -> 341 -> 85.25 * 4 -> 340
        (200, 100, 50, (52, 24)),  # scale 1/4: 50 x 25 -> 12.5 -> 13 * 4 = 52; 6.25 -> 6 * 4 = 24
        (10, 10, 1024, (16, 16)),  # never below the networks' minimum: upscaled to 16
        (3, 2000, 1024, (16, 1024)),  # a sliver: 1.536 -> 2 -> the minimum 16
    ],
)
def test_working_size(height: int, width: int, max_side: int, expected: tuple[int, int]) -> None:
    assert working_size(height, width, max_side) == expected


def test_working_size_other_multiples() -> None:
    assert working_size(100, 70, 1024, multiple=32, minimum=1) == (96, 64)  # 3.125 -> 3; 2.1875 -> 2
    assert working_size(100, 70, 1024, multiple=8, minimum=20) == (104, 72)  # 12.5 -> 13; 8.75 -> 9
    assert working_size(10, 70, 1024, multiple=8, minimum=20) == (24, 72)  # the minimum, rounded up to 24


@pytest.mark.parametrize(
    ("height", "width", "max_side", "expected"),
    [
        (480, 640, 1024, (480, 640)),  # never scaled up
        (1000, 3000, 1024, (341, 1024)),  # 341.33 -> 341
        (181, 242, 100, (75, 100)),  # 181 * 100/242 = 74.79 -> 75
        (3, 2000, 1024, (2, 1024)),
        (1, 5000, 10, (1, 10)),  # 0.002 would round to 0: kept at 1 pixel
    ],
)
def test_target_size(height: int, width: int, max_side: int, expected: tuple[int, int]) -> None:
    assert target_size(height, width, max_side) == expected


def test_centre_crop_square() -> None:
    wide = np.arange(4 * 7).reshape(4, 7)
    assert centre_crop_square(wide).tolist() == wide[:, 1:5].tolist()  # margin 3: 1 left, 2 right
    tall = np.arange(6 * 2 * 3).reshape(6, 2, 3)
    assert centre_crop_square(tall).tolist() == tall[2:4].tolist()
    square = np.zeros((5, 5, 3))
    assert centre_crop_square(square).shape == (5, 5, 3)


def test_blend_style() -> None:
    style, content = np.array([1.0, 0.0, 4.0]), np.array([0.0, 1.0, 0.0])
    assert blend_style(style, content, 0.25).tolist() == [0.25, 0.75, 1.0]
    assert blend_style(style, content, 1.0).tolist() == style.tolist()
    assert blend_style(style, content, 0.0).tolist() == content.tolist()
    for bad in (1.5, -0.1, float("nan")):
        with pytest.raises(InvalidInput, match="strength must be between 0 and 1"):
            blend_style(style, content, bad)


# --- the models -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stylizer(store: ModelStore, settings: Settings) -> Stylizer:
    return Stylizer(store, settings)


@pytest.fixture(scope="module")
def content(images_dir: Path) -> np.ndarray:
    """amber.jpg cut to 4:3 and shrunk to 242x181: small, and neither side a multiple of 4."""
    amber = cv2.imread(str(images_dir / "style/amber.jpg"))
    height = amber.shape[0] * 3 // 4
    return cv2.resize(amber[:height], (242, 181), interpolation=cv2.INTER_AREA)


def read(images_dir: Path, name: str, max_side: int = 256) -> np.ndarray:
    image = cv2.imread(str(images_dir / "style" / name))
    scale = max_side / max(image.shape[:2])
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.float32) - b.astype(np.float32)).mean())


def colour_stats(image: np.ndarray) -> np.ndarray:
    pixels = image.reshape(-1, 3).astype(np.float64)
    return np.concatenate([pixels.mean(axis=0), pixels.std(axis=0)])


def test_styles_lists_every_style_with_its_licence(stylizer: Stylizer) -> None:
    styles = {info.name: info for info in stylizer.styles()}
    assert list(styles) == [*FIXED, "arbitrary"]
    assert {styles[name].kind for name in FIXED} == {"fixed"}
    assert styles["candy"].model == MANIFEST["style-candy"].ref
    assert "unclear" in styles["udnie"].licence
    assert styles["arbitrary"].kind == "arbitrary" and styles["arbitrary"].licence == "Apache-2.0"
    assert (
        "magenta-style-predict@" in styles["arbitrary"].model and "magenta-style-transfer@" in styles["arbitrary"].model
    )
    assert {model.spec.name for model in stylizer.models} >= {spec.name for spec in FAST_STYLES}
    assert {model.provider for model in stylizer.models} == {"CPUExecutionProvider"}


@pytest.mark.parametrize("style", FIXED)
def test_each_fixed_style_keeps_the_size_and_changes_the_image(
    stylizer: Stylizer, content: np.ndarray, style: str
) -> None:
    out = stylizer.stylize(content, style=style)
    assert out.shape == content.shape and out.dtype == np.uint8
    assert mean_abs_diff(out, content) > 15  # measured 28 (candy) to 54 (rain-princess) on amber


def test_max_side_keeps_the_aspect_ratio(stylizer: Stylizer, content: np.ndarray) -> None:
    assert stylizer.stylize(content, style="mosaic", max_side=100).shape == (75, 100, 3)  # 181 x 100/242 = 74.8
    assert stylizer.stylize(content, style="mosaic", max_side=1000).shape == content.shape  # never scaled up
    tall = np.ascontiguousarray(content.transpose(1, 0, 2))
    arbitrary_tall = stylizer.stylize(tall, style_image_bgr=content, max_side=50)
    assert arbitrary_tall.shape == (50, 37, 3)  # 181 x 50/242 = 37.4


def test_the_default_cap_applies_even_when_more_is_asked(stylizer: Stylizer, images_dir: Path) -> None:
    big = read(images_dir, "amber.jpg", max_side=DEFAULT_MAX_SIDE + 36)[:, : DEFAULT_MAX_SIDE // 2]
    out = stylizer.stylize(big, style_image_bgr=big, max_side=5000)
    assert out.shape == (DEFAULT_MAX_SIDE, round(big.shape[1] * DEFAULT_MAX_SIDE / big.shape[0]), 3)


def test_fixed_style_strength_blends_with_the_content(stylizer: Stylizer, content: np.ndarray) -> None:
    full = stylizer.stylize(content, style="rain-princess", strength=1.0)
    half = stylizer.stylize(content, style="rain-princess", strength=0.5)
    none = stylizer.stylize(content, style="rain-princess", strength=0.0)
    assert np.array_equal(none, content)
    assert mean_abs_diff(none, content) < mean_abs_diff(half, content) < mean_abs_diff(full, content)


@pytest.mark.parametrize("style_name", ["candy.jpg", "mosaic.jpg"])
def test_arbitrary_style_moves_the_colours_toward_the_style_image(
    stylizer: Stylizer, content: np.ndarray, images_dir: Path, style_name: str
) -> None:
    style_image = read(images_dir, style_name)
    seen: list[float] = []
    out = stylizer.stylize(content, style_image_bgr=style_image, progress=seen.append)
    assert out.shape == content.shape and out.dtype == np.uint8
    assert mean_abs_diff(out, content) > 25  # measured 55 (candy) and 62 (mosaic)
    target = colour_stats(style_image)
    # Measured on amber: candy 26.8 -> 13.5, mosaic 61.9 -> 16.9.
    assert np.linalg.norm(colour_stats(out) - target) < 0.8 * np.linalg.norm(colour_stats(content) - target)
    assert seen[0] == 0.0 and seen[-1] == 1.0 and seen == sorted(seen) and len(seen) >= 4

    weak = stylizer.stylize(content, style_image_bgr=style_image, strength=0.0)
    assert mean_abs_diff(weak, content) < mean_abs_diff(out, content)


def test_tiny_images_still_work(stylizer: Stylizer) -> None:
    dot = np.full((3, 5, 3), 200, dtype=np.uint8)
    assert stylizer.stylize(dot, style="udnie").shape == (3, 5, 3)
    assert stylizer.stylize(dot, style_image_bgr=dot).shape == (3, 5, 3)


def test_progress_can_cancel(stylizer: Stylizer, content: np.ndarray) -> None:
    class Cancelled(Exception):
        pass

    def cancel(fraction: float) -> None:
        if fraction > 0:
            raise Cancelled

    with pytest.raises(Cancelled):
        stylizer.stylize(content, style="candy", progress=cancel)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"style": "van-gogh"}, r"unknown style 'van-gogh'; known styles: candy, mosaic, rain-princess, udnie"),
        ({}, "give exactly one of a style name"),
        ({"style": "candy", "style_image_bgr": "IMAGE"}, "exactly one .* not both"),
        ({"style": "candy", "strength": 1.5}, "strength must be between 0 and 1"),
        ({"style_image_bgr": "IMAGE", "strength": -0.5}, "strength must be between 0 and 1"),
        ({"style": "arbitrary"}, "needs a style image"),
        ({"style": "candy", "max_side": 0}, "max_side must be a positive"),
        ({"style_image_bgr": np.zeros((8, 8), dtype=np.uint8)}, "style image must be an HxWx3 uint8"),
    ],
)
def test_bad_requests_are_refused(
    stylizer: Stylizer, content: np.ndarray, kwargs: dict[str, object], message: str
) -> None:
    kwargs = {key: content if isinstance(value, str) and value == "IMAGE" else value for key, value in kwargs.items()}
    with pytest.raises(InvalidInput, match=message):
        stylizer.stylize(content, **kwargs)  # type: ignore[arg-type]


def test_bad_content_is_refused(stylizer: Stylizer, content: np.ndarray) -> None:
    with pytest.raises(InvalidInput, match="content image must be an HxWx3 uint8"):
        stylizer.stylize(content.astype(np.float32), style="candy")
    with pytest.raises(InvalidInput, match="content image is empty"):
        stylizer.stylize(content[:0], style="candy")
