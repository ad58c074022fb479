"""Face database benchmark: Verify / Identify / Compare over real gRPC, then 1:N search alone on large galleries.

    python bench/facedb_bench.py [--seconds S] [--quick] [--json [PATH]] [--sizes 10000,100000,1000000] [--threads T]
        [--images DIR]

Part 1 starts the detector, embedder and face database servers in this process on free ports (the face database on
a temporary SQLite file), enrolls four photos and calls the face database through real channels to 127.0.0.1.
Part 2 searches synthetic galleries of random unit vectors with the product's exact index (FaceIndex: FAISS
IndexFlatIP) and with an approximate FAISS index (IndexIVFFlat) beside it, with the approximate index's recall.
Every timed row runs for --seconds (at least one call or query each), so the whole run is bounded. Nothing here
asserts a speed: it prints what it measured. See bench/README.md for how to read the tables.
"""

from __future__ import annotations

import argparse
import itertools
import math
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import faiss
import harness
import numpy as np

from argus.client import FaceDbClient
from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.models.manifest import DLIB_RESNET, MOBILEFACENET, YOLOX_NANO, YUNET
from argus.models.store import ModelStore
from argus.proto.facedb.v1 import facedb_pb2
from argus.server import RunningServer
from argus.services.detector.server import start_detector_server
from argus.services.embedder.server import start_embedder_server
from argus.services.facedb.index import FaceIndex
from argus.services.facedb.server import start_facedb_server

CONCURRENCIES = (1, 8)
CALL_TIMEOUT_S = 60.0  # a hung server fails the run instead of hanging it
COLLECTION = "bench"
ENROLLED = ("obama", "biden", "deepface_img2", "deepface_img3")  # faces/<name>.jpg, enrolled as subject <name>
PROBE = "obama2"
TOP_K = 5

DIMENSION = 256  # the default profile's (mobilefacenet+dlib) fused embedding size
SEARCH_K = TOP_K * 8  # what Identify with top_k 5 asks the index for (database.identify searches top_k * 8 deep)
QUERY_COSINE = 0.75  # target cosine between a query and the gallery vector it was made from (a typical same-person)
CHUNK = 100_000  # vectors generated per step, to bound the float temporaries
TRAIN_MAX = 50_000  # most vectors the IVF quantizer is trained on
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_NPROBES = (8, 32, 128)
QUICK = {"seconds": 0.3, "sizes": (2000,), "queries": 200}


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


@dataclass
class SearchResult:
    gallery: int
    index: str
    params: str
    build_s: float
    note: str
    queries: int  # timed batch-1 queries
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    recall_queries: int
    recall_at_1: float  # top-1 equals the exact index's top-1
    truth_at_1: float  # top-1 is the gallery vector the query was made from


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
    # The bench talks to 127.0.0.1 and needs no /metrics endpoint.
    serving = settings.model_copy(update={"host": "127.0.0.1", "metrics_port": 0, "auth": "off"})  # loopback only
    running: list[RunningServer] = []
    clients: list[FaceDbClient] = []
    with tempfile.TemporaryDirectory(prefix="argus-facedb-bench-") as scratch:
        try:
            detector = start_detector_server(serving, store, port=0)
            running.append(detector)
            embedder = start_embedder_server(serving, store, port=0)
            running.append(embedder)
            facedb_settings = serving.model_copy(
                update={
                    "detector_address": detector.address,
                    "embedder_address": embedder.address,
                    "database_url": f"sqlite:///{Path(scratch) / 'facedb.sqlite3'}",
                    "max_concurrent_calls": facedb_bound(settings),
                }
            )
            facedb = start_facedb_server(facedb_settings, port=0)
            running.append(facedb)
            where = {"detector": detector.address, "embedder": embedder.address, "facedb": facedb.address}

            def client() -> FaceDbClient:
                made = FaceDbClient(facedb.address, timeout_s=CALL_TIMEOUT_S)
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

            results = []
            for rpc, probe, grpc_calls, make_call in (
                ("Verify", f"{PROBE}.jpg vs subject obama", 3, verify_caller),
                ("Identify", f"{PROBE}.jpg top_k {TOP_K}", 3, identify_caller),
                ("Compare", f"obama.jpg vs {PROBE}.jpg", 5, compare_caller),
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
                        )
                    )
        finally:
            for made in clients:
                made.close()
            for server in reversed(running):
                server.stop()
    return results, where


# --- part 2: search alone on synthetic galleries --------------------------------------------------------------


