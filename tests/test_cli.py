"""The `argus` command as a user runs it: real processes, a real server, a clean shutdown."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from argus.config import Settings
from argus.server import RunningServer

ARGUS = [sys.executable, "-m", "argus.cli.main"]


def run_argus(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ARGUS, *args], env=env, capture_output=True, text=True, timeout=timeout)


def argus_env(models_dir: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, "ARGUS_AUTH": "off", "ARGUS_MODELS_DIR": str(models_dir), "ARGUS_DEVICE": "cpu", **extra}


def test_models_pull_verify_and_list(tmp_path: Path) -> None:
    env = argus_env(tmp_path / "models")
    missing = run_argus("models", "verify", env=env)
    assert missing.returncode == 1 and "yolox-nano@0.1.1rc0: missing" in missing.stdout
    pulled = run_argus("models", "pull", "yunet-s", env=env)
    assert pulled.returncode == 0, pulled.stderr
    assert "yunet-s@2023mar-dynamic: mirror" in pulled.stdout
    listed = json.loads(run_argus("models", "list", "--json", env=env).stdout)
    states = {entry["name"]: entry["state"] for entry in listed}
    assert states["yunet-s"] == "present"
    assert {name for name, state in states.items() if state == "missing"} == set(states) - {"yunet-s"}
    unknown = run_argus("models", "pull", "nope", env=env)
    assert unknown.returncode == 2 and "unknown model" in unknown.stderr


def test_serve_without_models_says_how_to_get_them(tmp_path: Path) -> None:
    result = run_argus("serve", "detector", "--port", "0", env=argus_env(tmp_path / "empty"))
    assert result.returncode == 2
    assert "run `argus models pull yolox-nano`" in result.stderr


def test_serve_detect_and_stop_cleanly(
    models_dir: Path, images_dir: Path, free_port: int, wait_serving: Callable[..., None]
) -> None:
    port = free_port
    env = argus_env(models_dir, ARGUS_DETECTOR_ADDRESS=f"127.0.0.1:{port}")
    server = subprocess.Popen(
        [*ARGUS, "serve", "detector", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_serving(f"127.0.0.1:{port}", server)
        objects = run_argus("detect", str(images_dir / "objects/bus.jpg"), "--json", env=env)
        assert objects.returncode == 0, objects.stderr
        found = json.loads(objects.stdout)["results"][0]["objects"]
        assert {o["class_name"] for o in found} == {"bus", "person"}
        faces = run_argus("detect", "--faces", str(images_dir / "faces/two_people.jpg"), env=env)
        assert faces.returncode == 0 and "two_people.jpg (1126x661): 2 faces" in faces.stdout
        healthy = run_argus("health", env=env)
        assert healthy.returncode == 0 and healthy.stdout.strip() == "SERVING"
        bad = run_argus("detect", str(Path(__file__)), env=env)
        assert bad.returncode == 1 and "INVALID_ARGUMENT" in bad.stderr
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=30)
    assert server.returncode == 0, stderr
    assert "runs on CPUExecutionProvider" in stderr
    assert "shutting down" in stderr


def test_face_commands_against_running_services(
    facedb_server: RunningServer, images_dir: Path, models_dir: Path
) -> None:
    """enroll / verify / identify / compare / subjects, as a user types them, with --json where output is data."""
    faces = images_dir / "faces"
    env = argus_env(models_dir, ARGUS_FACEDB_ADDRESS=facedb_server.address)

    def argus(*args: str) -> subprocess.CompletedProcess[str]:
        return run_argus(*args, env=env)

    assert argus("collections", "create", "cli").returncode == 0
    enrolled = argus("enroll", "cli", "obama", str(faces / "obama.jpg"), "--name", "Barack Obama", "--json")
    assert enrolled.returncode == 0, enrolled.stderr
    assert json.loads(enrolled.stdout)["created_subject"] is True
    match = argus("verify", "cli", "obama", str(faces / "obama2.jpg"))
    assert match.returncode == 0 and match.stdout.startswith("MATCH")
    no_match = argus("verify", "cli", "obama", str(faces / "biden.jpg"), "--json")
    assert no_match.returncode == 3 and json.loads(no_match.stdout)["outcome"] == "NO_MATCH"
    identified = json.loads(argus("identify", "cli", str(faces / "two_people.jpg"), "--json").stdout)
    verdicts = sorted((face["box"]["x1"], face["unknown"]) for face in identified["faces"])
    assert [unknown for _, unknown in verdicts] == [False, True]  # Obama (left) known, Biden (right) not
    assert argus("compare", str(faces / "biden.jpg"), str(faces / "biden2.jpg")).returncode == 0
    listed = json.loads(argus("subjects", "list", "cli", "--json").stdout)
    assert [s["subject_id"] for s in listed] == ["obama"]
    profiles = argus("profiles")
    assert profiles.returncode == 0 and "mobilefacenet+dlib (default)" in profiles.stdout
    moved = argus("collections", "profile", "cli", "mobilefacenet", "--wait")
    assert moved.returncode == 0, moved.stderr
    assert (
        "re-embedding cli (1 faces) for mobilefacenet" in moved.stdout
        and "now uses profile mobilefacenet" in moved.stdout
    )
    assert argus("collections", "list").stdout.splitlines()[-1].split()[-1] == "mobilefacenet"
    assert argus("verify", "cli", "obama", str(faces / "obama2.jpg")).returncode == 0  # still a match after the move
    assert argus("subjects", "delete", "cli", "obama").returncode == 0
    missing = argus("verify", "cli", "obama", str(faces / "obama2.jpg"))
    assert missing.returncode == 1 and "NOT_FOUND" in missing.stderr
    assert argus("collections", "delete", "cli").returncode == 0


def test_choosing_the_face_and_feedback_from_the_command_line(
    facedb_server: RunningServer, images_dir: Path, models_dir: Path
) -> None:
    """A photo of two people is refused with its candidate boxes, which argus enroll takes back as PHOTO@BOX; a
    verify prints its decision, which argus decisions confirm adds to the template."""
    faces = images_dir / "faces"
    env = argus_env(models_dir, ARGUS_FACEDB_ADDRESS=facedb_server.address)

    def argus(*args: str) -> subprocess.CompletedProcess[str]:
        return run_argus(*args, env=env)

    assert argus("collections", "create", "cli-pick").returncode == 0
    two = str(faces / "two_people.jpg")
    refused = argus("enroll", "cli-pick", "obama", two)
    assert refused.returncode == 3 and "several_faces" in refused.stdout + refused.stderr
    candidates = [line.split("candidate: ")[1] for line in refused.stdout.splitlines() if "candidate: " in line]
    assert len(candidates) == 2 and all(c.startswith(two + "@") for c in candidates)
    leftmost = min(candidates, key=lambda c: float(c.rsplit("@", 1)[1].split(",")[0]))
    taken = argus("enroll", "cli-pick", "obama", leftmost)
    assert taken.returncode == 0 and "enrolled face" in taken.stdout, taken.stdout + taken.stderr
    verified = argus("verify", "cli-pick", "obama", str(faces / "obama2.jpg"))
    assert verified.returncode == 0 and "decision " in verified.stdout
    decision = verified.stdout.split("decision ")[1].split()[0]
    confirmed = argus("decisions", "confirm", "cli-pick", decision)
    assert confirmed.returncode == 0 and "added to the template" in confirmed.stdout, confirmed.stderr
    assert "template of 2 face(s)" in argus("verify", "cli-pick", "obama", str(faces / "obama2.jpg")).stdout
    strict = argus("verify", "cli-pick", "obama", str(faces / "obama2.jpg"), "--quality", "high")
    assert strict.returncode in (0, 3) and strict.stdout.split(":")[0] in ("MATCH", "LOW_QUALITY")
    assert argus("collections", "delete", "cli-pick").returncode == 0


def test_calibrate_writes_a_calibration_file(tmp_path: Path, eval_dir: Path, models_dir: Path) -> None:
    lfw = tmp_path / "lfw"
    lfw.mkdir()
    (lfw / "lfw-deepfunneled").symlink_to(eval_dir / "lfw" / "lfw-deepfunneled")
    lines = (eval_dir / "lfw" / "pairsDevTest.txt").read_text().splitlines()
    (lfw / "pairs.txt").write_text("\n".join(["20", *lines[1:21], *lines[501:521]]) + "\n")
    output = tmp_path / "calibration.json"
    env = argus_env(models_dir, ARGUS_DATA_DIR=str(tmp_path / "data"))
    result = run_argus("calibrate", "--pairs", str(lfw / "pairs.txt"), "--output", str(output), env=env)
    assert result.returncode == 0, result.stderr
    written = json.loads(output.read_text())
    assert written["pairs"] == 40 and written["profile"] == "mobilefacenet+dlib"
    assert [m.split("@")[0] for m in written["models"]] == ["mobilefacenet", "dlib-resnet"]
    assert list(written["means"]) == ["dlib-resnet"] and len(written["means"]["dlib-resnet"]) == 128
    assert 0.0 < written["threshold"] < 0.6 and len(written["coef"]) == 2
    assert "too few for open-set thresholds" in result.stderr  # 40 pairs cannot fit the impostor tail


def test_stylize_through_the_jobs_api(
    jobs_settings: Settings, models_dir: Path, images_dir: Path, tmp_path: Path, wait_serving: Callable[..., None]
) -> None:
    """`argus serve jobs` and `argus serve stylizer` as processes, `argus styles`, `argus stylize`, `argus jobs list`."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = argus_env(
        models_dir,
        ARGUS_REDIS_URL=jobs_settings.redis_url,
        ARGUS_RESULTS_DIR=str(tmp_path / "results"),
        ARGUS_JOBS_ADDRESS=f"127.0.0.1:{port}",
    )
    jobs = subprocess.Popen([*ARGUS, "serve", "jobs", "--port", str(port)], env=env, stderr=subprocess.PIPE, text=True)
    worker = subprocess.Popen([*ARGUS, "serve", "stylizer"], env=env, stderr=subprocess.PIPE, text=True)
    try:
        wait_serving(f"127.0.0.1:{port}", jobs)
        styles = json.loads(run_argus("styles", "--json", env=env).stdout)
        assert {"candy", "mosaic", "rain-princess", "udnie"} <= {s["name"] for s in styles}
        output = tmp_path / "amber-candy.png"
        content = str(images_dir / "style/amber.jpg")
        done = run_argus("stylize", content, "--style", "candy", "--max-size", "160", "-o", str(output), env=env)
        assert done.returncode == 0, done.stderr
        assert output.read_bytes()[:4] == b"\x89PNG" and "wrote" in done.stdout
        listed = json.loads(run_argus("jobs", "list", "--json", env=env).stdout)
        assert [job["state"] for job in listed] == ["SUCCEEDED"]
        bad = run_argus("stylize", content, "--style", "picasso", "-o", str(output), env=env)
        assert bad.returncode == 1 and "unknown style" in bad.stderr
    finally:
        for process in (worker, jobs):
            process.send_signal(signal.SIGTERM)
        for process in (worker, jobs):
            _, stderr = process.communicate(timeout=30)
            assert process.returncode == 0, stderr


