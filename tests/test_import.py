"""Bulk import against a real face database: a folder of subject folders and a CSV, every refused photo reported,
resumed from the journal, and nothing imported twice, not even after a SIGKILL in the middle."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from argus.client import FaceDbClient
from argus.importer import ImportItem, ImportStopped, Journal, PhotoResult, import_items, journal_path
from argus.server import RunningServer

ARGUS = [sys.executable, "-m", "argus.cli.main"]


def lfw_people(eval_dir: Path, count: int, photos: int) -> list[tuple[str, list[Path]]]:
    root = eval_dir / "lfw" / "lfw-deepfunneled"
    people = []
    for folder in sorted(root.iterdir()):
        images = sorted(folder.glob("*.jpg"))
        if len(images) >= photos:
            people.append((folder.name, images[:photos]))
        if len(people) == count:
            break
    return people


def subject_folders(tmp_path: Path, people: list[tuple[str, list[Path]]]) -> Path:
    source = tmp_path / "people"
    for name, images in people:
        (source / name).mkdir(parents=True)
        for image in images:
            shutil.copy(image, source / name / image.name)
    return source


def env(facedb: RunningServer, models_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "ARGUS_AUTH": "off",
        "ARGUS_MODELS_DIR": str(models_dir),
        "ARGUS_FACEDB_ADDRESS": facedb.address,
    }


def faces_of(client: FaceDbClient, collection: str) -> dict[str, int]:
    return {subject.subject_id: len(subject.faces) for subject in client.iter_subjects(collection)}


def test_a_folder_imports_reports_refusals_and_never_twice(
    facedb_server: RunningServer, eval_dir: Path, tmp_path: Path
) -> None:
    people = lfw_people(eval_dir, 3, 2)
    source = subject_folders(tmp_path, people)
    Image.fromarray(np.full((240, 320, 3), 128, np.uint8)).save(source / people[0][0] / "wall.png")
    (source / people[1][0] / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg at all")
    (source / people[1][0] / "notes.txt").write_text("not a photo: left out")
    with FaceDbClient(facedb_server.address, timeout_s=60) as client:
        client.create_collection("imported")
        journal = Journal(journal_path(source), "imported")
        items = import_items(source)
        assert len(items) == 8
        summary = client.import_photos("imported", items, journal=journal, concurrency=3, take_largest_face=True)
        journal.close()
        assert summary.enrolled == 6 and summary.already_enrolled == 0
        refusals = sorted(r.detail.split(":")[0] for r in summary.refused)
        assert refusals == ["no_face", "unreadable"]
        assert faces_of(client, "imported") == {name: 2 for name, _ in people}
        # Rerun: the journal says what is done; the refused photos are tried (and reported) again.
        again = client.import_photos("imported", import_items(source), journal=journal, take_largest_face=True)
        journal.close()
        assert again.skipped == 6 and again.enrolled == 0 and len(again.refused) == 2
        # Without the journal the server knows the photos: nothing is stored twice.
        fresh = client.import_photos(
            "imported",
            import_items(source),
            journal=Journal(tmp_path / "j2", "imported"),
            take_largest_face=True,
        )
        assert fresh.already_enrolled == 6 and fresh.enrolled == 0 and len(fresh.refused) == 2
        assert faces_of(client, "imported") == {name: 2 for name, _ in people}
        with pytest.raises(ImportStopped):
            client.import_photos("no-such-collection", items)
        client.delete_collection("imported")


def test_a_csv_names_its_subjects(facedb_server: RunningServer, eval_dir: Path, tmp_path: Path) -> None:
    people = lfw_people(eval_dir, 2, 1)
    lines = ["subject,name,photo"]
    for number, (name, images) in enumerate(people):
        shutil.copy(images[0], tmp_path / images[0].name)
        lines.append(f"id-{number},{name.replace('_', ' ')},{images[0].name}")
    table = tmp_path / "people.csv"
    table.write_text("\n".join(lines) + "\n")
    with FaceDbClient(facedb_server.address, timeout_s=60) as client:
        client.create_collection("from-csv")
        summary = client.import_photos("from-csv", import_items(table), take_largest_face=True)
        assert summary.enrolled == 2
        assert client.get_subject("from-csv", "id-1").display_name == people[1][0].replace("_", " ")
        client.delete_collection("from-csv")
    bad = tmp_path / "bad.csv"
    bad.write_text("who,photo\nx,y.jpg\n")
    with pytest.raises(ImportStopped, match="header"):
        import_items(bad)


def test_an_import_killed_midway_resumes_without_duplicates(
    facedb_server: RunningServer, eval_dir: Path, models_dir: Path, tmp_path: Path
) -> None:
    people = lfw_people(eval_dir, 12, 2)
    source = subject_folders(tmp_path, people)
    with FaceDbClient(facedb_server.address, timeout_s=60) as client:
        client.create_collection("killed")
        journal = journal_path(source)
        process = subprocess.Popen(
            [*ARGUS, "import", "killed", str(source), "--concurrency", "2", "--largest"],
            env=env(facedb_server, models_dir),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            if journal.exists() and len(journal.read_text().splitlines()) >= 4:
                break
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        done_before = len(Journal(journal, "killed").done())  # a line torn by the kill does not count
        assert 4 <= done_before < 24, "the import was killed midway"
        resumed = subprocess.run(
            [*ARGUS, "import", "killed", str(source), "--largest"],
            env=env(facedb_server, models_dir),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stderr
        assert f"{done_before} done before" in resumed.stdout
        assert faces_of(client, "killed") == {name: 2 for name, _ in people}
        wrong = subprocess.run(
            [*ARGUS, "import", "nowhere", str(source)],
            env=env(facedb_server, models_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert wrong.returncode == 1 and "NOT_FOUND" in wrong.stderr
        client.delete_collection("killed")


def test_the_journal_ignores_a_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(
        '{"collection": "c", "key": "a", "status": "enrolled"}\n'
        '{"collection": "c", "key": "r", "status": "refused"}\n'
        '{"collection": "other", "key": "b", "status": "enrolled"}\n{"collection": "c", "ke'
    )
    journal = Journal(path, "c")
    assert journal.done() == {"a"}  # refused photos are tried again; another collection's are not ours
    item = ImportItem("s", "", path)
    journal.record("z", PhotoResult(item, "already_enrolled"))
    journal.close()
    assert journal.done() == {"a", "z"}  # the torn line was cut, not glued to the new one
    assert path.read_text().count("\n") == 4


def test_stopping_finishes_what_is_in_flight_and_says_so(tmp_path: Path) -> None:
    """The SDK's stop event: the calls in flight end and are journaled, no new one starts, summary.stopped."""
    import threading

    from argus.importer import import_photos
    from argus.proto.facedb.v1 import facedb_pb2

    photos = []
    for number in range(10):
        photo = tmp_path / f"p{number}.jpg"
        photo.write_bytes(bytes([number]) * 10)
        photos.append(ImportItem(f"s{number}", "", photo))
    stop = threading.Event()
    sent: list[str] = []

    def enroll(item: ImportItem, data: bytes) -> facedb_pb2.EnrollResponse:
        sent.append(item.subject)
        stop.set()  # the first call asks to stop
        outcome = facedb_pb2.PhotoOutcome(index=0, status=facedb_pb2.PHOTO_ENROLLED, face_id=len(sent))
        return facedb_pb2.EnrollResponse(photos=[outcome])

    journal = Journal(tmp_path / "journal.jsonl", "c")
    summary = import_photos(enroll, photos, journal=journal, concurrency=2, stop=stop)
    journal.close()
    assert summary.stopped and 1 <= summary.enrolled == len(sent) <= 2
    assert len(journal.done()) == len(sent)