def unit_rows(rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` random unit vectors (uniform on the sphere), float32, made CHUNK rows at a time."""
    out = np.empty((count, DIMENSION), dtype=np.float32)
    for start in range(0, count, CHUNK):
        block = rng.standard_normal((min(CHUNK, count - start), DIMENSION), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + block.shape[0]] = block
    return out


def perturbed_queries(rng: np.random.Generator, gallery: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, source rows): q = normalise(g + noise), noise sized so that cos(q, g) is about QUERY_COSINE.

    The queries are not in the gallery; on random data their nearest neighbour is the row they were made from
    (the best cosine to an unrelated row of a million is about 0.45), so the true answer is known.
    """
    sources = rng.choice(gallery.shape[0], size=count, replace=False)
    sigma = math.sqrt((1.0 / QUERY_COSINE**2 - 1.0) / DIMENSION)
    queries = gallery[sources] + sigma * rng.standard_normal((count, DIMENSION), dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    return np.ascontiguousarray(queries), sources


def time_queries(search: Callable[[np.ndarray], object], queries: np.ndarray, seconds: float) -> harness.Latency:
    """Batch-1 searches back to back, cycling through the queries, for `seconds` (at least one) after one untimed."""
    rows = itertools.cycle([queries[i : i + 1] for i in range(queries.shape[0])])
    return harness.repeat(lambda: search(next(rows)), seconds).latency


def _search_row(
    gallery: int,
    index: str,
    params: str,
    build_s: float,
    note: str,
    latency: harness.Latency,
    top1: np.ndarray,
    exact_top1: np.ndarray,
    truth: np.ndarray,
) -> SearchResult:
    return SearchResult(
        gallery=gallery,
        index=index,
        params=params,
        build_s=build_s,
        note=note,
        queries=latency.count,
        p50_ms=latency.p50,
        p90_ms=latency.p90,
        p99_ms=latency.p99,
        mean_ms=latency.mean,
        recall_queries=int(top1.size),
        recall_at_1=float((top1 == exact_top1).mean()),
        truth_at_1=float((top1 == truth).mean()),
    )


def exact_search(
    ids: np.ndarray, vectors: np.ndarray, queries: np.ndarray, sources: np.ndarray, seconds: float
) -> tuple[SearchResult, np.ndarray]:
    """The product's own index, built the way the service builds it at start; (its row, its top-1 per query)."""
    exact = FaceIndex()
    t0 = time.perf_counter()
    exact.rebuild(ids, vectors)
    build_s = time.perf_counter() - t0
    top1 = exact.search(queries, SEARCH_K)[1][:, 0]
    latency = time_queries(lambda q: exact.search(q, SEARCH_K), queries, seconds)
    row = _search_row(
        ids.size, "FaceIndex", "IndexFlatIP", build_s, "the product's index", latency, top1, top1, sources
    )
    return row, top1


def run_search(
    size: int, nprobes: tuple[int, ...], recall_queries: int, seconds: float, seed: int
) -> list[SearchResult]:
    rng = np.random.default_rng(seed + size)
    vectors = unit_rows(rng, size)
    ids = np.arange(size, dtype=np.int64)  # face ids are row numbers here
    queries, sources = perturbed_queries(rng, vectors, min(recall_queries, size))
    exact_row, exact_top1 = exact_search(ids, vectors, queries, sources, seconds)
    results = [exact_row]

    # Approximate: inverted lists over a k-means coarse quantizer, searched in the nprobe nearest lists.
    nlist = max(1, round(4 * math.sqrt(size)))
    train = vectors[rng.choice(size, size=min(TRAIN_MAX, size), replace=False)]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(DIMENSION), DIMENSION, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.min_points_per_centroid = 1  # the note shows training points per list; no FAISS warning on stderr
    t0 = time.perf_counter()
    ivf.train(train)
    train_s = time.perf_counter() - t0
    ivf.add_with_ids(vectors, ids)
    build_s = time.perf_counter() - t0
    del train, vectors
    trained = min(TRAIN_MAX, size)
    note = f"train {train_s:.1f} s on {trained} ({trained / nlist:.0f}/list) + add {build_s - train_s:.1f} s"
    for nprobe in nprobes:
        ivf.nprobe = min(nprobe, nlist)
        top1 = ivf.search(queries, SEARCH_K)[1][:, 0]
        latency = time_queries(lambda q: ivf.search(q, SEARCH_K), queries, seconds)
        params = f"nlist={nlist} nprobe={ivf.nprobe}"
        results.append(_search_row(size, "IVFFlat", params, build_s, note, latency, top1, exact_top1, sources))
    return results


# --- output ---------------------------------------------------------------------------------------------------

SERVICE_COLUMNS: list[harness.Column[ServiceResult]] = [
    harness.Column("rpc", "rpc"),
    harness.Column("probe", "probe"),
    harness.Column("concurrency", "concurrency"),
    harness.Column("calls/s", "calls_per_s", ".1f"),
    harness.Column("p50 ms", "p50_ms", ".2f"),
    harness.Column("p99 ms", "p99_ms", ".2f"),
    harness.Column("calls", "calls"),
    harness.Column("grpc", "grpc_calls"),
    harness.Column("answer", "answer"),
]
SEARCH_COLUMNS: list[harness.Column[SearchResult]] = [
    harness.Column("gallery", "gallery"),
    harness.Column("index", "index"),
    harness.Column("params", "params"),
    harness.Column("build s", "build_s", ".2f"),
    harness.Column("p50 ms", "p50_ms", ".3f"),
    harness.Column("p99 ms", "p99_ms", ".3f"),
    harness.Column("queries", "queries"),
    harness.Column("recall@1", "recall_at_1", ".3f"),
    harness.Column("truth@1", "truth_at_1", ".3f"),
    harness.Column("note", "note"),
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
    search: list[SearchResult] = []
    for size in args.sizes:
        search += run_search(size, args.nprobes, args.queries, args.seconds, args.seed)

    report = harness.Report(
        "face database",
        args.seconds,
        [f"faiss {faiss.__version__} with {args.threads} OpenMP thread(s)"],
        {
            "device": settings.device,
            "intra_op_threads": settings.intra_op_threads,
            "max_batch_size": settings.max_batch_size,
            "max_queue_delay_ms": settings.max_queue_delay_ms,
            "facedb_max_concurrent_calls": facedb_bound(settings),
            "flip_augmentation": settings.flip_augmentation,
        },
    )
    report.data.update(
        faiss=faiss.__version__, faiss_threads=args.threads, search_k=SEARCH_K, query_cosine=QUERY_COSINE
    )
    report.table(
        "service",
        [
            f"face database over gRPC (facedb {where['facedb']} on SQLite, detector {where['detector']}, "
            f"embedder {where['embedder']}; all in this process; {len(ENROLLED)} faces enrolled)",
            "A Verify or Identify includes detection + embedding: two more gRPC hops (facedb -> detector, facedb -> "
            "embedder) inside every call; a Compare makes four (two photos).",
        ],
        service,
        SERVICE_COLUMNS,
    )
    report.table(
        "search",
        [
            f"identify search alone: synthetic galleries of random unit vectors (d={DIMENSION}, float32), one query "
            f"per search (batch 1), k={SEARCH_K} (what Identify top_k {TOP_K} asks for)",
            f"queries: perturbed copies of gallery rows, cos(query, its row) ~ {QUERY_COSINE}; recall@1 = top-1 "
            "equals the exact top-1; truth@1 = top-1 is the row the query came from",
        ],
        search,
        SEARCH_COLUMNS,
    )
    report.text(
        "",
        f"recall@1 and truth@1 over {search[0].recall_queries} queries per gallery (fewer if the gallery is "
        "smaller); build s: FaceIndex.rebuild, or IVF train + add.",
        "Uniform random vectors have no clusters: the worst case for IVF. Real face embeddings cluster, so "
        "expect recall at least this good at the same nprobe.",
    )
    return report


def main(argv: list[str] | None = None) -> int:
    cpus = harness.cpu_count()
    parser = harness.arguments(__doc__, seconds=3.0, images="faces/obama.jpg and the others")
    parser.add_argument(
        "--sizes",
        type=harness.int_list(100),
        default=DEFAULT_SIZES,
        help="gallery sizes for the search part, comma-separated, each at least 100 (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--nprobes",
        type=harness.int_list(1),
        default=DEFAULT_NPROBES,
        help="IVF lists searched, one row each (default 8,32,128)",
    )
    parser.add_argument(
        "--queries", type=int, default=500, help="queries per gallery for recall@1 (default 500, batched, untimed)"
    )
    parser.add_argument("--threads", type=int, default=cpus, help=f"FAISS OpenMP threads (default: all {cpus} cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic galleries and queries")
    args = harness.parse(parser, argv, QUICK)
    if args.queries < 1 or args.threads < 1:
        parser.error("--queries and --threads must be at least 1")
    faiss.omp_set_num_threads(args.threads)
    settings = Settings()
    return harness.main(lambda: measure(args, settings), args.json)


if __name__ == "__main__":
    sys.exit(main())
