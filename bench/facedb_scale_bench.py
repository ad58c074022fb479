"""Face database at scale: Identify's search alone on large galleries (exact vs approximate), and how long an index
takes to be ready at start (loading its snapshot vs rebuilding it from the database).

    python bench/facedb_scale_bench.py [--seconds S] [--quick] [--json [PATH]] [--sizes 10000,100000,1000000]
        [--fractions 0.05,0.1,0.2,0.4] [--ivf-flat] [--hnsw-ef-searches 256,512,1024]
        [--start-sizes 100000,1000000]
        [--database-url URL] [--keep-gallery] [--threads T] [--parts search start]

Part 1 builds the product's index (FaceIndex) over synthetic galleries of random unit vectors, once exact (brute
force over the vector store) and once approximate (IVF over 4-bit PQ codes, fast scan, the best candidates scored
exactly: trained the way the service trains it), and times batch-1 searches at Identify's depth. Recall
is measured against the exact index on two kinds of probe: genuine ones (a perturbed copy of an enrolled face, as a
real probe of an enrolled person is) and impostors (random vectors, near no one: their exact top-1 is an arbitrary
face, which an approximate index rarely finds, and which no threshold would accept anyway).
With --ivf-flat it also builds FAISS's IndexIVFFlat with the same lists (full vectors in the lists, no rescoring:
the product's approximate index before the PQ codes) and searches it at the same fractions, to show what the codes
buy. With --hnsw-ef-searches it also builds a FAISS HNSW graph (IndexHNSWFlat, M=32, efConstruction 40, --threads
threads) over the same gallery and searches it at each depth: the alternative the product's IVF was chosen over (HNSW
needed efSearch past 1024 for recall@1 0.99 at 1M here, slower than IVF), kept to show why; off by default, as a
1M-face graph takes many minutes to build.

Part 2 makes galleries of --start-sizes faces through the storage layer (FaceStore.add_subjects_bulk) in the database
of --database-url (a temporary SQLite file when none is given; PostgreSQL is what the figures are for), then, each in
a fresh process, rebuilds the index from the database (one consistent read streamed into the exact store: ready to
serve; the approximate index then built in the background is timed apart) or loads its snapshot, with the process's
peak memory.
Nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import itertools
import math
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import harness
import numpy as np

from argus.config import Settings
from argus.errors import ModelUnavailable
from argus.services.facedb.calibration import Calibrations
from argus.services.facedb.index import RESCORED, TRAIN_PER_LIST, FaceIndex, IndexKinds, IndexRegistry
from argus.services.facedb.snapshots import load_snapshots, path_of, save_snapshot
from argus.services.facedb.storage import FaceStore, NewFace

PART = 128  # each of the default profile's two models (mobilefacenet, dlib-resnet) gives a 128-d unit vector
DIMENSION = 2 * PART  # fused
SEARCH_K = 40  # what Identify with top_k 5 asks the index for (database.identify searches top_k * 8 deep)
GENUINE_COSINE = 0.75  # cos(probe, the enrolled face it was made from): a typical same-person pair
CHUNK = 100_000  # vectors generated per step, to bound the float temporaries
EXACT_ONLY = IndexKinds(ann_min_faces=1 << 62)
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_FRACTIONS = (0.05, 0.1, 0.2, 0.4)
DEFAULT_START_SIZES = (100_000, 1_000_000)
COLLECTION = "scale"
QUICK = {
    "seconds": 0.3,
    "sizes": (10_000,),
    "fractions": (0.1, 0.2),
    "ivf_flat": True,
    "hnsw_ef_searches": (64,),
    "start_sizes": (10_000,),
    "queries": 200,
}
HNSW_M = 32  # links per node of the comparison graph (twice that on its bottom layer)
HNSW_EF_CONSTRUCTION = 40  # FAISS's default
Search = Callable[[np.ndarray], np.ndarray]  # probes (M, d) -> the ids found (M, SEARCH_K), best first


@dataclass
class SearchResult:
    gallery: int
    index: str
    params: str
    build_s: float  # exact: FaceIndex.rebuild; approximate: rebuild + the background train and fill until swapped in
    rss_per_face: float  # bytes the process grew by per face while the index was built (vectors, ids, FAISS maps)
    file_per_face: float  # bytes per face of its snapshot file
    queries: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    genuine_recall: float  # top-1 equals the exact top-1, genuine probes
    impostor_recall: float  # the same, impostor probes
    truth_at_1: float  # top-1 is the face the genuine probe was made from


@dataclass
class StartResult:
    faces: int
    backend: str
    path: str  # "rebuild" or "snapshot"
    ready_s: float  # until the index can serve (rebuild: the exact store; snapshot: loaded and checked)
    approximate_s: float | None  # rebuild: until the background IVF is swapped in
    peak_rss_mb: float  # of the process that started
    steady_rss_mb: float  # once ready and settled
    index: str  # its kind once settled
    note: str


# --- synthetic faces ------------------------------------------------------------------------------------------


def rss_bytes(field: str = "VmRSS") -> int:
    """This process's resident memory now (VmRSS) or at its peak (VmHWM), from /proc."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def reset_peak() -> None:
    """Starts VmHWM again from the current RSS (Linux: clear_refs 5)."""
    Path("/proc/self/clear_refs").write_text("5")


