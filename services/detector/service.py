"""The detector as a plain domain facade: encoded images in, detections out, and no gRPC.

Both ways in call it: the DetectorService (services/detector/servicer.py) and the jobs worker's detection handler
(services/jobs/handlers.py), so a detection job gives what the API gives. It owns the two detectors and the limits
on what a request's images may cost to decode.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from argus.alignment import FaceCrop, face_crop
from argus.analysis import largest_faces
from argus.config import Settings
from argus.imaging import ImageLimits, PixelBudget, decode_request_images
from argus.models.runtime import RunsOn
from argus.models.store import ModelStore
from argus.services.detector.faces import DetectedFace, FaceDetector, FaceOptions
from argus.services.detector.objects import DetectedObject, ObjectDetector, ObjectOptions


@dataclass(frozen=True)
class ImageObjects:
    size: tuple[int, int]  # (width, height) of the decoded image
    objects: list[DetectedObject]


@dataclass(frozen=True)
class ImageFaces:
    size: tuple[int, int]  # (width, height) of the decoded image
    faces: list[DetectedFace]
    found: int  # faces found in the image: len(faces), or more when only the largest was asked for
    crops: dict[int, FaceCrop] = field(default_factory=dict)  # face index -> its face crop, when asked for


class Detector:
    """Objects and faces in a request's encoded images, in request order. Images are decoded one at a time within
    the server's pixel budget (see decode_request_images); InvalidInput names an image that cannot be."""

    def __init__(self, objects: ObjectDetector, faces: FaceDetector, settings: Settings) -> None:
        self.objects = objects
        self.faces = faces
        self.limits = ImageLimits.from_settings(settings)
        self.pixel_budget = PixelBudget.from_settings(settings)

    @classmethod
    def load(cls, store: ModelStore, settings: Settings) -> Detector:
        """Both detectors, their models loaded and warmed up."""
        return cls(ObjectDetector(store, settings), FaceDetector(store, settings), settings)

    @property
    def object_defaults(self) -> ObjectOptions:
        """What a request's options override (see options.py)."""
        return self.objects.defaults

    @property
    def face_defaults(self) -> FaceOptions:
        return self.faces.defaults

    @property
    def object_model(self) -> str:
        return self.objects.model.spec.ref

    @property
    def face_model(self) -> str:
        return self.faces.model.spec.ref

    @property
    def providers(self) -> dict[str, RunsOn]:
        """Model ref -> the execution provider and precision it runs with, for the server's status and log."""
        models = (self.objects.model, self.faces.model, *self.faces.liveness.models)
        return {model.spec.ref: model.runs_on for model in models}

    def detect_objects(self, images: Sequence[bytes], options: ObjectOptions) -> list[ImageObjects]:
        # Every image's pass is queued as soon as it is decoded, so the request's images share forward passes.
        pending = decode_request_images(images, self.limits, self.pixel_budget, self.objects.submit)
        return [ImageObjects(one.image_size, self.objects.collect(one, options)) for one in pending]

    def detect_faces(self, images: Sequence[bytes], options: FaceOptions) -> list[ImageFaces]:
        # The landmarks' second look needs the full-size image, so each image is detected before the next decodes.
        return decode_request_images(images, self.limits, self.pixel_budget, lambda image: self._faces(image, options))

    def _faces(self, image: np.ndarray, options: FaceOptions) -> ImageFaces:
        faces, found = self.faces.detect_counted(image, options)
        # Cut here, from the photo as decoded, the crop the embedder would cut: the caller hands it on instead of
        # the photo, which is then neither sent again nor decoded twice. The landmarks are taken as the response
        # carries them (float32), as the embedder would be sent them with the photo, so the crop is the same.
        cropped = largest_faces([face.box for face in faces], options.face_crops)
        crops = {
            i: face_crop(image, np.asarray(faces[i].landmarks, dtype=np.float32).astype(np.float64)) for i in cropped
        }
        return ImageFaces((image.shape[1], image.shape[0]), faces, found, crops)

    def close(self) -> None:
        self.objects.close()
        self.faces.close()
