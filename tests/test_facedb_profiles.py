"""Collections bound to embedding profiles, and re-embedding a collection for another profile from its stored
crops while it keeps serving (FaceDatabase with the real models in process; the gRPC face is in test_facedb_grpc)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from argus.config import Settings
from argus.errors import InvalidInput, ModelUnavailable
from argus.evaluation.local_analysis import LocalFaceAnalyzer
from argus.services.facedb.database import FaceDatabase
from argus.services.facedb.reembed import Reembedder
from argus.services.facedb.storage import FaceStore

FUSED = "mobilefacenet+dlib"


@pytest.fixture
def database(analyzer: LocalFaceAnalyzer, settings: Settings, tmp_path: Path) -> Iterator[FaceDatabase]:
    store = FaceStore(f"sqlite:///{tmp_path / 'facedb.sqlite3'}")
    built = FaceDatabase(store, analyzer, settings)
    built.start()
    yield built
    store.close()


def photo(images_dir: Path, name: str) -> bytes:
    return (images_dir / "faces" / f"{name}.jpg").read_bytes()


def run_to_completion(worker: Reembedder, limit: int = 50) -> int:
    steps = 0
    while worker.step():
        steps += 1
        assert steps < limit, "re-embedding does not finish"
    return steps


def test_a_collection_moves_to_another_profile_while_it_keeps_serving(database: FaceDatabase, images_dir: Path) -> None:
    database.create_collection("door", profile="mobilefacenet")
    database.enroll("door", "obama", [photo(images_dir, "obama")])
    database.enroll("door", "biden", [photo(images_dir, "biden")])
    before = database.verify("door", "obama", photo(images_dir, "obama2"))
    assert before.match

    started = database.change_profile("door", FUSED)
    assert (started.profile, started.pending_profile, started.reembedded) == ("mobilefacenet", FUSED, 0)
    worker = Reembedder(database, batch_size=1)
    assert worker.step()  # one face done, one to go
    assert database.collection("door").reembedded == 1
    # Meanwhile everything answers on the old profile and index, and new faces still join it.
    during = database.verify("door", "obama", photo(images_dir, "obama2"))
    assert during.similarity == pytest.approx(before.similarity, abs=1e-6)
    assert database.identify("door", photo(images_dir, "biden2")).faces[0].candidates[0].subject_id == "biden"
    database.enroll("door", "ann", [photo(images_dir, "deepface_img2")])
    assert database.collection("door").profile == "mobilefacenet"

    run_to_completion(worker)
    after = database.collection("door")
    assert (after.profile, after.pending_profile, after.face_count) == (FUSED, None, 3)
    faces = [face for s in ("obama", "biden", "ann") for face in database.get_subject("door", s).faces]
    assert {(face.profile, tuple(m.split("@")[0] for m in face.models)) for face in faces} == {
        (FUSED, ("mobilefacenet", "dlib-resnet"))
    }
    # Re-embedded from the stored crops, the faces score exactly as if they had been enrolled with the new profile.
    database.create_collection("fresh", profile=FUSED)
    database.enroll("fresh", "obama", [photo(images_dir, "obama")])
    moved = database.verify("door", "obama", photo(images_dir, "obama2"))
    fresh = database.verify("fresh", "obama", photo(images_dir, "obama2"))
    assert moved.match and moved.similarity == pytest.approx(fresh.similarity, abs=1e-6)
    assert moved.similarity != pytest.approx(before.similarity, abs=1e-3)
    assert moved.threshold == database.calibrations[FUSED].threshold
    found = database.identify("door", photo(images_dir, "biden2"))
    assert found.gallery_size == 3 and found.faces[0].candidates[0].subject_id == "biden"
    assert not found.faces[0].unknown


def test_a_restart_resumes_the_re_embedding(
    database: FaceDatabase, analyzer: LocalFaceAnalyzer, settings: Settings, images_dir: Path
) -> None:
    database.create_collection("door", profile="mobilefacenet")
    database.enroll("door", "obama", [photo(images_dir, "obama"), photo(images_dir, "obama2")])
    database.change_profile("door", "dlib")
    assert Reembedder(database, batch_size=1).step()

    restarted = FaceDatabase(database.store, analyzer, settings)  # a new process over the same database
    restarted.start()
    assert restarted.store.reembedding_collections() == [("door", "dlib")]
    assert restarted.collection("door").reembedded == 1
    run_to_completion(Reembedder(restarted))
    assert restarted.collection("door").profile == "dlib"
    assert restarted.verify("door", "obama", photo(images_dir, "obama2")).match


def test_changing_back_cancels_and_unusable_profiles_are_refused(
    database: FaceDatabase, settings: Settings, images_dir: Path
) -> None:
    database.create_collection("door", profile="mobilefacenet")
    database.enroll("door", "obama", [photo(images_dir, "obama")])
    database.change_profile("door", FUSED)
    cancelled = database.change_profile("door", "mobilefacenet")
    assert cancelled.pending_profile is None and not Reembedder(database).step()

    with pytest.raises(InvalidInput, match="unknown embedding profile 'arcface'"):
        database.change_profile("door", "arcface")
    with pytest.raises(ModelUnavailable, match="needs hse-faceres, which the embedder does not run"):
        database.change_profile("door", "mobilefacenet+dlib+faceres")
    with pytest.raises(ModelUnavailable, match="needs hse-faceres"):
        database.create_collection("other", profile="mobilefacenet+dlib+faceres")

    no_crops = FaceDatabase(database.store, database.analyzer, settings.model_copy(update={"keep_face_crops": False}))
    no_crops.create_collection("lean", profile="mobilefacenet")
    no_crops.enroll("lean", "obama", [photo(images_dir, "obama")])
    assert not no_crops.get_subject("lean", "obama").faces[0].has_crop
    with pytest.raises(InvalidInput, match="without a stored crop"):
        no_crops.change_profile("lean", FUSED)


def test_new_collections_take_the_default_profile(database: FaceDatabase, settings: Settings) -> None:
    assert database.create_collection("plain").profile == settings.profile == FUSED


def test_re_embedding_batches_fit_in_one_embedder_call(database: FaceDatabase, settings: Settings) -> None:
    """Every stored crop is a photo of its own to the embedder, which refuses more per call than its limit."""
    assert Reembedder(database).batch_size == settings.max_images_per_request == 8
    assert Reembedder(database, batch_size=3).batch_size == 3


def test_faces_stored_by_earlier_versions_re_embed_from_their_112_crops(
    database: FaceDatabase, analyzer: LocalFaceAnalyzer, images_dir: Path
) -> None:
    """Earlier versions stored the 112x112 ArcFace-aligned crop without landmarks; such faces still move."""
    import cv2
    import numpy as np
    import sqlalchemy as sa

    from argus.alignment import align_face
    from argus.evaluation.images import read_image

    database.create_collection("old", profile="mobilefacenet")
    database.enroll("old", "obama", [photo(images_dir, "obama")])
    image = read_image(images_dir / "faces" / "obama.jpg")
    (face,) = analyzer.detector.detect([image], analyzer.detector.defaults)[0]
    legacy = cv2.imencode(".png", align_face(image, np.asarray(face.landmarks)))[1].tobytes()
    with database.store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE faces SET face_crop = :png, crop_landmarks = NULL"), {"png": legacy})

    database.change_profile("old", FUSED)
    run_to_completion(Reembedder(database))
    assert database.collection("old").profile == FUSED
    decision = database.verify("old", "obama", photo(images_dir, "obama2"))
    assert decision.match and decision.similarity > decision.threshold + 0.1
