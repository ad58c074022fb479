"""The jobs API's request checks, all in one place: everything a worker would refuse is refused at submit, so a bad
job fails the submit with INVALID_ARGUMENT instead of failing in a worker later, and a listing's filters and page
size are checked before Redis is read.

Images are checked from their headers alone (format, size, pixels, the request's pixel budget): the API never
decodes a pixel, and an image that turns out truncated fails its job in the worker, with the reason.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import IntEnum
from typing import TypeVar

from argus.config import Settings
from argus.errors import InvalidInput
from argus.imaging import ImageHeader, ImageLimits, check_request_images, check_request_pixels, read_header
from argus.paging import page_size
from argus.proto.common.v1 import common_pb2
from argus.proto.jobs.v1 import jobs_pb2
from argus.services.detector.faces import FaceOptions
from argus.services.detector.objects import ObjectOptions
from argus.services.detector.options import face_options, object_options
from argus.services.jobs.store import Kind, State
from argus.services.stylizer.styles import check_strength, check_style_name

MAX_IDEMPOTENCY_KEY = 128  # characters
MAX_OUTPUT_SIDE = 4096  # pixels: the longest side a stylization job may ask for
OUTPUT_SUFFIXES = {  # the output formats a stylization job may ask for, by the suffix OpenCV encodes each with
    jobs_pb2.IMAGE_FORMAT_UNSPECIFIED: ".jpg",
    jobs_pb2.JPEG: ".jpg",
    jobs_pb2.PNG: ".png",
    jobs_pb2.WEBP: ".webp",
}

E = TypeVar("E", bound=IntEnum)


@contextmanager
def about_image(what: str) -> Iterator[None]:
    """An image's InvalidInput says which of the request's images it is about."""
    try:
        yield
    except InvalidInput as exc:
        raise InvalidInput(f"{what}: {exc}") from None


def job_kind(request: jobs_pb2.SubmitJobRequest) -> Kind:
    which = request.WhichOneof("job")
    if which == "detection":
        return Kind.DETECTION
    if which == "stylization":
        return Kind.STYLIZATION
    raise InvalidInput("the request holds no job: set detection or stylization")


def validate(request: jobs_pb2.SubmitJobRequest, settings: Settings) -> Kind:
    """The kind of a job a worker will accept; InvalidInput says what it would refuse."""
    kind = job_kind(request)
    if len(request.idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidInput(f"idempotency_key is longer than {MAX_IDEMPOTENCY_KEY} characters")
    if kind is Kind.DETECTION:
        _check_detection(request.detection, settings)
    else:
        _check_stylization(request.stylization, settings)
    return kind


def _check_detection(job: jobs_pb2.DetectionJob, settings: Settings) -> None:
    check_request_images([image.data for image in job.images], ImageLimits.from_settings(settings))
    object_options(job.options, job.class_names, job.class_ids, ObjectOptions.from_settings(settings))
    face_options(job.options, FaceOptions.from_settings(settings))


def _check_stylization(job: jobs_pb2.StylizationJob, settings: Settings) -> None:
    limits = ImageLimits.from_settings(settings)
    headers = [_header(job.content, "content image", limits)]
    which = job.WhichOneof("style")
    if which == "style_name":
        check_style_name(job.style_name)
    elif which == "style_image":
        headers.append(_header(job.style_image, "style image", limits))
    else:
        raise InvalidInput("choose a style: style_name (see ListStyles) or style_image")
    check_request_pixels(headers, limits)
    if job.HasField("strength"):
        check_strength(job.strength)
    if not 0 <= job.max_size <= MAX_OUTPUT_SIDE:
        raise InvalidInput(f"max_size must be between 1 and {MAX_OUTPUT_SIDE} pixels, or 0 for the content's size")
    if job.output_format not in OUTPUT_SUFFIXES:
        raise InvalidInput(f"unknown output format {job.output_format}")


def _header(image: common_pb2.Image, what: str, limits: ImageLimits) -> ImageHeader:
    with about_image(what):
        return read_header(image.data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels)


@dataclass(frozen=True)
class ListQuery:
    """A listing's checked filters (None: any) and page size."""

    state: State | None
    kind: Kind | None
    page_size: int


def list_query(request: jobs_pb2.ListJobsRequest) -> ListQuery:
    state = _member(State, request.state, "job state")
    kind = _member(Kind, request.kind, "job kind")
    return ListQuery(state, kind, page_size(request.page_size))


def _member(enum: type[E], value: int, what: str) -> E | None:
    """The enum member with the proto enum's number (the numbers match: tests/test_jobs_enums.py); None for 0, the
    proto's UNSPECIFIED; InvalidInput for a number neither knows."""
    if not value:
        return None
    try:
        return enum(value)
    except ValueError:
        raise InvalidInput(f"unknown {what} {value}") from None