def unit_rows(rng: np.random.Generator, count: int, dimension: int = DIMENSION) -> np.ndarray:
    """`count` random unit vectors (uniform on the sphere), float32, made CHUNK rows at a time."""
    out = np.empty((count, dimension), dtype=np.float32)
    for start in range(0, count, CHUNK):
        block = rng.standard_normal((min(CHUNK, count - start), dimension), dtype=np.float32)
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start : start + block.shape[0]] = block
    return out


def genuine_probes(
    rng: np.random.Generator, gallery: np.ndarray, count: int, cosine: float
) -> tuple[np.ndarray, np.ndarray]:
    """(probes, the rows they were made from): p = normalise(g + noise), cos(p, g) about `cosine`."""
    sources = rng.choice(gallery.shape[0], size=count, replace=False)
    sigma = math.sqrt((1.0 / cosine**2 - 1.0) / gallery.shape[1])
    probes = gallery[sources] + sigma * rng.standard_normal((count, gallery.shape[1]), dtype=np.float32)
    probes /= np.linalg.norm(probes, axis=1, keepdims=True)
    return np.ascontiguousarray(probes), sources


# --- part 1: search alone ---------------------------------------------------------------------------------------


def time_searches(search: Search, probes: np.ndarray, seconds: float) -> harness.Latency:
    """Batch-1 searches back to back, cycling through the probes, for `seconds` (at least one) after one untimed."""
    rows = itertools.cycle([probes[i : i + 1] for i in range(probes.shape[0])])
    return harness.repeat(lambda: search(next(rows)), seconds).latency


def searching(index: FaceIndex) -> Search:
    return lambda probes: index.search(probes, SEARCH_K)[1]


def built_faiss(make: Callable[[], faiss.Index], vectors: np.ndarray, scratch: Path) -> tuple[Any, float, float, float]:
    """(a comparison index made and filled with the gallery, build seconds, bytes of memory per face, bytes per face
    of its file); labels are row numbers."""
    before = rss_bytes()
    t0 = time.perf_counter()
    index = make()
    for start in range(0, vectors.shape[0], CHUNK):
        index.add(vectors[start : start + CHUNK])
    build_s = time.perf_counter() - t0
    rss = (rss_bytes() - before) / vectors.shape[0]
    path = scratch / "comparison.faiss"
    faiss.write_index(index, str(path))
    file = path.stat().st_size / vectors.shape[0]
    path.unlink()
    return index, build_s, rss, file


