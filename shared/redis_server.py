"""A redis-server of our own on a free loopback port: the embedded Redis of `argus up`, and the one the tests and
benchmarks start so they never depend on a machine's Redis."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from argus.files import private_dir


class RedisServerError(RuntimeError):
    """No redis-server binary, or it would not start."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """Persistent (append-only file in data_dir) or not. It keeps its port and folder, so stop() then start()
    brings back the same server with what it had acknowledged."""

    def __init__(self, data_dir: Path, *, persistent: bool = True, fsync_always: bool = False) -> None:
        self.data_dir = data_dir
        self.persistent = persistent
        self.fsync_always = fsync_always
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def command(self, binary: str) -> list[str]:
        command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data_dir), "--save", ""]
        command += ["--appendonly", "yes" if self.persistent else "no"]
        if self.fsync_always:
            command += ["--appendfsync", "always"]
        return [*command, "--logfile", str(self.data_dir / "redis.log")]

    def start(self, timeout_s: float = 15.0) -> str:
        """Starts it and waits until it answers (a persistent one may first be loading its data); returns its URL."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisServerError("redis-server is not installed (Debian package redis-server)")
        private_dir(self.data_dir)  # the append-only file holds every queued photo
        self.process = subprocess.Popen(self.command(binary), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                try:
                    client.ping()
                    return self.url
                except redis.RedisError:  # refused, or still loading
                    if self.process.poll() is not None:
                        break
                    time.sleep(0.05)
        finally:
            client.close()
        raise RedisServerError(f"redis-server did not start; see {self.data_dir / 'redis.log'}")

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM: Redis flushes its append-only file and exits."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
