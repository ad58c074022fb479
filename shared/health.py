"""Health that follows a dependency: a server whose database or queue is down says NOT_SERVING until it is back.

A load balancer or an orchestrator reading the gRPC health protocol then stops sending traffic that could only
fail, and sends it again once the dependency answers; the server itself never has to restart.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from argus.server import RunningServer

log = logging.getLogger(__name__)


class DependencyMonitor:
    """Calls `check` every `interval_s` seconds in a thread of its own and reflects the answer in the server's
    health: NOT_SERVING while the dependency is down, SERVING again when it answers. Each transition is logged
    once. A check that raises counts as down; a check should bound its own time (socket or connect timeouts).
    """

    def __init__(self, running: RunningServer, name: str, check: Callable[[], bool], interval_s: float = 1.0) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive, got {interval_s}")
        self.running = running
        self.name = name
        self.check = check
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._lock = threading.Lock()  # stop() and a health change never interleave
        self._healthy = True  # start_server has just said SERVING
        self._thread = threading.Thread(target=self._run, name=f"health-{name}", daemon=True)

    @property
    def healthy(self) -> bool:
        """What the last check found (True before the first one)."""
        return self._healthy

    def start(self) -> DependencyMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(5.0, 2 * self.interval_s))

    def _probe(self) -> bool:
        try:
            return bool(self.check())
        except Exception as exc:
            log.debug("health check of %s raised %s: %s", self.name, type(exc).__name__, exc)
            return False

    def _run(self) -> None:
        while not self._stop.is_set():
            up = self._probe()
            with self._lock:
                # A server being stopped reports NOT_SERVING for good; never bring it back.
                if self._stop.is_set() or self.running._stopped.is_set():
                    return
                if up != self._healthy:
                    self._healthy = up
                    self.running.set_serving(up)
                    if up:
                        log.warning("%s is reachable again: health is SERVING", self.name)
                    else:
                        log.error("%s is unreachable: health is NOT_SERVING until it answers again", self.name)
            self._stop.wait(self.interval_s)


def monitor_dependency(
    running: RunningServer, name: str, check: Callable[[], bool], interval_s: float = 1.0
) -> DependencyMonitor:
    """Starts a DependencyMonitor that stops first when the server stops (before the server's own stop hooks
    close the connections the check uses)."""
    monitor = DependencyMonitor(running, name, check, interval_s)
    running.bindings[0].on_stop.insert(0, monitor.stop)
    return monitor.start()


def wait_until_serving(
    channel: grpc.Channel, name: str, deadline: float, alive: Callable[[], bool] = lambda: True
) -> None:
    """Waits until the server behind the channel says SERVING, or raises: RuntimeError when `alive` says its process
    is gone, TimeoutError at the deadline (a time.monotonic() value)."""
    health = health_pb2_grpc.HealthStub(channel)
    while True:
        if not alive():
            raise RuntimeError(f"{name} exited during start-up")
        try:
            if (
                health.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                == health_pb2.HealthCheckResponse.SERVING
            ):
                return
        except grpc.RpcError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name} was not SERVING in time")
        time.sleep(0.1)