def new_hnsw(dimension: int) -> faiss.IndexHNSWFlat:
    graph = faiss.IndexHNSWFlat(dimension, HNSW_M, faiss.METRIC_INNER_PRODUCT)
    graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    return graph


def new_ivf_flat(vectors: np.ndarray, nlist: int) -> faiss.IndexIVFFlat:
    """FAISS's IVF with full vectors, trained on the same sample size as the product's index."""
    dimension = vectors.shape[1]
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(dimension), dimension, nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.min_points_per_centroid = 1
    rows = np.random.default_rng(0).choice(vectors.shape[0], size=min(vectors.shape[0], TRAIN_PER_LIST * nlist))
    ivf.train(np.ascontiguousarray(vectors[np.sort(rows)]))
    return ivf


def searching_with(index: faiss.Index, params: Any) -> Search:
    """Batch searches of a comparison index with these FAISS search parameters (nprobe, efSearch)."""

    def search(probes: np.ndarray) -> np.ndarray:
        found: np.ndarray = index.search(probes, SEARCH_K, params=params)[1]
        return found

    return search


def ivf_params(nprobe: int) -> Any:
    params = faiss.SearchParametersIVF()  # type: ignore[attr-defined]  # not in faiss's stubs
    params.nprobe = nprobe
    return params


def hnsw_params(ef_search: int) -> Any:
    params = faiss.SearchParametersHNSW()  # type: ignore[attr-defined]  # not in faiss's stubs
    params.efSearch = ef_search
    return params


def built(kinds: IndexKinds, ids: np.ndarray, vectors: np.ndarray) -> tuple[FaceIndex, float, float]:
    """(index, seconds until its final kind is in place, bytes of memory per face it holds)."""
    before = rss_bytes()
    index = FaceIndex(profile="bench", kinds=kinds)
    t0 = time.perf_counter()
    index.rebuild(ids, vectors)
    index.settle()
    build_s = time.perf_counter() - t0
    return index, build_s, (rss_bytes() - before) / ids.size


def file_per_face(index: FaceIndex, scratch: Path) -> float:
    path = save_snapshot(scratch, 0, "bench", index, 0)
    size = path.stat().st_size
    path.unlink()
    return size / index.size


def run_search(args: argparse.Namespace, size: int, scratch: Path) -> list[SearchResult]:
    rng = np.random.default_rng(args.seed + size)
    vectors = unit_rows(rng, size)
    ids = np.arange(size, dtype=np.int64)  # face ids are row numbers here
    count = min(args.queries, size)
    genuine, sources = genuine_probes(rng, vectors, count, args.genuine_cosine)
    impostors = unit_rows(rng, count)
    results = []

    def row(search: Search, name: str, params: str, build_s: float, rss: float, file: float) -> SearchResult:
        latency = time_searches(search, genuine, args.seconds)
        top1 = search(genuine)[:, 0], search(impostors)[:, 0]
        return SearchResult(
            gallery=size,
            index=name,
            params=params,
            build_s=build_s,
            rss_per_face=rss,
            file_per_face=file,
            queries=latency.count,
            p50_ms=latency.p50,
            p99_ms=latency.p99,
            mean_ms=latency.mean,
            genuine_recall=float((top1[0] == exact_top1[0]).mean()),
            impostor_recall=float((top1[1] == exact_top1[1]).mean()),
            truth_at_1=float((top1[0] == sources).mean()),
        )

    exact, build_s, rss = built(EXACT_ONLY, ids, vectors)
    exact_top1 = exact.search(genuine, SEARCH_K)[1][:, 0], exact.search(impostors, SEARCH_K)[1][:, 0]
    results.append(row(searching(exact), "exact", "brute force", build_s, rss, file_per_face(exact, scratch)))
    del exact

    approximate, build_s, rss = built(IndexKinds(ann_min_faces=1), ids, vectors)
    file = file_per_face(approximate, scratch)
    nlist = IndexKinds.nlist(size)
    for fraction in args.fractions:
        kinds = IndexKinds(ann_min_faces=1, probe_fraction=fraction)
        with approximate.held() as (store, trained):  # the same trained index, searched with another nprobe
            assert store is not None
            view = FaceIndex.restore(store, trained, "bench", kinds)
        params = f"{view.kind} nprobe={kinds.nprobe(nlist)} rescored {RESCORED}"
        results.append(row(searching(view), "ivf-pq", params, build_s, rss, file))
    del approximate, view
    if args.ivf_flat:
        ivf, build_s, rss, file = built_faiss(lambda: new_ivf_flat(vectors, nlist), vectors, scratch)
        for fraction in args.fractions:
            nprobe = IndexKinds(probe_fraction=fraction).nprobe(nlist)
            results.append(
                row(
                    searching_with(ivf, ivf_params(nprobe)),
                    "ivf-flat",
                    f"nlist={nlist} nprobe={nprobe}",
                    build_s,
                    rss,
                    file,
                )
            )
        del ivf
    if args.hnsw_ef_searches:
        graph, build_s, rss, file = built_faiss(lambda: new_hnsw(vectors.shape[1]), vectors, scratch)
        del vectors
        for ef_search in args.hnsw_ef_searches:
            params = f"M={HNSW_M} efC={HNSW_EF_CONSTRUCTION} efSearch={ef_search}"
            results.append(row(searching_with(graph, hnsw_params(ef_search)), "hnsw", params, build_s, rss, file))
    return results


