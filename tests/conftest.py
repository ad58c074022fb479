"""Fixtures that start real things: a model store filled from the mirror, the detector, embedder and face
database servers, and a PostgreSQL server of the test run's own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest

from argus.config import Settings
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.models.store import ModelStore
from argus.proto.detector.v1 import detector_pb2_grpc
from argus.proto.embedder.v1 import embedder_pb2_grpc
from argus.proto.facedb.v1 import facedb_pb2_grpc
from argus.server import RunningServer
from argus.services.facedb.storage import FaceStore


@pytest.fixture
def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def wait_serving() -> Callable[[str, subprocess.Popen[str]], None]:
    """Waits until a server process we started answers SERVING on the health protocol (or fails if it exits)."""
    from argus.health import wait_until_serving

    def wait(address: str, process: subprocess.Popen[str], timeout_s: float = 60) -> None:
        with grpc.insecure_channel(address) as channel:
            wait_until_serving(channel, address, time.monotonic() + timeout_s, lambda: process.poll() is None)

    return wait


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


BenchRunner = Callable[..., "subprocess.CompletedProcess[str]"]  # what the run_bench fixture gives


@pytest.fixture
def run_bench(models_dir: Path, images_dir: Path) -> BenchRunner:
    """Runs bench/<script> with these arguments, the test models and images and --json (the JSON on stdout, the
    table on stderr), and checks that it succeeded: the benches' smoke tests check their rows, never their speed."""

    def run(script: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        repo = Path(__file__).resolve().parent.parent
        done = subprocess.run(
            [sys.executable, str(repo / "bench" / script), *args, "--json", "--images", str(images_dir)],
            cwd=repo,
            env={**os.environ, "ARGUS_MODELS_DIR": str(models_dir), "ARGUS_METRICS_PORT": "0", **env},
            capture_output=True,
            text=True,
            timeout=240,
        )
        assert done.returncode == 0, done.stderr[-4000:]
        return done

    return run


@pytest.fixture(scope="session")
def settings(models_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        data_dir=tmp_path_factory.mktemp("data"),
        models_dir=models_dir,
        auth="off",  # the servers of most tests hold no keys; the tests of auth require it
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


@pytest.fixture(scope="session")
def embedder_server(settings: Settings, store: ModelStore) -> Iterator[RunningServer]:
    from argus.services.embedder.server import start_embedder_server

    running = start_embedder_server(settings, store, port=0)
    yield running
    running.stop()


@pytest.fixture(scope="session")
def embedder_channel(embedder_server: RunningServer) -> Iterator[grpc.Channel]:
    channel = grpc.insecure_channel(embedder_server.address)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield channel
    channel.close()


@pytest.fixture(scope="session")
def embedder_stub(embedder_channel: grpc.Channel) -> embedder_pb2_grpc.EmbedderServiceStub:
    return embedder_pb2_grpc.EmbedderServiceStub(embedder_channel)


# PostgreSQL: a real server for the face database tests, started by the tests themselves.


class _OwnPostgres:
    """A throw-away PostgreSQL server: initdb and pg_ctl in a temp dir, on a free loopback port.

    initdb refuses to run as root, so as root the server binaries run as the postgres user (runuser).
    """

    def __init__(self) -> None:
        import glob
        import os
        import tempfile

        def major(initdb: str) -> int:
            name = Path(initdb).parent.parent.name
            return int(name) if name.isdigit() else 0

        initdbs = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=major)
        if not initdbs:
            raise RuntimeError("no PostgreSQL server binaries under /usr/lib/postgresql/*/bin")
        self.bindir = Path(initdbs[-1]).parent
        self.as_user: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="argus-pg-"))
        if os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.data, self.log = self.root / "data", self.root / "server.log"

    def _run(self, *args: str) -> None:
        import subprocess

        done = subprocess.run([*self.as_user, *args], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"{Path(args[0]).name} exited with {done.returncode}: {done.stderr[-2000:]} {log}")

    def start(self) -> str:
        """Starts the server; returns the URL of its `postgres` database."""
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        try:
            initdb = str(self.bindir / "initdb")
            self._run(initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync")
            # Durability is pointless for a throw-away server; without it a CREATE DATABASE per test is quick.
            self.options = (
                f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off"
            )
            self.start_server()
        except BaseException:
            self.stop()
            raise
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
        return self.url

    def start_server(self) -> None:
        """(Re)starts the server process on the same data directory and port."""
        pg_ctl = str(self.bindir / "pg_ctl")
        self._run(pg_ctl, "-D", str(self.data), "-l", str(self.log), "-o", self.options, "-w", "-t", "60", "start")

    def stop_server(self) -> None:
        """Stops the server process (fast shutdown: sessions are cut off), keeping its data for start_server."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def stop(self) -> None:
        import shutil
        import subprocess

        if (self.data / "postmaster.pid").exists():
            pg_ctl = str(self.bindir / "pg_ctl")
            stop = [*self.as_user, pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"]
            subprocess.run(stop, capture_output=True, timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


def _pg_admin(url: str):
    """An autocommit connection to the server's `postgres` database, for CREATE and DROP DATABASE."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    return psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname="postgres", autocommit=True, connect_timeout=10
    )


