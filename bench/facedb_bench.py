"""Face database benchmark: Verify / Identify / Compare over real gRPC, then a request's cost as its collection grows.

    python bench/facedb_bench.py [--seconds S] [--quick] [--json [PATH]] [--images DIR] [--seed N]
        [--cost-sizes 1,100,100000] [--cost-backends sqlite,postgresql] [--postgres URL]

Part 1 starts the detector, embedder and face database servers in this process on free ports (the face database on
a temporary SQLite file), enrolls four photos and calls the face database through real channels to 127.0.0.1.
Part 2 measures what a request costs as its collection grows: Verify and Identify (FaceDatabase in this process,
with the real models) on collections of --cost-sizes faces, the first a real enrolled face, the rest synthetic ones
added through FaceStore.add_subjects_bulk, on SQLite and (with --postgres, a server the bench may create databases on)
PostgreSQL, beside the collection look-up every such request makes and the counting query it made before the
collections kept counters.
The index search alone on large galleries, with the product's own index kinds, is bench/facedb_scale_bench.py's.
Every timed row runs for --seconds (at least one call or query each), so the whole run is bounded. Nothing here
asserts a speed: it prints what it measured. See bench/README.md for how to read the tables.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeAlias

import faiss
import harness
import numpy as np
import sqlalchemy as sa
from google.protobuf import json_format

from argus.client import FaceDbClient
from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.models.manifest import DLIB_RESNET, MOBILEFACENET, YOLOX_NANO, YUNET
from argus.models.store import ModelStore
from argus.proto.facedb.v1 import facedb_pb2
from argus.services.facedb.database import FaceDatabase
from argus.services.facedb.storage import FaceStore, NewFace
from argus.supervisor import wait_until_listening

CONCURRENCIES = (1, 8)
CALL_TIMEOUT_S = 60.0  # a hung server fails the run instead of hanging it
COLLECTION = "bench"
ENROLLED = ("obama", "biden", "deepface_img2", "deepface_img3")  # faces/<name>.jpg, enrolled as subject <name>
PROBE = "obama2"
TOP_K = 5

SEARCH_K = TOP_K * 8  # what Identify with top_k 5 asks the index for (database.identify searches top_k * 8 deep)
CHUNK = 100_000  # synthetic vectors generated per step, to bound the float temporaries
DEFAULT_COST_SIZES = (1, 100, 100_000)
COST_FOLLOW_S = 900.0  # longest the face database may take to index a synthetic gallery before the bench gives up
# The counts every Verify and Identify read before the collections kept counters (FaceStore._counted then).
COUNTING = sa.text(
    "SELECT (SELECT count(*) FROM subjects WHERE collection_id = :c), (SELECT count(*) FROM faces WHERE "
    "collection_id = :c), (SELECT count(*) FROM faces WHERE collection_id = :c AND pending_embedding IS NOT NULL)"
)
QUICK = {"seconds": 0.3, "cost_sizes": (1, 50, 500)}


@dataclass
class ServiceResult:
    rpc: str
    probe: str
    concurrency: int
    calls: int
    calls_per_s: float
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    grpc_calls: int  # gRPC calls one request makes in all: itself plus its detector and embedder calls
    answer: str
    transport: str = "gRPC"  # or "HTTP/JSON": the same call through the gateway (Connect protocol, JSON)
    p50_vs_grpc: float | None = None  # HTTP/JSON rows: p50 over the gRPC row's of the same RPC and concurrency


# --- part 1: the face database over gRPC ----------------------------------------------------------------------


Answer: TypeAlias = facedb_pb2.VerifyResponse | facedb_pb2.IdentifyResponse | facedb_pb2.CompareResponse


def _answer(response: Answer) -> str:
    if isinstance(response, facedb_pb2.IdentifyResponse):
        faces = response.faces
        if not faces or not faces[0].candidates:
            return "no candidate"
        best = faces[0].candidates[0]
        return f"{best.subject_id} {best.similarity:.3f} of {response.gallery_size}"
    return f"{facedb_pb2.ProbeOutcome.Name(response.outcome)} {response.similarity:.3f}"


def facedb_bound(settings: Settings) -> int:
    """Throughput at each concurrency is measured here, not the overload bound (bench/overload_bench.py does that),
    so facedb admits at least as many calls as the bench drives at once."""
    return max(settings.concurrent_calls("facedb"), *CONCURRENCIES)


def run_service(
    settings: Settings, store: ModelStore, photos: dict[str, bytes], seconds: float
) -> tuple[list[ServiceResult], dict[str, str]]:
    clients: list[FaceDbClient] = []
    gateways: list[subprocess.Popen[bytes]] = []
    with (
        tempfile.TemporaryDirectory(prefix="argus-facedb-bench-") as scratch,
        harness.face_services(settings, store, Path(scratch), facedb_bound(settings)) as services,
    ):
        try:
            where = {"detector": services.detector, "embedder": services.embedder, "facedb": services.facedb}

            def client() -> FaceDbClient:
                made = FaceDbClient(services.facedb, timeout_s=CALL_TIMEOUT_S)
                clients.append(made)
                return made

            setup = client()
            setup.create_collection(COLLECTION)
            for name in ENROLLED:
                setup.enroll(COLLECTION, name, [photos[name]])

            def verify_caller() -> Callable[[], Answer]:
                verify = client().verify
                return lambda: verify(COLLECTION, "obama", photos[PROBE])

            def identify_caller() -> Callable[[], Answer]:
                identify = client().identify
                return lambda: identify(COLLECTION, photos[PROBE], top_k=TOP_K)

            def compare_caller() -> Callable[[], Answer]:
                compare = client().compare
                return lambda: compare(photos["obama"], photos[PROBE])

            gateway_port = harness.free_port()
            gateways.append(gateway_process(services.facedb, gateway_port))
            where["gateway"] = f"127.0.0.1:{gateway_port}"

            def http_verify_caller() -> Callable[[], Answer]:
                return http_json_call(
                    gateway_port,
                    "/argus.facedb.v1.FaceDatabaseService/Verify",
                    {
                        "collection": COLLECTION,
                        "subjectId": "obama",
                        "image": {"data": b64encode(photos[PROBE]).decode()},
                    },
                    facedb_pb2.VerifyResponse,
                )

            results = []
            for rpc, probe, grpc_calls, make_call, transport in (
                ("Verify", f"{PROBE}.jpg vs subject obama", 3, verify_caller, "gRPC"),
                ("Verify", f"{PROBE}.jpg vs subject obama", 3, http_verify_caller, "HTTP/JSON"),
                ("Identify", f"{PROBE}.jpg top_k {TOP_K}", 3, identify_caller, "gRPC"),
                ("Compare", f"obama.jpg vs {PROBE}.jpg", 5, compare_caller, "gRPC"),
            ):
                answer = _answer(make_call()())  # warm-up call, untimed; also what the probe yields
                for concurrency in CONCURRENCIES:
                    run = harness.drive(make_call, concurrency, seconds)
                    latency = run.latency
                    results.append(
                        ServiceResult(
                            rpc=rpc,
                            probe=probe,
                            concurrency=concurrency,
                            calls=run.calls,
                            calls_per_s=run.per_s,
                            mean_ms=latency.mean,
                            p50_ms=latency.p50,
                            p90_ms=latency.p90,
                            p99_ms=latency.p99,
                            grpc_calls=grpc_calls,
                            answer=answer,
                            transport=transport,
                        )
                    )
            # Back-to-back rows feel the machine's other load unevenly; one call of each in turn does not.
            paired = interleaved({"gRPC": verify_caller(), "HTTP/JSON": http_verify_caller()}, seconds)
            where["interleaved"] = (
                f"interleaved at concurrency 1 (one Verify of each in turn, {paired['gRPC'].count} pairs): gRPC p50 "
                f"{paired['gRPC'].p50:.1f} ms, HTTP/JSON p50 {paired['HTTP/JSON'].p50:.1f} ms, "
                f"x {paired['HTTP/JSON'].p50 / paired['gRPC'].p50:.2f}"
            )
        finally:
            for made in clients:
                made.close()
            for process in gateways:
                process.terminate()
                process.wait(timeout=30)
    by_call = {(r.rpc, r.concurrency): r.p50_ms for r in results if r.transport == "gRPC"}
    for result in results:
        if result.transport != "gRPC":
            result.p50_vs_grpc = result.p50_ms / by_call[(result.rpc, result.concurrency)]
    return results, where


def gateway_process(facedb: str, port: int) -> subprocess.Popen[bytes]:
    """`argus serve gateway` in a process of its own, as `argus up` runs it (in this one it would share the GIL
    with the three services), forwarding to the bench's face database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {"ARGUS_AUTH": "off", "ARGUS_FACEDB_ADDRESS": facedb, "ARGUS_GATEWAY_PORT": str(port)}
    process = subprocess.Popen(
        [sys.executable, "-m", "argus.cli.main", "serve", "gateway"], env=env, stderr=subprocess.DEVNULL
    )
    wait_until_listening("127.0.0.1", port, "gateway", time.monotonic() + 60, lambda: process.poll() is None)
    return process


