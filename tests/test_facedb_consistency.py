"""The index follows the database even when a commit's acknowledgement is lost with the connection."""

from __future__ import annotations

from pathlib import Path

import pytest

from argus.config import Settings
from argus.errors import DependencyUnavailable
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.services.facedb.database import FaceDatabase
from argus.services.facedb.storage import FaceStore


class CommitThenDrop(FaceStore):
    """A store whose next enrollment commits and then loses the connection before the answer."""

    drop_next = False

    def enroll_faces(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        result = super().enroll_faces(*args, **kwargs)
        if self.drop_next:
            self.drop_next = False
            raise DependencyUnavailable("the face database is unavailable (OperationalError); retry shortly")
        return result


def test_a_lost_acknowledgement_leaves_no_gap_in_the_index(
    analyzer: LocalFaceAnalyzer, settings: Settings, tmp_path: Path, images_dir: Path
) -> None:
    store = CommitThenDrop(f"sqlite:///{tmp_path / 'facedb.sqlite3'}")
    database = FaceDatabase(store, analyzer, settings)
    database.start()
    database.create_collection("door")
    store.drop_next = True
    with pytest.raises(DependencyUnavailable):
        database.enroll("door", "biden", [(images_dir / "faces/biden.jpg").read_bytes()])
    # the faces did land in the database; the next search must see them, as a restart would
    found = database.identify("door", (images_dir / "faces/biden2.jpg").read_bytes())
    assert found.gallery_size == 1
    assert [c.subject_id for c in found.faces[0].candidates] == ["biden"] and not found.faces[0].unknown