def _with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database on a real PostgreSQL server: our own instance when the server binaries are installed, else the
    machine's server on 127.0.0.1:5432 (trust auth). Fails, never skips, when neither works."""
    server: _OwnPostgres | None = None
    try:
        server = _OwnPostgres()
        admin_url = server.start()
    except Exception as own_error:
        server = None
        admin_url = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
        try:
            _pg_admin(admin_url).close()
        except Exception as system_error:
            pytest.fail(
                "PostgreSQL is needed for the face database tests and none could be had: starting our own server "
                f"failed ({own_error}); the server on 127.0.0.1:5432 is unusable ({system_error}). "
                "Install the PostgreSQL server package, or run one with trust auth on 127.0.0.1:5432."
            )
    name = f"argus_{uuid.uuid4().hex[:12]}"
    try:
        with _pg_admin(admin_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        yield _with_database(admin_url, name)
        with _pg_admin(admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        if server is not None:
            server.stop()


@contextmanager
def new_postgres_database(postgres_url: str) -> Iterator[str]:
    """An empty database of its own on the postgres_url server, dropped afterwards."""
    name = f"argus_t_{uuid.uuid4().hex[:12]}"
    with _pg_admin(postgres_url) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(postgres_url, name)
    finally:
        with _pg_admin(postgres_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> Iterator[str]:
    """An empty database for one test."""
    with new_postgres_database(postgres_url) as url:
        yield url


@pytest.fixture(scope="session")
def facedb_settings(settings: Settings, detector_server: RunningServer, embedder_server: RunningServer) -> Settings:
    """Settings for a face database that calls the test session's detector and embedder servers."""
    return settings.model_copy(
        update={"detector_address": detector_server.address, "embedder_address": embedder_server.address}
    )


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def facedb_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Each face database test module runs once on SQLite and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('facedb') / 'facedb.sqlite3'}"
        return
    with new_postgres_database(request.getfixturevalue("postgres_url")) as url:
        yield url


@pytest.fixture(scope="module")
def facedb_server(facedb_settings: Settings, facedb_database_url: str) -> Iterator[RunningServer]:
    from argus.services.facedb.server import start_facedb_server

    running = start_facedb_server(facedb_settings.model_copy(update={"database_url": facedb_database_url}), port=0)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def facedb_stub(facedb_server: RunningServer) -> Iterator[facedb_pb2_grpc.FaceDatabaseServiceStub]:
    channel = grpc.insecure_channel(facedb_server.address)
    grpc.channel_ready_future(channel).result(timeout=10)
    yield facedb_pb2_grpc.FaceDatabaseServiceStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the test run's own on a free port; fails, never skips, when there is none."""
    from argus.redis_server import RedisServer, RedisServerError

    server = RedisServer(tmp_path_factory.mktemp("redis"), persistent=False)
    try:
        url = server.start()
    except RedisServerError as exc:
        pytest.fail(f"the job queue tests need Redis: {exc}")
    yield url
    server.stop()


@pytest.fixture
def jobs_settings(settings: Settings, redis_url: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings on a flushed Redis database and an empty result store, one per test."""
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    yield settings.model_copy(
        update={
            "redis_url": redis_url,
            "results_dir": tmp_path / "results",
            "job_visibility_timeout_s": 1.5,
            "result_inline_bytes": 64 * 1024,
        }
    )


@pytest.fixture
def own_postgres_factory() -> Iterator[Callable[[], _OwnPostgres]]:
    """Makes PostgreSQL servers of a test's own, started (`.url`), to stop and start at will (`stop_server`,
    `start_server`); every one is removed after the test. Fails, never skips, without the server binaries."""
    made: list[_OwnPostgres] = []

    def make() -> _OwnPostgres:
        server = _OwnPostgres()
        server.start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.stop()


@pytest.fixture
def jobs_server(jobs_settings: Settings) -> Iterator[RunningServer]:
    from argus.services.jobs.server import start_jobs_server

    running = start_jobs_server(jobs_settings, port=0)
    yield running
    running.stop()


@pytest.fixture
def start_worker(jobs_settings: Settings) -> Iterator[Callable[..., object]]:
    """Runs job workers in threads of this process, stopped at the end of the test."""
    import threading

    from argus.services.jobs.server import job_store
    from argus.services.jobs.worker import Worker

    running: list[tuple[Worker, threading.Thread]] = []

    def start(kind: object, handler: Callable[..., bytes], consumer: str | None = None, **overrides: object) -> Worker:
        options = {
            "visibility_timeout_s": jobs_settings.job_visibility_timeout_s,
            "max_attempts": jobs_settings.job_max_attempts,
            "consumer": consumer or f"test-{len(running)}",
        } | overrides
        worker = Worker(kind, handler, job_store(jobs_settings), **options)  # type: ignore[arg-type]
        thread = threading.Thread(target=worker.run, kwargs={"poll_s": 0.2}, daemon=True)
        thread.start()
        running.append((worker, thread))
        return worker

    yield start
    for worker, thread in running:
        worker.stop()
        thread.join(timeout=30)


class PeakRss:
    """Samples a process's resident memory (VmRSS) every few milliseconds while in use; `growth_mb` is the peak
    over the value at entry. A floor stated by the product ("RSS growth under 1 GB") is asserted on it."""

    def __init__(self, pid: int, interval_s: float = 0.005) -> None:
        self.pid, self.interval_s = pid, interval_s
        self.start_kb = self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _rss_kb(self) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"process {self.pid} has no VmRSS")

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, self._rss_kb())
            except (OSError, RuntimeError):
                return  # the process ended
            self._stop.wait(self.interval_s)

    def __enter__(self) -> PeakRss:
        self.start_kb = self.peak_kb = self._rss_kb()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    @property
    def growth_mb(self) -> float:
        return (self.peak_kb - self.start_kb) / 1024


@pytest.fixture
def peak_rss() -> Callable[[int], PeakRss]:
    """peak_rss(pid) measures the growth of that process's resident memory over a `with` block."""
    return PeakRss


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database of each kind: a temp SQLite file, or a fresh database on the test PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'facedb.sqlite3'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
def db(database_url: str) -> Iterator[FaceStore]:
    """A migrated face store on each kind of database."""
    store = FaceStore(database_url)
    store.migrate()
    yield store
    store.close()


@pytest.fixture(scope="module")
def analyzer(store: ModelStore, settings: Settings) -> Iterator[LocalFaceAnalyzer]:
    """The detector and embedder models in this process: the face database's domain tested without their servers."""
    local = LocalFaceAnalyzer(store, settings)
    yield local
    local.close()
