"""Neural style transfer: four fixed styles (one small network each) and an arbitrary style (Magenta: any style
image, with a strength knob). BGR uint8 images in and out; the networks see RGB at a multiple-of-4 working size.

All six networks are loaded and warmed up when the Stylizer is made, not on first use: together they are about
17 MB and load in well under a second, a missing or corrupt file then fails the worker at start (FAILED_PRECONDITION
with instructions) instead of failing a job that was already accepted, and the first job is not slowed by loading.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput, shown
from argus.models.manifest import FAST_STYLES, MAGENTA_STYLE_PREDICT, MAGENTA_STYLE_TRANSFER, ModelSpec
from argus.models.runtime import LoadedSession, OnnxModel
from argus.models.store import ModelStore

DEFAULT_MAX_SIDE = 1024  # the longest side a stylised image gets; callers may ask for less, never more
MULTIPLE = 4  # the networks downsample twice by 2, so H and W must be multiples of 4
MIN_WORKING_SIDE = 16  # smaller inputs break the networks' reflect padding; tiny images are upscaled to this
STYLE_INPUT_SIDE = 256  # the Magenta style predictor was trained on 256x256 crops
BOTTLENECK_SHAPE = (1, 1, 1, 100)
ARBITRARY = "arbitrary"  # the name styles() gives the Magenta model; it is used with a style image, not by name


@dataclass(frozen=True)
class StyleInfo:
    name: str  # what `stylize(style=...)` takes; "arbitrary" for the style-image model
    kind: str  # "fixed" or "arbitrary"
    model: str  # the model ref(s) that do the work
    licence: str


def _style_name(spec: ModelSpec) -> str:
    return spec.name.removeprefix("style-")  # the manifest names a fixed style's network style-<name>


# Every style there is, from the model manifest alone: the jobs API lists and checks styles without loading a model.
STYLES: tuple[StyleInfo, ...] = (
    *(StyleInfo(_style_name(spec), "fixed", spec.ref, spec.licence) for spec in FAST_STYLES),
    StyleInfo(
        ARBITRARY,
        "arbitrary",
        f"{MAGENTA_STYLE_PREDICT.ref}+{MAGENTA_STYLE_TRANSFER.ref}",
        MAGENTA_STYLE_TRANSFER.licence,
    ),
)
FIXED_STYLES = tuple(style.name for style in STYLES if style.kind == "fixed")


def check_style_name(name: str) -> None:
    """InvalidInput unless `name` is a fixed style; the arbitrary style is asked for with a style image instead."""
    if name == ARBITRARY:
        raise InvalidInput("the arbitrary style needs a style image instead of a style name")
    if name not in FIXED_STYLES:
        raise InvalidInput(
            f"unknown style {shown(name)}; known styles: {', '.join(FIXED_STYLES)} (or send a style image)"
        )


def check_strength(strength: float) -> None:
    if not 0.0 <= strength <= 1.0:  # also refuses NaN
        raise InvalidInput(f"strength must be between 0 and 1 (1 = full style, 0 = the content's own), not {strength}")


# --- pure helpers ---------------------------------------------------------------------------------------------------


def _half_up(value: float) -> int:
    return int(np.floor(value + 0.5))


def target_size(height: int, width: int, max_side: int) -> tuple[int, int]:
    """The output size: the image scaled down (never up) so its longer side is at most max_side, rounded."""
    scale = min(1.0, max_side / max(height, width))
    return max(1, _half_up(height * scale)), max(1, _half_up(width * scale))


def working_size(
    height: int, width: int, max_side: int, multiple: int = MULTIPLE, minimum: int = MIN_WORKING_SIDE
) -> tuple[int, int]:
    """The size the network runs at: target_size rounded to the nearest multiple (halves round up), at least
    `minimum` (itself rounded up to a multiple). The result is resized back to target_size afterwards, so the small
    change of aspect ratio here never reaches the output."""
    floor = -(-minimum // multiple) * multiple
    out_h, out_w = target_size(height, width, max_side)
    return max(floor, multiple * _half_up(out_h / multiple)), max(floor, multiple * _half_up(out_w / multiple))


def centre_crop_square(image: np.ndarray) -> np.ndarray:
    """The largest centred square of an HxW(xC) image; when the margin is odd the extra pixel is cut at the end."""
    height, width = image.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    return image[top : top + side, left : left + side]


def blend_style(style_vec: np.ndarray, content_vec: np.ndarray, strength: float) -> np.ndarray:
    """Magenta's strength knob: strength * style + (1 - strength) * content, on the predicted style vectors."""
    check_strength(strength)
    return (strength * style_vec + (1.0 - strength) * content_vec).astype(np.float32)


