"""Each replica's indexes follow the database's change log, so any number of facedb processes serve one database.

Every mutation writes its change rows in its own transaction (FaceStore._log); their ids are the change sequence,
in commit order. One follower thread per replica reads the changes after its position and applies them, in order,
to the IndexRegistry: it is the indexes' one writer, for this replica's own changes too (the replica commits, then
waits until its follower has applied that sequence, so what it enrolled is searchable when it answers). PostgreSQL
wakes every follower at each commit (LISTEN/NOTIFY); a poll every ARGUS_FACEDB_POLL_S is the fallback.

At start a replica loads each index's snapshot (snapshots.py) and catches up from the sequence it reflects;
collections without a usable snapshot are rebuilt from one consistent read of their faces. Snapshots are saved
periodically and at a clean shutdown. Applying a change twice is harmless (an add re-reads the face, a removal of
an absent face does nothing), so a position may lag what an index holds, never lead it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import select
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from argus.config import Settings
from argus.services.facedb.index import IndexRegistry
from argus.services.facedb.snapshots import load_snapshots, remove_snapshot, save_snapshot
from argus.services.facedb.storage import FaceStore
from argus.services.facedb.storage.engine import CHANGES_CHANNEL
from argus.services.facedb.storage.records import ChangeRecord, CollectionFaces

if TYPE_CHECKING:
    from argus.services.facedb.snapshots import Snapshot

log = logging.getLogger(__name__)

BATCH = 1000  # changes read per query
PRUNE_EVERY_S = 60.0  # how often a follower forgets changes older than the retention
RETRY_WAIT_S = 1.0  # after the database failed a read, before the next try


def snapshot_folder(settings: Settings, store: FaceStore) -> Path:
    """Where this database's snapshots live: a private folder under the data dir, one per database, so that
    snapshots of another database (another URL, same data dir) are never taken for this one's."""
    identity = store.url.render_as_string(hide_password=True).encode()
    return settings.data_dir / "snapshots" / f"facedb-{hashlib.sha256(identity).hexdigest()[:16]}"