# --- part 2: start --------------------------------------------------------------------------------------------


@contextmanager
def opened(url: str) -> Iterator[FaceStore]:
    store = FaceStore(url)
    try:
        yield store
    finally:
        store.close()


def fill(url: str, faces: int, seed: int) -> int:
    """A collection of `faces` synthetic subjects (one face each) made through the storage layer; its id. One of
    that size left by a --keep-gallery run is used as it is."""
    rng = np.random.default_rng(seed)
    profile = Settings().profile
    name = f"{COLLECTION}-{faces}"
    with opened(url) as store:
        store.migrate()
        found = [key for key, (other, _) in store.collections_at()[1].items() if other == name]
        if found and store.get_collection(name).face_count == faces:
            return found[0]
        if found:
            store.delete_collection(name)
        store.create_collection(name, None, profile)

        def subjects() -> Iterator[tuple[str, str, list[NewFace]]]:
            for start in range(0, faces, CHUNK):
                count = min(CHUNK, faces - start)
                parts = np.concatenate([unit_rows(rng, count, PART), unit_rows(rng, count, PART)], axis=1)
                for offset, embedding in enumerate(parts):
                    face = NewFace(embedding, profile, ("bench",), (0.0, 0.0, 1.0, 1.0), 1.0, 100.0, 100.0)
                    yield f"s{start + offset}", "", [face]

        store.add_subjects_bulk(name, subjects())
        (collection_id,) = [key for key, (other, _) in store.collections_at()[1].items() if other == name]
        return collection_id


def _start(path: str, url: str, folder: str, collection_id: int, kinds: IndexKinds, answer: Any) -> None:
    """One start in a fresh process (its own peak memory): rebuild from the database, or load the snapshot."""
    faiss.omp_set_num_threads(Settings().search_threads)
    reset_peak()
    t0 = time.perf_counter()
    approximate_s = None
    if path == "rebuild":
        calibrations = Calibrations(Settings())
        registry = IndexRegistry(lambda profile, stored: calibrations.fusion(profile).fuse(stored), kinds)
        with opened(url) as store, store.collection_faces(collection_id) as faces:
            assert faces is not None
            index = registry.build(faces.profile, faces.chunks)
        ready_s = time.perf_counter() - t0
        index.settle()
        approximate_s = time.perf_counter() - t0
        save_snapshot(Path(folder), collection_id, COLLECTION, index, 0)  # what the snapshot path then loads
    else:
        (snapshot,) = load_snapshots(Path(folder), kinds).values()
        index = snapshot.index
        ready_s = time.perf_counter() - t0
        index.settle()
    steady = rss_bytes()  # before the peak: read after it, the resident size may have grown past the mark just read
    answer.put((ready_s, approximate_s, rss_bytes("VmHWM"), steady, index.kind, index.size))


