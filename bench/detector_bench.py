"""Detector benchmark: raw ONNX Runtime forward passes against the detector service over real gRPC, in one run.

    python bench/detector_bench.py [--seconds S] [--quick] [--json [PATH]] [--images DIR]

Every measurement runs for --seconds (at least one pass or call each), so the whole run is bounded; the service
rows start DetectorService in this process on a free port and call it through a real channel to 127.0.0.1.
Nothing here asserts a speed: it prints what it measured. See bench/README.md for how to read the table.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import harness
import numpy as np
import onnxruntime as ort
from prometheus_client import REGISTRY

from argus.config import Settings
from argus.imaging import decode_image
from argus.models.manifest import LIVENESS_MODELS, MOBILEFACENET, YOLOX_NANO, YUNET
from argus.models.runtime import OnnxModel
from argus.models.store import ModelStore
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.services.detector.faces import YunetModel, input_size
from argus.services.detector.liveness import INPUT_SIZE as LIVENESS_SIZE
from argus.services.detector.liveness import LivenessModel
from argus.services.detector.objects import INPUT_SIZE, YoloxModel
from argus.services.detector.server import start_detector_server

OBJECT_IMAGE = "objects/bus.jpg"
FACE_IMAGE = "faces/two_people.jpg"
CONCURRENCIES = (1, 8)
CALL_TIMEOUT_S = 60.0  # a hung server fails the run instead of hanging it
QUICK = {"seconds": 0.3}


class EmbedderModel(OnnxModel):
    """MobileFaceNet as a bare session: the bench only needs its forward pass."""

    spec = MOBILEFACENET

    def warmup_input(self) -> np.ndarray:
        return np.zeros((1, 3, 112, 112), dtype=np.float32)


@dataclass
class RawResult:
    model: str
    shape: str
    note: str
    provider: str
    passes: int
    images_per_s: float
    ms_per_pass: float
    p50_ms: float
    p90_ms: float
    p99_ms: float


@dataclass
class ServiceResult:
    rpc: str
    image: str
    concurrency: int
    model: str
    calls: int
    images_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    raw_b1_images_per_s: float
    ratio_to_raw_b1: float
    mean_batch_size: float | None
    found_per_image: int


RAW_COLUMNS: list[harness.Column[RawResult]] = [
    harness.Column("model", "model"),
    harness.Column("input", "shape"),
    harness.Column("images/s", "images_per_s", ".1f"),
    harness.Column("ms/pass", "ms_per_pass", ".2f"),
    harness.Column("p50 ms", "p50_ms", ".2f"),
    harness.Column("p99 ms", "p99_ms", ".2f"),
    harness.Column("passes", "passes"),
    harness.Column("note", "note"),
]
SERVICE_COLUMNS: list[harness.Column[ServiceResult]] = [
    harness.Column("rpc", "rpc"),
    harness.Column("image", "image"),
    harness.Column("concurrency", "concurrency"),
    harness.Column("images/s", "images_per_s", ".1f"),
    harness.Column("p50 ms", "p50_ms", ".2f"),
    harness.Column("p99 ms", "p99_ms", ".2f"),
    harness.Column("calls", "calls"),
    harness.Column("/raw b1", "ratio_to_raw_b1", ".2f"),
    harness.Column("batch", "mean_batch_size", ".2f"),
    harness.Column("model", "model"),
]


def time_forward(model: OnnxModel, batch: np.ndarray, seconds: float, note: str = "") -> RawResult:
    """Back-to-back forward passes for `seconds` (at least one) after one untimed pass at this shape."""
    run = harness.repeat(lambda: model.run(batch), seconds)
    latency = run.latency
    return RawResult(
        model=model.spec.name,
        shape="x".join(str(d) for d in batch.shape),
        note=note,
        provider=model.provider,
        passes=run.calls,
        images_per_s=batch.shape[0] * run.per_s,
        ms_per_pass=latency.mean,
        p50_ms=latency.p50,
        p90_ms=latency.p90,
        p99_ms=latency.p99,
    )


def run_raw(store: ModelStore, settings: Settings, face_hw: tuple[int, int], seconds: float) -> list[RawResult]:
    rng = np.random.default_rng(0)

    def pixels(*shape: int) -> np.ndarray:
        return rng.uniform(0, 255, size=shape).astype(np.float32)

    results = []
    yolox = YoloxModel(store, settings)
    results.append(time_forward(yolox, pixels(1, 3, INPUT_SIZE, INPUT_SIZE), seconds))
    results.append(time_forward(yolox, pixels(8, 3, INPUT_SIZE, INPUT_SIZE), seconds, "batch-dynamic graph"))
    del yolox
    yunet = YunetModel(store, settings)
    results.append(time_forward(yunet, pixels(1, 3, 640, 640), seconds))
    if face_hw != (640, 640):
        results.append(time_forward(yunet, pixels(1, 3, *face_hw), seconds, f"as served for {Path(FACE_IMAGE).name}"))
    del yunet
    embedder = EmbedderModel(store, settings)
    results.append(time_forward(embedder, pixels(1, 3, 112, 112), seconds))
    results.append(time_forward(embedder, pixels(32, 3, 112, 112), seconds))
    del embedder
    for spec in LIVENESS_MODELS:  # a face's liveness is one pass of each
        liveness = LivenessModel(store, settings, spec=spec)
        results.append(time_forward(liveness, pixels(1, 3, LIVENESS_SIZE, LIVENESS_SIZE), seconds, "liveness"))
        results.append(time_forward(liveness, pixels(8, 3, LIVENESS_SIZE, LIVENESS_SIZE), seconds, "liveness"))
    return results


def _batch_totals(model: str) -> tuple[float, float]:
    labels = {"model": model}
    total = REGISTRY.get_sample_value("argus_batch_size_sum", labels) or 0.0
    count = REGISTRY.get_sample_value("argus_batch_size_count", labels) or 0.0
    return total, count


def run_service(
    store: ModelStore, settings: Settings, images: dict[str, bytes], raw_b1: dict[str, float], seconds: float
) -> tuple[list[ServiceResult], int, dict[str, str]]:
    # The bench talks to 127.0.0.1 and needs no /metrics endpoint: it reads the registry in this process.
    serving = settings.model_copy(update={"host": "127.0.0.1", "metrics_port": 0, "auth": "off"})  # loopback only
    running = start_detector_server(serving, store, port=0)
    served_on = {ref: runs.provider for binding in running.bindings for ref, runs in binding.models.items()}
    target = f"127.0.0.1:{running.port}"
    channels: list[grpc.Channel] = []
    options = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
    ]

    def stub() -> detector_pb2_grpc.DetectorServiceStub:
        channel = grpc.insecure_channel(target, options=options)
        channels.append(channel)
        return detector_pb2_grpc.DetectorServiceStub(channel)

    def objects_caller() -> Callable[[], int]:
        detect = stub().DetectObjects
        request = detector_pb2.DetectObjectsRequest(
            images=[common_pb2.Image(data=images[OBJECT_IMAGE], name=Path(OBJECT_IMAGE).name)]
        )

        def call() -> int:
            response = detect(request, timeout=CALL_TIMEOUT_S)
            if len(response.results) != 1:
                raise RuntimeError(f"DetectObjects returned {len(response.results)} results for 1 image")
            return len(response.results[0].objects)

        return call

    def faces_caller(liveness: bool = False) -> Callable[[], int]:
        detect = stub().DetectFaces
        request = detector_pb2.DetectFacesRequest(
            images=[common_pb2.Image(data=images[FACE_IMAGE], name=Path(FACE_IMAGE).name)], liveness=liveness
        )

        def call() -> int:
            response = detect(request, timeout=CALL_TIMEOUT_S)
            if len(response.results) != 1:
                raise RuntimeError(f"DetectFaces returned {len(response.results)} results for 1 image")
            return len(response.results[0].faces)

        return call

    results = []
    try:
        for rpc, image, model, make_call in (
            ("DetectObjects", OBJECT_IMAGE, YOLOX_NANO.name, objects_caller),
            ("DetectFaces", FACE_IMAGE, YUNET.name, faces_caller),
            ("DetectFaces+liveness", FACE_IMAGE, YUNET.name, lambda: faces_caller(liveness=True)),
        ):
            found = make_call()()  # warm-up call, untimed; also what the image yields
            for concurrency in CONCURRENCIES:
                before = _batch_totals(model)
                run = harness.drive(make_call, concurrency, seconds)
                after = _batch_totals(model)
                passes = after[1] - before[1]
                latency = run.latency
                results.append(
                    ServiceResult(
                        rpc=rpc,
                        image=Path(image).name,
                        concurrency=concurrency,
                        model=model,
                        calls=run.calls,
                        images_per_s=run.per_s,
                        mean_ms=latency.mean,
                        p50_ms=latency.p50,
                        p90_ms=latency.p90,
                        p99_ms=latency.p99,
                        raw_b1_images_per_s=raw_b1[model],
                        ratio_to_raw_b1=run.per_s / raw_b1[model],
                        mean_batch_size=(after[0] - before[0]) / passes if passes else None,
                        found_per_image=found,
                    )
                )
    finally:
        for channel in channels:
            channel.close()
        running.stop()
    return results, running.port, served_on


def measure(seconds: float, images: dict[str, bytes], settings: Settings) -> harness.Report:
    store = ModelStore.from_settings(settings)
    store.pull_all([YOLOX_NANO, YUNET, MOBILEFACENET])

    face = decode_image(images[FACE_IMAGE], max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    _, face_h, face_w = input_size(face.shape[0], face.shape[1], settings.face_max_side)

    raw = run_raw(store, settings, (face_h, face_w), seconds)
    served = {
        YOLOX_NANO.name: f"1x3x{INPUT_SIZE}x{INPUT_SIZE}",
        YUNET.name: f"1x3x{face_h}x{face_w}",
    }
    raw_b1 = {
        model: next(row.images_per_s for row in raw if row.model == model and row.shape == shape)
        for model, shape in served.items()
    }
    service, port, served_on = run_service(store, settings, images, raw_b1, seconds)

    report = harness.Report(
        "detector",
        seconds,
        [f"onnxruntime {ort.__version__}", f"provider {', '.join(sorted({row.provider for row in raw}))}"],
        {
            "device": settings.device,
            "intra_op_threads": settings.intra_op_threads,
            "inter_op_threads": settings.inter_op_threads,
            "max_batch_size": settings.max_batch_size,
            "max_queue_delay_ms": settings.max_queue_delay_ms,
            "max_queue_size": settings.max_queue_size,
            "max_concurrent_calls": settings.concurrent_calls("detector"),
        },
    )
    if not settings.intra_op_threads:
        report.text("intra_op_threads 0: the ONNX Runtime default, one thread per physical core")
    report.table(
        "raw", ["raw ONNX Runtime forward passes (one session, back to back, random pixels)"], raw, RAW_COLUMNS
    )
    bindings = ", ".join(f"{ref} on {provider}" for ref, provider in served_on.items())
    report.table(
        "service",
        [f"detector service over gRPC (server in this process on 127.0.0.1:{port}, one image per call; {bindings})"],
        service,
        SERVICE_COLUMNS,
    )
    found = ", ".join(
        f"{row.image}: {row.found_per_image} {'objects' if row.rpc == 'DetectObjects' else 'faces'}"
        for row in service
        if row.concurrency == CONCURRENCIES[0]
    )
    report.text(
        "",
        "/raw b1 = service images/s / raw batch-1 images/s of the same model at the input shape the service runs "
        "(yolox-nano 1x3x416x416; yunet-s at the served size).",
        "batch = mean images per forward pass during that row, from argus_batch_size (_sum / _count).",
        f"found per call: {found}",
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__, seconds=3.0, images="objects/bus.jpg and faces/two_people.jpg")
    args = harness.parse(parser, argv, QUICK)
    settings = Settings()
    return harness.main(
        lambda: measure(args.seconds, harness.read_images(args, settings, (OBJECT_IMAGE, FACE_IMAGE)), settings),
        args.json,
    )


if __name__ == "__main__":
    sys.exit(main())
