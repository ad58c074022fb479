"""Re-embedding collections for another profile, in the background, from their stored face crops.

A collection moving to another profile (FaceDatabase.change_profile) keeps serving on its current profile and
index. This worker fills in each face's embedding for the new profile a batch at a time; the progress is in the
database (faces with a pending embedding), so a restart resumes where it stopped. When every face has one,
FaceDatabase.finish_reembedding switches the collection over at once.

Over one PostgreSQL database, the worker of one replica does the work: it holds the database's re-embedding lease
(storage/lease.py) while there is any. If that replica dies, the lease ends with its connection and another
replica's worker takes it within IDLE_WAIT_S, resuming from the progress in the database. Two workers at once
(a lease lost and taken over mid-batch) only waste work: a face's new embedding is stored once.
"""

from __future__ import annotations

import logging
import threading

import numpy as np

from argus.analysis import StoredCrop
from argus.errors import ArgusError, InvalidInput
from argus.profiles import get_profile
from argus.services.facedb.database import FaceDatabase

log = logging.getLogger(__name__)

BATCH_SIZE = 32  # faces per embedder call: big enough to fill its batches, small enough to show progress
IDLE_WAIT_S = 5.0  # how often an idle worker looks for work it was not told about (e.g. another replica's)
RETRY_WAIT_S = 2.0  # after a failure (the embedder or the database being down), before trying again


class Reembedder:
    def __init__(self, database: FaceDatabase, batch_size: int = BATCH_SIZE) -> None:
        self.database = database
        # Each stored crop is a photo of its own to the embedder, which takes at most this many per call.
        self.batch_size = min(batch_size, database.settings.max_images_per_request)
        self.lease = database.store.reembedding_lease()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="reembedder", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        self.database.reembedding_wanted.set()
        self._thread.join(timeout_s)
        self.lease.release()

    def step(self) -> bool:
        """One batch of one collection, or the switch of a finished one. Returns whether there was work for this
        replica: none while another holds the lease. The lease is held only while there is work."""
        store = self.database.store
        collections = store.reembedding_collections()
        if not collections:
            self.lease.release()
            return False
        if not self.lease.hold():
            return False
        for name, _ in collections:
            profile, rows = store.crops_to_reembed(name, self.batch_size)
            if profile is None:
                continue
            if not rows:
                self.database.finish_reembedding(name, profile)
                return True
            models = get_profile(profile).models
            crops = [StoredCrop(png, None if points is None else np.asarray(points)) for _, png, points in rows]
            try:
                embedded = self.database.analyzer.reembed(crops, models)
            except InvalidInput as exc:
                # A stored crop the embedder cannot read would stall the switch forever: give it up, loudly.
                log.error("re-embedding collection %s for %s abandoned: %s", name, profile, exc)
                store.cancel_reembedding(name)
                return True
            expected = self.database.calibrations[profile].models
            if embedded and embedded[0].models != expected:
                log.error(
                    "re-embedding collection %s for %s abandoned: the embedder runs %s, the calibration expects %s",
                    name,
                    profile,
                    ", ".join(embedded[0].models),
                    ", ".join(expected),
                )
                store.cancel_reembedding(name)
                return True
            store.store_reembedded(
                name,
                profile,
                [(face_id, face.parts, face.models) for (face_id, _, _), face in zip(rows, embedded, strict=True)],
            )
            return True
        return False

    def _run(self) -> None:
        wanted = self.database.reembedding_wanted
        while not self._stop.is_set():
            try:
                worked = self.step()
            except ArgusError as exc:
                log.warning("re-embedding paused: %s", exc)
                self._stop.wait(RETRY_WAIT_S)
                continue
            except Exception:
                log.exception("re-embedding failed; retrying")
                self._stop.wait(RETRY_WAIT_S)
                continue
            if not worked:
                wanted.wait(IDLE_WAIT_S)
                wanted.clear()
