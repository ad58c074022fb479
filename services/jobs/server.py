"""The jobs API server, and the worker processes that run its jobs."""

from __future__ import annotations

import logging
import signal
import threading

import grpc

from argus.config import Settings
from argus.health import monitor_dependency
from argus.models.store import ModelStore
from argus.proto.jobs.v1 import jobs_pb2, jobs_pb2_grpc
from argus.server import RunningServer, ServiceBinding, start_server
from argus.services.jobs.handlers import DetectionHandler, StylizationHandler
from argus.services.jobs.servicer import JobsServicer
from argus.services.jobs.store import JobStore, Kind
from argus.services.jobs.worker import Handler, Worker

log = logging.getLogger(__name__)

SERVICE_NAME = jobs_pb2.DESCRIPTOR.services_by_name["JobsService"].full_name


def job_store(settings: Settings) -> JobStore:
    return JobStore(
        settings.redis_url, settings.resolved_results_dir, settings.result_ttl_s, settings.result_inline_bytes
    )


def start_jobs_server(settings: Settings, port: int | None = None) -> RunningServer:
    store = job_store(settings)
    servicer = JobsServicer(store, settings)

    def register(server: grpc.Server) -> None:
        jobs_pb2_grpc.add_JobsServiceServicer_to_server(servicer, server)

    binding = ServiceBinding(SERVICE_NAME, register, on_stop=[store.close])
    running = start_server(settings, [binding], settings.jobs_port if port is None else port)
    # NOT_SERVING while Redis is down (calls meanwhile fail with UNAVAILABLE), SERVING again when it is back.
    monitor_dependency(running, "Redis", store.ping)
    return running


def detection_handler(settings: Settings, store: ModelStore) -> Handler:
    from argus.services.detector.service import Detector

    return DetectionHandler(Detector.load(store, settings))


def stylization_handler(settings: Settings, store: ModelStore) -> Handler:
    from argus.services.stylizer.styles import Stylizer

    return StylizationHandler(Stylizer(store, settings), settings)


HANDLERS = {Kind.DETECTION: detection_handler, Kind.STYLIZATION: stylization_handler}


def make_worker(kind: Kind, settings: Settings, store: ModelStore, handler: Handler | None = None) -> Worker:
    return Worker(
        kind,
        handler or HANDLERS[kind](settings, store),
        job_store(settings),
        visibility_timeout_s=settings.job_visibility_timeout_s,
        max_attempts=settings.job_max_attempts,
    )


def run_worker(worker: Worker) -> None:
    """Runs until SIGINT or SIGTERM; the job in hand is finished first (or, if killed, reclaimed by another)."""

    def on_signal(signum: int, _frame: object) -> None:
        log.info("%s worker: signal %d, stopping after the current job", worker.kind.name.lower(), signum)
        worker.stop()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    thread = threading.Thread(target=worker.run, name=f"worker-{worker.kind.name.lower()}")
    thread.start()
    thread.join()
