"""Wires the detector's models into a gRPC server."""

from __future__ import annotations

import grpc

from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.server import RunningServer, ServiceBinding, start_server
from argus.services.detector.service import Detector
from argus.services.detector.servicer import DetectorServicer

SERVICE_NAME = detector_pb2.DESCRIPTOR.services_by_name["DetectorService"].full_name


def start_detector_server(settings: Settings, store: ModelStore, port: int | None = None) -> RunningServer:
    """Loads and warms both models, then serves; port None uses the configured port, 0 a free one."""
    detector = Detector.load(store, settings)
    servicer = DetectorServicer(detector)

    def register(server: grpc.Server) -> None:
        detector_pb2_grpc.add_DetectorServiceServicer_to_server(servicer, server)

    binding = ServiceBinding(SERVICE_NAME, register, on_stop=[detector.close], models=detector.providers)
    return start_server(settings, [binding], settings.detector_port if port is None else port)