def test_liveness_from_the_command_line(
    facedb_server: RunningServer, eval_dir: Path, models_dir: Path, detector_server: RunningServer
) -> None:
    """argus verify --require-live answers SPOOF (exit 3) to the screen of image_F2, which matches the person of
    image_T1 without it; argus detect --faces --liveness prints each face's score."""
    samples = eval_dir / "liveness"
    env = argus_env(
        models_dir, ARGUS_FACEDB_ADDRESS=facedb_server.address, ARGUS_DETECTOR_ADDRESS=detector_server.address
    )

    def argus(*args: str) -> subprocess.CompletedProcess[str]:
        return run_argus(*args, env=env)

    assert argus("collections", "create", "cli-door").returncode == 0
    assert argus("enroll", "cli-door", "t1", str(samples / "image_T1.jpg"), "--require-live").returncode == 0
    refused = argus("enroll", "cli-door", "f2", str(samples / "image_F2.jpg"), "--require-live")
    assert refused.returncode == 3 and "print or a screen" in refused.stderr  # a photo refused: exit 3
    spoof = argus("verify", "cli-door", "t1", str(samples / "image_F2.jpg"), "--require-live")
    assert spoof.returncode == 3 and spoof.stdout.startswith("SPOOF: the face looks like a print or a screen")
    assert argus("verify", "cli-door", "t1", str(samples / "image_F2.jpg")).returncode == 0  # waived: it matches
    identified = argus("identify", "cli-door", str(samples / "image_F2.jpg"), "--require-live")
    assert "SPOOF (liveness 0." in identified.stdout
    scored = argus("detect", "--faces", "--liveness", str(samples / "image_T1.jpg"))
    assert scored.returncode == 0 and "face live 1.00" in scored.stdout
    assert argus("detect", "--liveness", str(samples / "image_T1.jpg")).returncode == 2  # faces only
    updated = argus("collections", "update", "cli-door", "--require-live")
    assert updated.returncode == 0 and "cli-door: liveness required" in updated.stdout
    assert argus("verify", "cli-door", "t1", str(samples / "image_F2.jpg")).returncode == 3  # now by default


def test_argus_eval_liveness_reports_the_operating_point(models_dir: Path, tmp_path: Path) -> None:
    """The evaluation through the command line, on a small LFW draw: the samples come out as expected at the
    default threshold, BPCER rises with the threshold, the face-box grid and the plot are there."""
    plot = tmp_path / "liveness.png"
    done = run_argus(
        "eval", "liveness", "--images", "24", "--box-grid", "--plot", str(plot), "--json", env=argus_env(models_dir)
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["samples_as_expected"] and report["threshold"] == Settings.model_fields["liveness_threshold"].default
    assert report["lfw_images"] == 24 and set(report["apcer"]) == {"print", "screen replay"}
    assert report["apcer"] == {"print": 0.0, "screen replay": 0.0}  # both refused at the operating point
    rates = [row["bpcer_development"] for row in report["per_threshold"]]
    assert rates == sorted(rates) and 0.0 <= rates[0] <= rates[-1] <= 1.0
    grid = {row["box"]: row for row in report["box_grid"]}
    assert "yunet as is" in grid and any(name.startswith("caffe-like") for name in grid)
    assert plot.read_bytes().startswith(b"\x89PNG")