def _check_image(image: object, what: str) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        shape = getattr(image, "shape", None)
        dtype = getattr(image, "dtype", type(image).__name__)
        raise InvalidInput(f"{what} must be an HxWx3 uint8 BGR image, got shape {shape} of {dtype}")
    if image.shape[0] == 0 or image.shape[1] == 0:
        raise InvalidInput(f"{what} is empty ({image.shape[1]}x{image.shape[0]})")
    return image


def _resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    shrinking = height * width < image.shape[0] * image.shape[1]
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


# --- models ---------------------------------------------------------------------------------------------------------


class FastStyleModel(OnnxModel):
    """One fixed style: RGB 0-255 NCHW in, RGB roughly 0-255 out (clip it). The spec names the style."""

    def __init__(self, store: ModelStore, settings: Settings, spec: ModelSpec) -> None:
        super().__init__(store, settings, spec=spec)

    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, 3, 32, 32), dtype=np.float32)


class MagentaPredictModel(OnnxModel):
    """Style image (NHWC RGB 0-1, 256x256) to its 100-d style vector, shaped [1,1,1,100]."""

    spec = MAGENTA_STYLE_PREDICT

    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, STYLE_INPUT_SIDE, STYLE_INPUT_SIDE, 3), dtype=np.float32)


class MagentaTransferModel(OnnxModel):
    """Content image (NHWC RGB 0-1) plus a style vector to the stylised image (NHWC RGB 0-1)."""

    spec = MAGENTA_STYLE_TRANSFER

    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, 32, 32, 3), dtype=np.float32)

    def _predict(
        self, loaded: LoadedSession, batch: np.ndarray, bottleneck: np.ndarray | None = None
    ) -> list[np.ndarray]:
        """The network has two inputs, the base class feeds one; without a style vector (the warm-up) it gets zeros."""
        if bottleneck is None:
            bottleneck = np.zeros(BOTTLENECK_SHAPE, dtype=np.float32)
        content, style = loaded.input_names
        feed = {content: batch, style: bottleneck.reshape(BOTTLENECK_SHAPE).astype(np.float32)}
        outputs: list[np.ndarray] = loaded.session.run(loaded.output_names, feed)
        return outputs


# --- the domain class -----------------------------------------------------------------------------------------------


