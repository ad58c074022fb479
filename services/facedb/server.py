"""Wires the face database to its storage, its analyzer (the detector and embedder services) and a gRPC server."""

from __future__ import annotations

import grpc

from argus.analysis import FaceAnalyzer
from argus.config import Settings
from argus.health import monitor_dependency
from argus.proto.facedb.v1 import facedb_pb2, facedb_pb2_grpc
from argus.server import RunningServer, ServiceBinding, start_server
from argus.services.facedb.database import FaceDatabase
from argus.services.facedb.reembed import Reembedder
from argus.services.facedb.remote_analysis import RemoteFaceAnalyzer
from argus.services.facedb.servicer import FaceDatabaseServicer
from argus.services.facedb.storage import FaceStore

SERVICE_NAME = facedb_pb2.DESCRIPTOR.services_by_name["FaceDatabaseService"].full_name


def start_facedb_server(
    settings: Settings, port: int | None = None, analyzer: FaceAnalyzer | None = None
) -> RunningServer:
    """Migrates the database, brings the indexes up to date with it (snapshots, rebuilds, catch-up), then serves:
    health says SERVING only once they are; port None: the configured one."""
    analyzer = analyzer or RemoteFaceAnalyzer(settings)
    store = FaceStore(settings.resolved_database_url)
    database = FaceDatabase(store, analyzer, settings)
    database.start()
    reembedder = Reembedder(database)
    reembedder.start()
    servicer = FaceDatabaseServicer(database)

    def register(server: grpc.Server) -> None:
        facedb_pb2_grpc.add_FaceDatabaseServiceServicer_to_server(servicer, server)

    binding = ServiceBinding(
        SERVICE_NAME,
        register,
        on_stop=[reembedder.stop, database.stop, database.audit.close, database.decisions.close, store.close],
        on_denials=[database.audit.record_denials],
    )
    running = start_server(settings, [binding], settings.facedb_port if port is None else port)
    # NOT_SERVING while the database is down or the change log cannot be followed; calls meanwhile fail with
    # UNAVAILABLE (FaceStore), and both recover by themselves when it is back.
    monitor_dependency(running, "the face database", lambda: store.ping() and database.follower.caught_up)
    return running