def run_start(args: argparse.Namespace, url: str, faces: int, scratch: Path) -> list[StartResult]:
    collection_id = fill(url, faces, args.seed)
    kinds = IndexKinds.of(Settings())
    folder = scratch / f"snapshots-{faces}"
    spawn = multiprocessing.get_context("spawn")
    results = []
    for path in ("rebuild", "snapshot"):
        answer = spawn.Queue()
        process = spawn.Process(target=_start, args=(path, url, str(folder), collection_id, kinds, answer))
        process.start()
        ready_s, approximate_s, peak, steady, kind, size = answer.get(timeout=3600)
        process.join()
        note = f"{size} faces in the index"
        if path == "snapshot":
            note += f", file {path_of(folder, collection_id).stat().st_size / 1e6:.0f} MB"
        results.append(
            StartResult(
                faces=faces,
                backend=FaceStore(url).backend,
                path=path,
                ready_s=ready_s,
                approximate_s=approximate_s,
                peak_rss_mb=peak / 1e6,
                steady_rss_mb=steady / 1e6,
                index=kind,
                note=note,
            )
        )
    if not args.keep_gallery:
        with opened(url) as store:
            store.delete_collection(f"{COLLECTION}-{faces}")
    return results


# --- output ---------------------------------------------------------------------------------------------------

SEARCH_COLUMNS: list[harness.Column[SearchResult]] = [
    harness.Column("gallery", "gallery"),
    harness.Column("index", "index"),
    harness.Column("params", "params"),
    harness.Column("build s", "build_s", ".1f"),
    harness.Column("B/face RSS", "rss_per_face", ".0f"),
    harness.Column("B/face file", "file_per_face", ".0f"),
    harness.Column("p50 ms", "p50_ms", ".3f"),
    harness.Column("p99 ms", "p99_ms", ".3f"),
    harness.Column("queries", "queries"),
    harness.Column("recall@1 genuine", "genuine_recall", ".3f"),
    harness.Column("recall@1 impostor", "impostor_recall", ".3f"),
    harness.Column("truth@1", "truth_at_1", ".3f"),
]
START_COLUMNS: list[harness.Column[StartResult]] = [
    harness.Column("faces", "faces"),
    harness.Column("database", "backend"),
    harness.Column("start by", "path"),
    harness.Column("ready s", "ready_s", ".2f"),
    harness.Column("IVF in s", "approximate_s", ".1f"),
    harness.Column("peak MB", "peak_rss_mb", ".0f"),
    harness.Column("steady MB", "steady_rss_mb", ".0f"),
    harness.Column("index", "index"),
    harness.Column("note", "note"),
]