class Stylizer:
    """Stylises BGR images with a named fixed style or with any style image. Knows nothing about gRPC; safe to call
    from several threads at once (ONNX Runtime sessions are)."""

    def __init__(self, store: ModelStore, settings: Settings) -> None:
        self.fixed: dict[str, FastStyleModel] = {
            _style_name(spec): FastStyleModel(store, settings, spec) for spec in FAST_STYLES
        }
        self.predictor = MagentaPredictModel(store, settings)
        self.transfer = MagentaTransferModel(store, settings)
        for model in self.models:  # at start, as the module says: a bad file fails the worker, not a job
            model.load()

    @property
    def models(self) -> list[OnnxModel]:
        """Every loaded model, e.g. to report refs and the execution provider each one runs on."""
        return [*self.fixed.values(), self.predictor, self.transfer]

    def styles(self) -> list[StyleInfo]:
        return list(STYLES)

    def stylize(
        self,
        content_bgr: np.ndarray,
        *,
        style: str | None = None,
        style_image_bgr: np.ndarray | None = None,
        strength: float = 1.0,
        max_side: int | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> np.ndarray:
        """The content image in a fixed `style` or in the style of `style_image_bgr` (exactly one of the two).

        The result is the content scaled down (never up) so its longer side is at most max_side and at most
        DEFAULT_MAX_SIDE, with the aspect ratio kept: each side is the input side times the same factor, rounded.
        `strength` (0-1) for a style image blends the style vectors of the style and of the content, as Magenta
        intends; for a fixed style it blends the stylised pixels with the content's. `progress` is called with
        0.0 ... 1.0 as the work advances; an exception it raises aborts the call (a way to cancel).
        """
        report = progress or (lambda _fraction: None)
        model = self._check_request(style, style_image_bgr, strength, max_side)
        content_bgr = _check_image(content_bgr, "the content image")
        report(0.0)
        cap = DEFAULT_MAX_SIDE if max_side is None else min(max_side, DEFAULT_MAX_SIDE)
        height, width = content_bgr.shape[:2]
        out_h, out_w = target_size(height, width, cap)
        work_h, work_w = working_size(height, width, cap)
        content_rgb = _resize(content_bgr, work_h, work_w)[:, :, ::-1].astype(np.float32)
        report(0.1)
        if model is not None:
            stylised = self._fixed(model, content_rgb)
        else:
            assert style_image_bgr is not None
            bottleneck = self._style_vector(content_bgr, style_image_bgr, strength)
            report(0.3)
            stylised = self._arbitrary(content_rgb, bottleneck)
        report(0.9)
        result: np.ndarray = _resize(np.ascontiguousarray(np.clip(stylised[:, :, ::-1], 0.0, 255.0)), out_h, out_w)
        if model is not None and strength < 1.0:  # blended at the output size, so strength 0 gives the content back
            result = strength * result + (1.0 - strength) * _resize(content_bgr, out_h, out_w).astype(np.float32)
        report(1.0)
        rounded: np.ndarray = np.rint(np.clip(result, 0.0, 255.0))
        return rounded.astype(np.uint8)

    def _check_request(
        self, style: str | None, style_image_bgr: np.ndarray | None, strength: float, max_side: int | None
    ) -> FastStyleModel | None:
        if (style is None) == (style_image_bgr is None):
            raise InvalidInput(
                f"give exactly one of a style name ({', '.join(FIXED_STYLES)}) or a style image for the arbitrary "
                "style" + (", not both" if style is not None else "")
            )
        check_strength(strength)
        if max_side is not None and max_side < 1:
            raise InvalidInput(f"max_side must be a positive number of pixels, not {max_side}")
        if style is None:
            _check_image(style_image_bgr, "the style image")
            return None
        check_style_name(style)
        return self.fixed[style]

    def _fixed(self, model: FastStyleModel, content_rgb: np.ndarray) -> np.ndarray:
        """RGB 0-255 in, RGB roughly 0-255 out (clipped by the caller)."""
        batch = np.ascontiguousarray(content_rgb.transpose(2, 0, 1)[None])
        stylised: np.ndarray = model.run(batch)[0][0]
        return stylised.transpose(1, 2, 0)

    def _predict(self, image_bgr: np.ndarray) -> np.ndarray:
        square = _resize(centre_crop_square(image_bgr), STYLE_INPUT_SIDE, STYLE_INPUT_SIDE)
        batch = np.ascontiguousarray(square[:, :, ::-1][None], dtype=np.float32) / 255.0
        return self.predictor.run(batch)[0]

    def _style_vector(self, content_bgr: np.ndarray, style_bgr: np.ndarray, strength: float) -> np.ndarray:
        """b = strength * predict(style) + (1 - strength) * predict(content), each from a centred 256x256 square;
        a term with weight 0 is not computed."""
        zeros = np.zeros(BOTTLENECK_SHAPE, dtype=np.float32)
        style_vec = self._predict(style_bgr) if strength > 0.0 else zeros
        content_vec = self._predict(content_bgr) if strength < 1.0 else zeros
        return blend_style(style_vec, content_vec, strength)

    def _arbitrary(self, content_rgb: np.ndarray, bottleneck: np.ndarray) -> np.ndarray:
        """RGB 0-255 in, RGB 0-255 out: the network itself works in 0-1."""
        batch = np.ascontiguousarray(content_rgb[None]) / 255.0
        stylised: np.ndarray = self.transfer.run(batch, bottleneck)[0][0]
        return stylised * 255.0
