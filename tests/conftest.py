"""Fixtures that start real things: a model store filled from the mirror, a detector server on a free port."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from argus.config import Settings
from argus.models.store import ModelStore
from argus.proto.detector.v1 import detector_pb2_grpc
from argus.server import RunningServer


@pytest.fixture
def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The data folder beside the checkout (models mirror, images, eval sets)."""
    mirror = Settings().models_mirror
    if mirror is None:
        pytest.fail("the models mirror (../shared/models beside the checkout, or ARGUS_MODELS_MIRROR) is missing")
    return mirror.parent


@pytest.fixture(scope="session")
def images_dir(shared_dir: Path) -> Path:
    return shared_dir / "images"


@pytest.fixture(scope="session")
def eval_dir(shared_dir: Path) -> Path:
    return shared_dir / "eval"


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("models")
    ModelStore(root, Settings().models_mirror).pull_all()
    return root


@pytest.fixture(scope="session")
def settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        models_dir=models_dir,
        device="cpu",
        max_images_per_request=8,
        max_image_pixels=20_000_000,
        max_queue_delay_ms=20,
        intra_op_threads=2,
    )


@pytest.fixture(scope="session")
def store(settings: Settings) -> ModelStore:
    return ModelStore(settings.resolved_models_dir, settings.models_mirror)


@pytest.fixture(scope="session")
def detector_server(settings: Settings, store: ModelStore) -> Iterator[RunningServer]:
    from argus.services.detector.server import start_detector_server

    running = start_detector_server(settings, store, port=0)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def detector_channel(detector_server: RunningServer) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(detector_server.address)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def detector_stub(detector_channel: grpc.Channel) -> detector_pb2_grpc.DetectorServiceStub:
    return detector_pb2_grpc.DetectorServiceStub(detector_channel)