def http_json_call(port: int, path: str, message: dict[str, object], answer: type[Answer]) -> Callable[[], Answer]:
    """One caller's HTTP/JSON calls through the gateway, on a kept-alive connection as an HTTP client library
    keeps it; the JSON answer parsed into its message, as a client would read it."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=CALL_TIMEOUT_S)
    body = json.dumps(message).encode()

    def call() -> Answer:
        connection.request("POST", path, body, {"Content-Type": "application/json"})
        response = connection.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"{path}: HTTP {response.status}: {data[:200]!r}")
        return json_format.Parse(data, answer())

    return call


# --- part 2: a request's cost against the collection's size --------------------------------------------------


@dataclass
class CostResult:
    backend: str
    faces: int
    index: str  # the kind of index the collection had (FaceIndex.kind)
    fill_s: float  # adding the synthetic faces through FaceStore.add_subjects_bulk
    verify_p50_ms: float
    verify_p99_ms: float
    identify_p50_ms: float
    identify_p99_ms: float
    search_p50_ms: float  # the index search alone, as Identify makes it
    lookup_p50_ms: float  # FaceStore.get_collection: what every Verify and Identify reads now
    counting_p50_ms: float  # the COUNT query every Verify and Identify made before the counters
    verify_ratio: float = 1.0  # verify p50 / verify p50 of the backend's smallest collection
    # (identify - search) p50 / the same of the smallest collection searched as deep (SEARCH_K faces or more): a
    # smaller one returns fewer candidates, each read and scored, a cost of top_k rather than of the collection
    identify_ratio: float | None = None


@contextmanager
def scratch_database(backend: str, postgres: str, folder: Path, name: str) -> Iterator[str]:
    """An empty database of its own: a SQLite file in `folder`, or one made on the --postgres server."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / f'{name}.sqlite3'}"
        return
    with harness.scratch_postgres(postgres) as url:
        yield url


