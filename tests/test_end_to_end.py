"""The whole story as a newcomer lives it: `argus up`, then the SDK: enroll two people, verify a match and a
non-match, identify a known face and an unknown one, run a detection job and a stylization job, survive a crashed
worker, and stop the stack cleanly."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from argus_up import Stack

from argus.client import Argus
from argus.proto.facedb.v1 import facedb_pb2
from argus.proto.jobs.v1 import jobs_pb2


@pytest.fixture
def stack(tmp_path: Path, models_dir: Path) -> Iterator[tuple[Stack, dict[str, str]]]:
    ports = {}
    for name in ("detector", "embedder", "facedb", "jobs", "gateway"):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            ports[name] = str(sock.getsockname()[1])
    env = {key: value for key, value in os.environ.items() if not key.startswith("ARGUS_")}
    env |= {
        "ARGUS_DATA_DIR": str(tmp_path / "data"),
        "ARGUS_MODELS_DIR": str(models_dir),
        "ARGUS_DEVICE": "cpu",
        **{f"ARGUS_{name.upper()}_PORT": port for name, port in ports.items()},
    }
    running = Stack(env)
    yield running, ports
    if running.process.poll() is None:
        running.process.kill()
        running.process.wait(timeout=30)


def test_the_whole_story(stack: tuple[Stack, dict[str, str]], images_dir: Path) -> None:
    up, ports = stack
    up.wait_for("Press Ctrl-C to stop.", timeout_s=120)
    assert any("Argus is up in" in line for line in up.seen)
    assert f"  console           http://127.0.0.1:{ports.pop('gateway')}/" in up.seen
    faces = images_dir / "faces"
    addresses = {name: f"127.0.0.1:{port}" for name, port in ports.items()}
    with Argus(**addresses, timeout_s=60) as argus:
        argus.faces.create_collection("office")
        argus.enroll("office", "obama", [faces / "obama.jpg"], display_name="Barack Obama")
        argus.enroll("office", "biden", [faces / "biden.jpg"], display_name="Joe Biden")

        assert argus.verify("office", "obama", faces / "obama2.jpg").outcome == facedb_pb2.MATCH
        assert argus.verify("office", "obama", faces / "biden2.jpg").outcome == facedb_pb2.NO_MATCH

        known = argus.identify("office", faces / "biden2.jpg").faces[0]
        assert not known.unknown and known.candidates[0].subject_id == "biden"
        stranger = argus.identify("office", faces / "deepface_img3.jpg").faces[0]
        assert stranger.unknown

        detection = argus.jobs.submit_detection([images_dir / "objects/bus.jpg"], faces=True)
        stylization = argus.jobs.submit_stylization(images_dir / "style/amber.jpg", style="udnie", max_size=128)
        detected = argus.jobs.wait(detection.job_id, timeout_s=120)
        stylized = argus.jobs.wait(stylization.job_id, timeout_s=120)
        assert detected.state == jobs_pb2.SUCCEEDED, detected.error
        assert "bus" in {o.class_name for o in detected.detection.objects.results[0].objects}
        assert stylized.state == jobs_pb2.SUCCEEDED, stylized.error
        assert max(stylized.stylization.size.width, stylized.stylization.size.height) == 128

        # a worker that crashes is restarted, and the restart is logged
        (worker_pid,) = [pid for pid, command in up.children().items() if "detection-worker" in command]
        os.kill(worker_pid, signal.SIGKILL)
        up.wait_for("detection-worker exited with code -9; restarting", timeout_s=30)
        up.wait_for("detection-worker restarted", timeout_s=30)
        again = argus.jobs.submit_detection([images_dir / "objects/dog.jpg"])
        assert argus.jobs.wait(again.job_id, timeout_s=120).state == jobs_pb2.SUCCEEDED

    children = up.children()
    up.process.send_signal(signal.SIGINT)
    up.wait_for("stopped", timeout_s=60)
    assert up.process.wait(timeout=30) == 0
    assert not any(Path(f"/proc/{pid}").exists() for pid in children)
