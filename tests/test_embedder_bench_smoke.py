"""The embedding-profile bench still runs end to end: a very short run, checked for its rows, never for its speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from argus.profiles import PROFILES

REPO_ROOT = Path(__file__).resolve().parent.parent
BENCH = REPO_ROOT / "bench" / "embedder_bench.py"


def test_embedder_bench_prints_a_row_per_profile(models_dir: Path, images_dir: Path) -> None:
    env = {**os.environ, "ARGUS_MODELS_DIR": str(models_dir), "ARGUS_INTRA_OP_THREADS": "2"}
    done = subprocess.run(
        [sys.executable, str(BENCH), "--seconds", "0.05", "--json", "--images", str(images_dir)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    rows = json.loads(done.stdout)
    assert [row["profile"] for row in rows] == list(PROFILES)
    dims = {row["profile"]: row["dimension"] for row in rows}
    assert dims == {"mobilefacenet": 128, "dlib": 128, "mobilefacenet+dlib": 256, "mobilefacenet+dlib+faceres": 1280}
    for row in rows:
        assert row["ms_per_face_single"] > 0 and row["ms_per_face_batched"] > 0 and row["detect_ms_per_photo"] > 0
    assert "ms/face (16 per call)" in done.stderr  # the table, for people