def synthetic_subjects(template: NewFace, count: int, seed: int) -> Iterator[tuple[str, str, list[NewFace]]]:
    """`count` subjects of one synthetic face each: random unit vectors of the template's profile and size."""
    rng = np.random.default_rng(seed)
    dimension = template.embedding.shape[0]
    for start in range(0, count, CHUNK):
        block = rng.standard_normal((min(CHUNK, count - start), dimension), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        for offset, vector in enumerate(block):
            face = NewFace(vector, template.profile, template.models, template.box, 0.9, 100.0, 50.0)
            yield f"synthetic-{start + offset}", "", [face]


def wait_indexed(database: FaceDatabase, collection: str, faces: int) -> None:
    """Until the face database's index of the collection holds every face (its follower applies the bulk adds) and
    is of the kind its size calls for (no background build left to compete with the timed calls)."""
    deadline = time.monotonic() + COST_FOLLOW_S
    while database.indexes.get(collection).size < faces:
        if time.monotonic() > deadline:
            raise RuntimeError(f"the index of {collection} did not reach {faces} faces in {COST_FOLLOW_S:g} s")
        time.sleep(0.2)
    if not database.indexes.get(collection).settle(max(1.0, deadline - time.monotonic())):
        raise RuntimeError(f"the index of {collection} was still being built after {COST_FOLLOW_S:g} s")


def fill(database: FaceDatabase, collection: str, size: int, photos: dict[str, bytes], seed: int) -> tuple[int, float]:
    """Makes the collection: obama.jpg enrolled, then size - 1 synthetic faces through the bulk path; returns
    obama's face id and the seconds the bulk path took, once the index holds every face."""
    store = database.store
    database.create_collection(collection)
    (face_id,) = database.enroll(collection, "obama", [photos["obama"]]).face_ids
    obama = store.subject_template(collection, "obama")
    models = store.get_subject(collection, "obama").faces[0].models
    template = NewFace(obama.stored[0], obama.profile, models, (0.0, 0.0, 100.0, 100.0), 0.9, 100.0, 50.0)
    t0 = time.perf_counter()
    store.add_subjects_bulk(collection, synthetic_subjects(template, size - 1, seed + size))
    fill_s = time.perf_counter() - t0
    wait_indexed(database, collection, size)
    return face_id, fill_s


def interleaved(calls: dict[str, Callable[[], object]], seconds: float) -> dict[str, harness.Latency]:
    """Each call once in turn, round after round, for `seconds` per call (at least one round) after an untimed
    round: the load of the machine then weighs on every call alike, which back-to-back rows cannot promise."""
    for call in calls.values():
        call()
    samples: dict[str, list[float]] = {name: [] for name in calls}
    deadline = time.perf_counter() + seconds * len(calls)
    while not samples[next(iter(calls))] or time.perf_counter() < deadline:
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - t0) * 1e3)
    return {name: harness.Latency.of(values) for name, values in samples.items()}


