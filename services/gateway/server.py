"""`argus serve gateway`: the GatewayApp under uvicorn, on ARGUS_GATEWAY_PORT, with the services' TLS settings."""

from __future__ import annotations

import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from argus.config import LOOPBACK, Settings
from argus.services.gateway.app import CONSOLE_DIR, GatewayApp

SHUTDOWN_GRACE_S = 10


def gateway_config(settings: Settings, port: int, console_dir: Path = CONSOLE_DIR) -> uvicorn.Config:
    """uvicorn's settings from ours: TLS (mutual with a client CA) as the gRPC ports have it, and a bound on open
    requests (unary calls and WatchJob streams, as the services bound theirs) beyond which it answers 503."""
    tls: dict[str, object] = {}
    if settings.tls_cert_file:
        if not settings.tls_key_file:
            raise ValueError("ARGUS_TLS_CERT_FILE is set but ARGUS_TLS_KEY_FILE is not")
        tls = {"ssl_certfile": str(settings.tls_cert_file), "ssl_keyfile": str(settings.tls_key_file)}
        if settings.tls_client_ca_file:
            tls |= {"ssl_ca_certs": str(settings.tls_client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return uvicorn.Config(
        GatewayApp(settings, console_dir),
        host=settings.host,
        port=port,
        lifespan="on",
        log_config=None,  # our logging, as every other process has it
        access_log=False,
        server_header=False,
        limit_concurrency=settings.concurrent_calls("gateway") + settings.max_open_streams,
        timeout_graceful_shutdown=SHUTDOWN_GRACE_S,
        **tls,  # type: ignore[arg-type]
    )


@dataclass
class RunningGateway:
    """A gateway serving from a thread of its own (tests, benches); `argus serve gateway` runs it in the foreground."""

    server: uvicorn.Server
    thread: threading.Thread
    port: int

    @property
    def url(self) -> str:
        scheme = "https" if self.server.config.ssl_certfile else "http"
        return f"{scheme}://{LOOPBACK}:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=SHUTDOWN_GRACE_S + 5)


def start_gateway(
    settings: Settings, port: int, console_dir: Path = CONSOLE_DIR, timeout_s: float = 30
) -> RunningGateway:
    server = uvicorn.Server(gateway_config(settings, port, console_dir))
    thread = threading.Thread(target=server.run, name="gateway", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise OSError(f"the gateway did not start on {settings.host}:{port}")
        time.sleep(0.02)
    bound = server.servers[0].sockets[0].getsockname()[1] if port == 0 else port
    return RunningGateway(server, thread, bound)


def serve_gateway(settings: Settings, port: int) -> None:
    """In the foreground until SIGINT or SIGTERM; requests in flight are given SHUTDOWN_GRACE_S to finish."""
    uvicorn.Server(gateway_config(settings, port)).run()
