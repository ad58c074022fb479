"""Argus against a peer on the same photos, in one run: Verify through the stack beside insightface's FaceAnalysis.

    python bench/peer_bench.py [--seconds S] [--quick] [--json [PATH]] [--images DIR] [--peer-models DIR]

Argus: the detector, embedder and face database as `argus up` runs them, each `argus serve NAME` in a process of
its own (auth off, a temporary SQLite database, the default settings otherwise; ARGUS_DEVICE and ARGUS_INT8 pass
through), obama.jpg enrolled; a call is a Verify of a photo against that subject over gRPC, detection and
embedding included. The peer: insightface's
`FaceAnalysis` (PyPI `insightface`, an optional bench dependency) with SCRFD-2.5g and MobileFaceNet from the models
mirror's restricted/ folder (non-commercial: for comparison only, never a default), in this process; a call decodes
the photo and runs its detection and embedding, as `FaceAnalysis.get` does. Both on faces/obama2.jpg and a 640x480
copy of it, at concurrency 1 and 4, the rows of the two taking turns so the machine's other load weighs on both.
Then facedb's two calls for a Verify made by hand, the face handed on to the embedder as the photo (decoded there
again) and as the crop the detector cut (DetectFacesRequest.face_crops), taking turns.
Nothing here asserts a speed: it prints what it measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import grpc
import harness
import numpy as np

from argus.client import DetectorClient, EmbedderClient, FaceDbClient, cropped_face, photo_face
from argus.config import Settings
from argus.health import wait_until_serving
from argus.profiles import PROFILES
from argus.proto.facedb.v1 import facedb_pb2

CONCURRENCIES = (1, 4)
PEER_FILES = ("scrfd_2.5g_bnkps.onnx", "mobilefacenet_paddle_128d.onnx")
SERVED = ("detector", "embedder", "facedb")
CALL_TIMEOUT_S = 60.0
QUICK = {"seconds": 0.5}


@dataclass
class Row:
    photo: str
    concurrency: int
    argus_per_s: float
    argus_p50_ms: float
    peer_per_s: float
    peer_p50_ms: float
    ratio: float  # Argus calls/s over the peer's


@dataclass
class CpuRow:
    """Where an Argus Verify's CPU went during its row: each process's user + system CPU over the calls made."""

    photo: str
    concurrency: int
    detector_ms: float | None  # None where there is no /proc
    embedder_ms: float | None
    facedb_ms: float | None
    client_ms: float  # this process: the gRPC client threads making the calls
    total_ms: float | None


@dataclass
class Stack:
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]]


@dataclass
class HandoffRow:
    """What facedb's two calls cost when the face goes on to the embedder as the detector's crop or as the photo."""

    photo: str
    photo_kb: float
    rounds: int
    via_photo_p50_ms: float  # DetectFaces, then Embed of the photo with the face's landmarks
    via_crop_p50_ms: float  # DetectFaces with face_crops, then Embed of the crop
    saved_ms: float


@contextmanager
def argus_stack(scratch: Path, settings: Settings) -> Iterator[Stack]:
    """`argus serve detector|embedder|facedb` as processes on free ports; yields their ports and processes."""
    ports = {name: harness.free_port() for name in SERVED}
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {
        "ARGUS_AUTH": "off",
        "ARGUS_DATABASE_URL": f"sqlite:///{scratch / 'facedb.sqlite3'}",
        "ARGUS_DATA_DIR": str(scratch / "data"),
        "ARGUS_MODELS_DIR": str(settings.resolved_models_dir),
        **{f"ARGUS_{name.upper()}_ADDRESS": f"127.0.0.1:{port}" for name, port in ports.items()},
    }
    for setting in ("ARGUS_MODELS_MIRROR", "ARGUS_DEVICE", "ARGUS_INT8"):
        if setting in os.environ:
            env[setting] = os.environ[setting]
    processes: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for name in SERVED:
            command = [sys.executable, "-m", "argus.cli.main", "serve", name, "--port", str(ports[name])]
            process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            processes[name] = process
            with grpc.insecure_channel(f"127.0.0.1:{ports[name]}") as channel:
                wait_until_serving(channel, name, time.monotonic() + 180, lambda p=process: p.poll() is None)
        yield Stack(ports, processes)
    finally:
        for process in processes.values():
            process.terminate()
        for process in processes.values():
            process.wait(timeout=30)


def peer_app(models: Path, folder: Path) -> Any:
    """FaceAnalysis over the two peer files, linked into `folder`: it loads every .onnx of a folder, and opens
    sessions from those paths as it meets new input sizes, so the folder must outlive it."""
    try:
        from insightface.app import FaceAnalysis
    except ImportError as exc:
        raise harness.Unavailable(f"the peer is insightface: pip install insightface ({exc})") from exc
    missing = [name for name in PEER_FILES if not (models / name).is_file()]
    if missing:
        raise harness.Unavailable(f"missing peer model(s) {missing} in {models}; pass --peer-models DIR")
    folder.mkdir()
    for name in PEER_FILES:
        os.symlink(models / name, folder / name)
    app = FaceAnalysis(
        name=str(folder), providers=["CPUExecutionProvider"], allowed_modules=["detection", "recognition"]
    )
    app.prepare(ctx_id=-1, det_size=(640, 640))
    return app


def fitted_copy(photo: bytes, width: int, height: int) -> bytes:
    """The photo scaled to fit width x height, its aspect kept (a stretched face would not be the same person)."""
    image = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    scale = min(width / image.shape[1], height / image.shape[0])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    ok, encoded = cv2.imencode(".jpg", cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    assert ok
    return encoded.tobytes()


def _per_call_ms(before: float | None, after: float | None, calls: int) -> float | None:
    return None if before is None or after is None else 1e3 * (after - before) / calls


def measure_handoff(
    ports: dict[str, int], name: str, photo: bytes, seconds: float, models: Sequence[str]
) -> HandoffRow:
    """facedb's Verify calls made by hand, the two hand-offs taking turns for `seconds`: the photo (the embedder
    decodes it again) against the crop the detector cut from the photo it decoded."""
    detector = DetectorClient(f"127.0.0.1:{ports['detector']}", CALL_TIMEOUT_S)
    embedder = EmbedderClient(f"127.0.0.1:{ports['embedder']}", CALL_TIMEOUT_S)

    def via(crop: bool) -> float:
        started = time.perf_counter()
        (result,) = detector.detect_faces([photo], largest_only=True, face_crops=int(crop)).results
        face = result.faces[0]
        if crop:
            embedder.embed([cropped_face(face.crop)], models=models)
        else:
            embedder.embed([photo_face(0, face.landmarks)], photos=[photo], models=models)
        return 1e3 * (time.perf_counter() - started)

    try:
        via(True), via(False)  # warm-up, untimed
        timed: dict[bool, list[float]] = {True: [], False: []}
        ends = time.monotonic() + seconds
        while time.monotonic() < ends or not timed[True]:
            for crop in (True, False) if len(timed[True]) % 2 else (False, True):
                timed[crop].append(via(crop))
    finally:
        detector.close()
        embedder.close()
    photo_ms, crop_ms = (harness.Latency.of(timed[crop]).p50 for crop in (False, True))
    return HandoffRow(name, len(photo) / 1024, len(timed[True]), photo_ms, crop_ms, photo_ms - crop_ms)


def measure(args: Any, settings: Settings) -> harness.Report:
    images = harness.read_images(args, settings, ["faces/obama.jpg", "faces/obama2.jpg"])
    enrolled, probe = images["faces/obama.jpg"], images["faces/obama2.jpg"]
    photos = {"obama2.jpg": probe, "obama2 in 640x480": fitted_copy(probe, 640, 480)}
    peer_models = args.peer_models or (settings.models_mirror / "restricted" if settings.models_mirror else None)
    if peer_models is None:
        raise harness.Unavailable("no models mirror is configured: pass --peer-models DIR")
    rows = []
    cpu_rows: list[CpuRow] = []
    clients: list[FaceDbClient] = []
    with (
        tempfile.TemporaryDirectory(prefix="argus-peer-bench-") as scratch,
        argus_stack(Path(scratch), settings) as stack,
    ):
        facedb = f"127.0.0.1:{stack.ports['facedb']}"
        app = peer_app(peer_models, Path(scratch) / "peer")

        def peer_call(photo: bytes) -> object:
            faces = app.get(cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR))
            assert faces and faces[0].embedding is not None, "the peer found no face"
            return faces

        def client() -> FaceDbClient:
            made = FaceDbClient(facedb, timeout_s=CALL_TIMEOUT_S)
            clients.append(made)
            return made

        try:
            setup = client()
            setup.create_collection("peer")
            setup.enroll("peer", "obama", [enrolled])
            for name, photo in photos.items():

                def argus_caller(photo: bytes = photo) -> Callable[[], object]:
                    verify = client().verify

                    def call() -> object:
                        answer = verify("peer", "obama", photo)
                        assert answer.outcome == facedb_pb2.MATCH, answer
                        return answer

                    return call

                def peer_caller(photo: bytes = photo) -> Callable[[], object]:
                    return lambda: peer_call(photo)

                argus_caller()()  # warm-up calls, untimed
                peer_caller()()
                for concurrency in CONCURRENCIES:
                    before = {name: harness.process_cpu_s(p.pid) for name, p in stack.processes.items()}
                    client_before = time.process_time()
                    ours = harness.drive(argus_caller, concurrency, args.seconds)
                    client_ms = 1e3 * (time.process_time() - client_before) / ours.calls
                    after = {name: harness.process_cpu_s(p.pid) for name, p in stack.processes.items()}
                    spent = {name: _per_call_ms(before[name], after[name], ours.calls) for name in SERVED}
                    known = [ms for ms in spent.values() if ms is not None]
                    cpu_rows.append(
                        CpuRow(
                            name,
                            concurrency,
                            spent["detector"],
                            spent["embedder"],
                            spent["facedb"],
                            client_ms,
                            sum(known) + client_ms if len(known) == len(SERVED) else None,
                        )
                    )
                    theirs = harness.drive(peer_caller, concurrency, args.seconds)
                    rows.append(
                        Row(
                            name,
                            concurrency,
                            ours.per_s,
                            ours.latency.p50,
                            theirs.per_s,
                            theirs.latency.p50,
                            ours.per_s / theirs.per_s,
                        )
                    )
            models = PROFILES[settings.profile].models
            handoffs = [
                measure_handoff(stack.ports, name, photo, args.seconds, models) for name, photo in photos.items()
            ]
        finally:
            for made in clients:
                made.close()

    import insightface
    import onnxruntime

    report = harness.Report(
        "peer",
        args.seconds,
        [f"insightface {insightface.__version__}", f"onnxruntime {onnxruntime.__version__}"],
        {
            "device": settings.device,
            "profile": settings.profile,
            "ort_allow_spinning": settings.ort_allow_spinning,
            "int8": settings.int8,
        },
    )
    report.table(
        "rows",
        [
            "Argus: Verify (obama2 against enrolled obama) over gRPC to `argus serve facedb`, which calls the detector "
            "and embedder processes; default profile (YuNet + second look, MobileFaceNet + dlib ResNet, flip)",
            "peer: insightface FaceAnalysis, SCRFD-2.5g (640x640) + MobileFaceNet, per photo: decode, detect, embed",
            "x peer: Argus calls/s over the peer's at the same concurrency",
        ],
        rows,
        [
            harness.Column("photo", "photo"),
            harness.Column("concurrency", "concurrency"),
            harness.Column("Argus calls/s", "argus_per_s", ".1f"),
            harness.Column("p50 ms", "argus_p50_ms", ".1f"),
            harness.Column("peer calls/s", "peer_per_s", ".1f"),
            harness.Column("p50 ms", "peer_p50_ms", ".1f"),
            harness.Column("x peer", "ratio", ".2f"),
        ],
    )
    report.table(
        "cpu",
        [
            "where an Argus Verify's CPU goes: each process's user + system CPU ms per call during its row above "
            "(client: the bench's own gRPC client threads); at concurrency 4 the cores are the limit, so the total "
            "is what a call costs the machine"
        ],
        cpu_rows,
        [
            harness.Column("photo", "photo"),
            harness.Column("concurrency", "concurrency"),
            harness.Column("detector", "detector_ms", ".1f"),
            harness.Column("embedder", "embedder_ms", ".1f"),
            harness.Column("facedb", "facedb_ms", ".1f"),
            harness.Column("client", "client_ms", ".1f"),
            harness.Column("total CPU ms/call", "total_ms", ".1f"),
        ],
    )
    report.table(
        "handoff",
        [
            "how the face goes on to the embedder (facedb's two calls for a Verify, made by hand, taking turns): the "
            "photo with the face's landmarks, decoded again there, or the crop the detector cut (face_crops)"
        ],
        handoffs,
        [
            harness.Column("photo", "photo"),
            harness.Column("KB", "photo_kb", ".0f"),
            harness.Column("rounds", "rounds"),
            harness.Column("via photo p50 ms", "via_photo_p50_ms", ".2f"),
            harness.Column("via crop p50 ms", "via_crop_p50_ms", ".2f"),
            harness.Column("saved ms", "saved_ms", ".2f"),
        ],
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__, seconds=10.0, images="faces/obama.jpg and faces/obama2.jpg")
    parser.add_argument(
        "--peer-models", type=Path, default=None, help="folder of the peer's models (default: MIRROR/restricted)"
    )
    args = harness.parse(parser, argv, QUICK)
    settings = Settings()
    return harness.main(lambda: measure(args, settings), args.json)


if __name__ == "__main__":
    sys.exit(main())