def cost_rows(
    backend: str,
    url: str,
    analyzer: LocalFaceAnalyzer,
    settings: Settings,
    photos: dict[str, bytes],
    args: argparse.Namespace,
) -> list[CostResult]:
    """Every size's collection in one database and one face database, their requests interleaved."""
    sizes = sorted(set(args.cost_sizes))
    with FaceStore(url) as store:
        database = FaceDatabase(store, analyzer, settings)
        database.start()
        try:
            made = {size: fill(database, f"cost-{size}", size, photos, args.seed) for size in sizes}
            verify = interleaved(
                {f"cost-{size}": partial(database.verify, f"cost-{size}", "obama", photos[PROBE]) for size in sizes},
                args.seconds,
            )
            identify = interleaved(
                {f"cost-{size}": partial(database.identify, f"cost-{size}", photos[PROBE], TOP_K) for size in sizes},
                args.seconds,
            )
            rows = []
            with store.engine.connect() as conn:
                for size in sizes:
                    collection = f"cost-{size}"
                    index = database.indexes.get(collection)
                    probe = index.vectors([made[size][0]])  # a vector as the index holds them
                    search = harness.repeat(partial(index.search, probe, min(index.size, SEARCH_K)), args.seconds)
                    lookup = harness.repeat(partial(store.get_collection, collection), args.seconds)
                    (collection_id,) = conn.execute(
                        sa.text("SELECT id FROM collections WHERE name = :n"), {"n": collection}
                    ).one()
                    counting = harness.repeat(partial(conn.execute, COUNTING, {"c": collection_id}), args.seconds)
                    rows.append(
                        CostResult(
                            backend,
                            size,
                            index.kind,
                            made[size][1],
                            verify[collection].p50,
                            verify[collection].p99,
                            identify[collection].p50,
                            identify[collection].p99,
                            search.latency.p50,
                            lookup.latency.p50,
                            counting.latency.p50,
                        )
                    )
        finally:
            database.stop()
            database.audit.close()
    smallest = rows[0]
    deep = next((row for row in rows if row.faces >= SEARCH_K), None)
    for row in rows:
        row.verify_ratio = row.verify_p50_ms / smallest.verify_p50_ms
        if deep is not None and row.faces >= SEARCH_K:
            row.identify_ratio = (row.identify_p50_ms - row.search_p50_ms) / (deep.identify_p50_ms - deep.search_p50_ms)
    return rows


def run_cost(
    settings: Settings, store: ModelStore, photos: dict[str, bytes], args: argparse.Namespace
) -> list[CostResult]:
    """On each of --cost-backends (PostgreSQL only with --postgres): each in an empty database of its own."""
    backends = [backend for backend in args.cost_backends.split(",") if backend != "postgresql" or args.postgres]
    results: list[CostResult] = []
    analyzer = LocalFaceAnalyzer(store, settings)
    try:
        with tempfile.TemporaryDirectory(prefix="argus-facedb-cost-") as scratch:
            # Snapshots (at shutdown only) go to the scratch folder; the models stay where they are.
            local = settings.model_copy(
                update={
                    "data_dir": Path(scratch),
                    "models_dir": settings.resolved_models_dir,
                    "facedb_snapshot_s": 0.0,
                    "auth": "off",
                }
            )
            for backend in backends:
                with scratch_database(backend, args.postgres, Path(scratch), "cost") as url:
                    results += cost_rows(backend, url, analyzer, local, photos, args)
    finally:
        analyzer.close()
    return results


# --- output ---------------------------------------------------------------------------------------------------

SERVICE_COLUMNS: list[harness.Column[ServiceResult]] = [
    harness.Column("rpc", "rpc"),
    harness.Column("transport", "transport"),
    harness.Column("probe", "probe"),
    harness.Column("concurrency", "concurrency"),
    harness.Column("calls/s", "calls_per_s", ".1f"),
    harness.Column("p50 ms", "p50_ms", ".2f"),
    harness.Column("p99 ms", "p99_ms", ".2f"),
    harness.Column("calls", "calls"),
    harness.Column("grpc", "grpc_calls"),
    harness.Column("p50 x gRPC", "p50_vs_grpc", ".2f"),
    harness.Column("answer", "answer"),
]
COST_COLUMNS: list[harness.Column[CostResult]] = [
    harness.Column("backend", "backend"),
    harness.Column("faces", "faces"),
    harness.Column("index", "index"),
    harness.Column("fill s", "fill_s", ".1f"),
    harness.Column("verify p50", "verify_p50_ms", ".1f"),
    harness.Column("p99", "verify_p99_ms", ".1f"),
    harness.Column("x smallest", "verify_ratio", ".3f"),
    harness.Column("identify p50", "identify_p50_ms", ".1f"),
    harness.Column("p99", "identify_p99_ms", ".1f"),
    harness.Column("search p50", "search_p50_ms", ".2f"),
    harness.Column("-search x smallest deep", "identify_ratio", ".3f"),
    harness.Column("look-up p50", "lookup_p50_ms", ".3f"),
    harness.Column("COUNT p50", "counting_p50_ms", ".2f"),
]


