"""The DetectorService: translates protobuf requests for the Detector facade and its results back, nothing more."""

from __future__ import annotations

import grpc

from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.services.detector.options import face_options, object_options
from argus.services.detector.responses import faces_response, objects_response
from argus.services.detector.service import Detector


class DetectorServicer(detector_pb2_grpc.DetectorServiceServicer):
    def __init__(self, detector: Detector) -> None:
        self.detector = detector

    def DetectObjects(
        self, request: detector_pb2.DetectObjectsRequest, context: grpc.ServicerContext
    ) -> detector_pb2.DetectObjectsResponse:
        options = object_options(request.options, request.class_names, request.class_ids, self.detector.object_defaults)
        found = self.detector.detect_objects([image.data for image in request.images], options)
        return objects_response(self.detector.object_model, request.images, found)

    def DetectFaces(
        self, request: detector_pb2.DetectFacesRequest, context: grpc.ServicerContext
    ) -> detector_pb2.DetectFacesResponse:
        options = face_options(
            request.options,
            self.detector.face_defaults,
            coarse=request.coarse_landmarks,
            liveness=request.liveness,
            largest_only=request.largest_face_only,
            face_crops=request.face_crops,
        )
        found = self.detector.detect_faces([image.data for image in request.images], options)
        return faces_response(self.detector.face_model, request.images, found)