class Follower:
    """Tails the change log into the IndexRegistry. `start` brings the indexes up to date (snapshots, rebuilds,
    catch-up) before it returns; then a thread follows. `wait_for` is how a replica reads its own writes."""

    def __init__(self, store: FaceStore, indexes: IndexRegistry, settings: Settings, folder: Path | None) -> None:
        self.store, self.indexes, self.folder = store, indexes, folder
        self.poll_s = settings.facedb_poll_s
        self.snapshot_s = settings.facedb_snapshot_s
        self.retention_s = settings.facedb_change_retention_s
        self._position = 0  # every change up to here is applied
        self._cond = threading.Condition()
        self._lock = threading.Lock()  # the dicts below, between the follower and the snapshot saver
        self._collections: dict[int, tuple[str, str]] = {}  # id -> (name, profile) of each installed index
        # id -> changes up to here are already in its index (its snapshot's or rebuild's position); a collection
        # without one: up to _default_floor, the position at which this replica read which collections exist.
        self._floors: dict[int, int] = {}
        self._default_floor = 0
        self._changed: dict[int, int] = {}  # id -> the last change applied to its index
        self._saved: dict[int, tuple[int, float]] = {}  # id -> (sequence, monotonic time) of its last snapshot
        self._failing = False
        self._stop = threading.Event()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._threads: list[threading.Thread] = []

    @property
    def position(self) -> int:
        return self._position

    @property
    def caught_up(self) -> bool:
        """Started, and its last read of the change log worked: health says SERVING only then."""
        return bool(self._threads) and not self._failing

    # --- start and stop -------------------------------------------------------------------------------------

    def start(self) -> None:
        """Loads the snapshots, rebuilds the indexes without a usable one, catches up; then follows in a thread."""
        started = time.perf_counter()
        snapshots = load_snapshots(self.folder, self.indexes.kinds) if self.folder is not None else {}
        loaded, rebuilt = self._load(snapshots)
        self._catch_up()
        log.info(
            "indexes ready in %.2f s at change %d: %d from snapshots, %d rebuilt",
            time.perf_counter() - started,
            self._position,
            loaded,
            rebuilt,
        )
        self._threads = [threading.Thread(target=self._follow, name="facedb-follower", daemon=True)]
        if self.folder is not None and self.snapshot_s > 0:
            self._threads.append(threading.Thread(target=self._save_periodically, name="facedb-snapshots", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        """Stops following and, at a clean shutdown, saves the snapshots of the indexes changed since the last."""
        self._stop.set()
        self.wake()
        for thread in self._threads:
            thread.join(timeout=30)
        if self._threads and self.folder is not None:
            self.save_snapshots()
        self._threads = []
        with self._cond:
            self._cond.notify_all()

    def _load(self, snapshots: dict[int, Snapshot]) -> tuple[int, int]:
        """Installs every collection's index from its snapshot or from its faces; returns (loaded, rebuilt)."""
        position, collections = self.store.collections_at()
        oldest, _ = self.store.change_bounds()
        loaded = rebuilt = 0
        floors: dict[int, int] = {}
        for collection_id, (name, profile) in collections.items():
            snapshot = snapshots.get(collection_id)
            # Usable: same profile, no later than the database (a restored backup), and every change since it kept.
            if snapshot is not None and snapshot.profile == profile and oldest - 1 <= snapshot.sequence <= position:
                self.indexes.install(name, snapshot.index)
                floors[collection_id] = snapshot.sequence
                with self._lock:
                    self._collections[collection_id] = (name, profile)
                    self._changed[collection_id] = snapshot.sequence
                    self._saved[collection_id] = (snapshot.sequence, time.monotonic())
                loaded += 1
                continue
            if snapshot is not None:
                log.info(
                    "the snapshot of collection %s (change %d) is out of date: rebuilding", name, snapshot.sequence
                )
            with self.store.collection_faces(collection_id) as faces:
                if faces is not None:  # else dropped meanwhile: its change is in the log
                    floors[collection_id] = self._install(faces)
                    rebuilt += 1
        for gone in snapshots.keys() - collections.keys():
            if self.folder is not None:
                remove_snapshot(self.folder, gone)
        # Changes up to `position` of collections that no longer existed then are reflected by their absence.
        self._floors = floors
        self._default_floor = position
        self._position = min([position, *floors.values()])
        return loaded, rebuilt

    def _install(self, faces: CollectionFaces) -> int:
        """Builds the collection's index from this read of its faces and swaps it in; returns the read's position."""
        index = self.indexes.build(faces.profile, faces.chunks)
        self.indexes.install(faces.name, index)
        with self._lock:
            self._collections[faces.collection_id] = (faces.name, faces.profile)
            self._changed[faces.collection_id] = faces.sequence
        return faces.sequence

    # --- following ------------------------------------------------------------------------------------------

    def wake(self) -> None:
        """Makes the follower read the log now (a local commit): no need to wait for the NOTIFY or the poll."""
        with contextlib.suppress(BlockingIOError):  # full: already woken, and not yet read
            os.write(self._wake_w, b".")

    def wait_for(self, sequence: int, timeout_s: float) -> bool:
        """Waits until the change `sequence` is applied to the indexes; False when it was not within the time. Call
        `wake` first for a change this replica just committed."""
        with self._cond:
            return self._cond.wait_for(lambda: self._position >= sequence or self._stop.is_set(), timeout_s) and (
                self._position >= sequence
            )

    def _catch_up(self) -> None:
        """Applies every change in the log after the position, a batch at a time."""
        while True:
            changes = self.store.changes_after(self._position, BATCH)
            if changes:
                self._apply(changes)
            if len(changes) < BATCH:
                return

    def _reflected(self, change: ChangeRecord) -> bool:
        return change.sequence <= self._floors.get(change.collection_id, self._default_floor)

    def _apply(self, changes: Sequence[ChangeRecord]) -> None:
        start = 0
        while start < len(changes):
            first = changes[start]
            end = start + 1
            if first.kind in ("added", "removed"):  # a run of them, one database read for all the run's faces
                while end < len(changes) and (changes[end].kind, changes[end].collection_id) == (
                    first.kind,
                    first.collection_id,
                ):
                    end += 1
            pending = [change for change in changes[start:end] if not self._reflected(change)]
            if pending:
                self._apply_one(first, [change.face_id for change in pending if change.face_id is not None])
                with self._lock:
                    self._changed[first.collection_id] = changes[end - 1].sequence
            self._advance(changes[end - 1].sequence)
            start = end

    def _apply_one(self, change: ChangeRecord, face_ids: list[int]) -> None:
        with self._lock:
            known = self._collections.get(change.collection_id)
        if change.kind in ("created", "reloaded"):
            with self.store.collection_faces(change.collection_id) as faces:
                if faces is not None:  # else dropped since: that change follows
                    self._floors[change.collection_id] = self._install(faces)
                    if change.kind == "reloaded":
                        log.info("collection %s reloaded (profile %s)", faces.name, faces.profile)
        elif known is None:
            return  # a collection dropped since, or not yet created when this replica read it
        elif change.kind == "dropped":
            with self._lock:
                del self._collections[change.collection_id]
                others = {name for name, _ in self._collections.values()}
            if known[0] not in others:
                self.indexes.drop(known[0])
            if self.folder is not None:
                remove_snapshot(self.folder, change.collection_id)
        elif change.kind == "added":
            name, profile = known
            ids, stored = self.store.faces_by_id(change.collection_id, profile, face_ids)
            if len(ids):
                self.indexes.get(name).add(ids, self.indexes.transform(profile, stored))
        elif change.kind == "removed":
            self.indexes.get(known[0]).remove(np.asarray(face_ids, dtype=np.int64))

    def _advance(self, sequence: int) -> None:
        with self._cond:
            self._position = sequence
            if sequence >= self._default_floor:  # past the start's reads: only later rebuilds still matter
                self._default_floor = 0
                self._floors = {key: floor for key, floor in self._floors.items() if floor > sequence}
            self._cond.notify_all()

    def _listen(self) -> Any:
        """An autocommit connection LISTENing on the change channel, or None when it cannot be had now."""
        import psycopg

        # The store's URL as libpq takes it: driver name aside, the same host, credentials and options.
        conninfo = self.store.url.set(drivername="postgresql").render_as_string(hide_password=False)
        try:
            connection = psycopg.connect(conninfo, autocommit=True, connect_timeout=10)
            connection.execute(f"LISTEN {CHANGES_CHANNEL}")
            return connection
        except psycopg.Error as exc:
            log.warning("cannot LISTEN for changes (%s); reading the change log every %g s", exc, self.poll_s)
            return None

    def _wait(self, listener: Any) -> Any:
        """Sleeps until a NOTIFY, a local wake-up or the poll interval; returns the listener, None if it broke."""
        watched = [self._wake_r] if listener is None else [self._wake_r, listener.fileno()]
        ready, _, _ = select.select(watched, [], [], self.poll_s)
        if self._wake_r in ready:
            with contextlib.suppress(BlockingIOError):
                while os.read(self._wake_r, 4096):
                    pass
        if listener is not None and listener.fileno() in ready:
            try:
                for _ in listener.notifies(timeout=0):
                    pass
            except Exception as exc:
                log.warning("the LISTEN connection broke (%s); reconnecting", exc)
                listener.close()
                return None
        return listener

    def _follow(self) -> None:
        listener = None
        last_prune = 0.0
        while not self._stop.is_set():
            if listener is None and self.store.backend == "postgresql":
                listener = self._listen()
            try:
                if time.monotonic() - last_prune > PRUNE_EVERY_S:
                    self._prune()
                    last_prune = time.monotonic()
                self._catch_up()
                if self._failing:
                    log.warning("the change log is readable again; following from change %d", self._position)
                self._failing = False
            except Exception as exc:
                if not self._failing:
                    log.error("cannot follow the change log (%s); retrying", exc)
                self._failing = True
                self._stop.wait(RETRY_WAIT_S)
                continue
            listener = self._wait(listener)
        if listener is not None:
            listener.close()

    def _prune(self) -> None:
        """Forgets changes past the retention, and rebuilds everything if this replica fell behind what is kept."""
        self.store.prune_changes(datetime.now(UTC) - timedelta(seconds=self.retention_s))
        oldest, _ = self.store.change_bounds()
        if self._position < oldest - 1:
            log.warning("change %d is no longer in the log (oldest %d): rebuilding every index", self._position, oldest)
            with self._lock:
                dropped = {name for name, _ in self._collections.values()}
                self._collections.clear()
            self._load({})
            for name in dropped - {name for name, _ in self._collections.values()}:
                self.indexes.drop(name)

    # --- snapshots ------------------------------------------------------------------------------------------

    def save_snapshots(self) -> int:
        """Saves the index of every collection changed since its last snapshot (or whose snapshot is half the
        retention old, so that it stays usable); returns how many were saved. The position is read before the
        indexes, so each snapshot reflects at least the sequence it is saved with."""
        assert self.folder is not None
        position = self._position
        with self._lock:
            collections = dict(self._collections)
            changed, saved = dict(self._changed), dict(self._saved)
        count = 0
        for collection_id, (name, _) in collections.items():
            last, at = saved.get(collection_id, (-1, 0.0))
            if changed.get(collection_id, 0) <= last and time.monotonic() - at < self.retention_s / 2:
                continue
            index = self.indexes.get(name) if name in self.indexes else None
            if index is None or index.dimension is None:  # dropped meanwhile, or never held a face
                continue
            save_snapshot(self.folder, collection_id, name, index, position)
            with self._lock:
                self._saved[collection_id] = (position, time.monotonic())
            count += 1
        return count

    def _save_periodically(self) -> None:
        while not self._stop.wait(self.snapshot_s):
            try:
                self.save_snapshots()
            except Exception:
                log.exception("saving the index snapshots failed; retrying in %g s", self.snapshot_s)