def measure(args: argparse.Namespace, settings: Settings) -> harness.Report:
    try:
        Calibrations(settings)[settings.profile]
    except ModelUnavailable as exc:
        raise harness.Unavailable(f"no calibration for profile {settings.profile}: {exc}") from exc
    search: list[SearchResult] = []
    start: list[StartResult] = []
    with tempfile.TemporaryDirectory(prefix="argus-scale-bench-") as scratch:
        for size in args.sizes if "search" in args.parts else ():
            search += run_search(args, size, Path(scratch))
        url = args.database_url or f"sqlite:///{Path(scratch) / 'facedb.sqlite3'}"
        for faces in args.start_sizes if "start" in args.parts else ():
            start += run_start(args, url, faces, Path(scratch))
    kinds = IndexKinds.of(settings)
    report = harness.Report(
        "face database scale",
        args.seconds,
        [f"faiss {faiss.__version__} with {args.threads} OpenMP thread(s)"],
        {"facedb_ann_min_faces": kinds.ann_min_faces, "facedb_ann_probe_fraction": kinds.probe_fraction},
    )
    report.data.update(faiss=faiss.__version__, search_k=SEARCH_K, genuine_cosine=args.genuine_cosine)
    report.table(
        "search",
        [
            f"identify search alone (FaceIndex): synthetic galleries of random unit vectors (d={DIMENSION}, "
            f"float32), batch-1 searches k={SEARCH_K}, {args.threads} thread(s)",
            f"genuine probes: cos {args.genuine_cosine} to the face they were made from; impostors: random. "
            "recall@1: top-1 equals the exact index's top-1.",
        ],
        search,
        SEARCH_COLUMNS,
    )
    report.table(
        "start",
        [
            "an index ready at start: rebuilt from the database (one consistent read + flat index; the IVF then "
            "replaces it in the background) or loaded from its snapshot; each in a fresh process",
        ],
        start,
        START_COLUMNS,
    )
    report.text(
        "",
        "Uniform random vectors have no clusters: the worst case for IVF. Real face embeddings cluster, so expect "
        "recall at least this good at the same nprobe.",
    )
    return report


def fractions(text: str) -> tuple[float, ...]:
    """An argparse type: comma-separated numbers in (0, 1]."""
    try:
        values = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None
    if not values or not all(0 < value <= 1 for value in values):
        raise argparse.ArgumentTypeError(f"{text!r}: give one or more numbers in (0, 1]")
    return values


def main(argv: list[str] | None = None) -> int:
    settings = Settings()
    parser = harness.arguments(__doc__ or "", seconds=3.0, images="nothing (this bench makes its own vectors)")
    parser.add_argument(
        "--sizes", type=harness.int_list(100), default=DEFAULT_SIZES, help="gallery sizes of the search part"
    )
    parser.add_argument(
        "--fractions",
        type=fractions,
        default=DEFAULT_FRACTIONS,
        help="shares of the IVF lists searched, one row each (default 0.05,0.1,0.2,0.4)",
    )
    parser.add_argument(
        "--ivf-flat", action="store_true", help="add rows of FAISS's IndexIVFFlat (full vectors) at the same fractions"
    )
    parser.add_argument(
        "--hnsw-ef-searches",
        type=harness.int_list(1),
        default=(),
        help="HNSW comparison rows at these search depths, one row each (default none: a 1M graph builds for long)",
    )
    parser.add_argument(
        "--start-sizes",
        type=harness.int_list(1),
        default=DEFAULT_START_SIZES,
        help="faces in the database for the start part (default 100000,1000000)",
    )
    parser.add_argument(
        "--database-url", default=None, help="the database of the start part (default: a temporary SQLite file)"
    )
    parser.add_argument("--queries", type=int, default=1000, help="probes of each kind per gallery (default 1000)")
    parser.add_argument("--genuine-cosine", type=float, default=GENUINE_COSINE, help="cos(genuine probe, its face)")
    parser.add_argument(
        "--threads",
        type=int,
        default=settings.search_threads,
        help=f"FAISS OpenMP threads (default ARGUS_SEARCH_THREADS, {settings.search_threads}, as the service)",
    )
    parser.add_argument(
        "--parts", nargs="+", choices=("search", "start"), default=("search", "start"), help="what to measure"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic galleries and probes")
    parser.add_argument(
        "--keep-gallery",
        action="store_true",
        help="leave the start part's collections in the database, for the next run to use instead of filling again",
    )
    args = harness.parse(parser, argv, QUICK)
    if args.queries < 1 or args.threads < 1 or not 0 < args.genuine_cosine < 1:
        parser.error("--queries and --threads must be at least 1, --genuine-cosine in (0, 1)")
    faiss.omp_set_num_threads(args.threads)
    return harness.main(lambda: measure(args, settings), args.json)


if __name__ == "__main__":
    sys.exit(main())