def measure(args: argparse.Namespace, settings: Settings) -> harness.Report:
    photos_by_path = harness.read_images(args, settings, (f"faces/{name}.jpg" for name in (*ENROLLED, PROBE)))
    photos = {Path(path).stem: data for path, data in photos_by_path.items()}
    store = ModelStore.from_settings(settings)
    store.pull_all([YOLOX_NANO, YUNET, MOBILEFACENET, DLIB_RESNET])
    try:
        service, where = run_service(settings, store, photos, args.seconds)
    except ModelUnavailable as exc:  # e.g. no calibration file for the face database
        raise harness.Unavailable(f"the face database cannot start: {exc}") from exc
    cost = run_cost(settings, store, photos, args)

    report = harness.Report(
        "face database",
        args.seconds,
        [f"faiss {faiss.__version__}"],
        {
            "device": settings.device,
            "intra_op_threads": settings.intra_op_threads,
            "max_batch_size": settings.max_batch_size,
            "max_queue_delay_ms": settings.max_queue_delay_ms,
            "facedb_max_concurrent_calls": facedb_bound(settings),
            "search_threads": settings.search_threads,
            "flip_augmentation": settings.flip_augmentation,
        },
    )
    report.data.update(faiss=faiss.__version__, search_k=SEARCH_K)
    report.table(
        "service",
        [
            f"face database over gRPC (facedb {where['facedb']} on SQLite, detector {where['detector']}, "
            f"embedder {where['embedder']}; all in this process; {len(ENROLLED)} faces enrolled)",
            "A Verify or Identify includes detection + embedding: two more gRPC hops (facedb -> detector, facedb -> "
            "embedder) inside every call; a Compare makes four (two photos).",
            f"HTTP/JSON: the same Verify as a JSON POST to the gateway ({where['gateway']}, `argus serve gateway` in a "
            "process of its own), which forwards it to facedb over gRPC; p50 x gRPC: its p50 over the gRPC row's at "
            "the same concurrency.",
            where["interleaved"],
        ],
        service,
        SERVICE_COLUMNS,
    )
    report.table(
        "cost",
        [
            "a request's cost against its collection's size: Verify (obama2.jpg vs subject obama) and Identify "
            f"(top_k {TOP_K}) called on FaceDatabase in this process, one at a time, detection and embedding included",
            "the collection: obama.jpg enrolled, then synthetic faces (one subject each) through "
            "FaceStore.add_subjects_bulk (fill s); x smallest: p50 over the smallest collection's; -search x "
            f"smallest deep: Identify less its index search, over the same of the smallest collection of {SEARCH_K}+ "
            f"faces (Identify reads and scores up to {SEARCH_K} candidates: a smaller one has fewer)",
            "look-up: FaceStore.get_collection (one row: the counters), made by every Verify and Identify; COUNT: "
            "the counting query it made before the collections kept counters (the cost a request then had on top)",
        ],
        cost,
        COST_COLUMNS,
    )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = harness.arguments(__doc__, seconds=3.0, images="faces/obama.jpg and the others")
    parser.add_argument("--seed", type=int, default=0, help="seed of the request-cost part's synthetic faces")
    parser.add_argument(
        "--cost-sizes",
        type=harness.int_list(1),
        default=DEFAULT_COST_SIZES,
        help="collection sizes (faces) of the request-cost part, comma-separated (default 1,100,100000)",
    )
    parser.add_argument(
        "--cost-backends",
        choices=("sqlite", "postgresql", "sqlite,postgresql"),
        default="sqlite,postgresql",
        help="databases of the request-cost part (default both; PostgreSQL only with --postgres)",
    )
    parser.add_argument(
        "--postgres",
        default="",
        metavar="URL",
        help="a PostgreSQL server the request-cost part may create (and drop) databases on; without it, SQLite only",
    )
    args = harness.parse(parser, argv, QUICK)
    settings = Settings()
    return harness.main(lambda: measure(args, settings), args.json)


if __name__ == "__main__":
    sys.exit(main())
