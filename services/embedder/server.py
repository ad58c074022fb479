"""Wires the embedding model into a gRPC server."""

from __future__ import annotations

import grpc

from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.embedder.v1 import embedder_pb2, embedder_pb2_grpc
from argus.server import RunningServer, ServiceBinding, start_server
from argus.services.embedder.embedder import FaceEmbedder
from argus.services.embedder.servicer import EmbedderServicer

SERVICE_NAME = embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name


def start_embedder_server(settings: Settings, store: ModelStore, port: int | None = None) -> RunningServer:
    """Loads and warms the model, then serves; port None uses the configured port, 0 a free one."""
    embedder = FaceEmbedder(store, settings)
    servicer = EmbedderServicer(embedder, settings)

    def register(server: grpc.Server) -> None:
        embedder_pb2_grpc.add_EmbedderServiceServicer_to_server(servicer, server)

    binding = ServiceBinding(
        SERVICE_NAME,
        register,
        on_stop=[embedder.close],
        models={model.spec.ref: model.runs_on for model in embedder.models.values()},
    )
    return start_server(settings, [binding], settings.embedder_port if port is None else port)
