"""Running a job in a worker: its stored request in, its serialised result out.

The request was checked at submit (services/jobs/requests.py). Detection jobs run on the detector's facade, the
same code and options as the DetectorService; stylization jobs on the Stylizer.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from argus.config import Settings
from argus.imaging import decode_image
from argus.proto.common.v1 import common_pb2
from argus.proto.jobs.v1 import jobs_pb2
from argus.services.detector.options import face_options, object_options
from argus.services.detector.responses import faces_response, objects_response
from argus.services.detector.service import Detector
from argus.services.jobs.requests import OUTPUT_SUFFIXES, about_image
from argus.services.stylizer.styles import ARBITRARY, Stylizer

Progress = Callable[[float], None]


class DetectionHandler:
    """Runs detection jobs through the Detector facade: the DetectorService's options and results."""

    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def __call__(self, request_bytes: bytes, progress: Progress) -> bytes:
        job = jobs_pb2.SubmitJobRequest.FromString(request_bytes).detection
        images = [image.data for image in job.images]
        result = jobs_pb2.DetectionResult()
        wants_objects = job.objects or not job.faces
        progress(0.05)
        if wants_objects:
            options = object_options(job.options, job.class_names, job.class_ids, self.detector.object_defaults)
            found = self.detector.detect_objects(images, options)
            result.objects.CopyFrom(objects_response(self.detector.object_model, job.images, found))
            progress(0.5 if job.faces else 0.95)
        if job.faces:
            faces = self.detector.detect_faces(images, face_options(job.options, self.detector.face_defaults))
            result.faces.CopyFrom(faces_response(self.detector.face_model, job.images, faces))
            progress(0.95)
        return result.SerializeToString()


class StylizationHandler:
    def __init__(self, stylizer: Stylizer, settings: Settings) -> None:
        self.stylizer = stylizer
        self.settings = settings
        self.models = {style.name: style.model for style in stylizer.styles()}

    def _decode(self, image: common_pb2.Image, what: str) -> np.ndarray:
        with about_image(what):
            return decode_image(
                image.data, max_bytes=self.settings.max_image_bytes, max_pixels=self.settings.max_image_pixels
            )

    def __call__(self, request_bytes: bytes, progress: Progress) -> bytes:
        job = jobs_pb2.SubmitJobRequest.FromString(request_bytes).stylization
        content = self._decode(job.content, "content image")
        progress(0.05)
        style_image = self._decode(job.style_image, "style image") if job.HasField("style_image") else None
        output = self.stylizer.stylize(
            content,
            style=job.style_name or None,
            style_image_bgr=style_image,
            strength=job.strength if job.HasField("strength") else 1.0,
            max_side=job.max_size or None,
            progress=lambda fraction: progress(0.05 + 0.85 * fraction),
        )
        suffix = OUTPUT_SUFFIXES[job.output_format]
        ok, encoded = cv2.imencode(suffix, output)
        if not ok:
            raise RuntimeError("could not encode the stylized image")
        progress(0.95)
        return jobs_pb2.StylizationResult(
            image=common_pb2.Image(data=encoded.tobytes(), name=f"stylized{suffix}"),
            size=common_pb2.ImageSize(width=output.shape[1], height=output.shape[0]),
            model=self.models[job.style_name or ARBITRARY],
        ).SerializeToString()
