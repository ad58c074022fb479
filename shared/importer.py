"""Bulk import into a collection: a folder with one sub-folder per subject, or a CSV of subject, name, photo.

One Enroll per photo (ENROLL_WHAT_PASSES), a few in flight at once, so every photo gets its own outcome and the
embedder's batcher stays fed. Resumable and idempotent: a journal (JSON lines, appended and flushed per photo)
records each finished photo, and a rerun skips them; a photo in flight when the process died is sent again, and
the face database stores a photo once per subject (PHOTO_ALREADY_ENROLLED), so nothing is imported twice.
"""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from argus.errors import ArgusError
from argus.proto.facedb.v1 import facedb_pb2

PHOTO_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp"})
CSV_COLUMNS = ("subject", "name", "photo")
JOURNAL_SUFFIX = ".argus-import.jsonl"
ATTEMPTS = 8
BACKOFF_S = 0.25  # doubled after each attempt, at most MAX_BACKOFF_S
MAX_BACKOFF_S = 5.0

ENROLLED, ALREADY, REFUSED = "enrolled", "already_enrolled", "refused"


class ImportStopped(ArgusError):
    """The import cannot go on (a wrong key or collection, a server that stays away); the journal keeps what is
    done, so the same command resumes once the cause is fixed."""


class Transient(Exception):
    """An enrollment worth another try after a pause: the server restarting or busy, or another call creating the
    same subject."""


class PhotoRefused(Exception):
    """The server refused this one photo (its words in the message)."""


# One photo's Enroll, as the client makes it: raises Transient, PhotoRefused or ImportStopped.
Enroll = Callable[["ImportItem", bytes], facedb_pb2.EnrollResponse]


@dataclass(frozen=True)
class ImportItem:
    subject: str
    display_name: str
    path: Path

    def key(self) -> str:
        """What the journal knows a photo by: its subject, path, size and modification time."""
        stat = self.path.stat()
        return f"{self.subject}\t{self.path.resolve()}\t{stat.st_size}\t{stat.st_mtime_ns}"


@dataclass(frozen=True)
class PhotoResult:
    item: ImportItem
    status: str  # ENROLLED, ALREADY or REFUSED
    detail: str = ""  # why it was refused: the PhotoStatus and the server's words
    face_id: int = 0
    warnings: tuple[str, ...] = ()  # other subjects its face already matches


@dataclass
class ImportSummary:
    enrolled: int = 0
    already_enrolled: int = 0
    skipped: int = 0  # done in an earlier run, by the journal
    refused: list[PhotoResult] = field(default_factory=list)
    warnings: list[PhotoResult] = field(default_factory=list)
    stopped: bool = False  # interrupted before every photo was done

    def add(self, result: PhotoResult) -> None:
        if result.status == ENROLLED:
            self.enrolled += 1
        elif result.status == ALREADY:
            self.already_enrolled += 1
        else:
            self.refused.append(result)
        if result.warnings:
            self.warnings.append(result)


def import_items(source: Path) -> list[ImportItem]:
    """The photos to import, in a stable order: a folder's sub-folders (the subject IDs) and their photos by name,
    or a CSV's rows (photo paths relative to the CSV's folder)."""
    source = Path(source)
    if source.is_dir():
        return [
            ImportItem(folder.name, "", photo)
            for folder in sorted(p for p in source.iterdir() if p.is_dir())
            for photo in sorted(folder.iterdir())
            if photo.is_file() and photo.suffix.lower() in PHOTO_SUFFIXES
        ]
    if not source.is_file():
        raise ImportStopped(f"{source} is neither a folder of subject folders nor a CSV file")
    with source.open(newline="", encoding="utf-8") as file:
        reader = csv.DictReader(file)
        if reader.fieldnames is None or set(CSV_COLUMNS) - set(reader.fieldnames):
            raise ImportStopped(f"{source}: the CSV needs the header {','.join(CSV_COLUMNS)}")
        items = []
        for line, row in enumerate(reader, start=2):
            if not (row["subject"] or "").strip() or not (row["photo"] or "").strip():
                raise ImportStopped(f"{source}: line {line} lacks a subject or a photo")
            items.append(ImportItem(row["subject"].strip(), (row["name"] or "").strip(), source.parent / row["photo"]))
        return items


def journal_path(source: Path) -> Path:
    """Where a source's journal goes by default: beside it."""
    source = Path(source).resolve()
    return source.with_name(source.name + JOURNAL_SUFFIX)


