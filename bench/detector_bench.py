"""Detector benchmark: raw ONNX Runtime forward passes against the detector service over real gRPC, in one run.

    python bench/detector_bench.py [--seconds S] [--json] [--images DIR]

Every measurement runs for --seconds (at least one pass or call each), so the whole run is bounded; the service
rows start DetectorService in this process on a free port and call it through a real channel to 127.0.0.1.
Nothing here asserts a speed: it prints what it measured. See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import grpc
import numpy as np
import onnxruntime as ort
from prometheus_client import REGISTRY

from argus.config import Settings
from argus.imaging import decode_image
from argus.models.manifest import MOBILEFACENET, YOLOX_NANO, YUNET
from argus.models.runtime import OnnxModel
from argus.models.store import ModelStore
from argus.proto.common.v1 import common_pb2
from argus.proto.detector.v1 import detector_pb2, detector_pb2_grpc
from argus.services.detector.faces import YunetModel, input_size
from argus.services.detector.objects import INPUT_SIZE, YoloxModel
from argus.services.detector.server import start_detector_server

OBJECT_IMAGE = "objects/bus.jpg"
FACE_IMAGE = "faces/two_people.jpg"
CONCURRENCIES = (1, 8)
CALL_TIMEOUT_S = 60.0  # a hung server fails the run instead of hanging it


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
    p99_ms: float
    raw_b1_images_per_s: float
    ratio_to_raw_b1: float
    mean_batch_size: float | None
    found_per_image: int


def _shape(batch: np.ndarray) -> str:
    return "x".join(str(d) for d in batch.shape)


def time_forward(model: OnnxModel, batch: np.ndarray, seconds: float, note: str = "") -> RawResult:
    """Back-to-back forward passes for `seconds` (at least one) after one untimed pass at this shape."""
    model.run(batch)
    durations = []
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        t0 = time.perf_counter()
        model.run(batch)
        t1 = time.perf_counter()
        durations.append(t1 - t0)
        if t1 >= deadline:
            break
    elapsed = time.perf_counter() - started
    ms = np.asarray(durations) * 1e3
    return RawResult(
        model=model.spec.name,
        shape=_shape(batch),
        note=note,
        provider=model.provider,
        passes=len(durations),
        images_per_s=batch.shape[0] * len(durations) / elapsed,
        ms_per_pass=float(ms.mean()),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
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
    return results


def _batch_totals(model: str) -> tuple[float, float]:
    labels = {"model": model}
    total = REGISTRY.get_sample_value("argus_batch_size_sum", labels) or 0.0
    count = REGISTRY.get_sample_value("argus_batch_size_count", labels) or 0.0
    return total, count


def drive(
    make_call: Callable[[], Callable[[], int]], concurrency: int, seconds: float
) -> tuple[int, float, list[float]]:
    """`concurrency` threads call back to back until `seconds` pass, each at least once, then finish their call.

    `make_call` gives each thread its own callable (its own channel). Returns (calls, elapsed s, latencies in ms).
    """
    callers = [make_call() for _ in range(concurrency)]
    latencies: list[list[float]] = [[] for _ in range(concurrency)]
    errors: list[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(concurrency + 1)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            while True:
                t0 = time.perf_counter()
                callers[index]()
                latencies[index].append((time.perf_counter() - t0) * 1e3)
                if stop.is_set():
                    break
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    stop.wait(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"{len(errors)} call(s) failed; first: {errors[0]!r}") from errors[0]
    flat = [ms for per_thread in latencies for ms in per_thread]
    return len(flat), elapsed, flat


def run_service(
    store: ModelStore, settings: Settings, images: dict[str, bytes], raw_b1: dict[str, float], seconds: float
) -> tuple[list[ServiceResult], int, dict[str, str]]:
    # The bench talks to 127.0.0.1 and needs no /metrics endpoint: it reads the registry in this process.
    serving = settings.model_copy(update={"host": "127.0.0.1", "metrics_port": 0, "auth": "off"})  # loopback only
    running = start_detector_server(serving, store, port=0)
    served_on = {ref: provider for binding in running.bindings for ref, provider in binding.models.items()}
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

    def faces_caller() -> Callable[[], int]:
        detect = stub().DetectFaces
        request = detector_pb2.DetectFacesRequest(
            images=[common_pb2.Image(data=images[FACE_IMAGE], name=Path(FACE_IMAGE).name)]
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
        ):
            found = make_call()()  # warm-up call, untimed; also what the image yields
            for concurrency in CONCURRENCIES:
                before = _batch_totals(model)
                calls, elapsed, latencies = drive(make_call, concurrency, seconds)
                after = _batch_totals(model)
                passes = after[1] - before[1]
                ms = np.asarray(latencies)
                images_per_s = calls / elapsed
                results.append(
                    ServiceResult(
                        rpc=rpc,
                        image=Path(image).name,
                        concurrency=concurrency,
                        model=model,
                        calls=calls,
                        images_per_s=images_per_s,
                        mean_ms=float(ms.mean()),
                        p50_ms=float(np.percentile(ms, 50)),
                        p99_ms=float(np.percentile(ms, 99)),
                        raw_b1_images_per_s=raw_b1[model],
                        ratio_to_raw_b1=images_per_s / raw_b1[model],
                        mean_batch_size=(after[0] - before[0]) / passes if passes else None,
                        found_per_image=found,
                    )
                )
    finally:
        for channel in channels:
            channel.close()
        running.stop()
    return results, running.port, served_on


def format_table(
    settings: Settings,
    seconds: float,
    raw: list[RawResult],
    service: list[ServiceResult],
    port: int,
    served_on: dict[str, str],
) -> str:
    providers = sorted({row.provider for row in raw})
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = settings.intra_op_threads or "0 (ORT default: one per physical core)"
    lines = [
        f"Argus detector bench: {seconds:g} s per row, onnxruntime {ort.__version__}, "
        f"provider {', '.join(providers)}, {cpus} CPUs",
        f"settings: device={settings.device} intra_op_threads={threads} "
        f"inter_op_threads={settings.inter_op_threads} max_batch_size={settings.max_batch_size} "
        f"max_queue_delay_ms={settings.max_queue_delay_ms:g} "
        f"max_concurrent_calls={settings.concurrent_calls('detector')}",
        "",
        "raw ONNX Runtime forward passes (one session, back to back, random pixels)",
        f"{'model':<15}{'input':<15}{'images/s':>10}{'ms/pass':>10}{'p50 ms':>10}{'p99 ms':>10}{'passes':>8}  note",
    ]
    for row in raw:
        lines.append(
            f"{row.model:<15}{row.shape:<15}{row.images_per_s:>10.1f}{row.ms_per_pass:>10.2f}"
            f"{row.p50_ms:>10.2f}{row.p99_ms:>10.2f}{row.passes:>8}  {row.note}".rstrip()
        )
    lines += [
        "",
        f"detector service over gRPC (server in this process on 127.0.0.1:{port}, one image per call; "
        f"{', '.join(f'{ref} on {provider}' for ref, provider in served_on.items())})",
        f"{'rpc':<15}{'image':<16}{'concurrency':>11}{'images/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'calls':>8}"
        f"{'/raw b1':>9}{'batch':>7}  model",
    ]
    for row in service:
        batch = f"{row.mean_batch_size:.2f}" if row.mean_batch_size is not None else "-"
        lines.append(
            f"{row.rpc:<15}{row.image:<16}{row.concurrency:>11}{row.images_per_s:>10.1f}{row.p50_ms:>10.2f}"
            f"{row.p99_ms:>10.2f}{row.calls:>8}{row.ratio_to_raw_b1:>9.2f}{batch:>7}  {row.model}"
        )
    found = ", ".join(
        f"{row.image}: {row.found_per_image} {'objects' if row.rpc == 'DetectObjects' else 'faces'}"
        for row in service
        if row.concurrency == CONCURRENCIES[0]
    )
    lines += [
        "",
        "/raw b1 = service images/s / raw batch-1 images/s of the same model at the input shape the service runs "
        "(yolox-nano 1x3x416x416; yunet-s at the served size).",
        "batch = mean images per forward pass during that row, from argus_batch_size (_sum / _count).",
        f"found per call: {found}",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="duration of each row (default 3; 10 rows, ~45 s in all)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout; the table goes to stderr")
    parser.add_argument(
        "--images", type=Path, default=None, help="folder holding objects/bus.jpg and faces/two_people.jpg"
    )
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_started = time.perf_counter()
    settings = Settings()
    images_dir = args.images or settings.eval_dir.parent / "images"
    missing = [name for name in (OBJECT_IMAGE, FACE_IMAGE) if not (images_dir / name).is_file()]
    if missing:
        print(f"missing test image(s) {missing} under {images_dir}; pass --images DIR", file=sys.stderr)
        return 2
    images = {name: (images_dir / name).read_bytes() for name in (OBJECT_IMAGE, FACE_IMAGE)}

    store = ModelStore(settings.resolved_models_dir, settings.models_mirror)
    store.pull_all([YOLOX_NANO, YUNET, MOBILEFACENET])

    face = decode_image(images[FACE_IMAGE], max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels)
    _, face_h, face_w = input_size(face.shape[0], face.shape[1], settings.face_max_side)

    raw = run_raw(store, settings, (face_h, face_w), args.seconds)
    served = {
        YOLOX_NANO.name: f"1x3x{INPUT_SIZE}x{INPUT_SIZE}",
        YUNET.name: f"1x3x{face_h}x{face_w}",
    }
    raw_b1 = {
        model: next(row.images_per_s for row in raw if row.model == model and row.shape == shape)
        for model, shape in served.items()
    }
    service, port, served_on = run_service(store, settings, images, raw_b1, args.seconds)

    table = format_table(settings, args.seconds, raw, service, port, served_on)
    total_s = time.perf_counter() - run_started
    table += f"\ntotal run time {total_s:.1f} s"
    if args.json:
        print(table, file=sys.stderr)
        report = {
            "seconds_per_row": args.seconds,
            "total_s": total_s,
            "onnxruntime": ort.__version__,
            "settings": {
                key: getattr(settings, key)
                for key in (
                    "device",
                    "intra_op_threads",
                    "inter_op_threads",
                    "max_batch_size",
                    "max_queue_delay_ms",
                    "max_queue_size",
                )
            },
            "raw": [asdict(row) for row in raw],
            "service": [asdict(row) for row in service],
        }
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
