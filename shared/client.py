"""Typed Python clients over the generated stubs; the CLI is built on them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import grpc

from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc

ImageSource = bytes | str | Path


def image_message(source: ImageSource) -> common_pb2.Image:
    """An Image message from encoded bytes or a file path (the file name travels as the image's name)."""
    if isinstance(source, bytes):
        return common_pb2.Image(data=source)
    path = Path(source)
    return common_pb2.Image(data=path.read_bytes(), name=path.name)


class DetectorClient:
    """Calls a DetectorService. Every call has a deadline; errors arrive as grpc.RpcError with the status."""

    def __init__(self, address: str = "127.0.0.1:50051", timeout_s: float = 30.0) -> None:
        self.channel = grpc.insecure_channel(address)
        self.stub = detector_pb2_grpc.DetectorServiceStub(self.channel)
        self.timeout_s = timeout_s

    def detect_objects(
        self,
        images: Sequence[ImageSource],
        *,
        score_threshold: float = 0.0,
        nms_iou_threshold: float = 0.0,
        max_detections: int = 0,
        classes: Iterable[str | int] = (),
    ) -> detector_pb2.DetectObjectsResponse:
        classes = list(classes)
        request = detector_pb2.DetectObjectsRequest(
            images=[image_message(image) for image in images],
            options=detector_pb2.DetectionOptions(
                score_threshold=score_threshold,
                nms_iou_threshold=nms_iou_threshold,
                max_detections=max_detections,
            ),
            class_names=[c for c in classes if isinstance(c, str)],
            class_ids=[c for c in classes if isinstance(c, int)],
        )
        return self.stub.DetectObjects(request, timeout=self.timeout_s)

    def detect_faces(
        self,
        images: Sequence[ImageSource],
        *,
        score_threshold: float = 0.0,
        nms_iou_threshold: float = 0.0,
        max_detections: int = 0,
    ) -> detector_pb2.DetectFacesResponse:
        request = detector_pb2.DetectFacesRequest(
            images=[image_message(image) for image in images],
            options=detector_pb2.DetectionOptions(
                score_threshold=score_threshold,
                nms_iou_threshold=nms_iou_threshold,
                max_detections=max_detections,
            ),
        )
        return self.stub.DetectFaces(request, timeout=self.timeout_s)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> DetectorClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
