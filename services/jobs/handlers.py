"""What a job is: checking one before it is queued, and running one in a worker.

Checks happen at submit, so a bad job fails the submit with INVALID_ARGUMENT instead of failing in a worker later.
Detection jobs run on the detector's own servicer code; stylization jobs on the Stylizer.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cv2
import numpy as np

from argus.config import Settings
from argus.errors import InvalidInput, shown
from argus.imaging import (
    ImageHeader,
    ImageLimits,
    check_request_images,
    check_request_pixels,
    decode_image,
    read_header,
)
from argus.models.manifest import MANIFEST
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2
from argus.proto.jobs.v1 import jobs_pb2
from argus.services.detector.faces import FaceOptions
from argus.services.detector.objects import ObjectOptions
from argus.services.detector.servicer import face_options, object_options
from argus.services.jobs.store import Kind
from argus.services.stylizer.styles import ARBITRARY, Stylizer

STYLE_PREFIX = "style-"
MAX_OUTPUT_SIDE = 4096
_ENCODINGS = {
    jobs_pb2.IMAGE_FORMAT_UNSPECIFIED: ".jpg",
    jobs_pb2.JPEG: ".jpg",
    jobs_pb2.PNG: ".png",
    jobs_pb2.WEBP: ".webp",
}


def fixed_style_names() -> list[str]:
    """Fixed styles, one network each, as named in the model manifest (style-candy -> candy)."""
    return sorted(name.removeprefix(STYLE_PREFIX) for name in MANIFEST if name.startswith(STYLE_PREFIX))


def job_kind(request: jobs_pb2.SubmitJobRequest) -> Kind:
    which = request.WhichOneof("job")
    if which == "detection":
        return Kind.DETECTION
    if which == "stylization":
        return Kind.STYLIZATION
    raise InvalidInput("the request holds no job: set detection or stylization")


def _decode(image: common_pb2.Image, settings: Settings, what: str) -> np.ndarray:
    try:
        return decode_image(image.data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc}") from None


def _header(image: common_pb2.Image, settings: Settings, what: str) -> ImageHeader:
    try:
        return read_header(image.data, max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc}") from None


def validate(request: jobs_pb2.SubmitJobRequest, settings: Settings) -> Kind:
    """Everything a worker would refuse, refused now. Images are checked from their headers alone (format, size,
    pixels, the request's pixel budget): the API never decodes a pixel, and an image that turns out truncated
    fails its job in the worker, with the reason."""
    kind = job_kind(request)
    if len(request.idempotency_key) > 128:
        raise InvalidInput("idempotency_key is longer than 128 characters")
    if kind is Kind.DETECTION:
        job = request.detection
        check_request_images([image.data for image in job.images], ImageLimits.from_settings(settings))
        object_options(job.options, list(job.class_names), list(job.class_ids), ObjectOptions.from_settings(settings))
        face_options(job.options, FaceOptions.from_settings(settings))
        return kind
    job = request.stylization
    headers = [_header(job.content, settings, "content image")]
    which = job.WhichOneof("style")
    if which == "style_name":
        if job.style_name not in fixed_style_names():
            raise InvalidInput(f"unknown style {shown(job.style_name)}; known styles: {', '.join(fixed_style_names())}")
    elif which == "style_image":
        headers.append(_header(job.style_image, settings, "style image"))
    else:
        raise InvalidInput("choose a style: style_name (see ListStyles) or style_image")
    check_request_pixels(headers, ImageLimits.from_settings(settings))
    if job.HasField("strength") and not (math.isfinite(job.strength) and 0.0 <= job.strength <= 1.0):
        raise InvalidInput(f"strength must be between 0 and 1; got {job.strength}")
    if not 0 <= job.max_size <= MAX_OUTPUT_SIDE:
        raise InvalidInput(f"max_size must be between 1 and {MAX_OUTPUT_SIDE} pixels, or 0 for the content's size")
    if job.output_format not in _ENCODINGS:
        raise InvalidInput(f"unknown output format {job.output_format}")
    return kind


Progress = Callable[[float], None]


class DetectionHandler:
    """Runs detection jobs through the detector servicer's own code (same options, same results)."""

    def __init__(self, servicer: object) -> None:
        self.servicer = servicer

    def __call__(self, request_bytes: bytes, progress: Progress) -> bytes:
        job = jobs_pb2.SubmitJobRequest.FromString(request_bytes).detection
        result = jobs_pb2.DetectionResult()
        wants_objects = job.objects or not job.faces
        progress(0.05)
        if wants_objects:
            request = detector_pb2.DetectObjectsRequest(
                images=job.images, options=job.options, class_names=job.class_names, class_ids=job.class_ids
            )
            result.objects.CopyFrom(self.servicer.DetectObjects(request, None))  # type: ignore[attr-defined]
            progress(0.5 if job.faces else 0.95)
        if job.faces:
            request = detector_pb2.DetectFacesRequest(images=job.images, options=job.options)
            result.faces.CopyFrom(self.servicer.DetectFaces(request, None))  # type: ignore[attr-defined]
            progress(0.95)
        return result.SerializeToString()


class StylizationHandler:
    def __init__(self, stylizer: Stylizer, settings: Settings) -> None:
        self.stylizer = stylizer
        self.settings = settings
        self.models = {style.name: style.model for style in stylizer.styles()}

    def __call__(self, request_bytes: bytes, progress: Progress) -> bytes:
        job = jobs_pb2.SubmitJobRequest.FromString(request_bytes).stylization
        content = _decode(job.content, self.settings, "content image")
        progress(0.05)
        style_image = _decode(job.style_image, self.settings, "style image") if job.HasField("style_image") else None
        output = self.stylizer.stylize(
            content,
            style=job.style_name or None,
            style_image_bgr=style_image,
            strength=job.strength if job.HasField("strength") else 1.0,
            max_side=job.max_size or None,
            progress=lambda fraction: progress(0.05 + 0.85 * fraction),
        )
        ok, encoded = cv2.imencode(_ENCODINGS[job.output_format], output)
        if not ok:
            raise RuntimeError("could not encode the stylized image")
        progress(0.95)
        model = self.models[job.style_name or ARBITRARY]
        return jobs_pb2.StylizationResult(
            image=common_pb2.Image(data=encoded.tobytes(), name=f"stylized{_ENCODINGS[job.output_format]}"),
            size=common_pb2.ImageSize(width=output.shape[1], height=output.shape[0]),
            model=model,
        ).SerializeToString()
