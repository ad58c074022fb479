"""The import bench still runs end to end: a --quick run, its JSON checked for its rows, never for its speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_import_bench_reports_every_row(models_dir: Path) -> None:
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(repo / "bench" / "import_bench.py"), "--quick", "--json"],
        cwd=repo,
        env={**os.environ, "ARGUS_MODELS_DIR": str(models_dir), "ARGUS_METRICS_PORT": "0"},
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    report = json.loads(done.stdout)
    rows = {row["what"]: row for row in report["rows"]}
    assert list(rows) == [
        "raw: DetectFaces + Embed",
        "import",
        "import again, with the journal",
        "import again, no journal",
    ]
    assert all(row["photos"] == 16 and row["seconds"] > 0 for row in rows.values())
    assert rows["raw: DetectFaces + Embed"]["faces"] >= 16
    assert rows["import"]["note"] == "16 enrolled, 0 already, 0 skipped, 0 refused"
    assert rows["import again, with the journal"]["note"] == "0 enrolled, 0 already, 16 skipped, 0 refused"
    assert rows["import again, no journal"]["note"] == "0 enrolled, 16 already, 0 skipped, 0 refused"
    assert report["import_over_raw"] > 0 and "import / raw" in done.stderr