class Journal:
    """The photos finished, one JSON line each, flushed as it is written. A line cut short by a kill is ignored
    when read back (its photo is simply sent again) and cut off before the next line is appended."""

    def __init__(self, path: Path, collection: str) -> None:
        self.path = Path(path)
        self.collection = collection
        self._lock = threading.Lock()
        self._file: IO[str] | None = None

    def done(self) -> set[str]:
        """Keys of the photos this collection's imports enrolled (refused ones are tried again: the photo or the
        server's settings may have changed), read a line at a time."""
        finished: set[str] = set()
        try:
            with self.path.open(encoding="utf-8") as file:
                for line in file:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # the torn last line of a killed run
                    if (
                        isinstance(entry, dict)
                        and entry.get("collection") == self.collection
                        and entry.get("status") in (ENROLLED, ALREADY)
                    ):
                        finished.add(str(entry.get("key")))
        except FileNotFoundError:
            pass
        return finished

    def record(self, key: str, result: PhotoResult) -> None:
        entry = {
            "collection": self.collection,
            "key": key,
            "subject": result.item.subject,
            "photo": str(result.item.path),
            "status": result.status,
            "face_id": result.face_id,
            "detail": result.detail,
        }
        with self._lock:
            if self._file is None:
                self._file = self._open()
            self._file.write(json.dumps(entry) + "\n")
            self._file.flush()

    def _open(self) -> IO[str]:
        """The journal for appending, with a torn last line (a kill mid-write) cut off first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("ab+") as raw:
            size = raw.seek(0, 2)
            if size:
                raw.seek(max(0, size - 65536))
                tail = raw.read()
                if not tail.endswith(b"\n"):
                    cut = tail.rfind(b"\n")
                    raw.truncate(size - len(tail) + cut + 1)  # no newline in the tail (cut -1): all of it
        return self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _outcome(item: ImportItem, response: facedb_pb2.EnrollResponse) -> PhotoResult:
    (photo,) = response.photos
    warnings = tuple(
        f"matches {w.subject_id}" + (f" ({w.display_name})" if w.display_name else "") + f" at {w.similarity:.3f}"
        for w in response.warnings
    )
    if photo.status == facedb_pb2.PHOTO_ENROLLED:
        return PhotoResult(item, ENROLLED, face_id=photo.face_id, warnings=warnings)
    if photo.status == facedb_pb2.PHOTO_ALREADY_ENROLLED:
        return PhotoResult(item, ALREADY, face_id=photo.face_id)
    status = facedb_pb2.PhotoStatus.Name(photo.status).removeprefix("PHOTO_").lower()
    return PhotoResult(item, REFUSED, f"{status}: {photo.detail}")


def enroll_one(enroll: Enroll, item: ImportItem, max_bytes: int) -> PhotoResult:
    """One photo, tried again after a pause on a transient error; a refusal of this photo is a result, a problem of
    every photo (ImportStopped) is raised."""
    try:
        size = item.path.stat().st_size
        if size > max_bytes:
            return PhotoResult(item, REFUSED, f"too_large: {size} bytes; the limit is {max_bytes}")
        data = item.path.read_bytes()
    except OSError as exc:
        return PhotoResult(item, REFUSED, f"unreadable: {exc.strerror or exc}")
    for attempt in range(ATTEMPTS):
        try:
            return _outcome(item, enroll(item, data))
        except PhotoRefused as refused:
            return PhotoResult(item, REFUSED, str(refused))
        except Transient as transient:
            if attempt == ATTEMPTS - 1:
                raise ImportStopped(
                    f"the face database kept answering {transient}; run the import again later"
                ) from None
            time.sleep(min(MAX_BACKOFF_S, BACKOFF_S * 2**attempt))
    raise ImportStopped("no attempt was made")  # ATTEMPTS >= 1: the loop returns or raises


def import_photos(
    enroll: Enroll,
    items: Iterable[ImportItem],
    *,
    journal: Journal | None = None,
    concurrency: int = 4,
    max_bytes: int = 20 * 1024 * 1024,
    progress: Callable[[PhotoResult | None], None] | None = None,
    stop: threading.Event | None = None,
) -> ImportSummary:
    """Imports the photos with `enroll` (FaceDbClient.import_photos gives it), `concurrency` at a time (no more are
    read into memory at once), skipping those the journal has enrolled; progress(result) after each photo,
    progress(None) for one skipped. Setting `stop`, or Ctrl-C, lets the calls in flight finish and journals them
    first (summary.stopped; the KeyboardInterrupt goes on up)."""
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    done = journal.done() if journal else set()
    summary = ImportSummary()
    todo: Iterator[ImportItem] = iter(items)
    pending: dict[Future[PhotoResult], str] = {}
    interrupted = False
    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="import") as pool:
        try:
            while True:
                while len(pending) < concurrency and not (stop and stop.is_set()):
                    item = next(todo, None)
                    if item is None:
                        break
                    try:
                        key = item.key()
                    except OSError as exc:
                        result = PhotoResult(item, REFUSED, f"unreadable: {exc.strerror or exc}")
                        summary.add(result)
                        if progress:
                            progress(result)
                        continue
                    if key in done:
                        summary.skipped += 1
                        if progress:
                            progress(None)
                        continue
                    pending[pool.submit(enroll_one, enroll, item, max_bytes)] = key
                if not pending:
                    break
                try:
                    finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                except KeyboardInterrupt:
                    interrupted = True
                    finished, _ = wait(pending)  # the calls in flight end, and are journaled, before it goes up
                for future in finished:
                    key = pending.pop(future)
                    result = future.result()  # ImportStopped goes up, after the calls in flight end
                    summary.add(result)
                    if journal:
                        journal.record(key, result)
                    if progress:
                        progress(result)
                if interrupted:
                    raise KeyboardInterrupt
        finally:
            for future in pending:
                future.cancel()
    summary.stopped = bool(stop and stop.is_set() and next(todo, None) is not None)
    return summary


def report_rows(summary: ImportSummary) -> list[dict[str, Any]]:
    """Every refused photo, and every warned one, as rows for a report."""
    return [
        {"subject": r.item.subject, "photo": str(r.item.path), "status": r.status, "detail": r.detail}
        for r in summary.refused
    ] + [
        {"subject": r.item.subject, "photo": str(r.item.path), "status": "warning", "detail": "; ".join(r.warnings)}
        for r in summary.warnings
    ]
