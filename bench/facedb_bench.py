"""Face database benchmark: Verify / Identify / Compare over real gRPC, then 1:N search alone on large galleries.

    python bench/facedb_bench.py [--seconds S] [--json] [--sizes 10000,100000,1000000] [--threads T] [--images DIR]

Part 1 starts the detector, embedder and face database servers in this process on free ports (the face database on
a temporary SQLite file), enrolls four photos and calls the face database through real channels to 127.0.0.1.
Part 2 searches synthetic galleries of random unit vectors with the product's exact index (FaceIndex: FAISS
IndexFlatIP) and with an approximate FAISS index (IndexIVFFlat) beside it, with the approximate index's recall.
Every timed row runs for --seconds (at least one call or query each), so the whole run is bounded. Nothing here
asserts a speed: it prints what it measured. See bench/README.md for how to read the tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
from detector_bench import drive  # bench/ is on sys.path when this file runs as a script

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


@dataclass
class ServiceResult:
    rpc: str
    probe: str
    concurrency: int
    calls: int
    calls_per_s: float
    mean_ms: float
    p50_ms: float
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
    p99_ms: float
    mean_ms: float
    recall_queries: int
    recall_at_1: float  # top-1 equals the exact index's top-1
    truth_at_1: float  # top-1 is the gallery vector the query was made from


# --- part 1: the face database over gRPC ----------------------------------------------------------------------


def _answer(rpc: str, response: object) -> str:
    if rpc == "Identify":
        faces = response.faces  # type: ignore[attr-defined]
        if not faces or not faces[0].candidates:
            return "no candidate"
        best = faces[0].candidates[0]
        return f"{best.subject_id} {best.similarity:.3f} of {response.gallery_size}"  # type: ignore[attr-defined]
    outcome = facedb_pb2.ProbeOutcome.Name(response.outcome)  # type: ignore[attr-defined]
    return f"{outcome} {response.similarity:.3f}"  # type: ignore[attr-defined]


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

            def verify_caller() -> Callable[[], object]:
                verify = client().verify
                return lambda: verify(COLLECTION, "obama", photos[PROBE])

            def identify_caller() -> Callable[[], object]:
                identify = client().identify
                return lambda: identify(COLLECTION, photos[PROBE], top_k=TOP_K)

            def compare_caller() -> Callable[[], object]:
                compare = client().compare
                return lambda: compare(photos["obama"], photos[PROBE])

            results = []
            for rpc, probe, grpc_calls, make_call in (
                ("Verify", f"{PROBE}.jpg vs subject obama", 3, verify_caller),
                ("Identify", f"{PROBE}.jpg top_k {TOP_K}", 3, identify_caller),
                ("Compare", f"obama.jpg vs {PROBE}.jpg", 5, compare_caller),
            ):
                answer = _answer(rpc, make_call()())  # warm-up call, untimed; also what the probe yields
                for concurrency in CONCURRENCIES:
                    calls, elapsed, latencies = drive(make_call, concurrency, seconds)
                    ms = np.asarray(latencies)
                    results.append(
                        ServiceResult(
                            rpc=rpc,
                            probe=probe,
                            concurrency=concurrency,
                            calls=calls,
                            calls_per_s=calls / elapsed,
                            mean_ms=float(ms.mean()),
                            p50_ms=float(np.percentile(ms, 50)),
                            p99_ms=float(np.percentile(ms, 99)),
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


def time_queries(search: Callable[[np.ndarray], object], queries: np.ndarray, seconds: float) -> np.ndarray:
    """Batch-1 searches back to back, cycling through the queries, for `seconds` (at least one) after one untimed."""
    search(queries[:1])
    durations = []
    deadline = time.perf_counter() + seconds
    i = 0
    while True:
        row = queries[i % queries.shape[0]][None, :]
        t0 = time.perf_counter()
        search(row)
        t1 = time.perf_counter()
        durations.append(t1 - t0)
        i += 1
        if t1 >= deadline:
            break
    return np.asarray(durations) * 1e3


def _search_row(
    gallery: int,
    index: str,
    params: str,
    build_s: float,
    note: str,
    ms: np.ndarray,
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
        queries=int(ms.size),
        p50_ms=float(np.percentile(ms, 50)),
        p99_ms=float(np.percentile(ms, 99)),
        mean_ms=float(ms.mean()),
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
    ms = time_queries(lambda q: exact.search(q, SEARCH_K), queries, seconds)
    row = _search_row(ids.size, "FaceIndex", "IndexFlatIP", build_s, "the product's index", ms, top1, top1, sources)
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
        ms = time_queries(lambda q: ivf.search(q, SEARCH_K), queries, seconds)
        results.append(
            _search_row(
                size, "IVFFlat", f"nlist={nlist} nprobe={ivf.nprobe}", build_s, note, ms, top1, exact_top1, sources
            )
        )
    return results


# --- output ---------------------------------------------------------------------------------------------------


def format_table(
    settings: Settings,
    seconds: float,
    threads: int,
    service: list[ServiceResult],
    where: dict[str, str],
    search: list[SearchResult],
) -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        f"Argus face database bench: {seconds:g} s per row, {cpus} CPUs, faiss {faiss.__version__} "
        f"with {threads} OpenMP thread(s)",
        f"settings: device={settings.device} intra_op_threads={settings.intra_op_threads or 0} "
        f"max_batch_size={settings.max_batch_size} max_queue_delay_ms={settings.max_queue_delay_ms:g} "
        f"facedb max_concurrent_calls={facedb_bound(settings)} flip_augmentation={settings.flip_augmentation}",
        "",
        f"face database over gRPC (facedb {where['facedb']} on SQLite, detector {where['detector']}, "
        f"embedder {where['embedder']}; all in this process; {len(ENROLLED)} faces enrolled)",
        "A Verify or Identify includes detection + embedding: two more gRPC hops (facedb -> detector, facedb -> "
        "embedder) inside every call; a Compare makes four (two photos).",
        f"{'rpc':<10}{'probe':<26}{'concurrency':>11}{'calls/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'calls':>8}"
        f"{'grpc':>6}  answer",
    ]
    for row in service:
        lines.append(
            f"{row.rpc:<10}{row.probe:<26}{row.concurrency:>11}{row.calls_per_s:>10.1f}{row.p50_ms:>10.2f}"
            f"{row.p99_ms:>10.2f}{row.calls:>8}{row.grpc_calls:>6}  {row.answer}"
        )
    lines += [
        "",
        f"identify search alone: synthetic galleries of random unit vectors (d={DIMENSION}, float32), one query "
        f"per search (batch 1), k={SEARCH_K} (what Identify top_k {TOP_K} asks for)",
        f"queries: perturbed copies of gallery rows, cos(query, its row) ~ {QUERY_COSINE}; recall@1 = top-1 equals "
        "the exact top-1; truth@1 = top-1 is the row the query came from",
        f"{'gallery':>9}  {'index':<11}{'params':<24}{'build s':>9}{'p50 ms':>10}{'p99 ms':>10}{'queries':>9}"
        f"{'recall@1':>10}{'truth@1':>9}  note",
    ]
    for row in search:
        lines.append(
            f"{row.gallery:>9}  {row.index:<11}{row.params:<24}{row.build_s:>9.2f}{row.p50_ms:>10.3f}"
            f"{row.p99_ms:>10.3f}{row.queries:>9}{row.recall_at_1:>10.3f}{row.truth_at_1:>9.3f}  {row.note}"
        )
    if search:
        lines += [
            "",
            f"recall@1 and truth@1 over {search[0].recall_queries} queries per gallery (fewer if the gallery is "
            "smaller); build s: FaceIndex.rebuild, or IVF train + add.",
            "Uniform random vectors have no clusters: the worst case for IVF. Real face embeddings cluster, so "
            "expect recall at least this good at the same nprobe.",
        ]
    return "\n".join(lines)


def _int_list(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of integers") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more positive integers")
    return values


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--seconds", type=float, default=3.0, help="duration of each timed row (default 3; ~2 min in all by default)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON on stdout; the table goes to stderr")
    parser.add_argument(
        "--sizes",
        type=_int_list,
        default=DEFAULT_SIZES,
        help="gallery sizes for the search part, comma-separated (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--nprobes", type=_int_list, default=DEFAULT_NPROBES, help="IVF lists searched, one row each (default 8,32,128)"
    )
    parser.add_argument(
        "--queries", type=int, default=500, help="queries per gallery for recall@1 (default 500, batched, untimed)"
    )
    parser.add_argument("--threads", type=int, default=cpus, help=f"FAISS OpenMP threads (default: all {cpus} cores)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic galleries and queries")
    parser.add_argument("--images", type=Path, default=None, help="folder holding faces/obama.jpg and the others")
    args = parser.parse_args(argv)
    if args.seconds <= 0:
        parser.error("--seconds must be positive")
    if min(args.sizes) < 100:
        parser.error("--sizes: each gallery needs at least 100 vectors")
    if args.queries < 1 or args.threads < 1:
        parser.error("--queries and --threads must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    run_started = time.perf_counter()
    faiss.omp_set_num_threads(args.threads)
    settings = Settings()
    images_dir = args.images or settings.eval_dir.parent / "images"
    names = (*ENROLLED, PROBE)
    missing = [f"faces/{name}.jpg" for name in names if not (images_dir / "faces" / f"{name}.jpg").is_file()]
    if missing:
        print(f"missing test image(s) {missing} under {images_dir}; pass --images DIR", file=sys.stderr)
        return 2
    photos = {name: (images_dir / "faces" / f"{name}.jpg").read_bytes() for name in names}

    store = ModelStore(settings.resolved_models_dir, settings.models_mirror)
    store.pull_all([YOLOX_NANO, YUNET, MOBILEFACENET, DLIB_RESNET])
    try:
        service, where = run_service(settings, store, photos, args.seconds)
    except ModelUnavailable as exc:  # e.g. no calibration file for the face database
        print(f"the face database cannot start: {exc}", file=sys.stderr)
        return 2

    search: list[SearchResult] = []
    for size in args.sizes:
        search += run_search(size, args.nprobes, args.queries, args.seconds, args.seed)

    table = format_table(settings, args.seconds, args.threads, service, where, search)
    total_s = time.perf_counter() - run_started
    table += f"\ntotal run time {total_s:.1f} s"
    if args.json:
        print(table, file=sys.stderr)
        report = {
            "seconds_per_row": args.seconds,
            "total_s": total_s,
            "faiss": faiss.__version__,
            "faiss_threads": args.threads,
            "search_k": SEARCH_K,
            "query_cosine": QUERY_COSINE,
            "service": [asdict(row) for row in service],
            "search": [asdict(row) for row in search],
        }
        print(json.dumps(report, indent=2))
    else:
        print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
