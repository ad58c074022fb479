"""The face database's storage and index, on SQLite and on a real PostgreSQL server (no gRPC here)."""

from __future__ import annotations

import secrets
import threading
from datetime import UTC
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from google.protobuf.struct_pb2 import Struct, Value

from argus.errors import AlreadyExists, InvalidInput, NotFound
from argus.services.facedb import requests
from argus.services.facedb.index import FaceIndex, IndexRegistry
from argus.services.facedb.storage import (
    Base,
    FaceStore,
    NewFace,
    SubjectPage,
    alembic_config,
    normalize_url,
    repository,
)

PROFILE = "mobilefacenet"
MODELS = ("mobilefacenet@foamliu-1.0",)
DIM = 128


def unit(rng: np.random.Generator, n: int, d: int = DIM) -> np.ndarray:
    vectors = rng.standard_normal((n, d)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def new_face(vector: np.ndarray, *, score: float | None = 0.9, profile: str = PROFILE) -> NewFace:
    return NewFace(
        embedding=vector,
        profile=profile,
        models=MODELS,
        box=(10.0, 20.0, 110.0, 140.0),
        detection_score=score,  # type: ignore[arg-type]
        face_size=100.0,
        sharpness=42.5,
        crop=b"\x89PNG fake",
        crop_landmarks=np.arange(10.0).reshape(5, 2),
    )


def face_count(store: FaceStore) -> int:
    with store.engine.connect() as conn:
        return conn.execute(sa.text("SELECT count(*) FROM faces")).scalar_one()


# Schema.


def test_migrate_creates_the_schema_of_the_models(db: FaceStore) -> None:
    inspector = sa.inspect(db.engine)
    assert {"collections", "subjects", "faces", "alembic_version"} <= set(inspector.get_table_names())
    assert {ix["name"] for ix in inspector.get_indexes("faces")} >= {"ix_faces_collection_id", "ix_faces_subject_id"}
    with db.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []
        # The comparison is not blind: remove an index and it notices.
        conn.execute(sa.text("DROP INDEX ix_faces_subject_id"))
        assert any(diff[0] == "add_index" for diff in compare_metadata(context, Base.metadata))
        conn.rollback()
    db.migrate()  # running it again at the next start changes nothing
    with db.engine.connect() as conn:
        head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_faces_of_earlier_versions_join_the_mobilefacenet_profile_and_keep_their_ids(database_url: str) -> None:
    """A database made before profiles existed: upgraded in place, its faces and ids intact, and a face id deleted
    before the upgrade still never comes back (SQLite rebuilds the table to rename its columns)."""
    from alembic import command

    store = FaceStore(database_url)
    command.upgrade(alembic_config(store.url), "0002")
    vector = unit(np.random.default_rng(0), 1)[0].astype("<f4").tobytes()
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO collections (id, name, model, created_at) VALUES (1, 'old', 'mobilefacenet@foamliu-1.0', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO subjects (id, collection_id, external_id, display_name, metadata, created_at) VALUES (1, 1, 'ann', '', '{}', CURRENT_TIMESTAMP)"
            )
        )
        for face_id in (1, 2, 3):
            conn.execute(
                sa.text(
                    "INSERT INTO faces (subject_id, collection_id, embedding, dimension, model_name, model_version, "
                    "x1, y1, x2, y2, detection_score, face_size, sharpness, aligned_crop, created_at) VALUES "
                    "(1, 1, :e, 128, 'mobilefacenet', 'foamliu-1.0', 0, 0, 50, 50, 0.9, 50, 40, :crop, CURRENT_TIMESTAMP)"
                ),
                {"e": vector, "crop": b"png" if face_id < 3 else None},
            )
        conn.execute(sa.text("DELETE FROM faces WHERE id = 3"))
    store.migrate()
    assert store.get_collection("old").profile == "mobilefacenet"
    subject = store.get_subject("old", "ann")
    assert [(f.face_id, f.profile, f.models, f.has_crop) for f in subject.faces] == [
        (1, "mobilefacenet", MODELS, True),
        (2, "mobilefacenet", MODELS, True),
    ]
    _, new_ids, _ = store.add_faces("old", "ann", "", {}, [new_face(unit(np.random.default_rng(1), 1)[0])])
    assert new_ids[0] > 3
    store.close()


def test_stored_crops_keep_their_bytes_and_faces_their_ids_when_the_crop_column_is_renamed(database_url: str) -> None:
    """Revision 0005 renames faces.aligned_crop to face_crop in place: every crop (with or without landmarks) reads
    back byte for byte, and a face id deleted before the upgrade still never comes back."""
    from alembic import command

    store = FaceStore(database_url)
    command.upgrade(alembic_config(store.url), "0004")
    vector = unit(np.random.default_rng(0), 1)[0].astype("<f4").tobytes()
    crops = {1: b"\x89PNG legacy 112", 2: b"\x89PNG 256 crop", 3: None}
    with store.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO collections (id, name, profile, created_at) VALUES (1, 'old', 'mobilefacenet', CURRENT_TIMESTAMP)"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO subjects (id, collection_id, external_id, display_name, metadata, created_at) VALUES (1, 1, 'ann', '', '{}', CURRENT_TIMESTAMP)"
            )
        )
        for face_id in (1, 2, 3, 4):
            conn.execute(
                sa.text(
                    "INSERT INTO faces (subject_id, collection_id, embedding, dimension, profile, models, x1, y1, x2, y2, "
                    "detection_score, face_size, sharpness, aligned_crop, crop_landmarks, created_at) VALUES "
                    "(1, 1, :e, 128, 'mobilefacenet', 'mobilefacenet@foamliu-1.0', 0, 0, 50, 50, 0.9, 50, 40, :crop, "
                    ":points, CURRENT_TIMESTAMP)"
                ),
                {"e": vector, "crop": crops.get(face_id), "points": "[[1, 2]]" if face_id == 2 else None},
            )
        conn.execute(sa.text("DELETE FROM faces WHERE id IN (3, 4)"))
    store.migrate()
    assert "aligned_crop" not in {column["name"] for column in sa.inspect(store.engine).get_columns("faces")}
    assert [(f.face_id, f.has_crop) for f in store.get_subject("old", "ann").faces] == [(1, True), (2, True)]
    store.start_reembedding("old", "dlib")
    assert store.crops_to_reembed("old", 10) == ("dlib", [(1, crops[1], None), (2, crops[2], [[1, 2]])])
    _, new_ids, _ = store.add_faces("old", "ann", "", {}, [new_face(unit(np.random.default_rng(1), 1)[0])])
    assert new_ids[0] > 4
    store.close()


def test_plain_postgresql_urls_get_the_psycopg_driver() -> None:
    assert normalize_url("postgresql://u:p@h:5/d").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u@h/d").drivername == "postgresql+psycopg"
    assert normalize_url("sqlite:///x.db").drivername == "sqlite"


def test_sqlite_parent_folder_is_created(tmp_path: Path) -> None:
    with FaceStore(f"sqlite:///{tmp_path / 'a' / 'b' / 'facedb.sqlite3'}") as store:
        store.migrate()
        assert store.list_collections() == []


# Collections.


def test_collections_create_list_delete_with_counts(db: FaceStore) -> None:
    rng = np.random.default_rng(0)
    created = db.create_collection("staff", None, PROFILE)
    assert (created.name, created.threshold, created.profile, created.subject_count) == ("staff", None, PROFILE, 0)
    assert created.created_at.tzinfo is not None and created.created_at.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    db.create_collection("visitors", 0.42, PROFILE)
    db.add_faces("staff", "alice", "Alice", {}, [new_face(v) for v in unit(rng, 3)])
    db.add_faces("staff", "bob", "Bob", {}, [new_face(v) for v in unit(rng, 2)])
    listed = {c.name: c for c in db.list_collections()}
    assert list(listed) == ["staff", "visitors"]
    assert (listed["staff"].subject_count, listed["staff"].face_count) == (2, 5)
    assert (listed["visitors"].subject_count, listed["visitors"].face_count) == (0, 0)
    assert listed["visitors"].threshold == pytest.approx(0.42)
    assert db.get_collection("staff") == listed["staff"]
    assert db.get_collection("staff").created_at.tzinfo == UTC
    assert db.delete_collection("staff") == (2, 5)
    assert [c.name for c in db.list_collections()] == ["visitors"]
    assert face_count(db) == 0
    with pytest.raises(NotFound):
        db.delete_collection("staff")


def test_duplicate_collection_is_already_exists(db: FaceStore) -> None:
    db.create_collection("staff", None, PROFILE)
    with pytest.raises(AlreadyExists, match="'staff' already exists"):
        db.create_collection("staff", 0.5, PROFILE)
    assert len(db.list_collections()) == 1


def test_collection_arguments_are_checked() -> None:
    """At the service boundary (requests.py), before the store sees them."""
    with pytest.raises(InvalidInput):
        requests.collection_name("")
    with pytest.raises(InvalidInput):
        requests.collection_name("x" * 65)
    with pytest.raises(InvalidInput):
        requests.threshold(1.5)


def test_not_found_messages_name_what_is_missing(db: FaceStore) -> None:
    with pytest.raises(NotFound, match=r"'ghosts'.*ListCollections"):
        db.get_collection("ghosts")
    db.create_collection("staff", None, PROFILE)
    with pytest.raises(NotFound, match=r"'ghosts'.*ListCollections") as missing:
        db.get_subject("ghosts", "alice")
    assert "staff" not in str(missing.value)  # another collection is never named: a key may not be allowed to see it
    with pytest.raises(NotFound, match=r"'alice'.*'staff'"):
        db.get_subject("staff", "alice")
    with pytest.raises(NotFound, match=r"'alice'.*'staff'"):
        db.delete_subject("staff", "alice")
    with pytest.raises(NotFound, match=r"face 12345.*'staff'"):
        db.delete_face("staff", 12345)
    with pytest.raises(NotFound, match="'ghosts'"):
        db.embeddings("ghosts")


# Subjects and faces.


def test_add_faces_creates_then_extends_a_subject(db: FaceStore) -> None:
    rng = np.random.default_rng(1)
    db.create_collection("staff", None, PROFILE)
    subject, ids, created = db.add_faces("staff", "alice", "Alice", {"team": "red"}, [new_face(unit(rng, 1)[0])])
    assert created and len(ids) == 1
    assert (subject.collection, subject.external_id, subject.display_name) == ("staff", "alice", "Alice")
    assert subject.metadata == {"team": "red"}
    assert [f.face_id for f in subject.faces] == ids
    face = subject.faces[0]
    assert (
        face.box == (10.0, 20.0, 110.0, 140.0)
        and face.profile == PROFILE
        and face.models == MODELS
        and face.has_crop
        and face.dimension == DIM
    )
    assert face.external_id == "alice" and face.created_at.tzinfo == UTC

    # Empty name and metadata keep what is stored.
    subject, more, created = db.add_faces("staff", "alice", "", None, [new_face(v) for v in unit(rng, 2)])
    assert not created and len(more) == 2 and min(more) > max(ids)
    assert subject.display_name == "Alice" and subject.metadata == {"team": "red"}
    assert [f.face_id for f in subject.faces] == ids + more

    # Non-empty ones replace it.
    subject, _, _ = db.add_faces("staff", "alice", "Alice Smith", {"team": "blue"}, [new_face(unit(rng, 1)[0])])
    assert subject.display_name == "Alice Smith" and subject.metadata == {"team": "blue"}
    assert db.get_subject("staff", "alice") == subject
    assert len(subject.faces) == 4


def test_add_faces_is_all_or_nothing(db: FaceStore) -> None:
    rng = np.random.default_rng(2)
    db.create_collection("staff", None, PROFILE)
    # The second face breaks a NOT NULL constraint in the database, after the subject and the first face went in.
    broken = [new_face(unit(rng, 1)[0]), new_face(unit(rng, 1)[0], score=None)]
    with pytest.raises(sa.exc.IntegrityError):
        db.add_faces("staff", "alice", "Alice", {}, broken)
    with pytest.raises(NotFound):
        db.get_subject("staff", "alice")
    assert face_count(db) == 0
    # Same on an existing subject: its name and faces stay as they were.
    db.add_faces("staff", "alice", "Alice", {}, [new_face(unit(rng, 1)[0])])
    with pytest.raises(sa.exc.IntegrityError):
        db.add_faces("staff", "alice", "Renamed", {"x": 1}, broken)
    subject = db.get_subject("staff", "alice")
    assert subject.display_name == "Alice" and subject.metadata == {} and len(subject.faces) == 1
    assert face_count(db) == 1


def test_add_faces_refuses_another_profile_or_dimension(db: FaceStore) -> None:
    rng = np.random.default_rng(3)
    db.create_collection("staff", None, PROFILE)
    with pytest.raises(InvalidInput, match="holds mobilefacenet embeddings, not dlib"):
        db.add_faces("staff", "alice", "", {}, [new_face(unit(rng, 1)[0], profile="dlib")])
    db.add_faces("staff", "alice", "", {}, [new_face(unit(rng, 1)[0])])
    with pytest.raises(InvalidInput, match="128-dimensional"):
        db.add_faces("staff", "bob", "", {}, [new_face(unit(rng, 1, 64)[0])])
    # What a request could get wrong is refused at the service boundary (requests.py), before the store.
    with pytest.raises(InvalidInput):
        requests.enroll_photos([], limit=10)
    with pytest.raises(InvalidInput):
        requests.subject_id("x" * 129)
    with pytest.raises(InvalidInput):
        requests.metadata(Struct(fields={"bad": Value(number_value=float("nan"))}), max_bytes=4096, max_depth=8)
    assert db.get_collection("staff").subject_count == 1


def test_deletes_cascade_to_faces(db: FaceStore) -> None:
    rng = np.random.default_rng(4)
    db.create_collection("staff", None, PROFILE)
    _, alice_ids, _ = db.add_faces("staff", "alice", "", {}, [new_face(v) for v in unit(rng, 3)])
    _, bob_ids, _ = db.add_faces("staff", "bob", "", {}, [new_face(v) for v in unit(rng, 2)])

    removed = db.delete_face("staff", alice_ids[0])
    assert removed.face_id == removed.id == alice_ids[0] and removed.external_id == "alice"
    assert [f.face_id for f in db.get_subject("staff", "alice").faces] == alice_ids[1:]
    with pytest.raises(NotFound):
        db.delete_face("staff", alice_ids[0])

    assert db.delete_subject("staff", "alice") == alice_ids[1:]
    assert face_count(db) == len(bob_ids)
    with pytest.raises(NotFound):
        db.get_subject("staff", "alice")

    # The database itself cascades (on SQLite only with PRAGMA foreign_keys, which the store turns on).
    with db.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM collections WHERE name = 'staff'"))
    assert face_count(db) == 0
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM subjects")).scalar_one() == 0


def test_a_face_belongs_to_one_collection(db: FaceStore) -> None:
    rng = np.random.default_rng(5)
    db.create_collection("a", None, PROFILE)
    db.create_collection("b", None, PROFILE)
    _, ids, _ = db.add_faces("a", "alice", "", {}, [new_face(unit(rng, 1)[0])])
    with pytest.raises(NotFound):
        db.delete_face("b", ids[0])
    assert db.templates_of_faces("b", ids) == {}
    db.add_faces("b", "alice", "Other Alice", {}, [new_face(unit(rng, 1)[0])])  # same external ID, other collection
    owners = db.templates_of_faces("a", ids)
    assert list(owners) == ids and (owners[ids[0]].external_id, owners[ids[0]].display_name) == ("alice", "")


def test_pagination_walks_every_subject_once(db: FaceStore) -> None:
    rng = np.random.default_rng(6)
    db.create_collection("staff", None, PROFILE)
    db.create_collection("other", None, PROFILE)
    vectors = unit(rng, 23)
    for i, vector in enumerate(vectors):
        db.add_faces("staff", f"person-{i:02d}", f"Person {i}", {}, [new_face(vector)])
    db.add_faces("other", "stranger", "", {}, [new_face(vectors[0])])

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = db.list_subjects("staff", *requests.subjects_page(5, token))
        token = requests.subjects_token(page.after)
        assert page.total == 23
        assert all(len(s.faces) == 1 for s in page.subjects)
        seen += [s.external_id for s in page.subjects]
        pages += 1
        if not token:
            break
    assert pages == 5
    assert seen == [f"person-{i:02d}" for i in range(23)]

    everyone = db.list_subjects("staff", page_size=1000)
    assert len(everyone.subjects) == 23 and everyone.after is None and everyone.total == 23
    # Deleting a subject already listed does not shift the next page.
    first = db.list_subjects("staff", page_size=5)
    db.delete_subject("staff", first.subjects[0].external_id)
    second = db.list_subjects("staff", 5, first.after or 0)
    assert second.subjects[0].external_id == "person-05" and second.total == 22


def test_bad_page_token_and_page_size_are_invalid_input(db: FaceStore) -> None:
    """Refused at the service boundary (requests.py, with argus.paging), before the store is asked."""
    db.create_collection("staff", None, PROFILE)
    for token in ["nope!", "Zm9v", "czEyYQ", "===="]:
        with pytest.raises(InvalidInput, match="page_token"):
            requests.subjects_page(10, token)
    with pytest.raises(InvalidInput, match="page_size"):
        requests.subjects_page(1001, "")
    assert requests.subjects_page(0, requests.subjects_token(123456789)) == (100, 123456789)
    assert db.list_subjects("staff", *requests.subjects_page(0, "")) == SubjectPage([], None, 0)


def test_embeddings_round_trip_bit_exact(db: FaceStore) -> None:
    rng = np.random.default_rng(7)
    db.create_collection("staff", None, PROFILE)
    assert [a.shape for a in db.embeddings("staff")] == [(0,), (0, 0)]
    alice = unit(rng, 3)
    bob = unit(rng, 2)
    _, alice_ids, _ = db.add_faces("staff", "alice", "Alice", {}, [new_face(v) for v in alice])
    _, bob_ids, _ = db.add_faces("staff", "bob", "Bob", {}, [new_face(v) for v in bob])

    ids, vectors = db.embeddings("staff")
    assert ids.dtype == np.int64 and vectors.dtype == np.float32 and vectors.shape == (5, DIM)
    assert ids.tolist() == alice_ids + bob_ids
    assert vectors.tobytes() == np.concatenate([alice, bob]).tobytes()

    template = db.subject_template("staff", "bob")
    assert template.profile == PROFILE and template.face_ids.tolist() == bob_ids
    assert template.stored.tobytes() == bob.tobytes() and template.origins == ("enroll", "enroll")

    owners = db.templates_of_faces("staff", [*alice_ids[:1], *bob_ids, 999_999])
    assert {face: (t.external_id, t.display_name) for face, t in owners.items()} == {
        alice_ids[0]: ("alice", "Alice"),
        bob_ids[0]: ("bob", "Bob"),
        bob_ids[1]: ("bob", "Bob"),
    }
    assert owners[alice_ids[0]].face_ids.tolist() == alice_ids  # the whole template of the subject hit


def test_face_ids_are_never_reused(db: FaceStore) -> None:
    rng = np.random.default_rng(8)
    db.create_collection("staff", None, PROFILE)
    _, ids, _ = db.add_faces("staff", "alice", "", {}, [new_face(v) for v in unit(rng, 2)])
    db.delete_face("staff", ids[-1])
    _, again, _ = db.add_faces("staff", "alice", "", {}, [new_face(unit(rng, 1)[0])])
    assert again[0] > ids[-1]  # a stale index entry can never point at a new face


# Index.


def test_search_finds_the_exact_nearest_by_inner_product() -> None:
    rng = np.random.default_rng(10)
    gallery = unit(rng, 500, 64)
    ids = np.arange(1000, 1500, dtype=np.int64)
    index = FaceIndex()
    index.add(ids[:200], gallery[:200])
    index.add(ids[200:], gallery[200:])
    assert index.size == 500 and index.dimension == 64
    queries = unit(rng, 20, 64)
    similarities, found = index.search(queries * 3.0, 5)  # queries are normalised too
    truth = queries @ gallery.T
    expected = np.argsort(-truth, axis=1)[:, :5]
    assert found.shape == (20, 5) and found.dtype == np.int64
    np.testing.assert_array_equal(found, ids[expected])
    np.testing.assert_allclose(similarities, np.take_along_axis(truth, expected, axis=1), atol=1e-5)


def test_remove_makes_a_face_unfindable() -> None:
    rng = np.random.default_rng(11)
    gallery = unit(rng, 50, 32)
    index = FaceIndex(32)
    index.rebuild(np.arange(50), gallery)
    assert index.search(gallery[7], 1)[1][0, 0] == 7
    assert index.remove([7, 12345]) == 1
    assert 7 not in index and index.size == 49
    _, found = index.search(gallery[7], 49)
    assert 7 not in found
    assert index.remove([7]) == 0
    index.add([7], gallery[7:8])  # and back
    assert index.search(gallery[7], 1)[1][0, 0] == 7
    index.add([7], gallery[7:8])  # replaying an add does not duplicate it
    assert index.size == 50


def test_k_beyond_size_and_empty_index() -> None:
    rng = np.random.default_rng(12)
    empty = FaceIndex()
    similarities, found = empty.search(unit(rng, 3, 16), 10)
    assert similarities.shape == (3, 0) and found.shape == (3, 0)
    index = FaceIndex()
    index.add([5, 6, 7], unit(rng, 3, 16))
    similarities, found = index.search(unit(rng, 2, 16), 10)
    assert found.shape == (2, 3) and (found >= 0).all()
    assert (np.diff(similarities, axis=1) <= 1e-6).all()  # best first
    index.rebuild([], np.empty((0, 0), dtype=np.float32))
    assert index.size == 0 and index.search(unit(rng, 1, 16), 1)[1].shape == (1, 0)


def test_index_refuses_bad_input() -> None:
    index = FaceIndex(8)
    with pytest.raises(InvalidInput):
        index.add([1], np.ones((1, 9), dtype=np.float32))
    with pytest.raises(InvalidInput):
        index.add([1], np.zeros((1, 8), dtype=np.float32))
    with pytest.raises(InvalidInput):
        index.add([1, 2], np.ones((1, 8), dtype=np.float32))
    with pytest.raises(InvalidInput):
        index.add([1, 1], np.ones((2, 8), dtype=np.float32))
    with pytest.raises(InvalidInput):
        index.search(np.ones(8, dtype=np.float32), 0)


def test_index_is_safe_under_concurrent_writes_and_searches() -> None:
    rng = np.random.default_rng(13)
    gallery = unit(rng, 400, 32)
    index = FaceIndex()
    index.add(np.arange(200), gallery[:200])
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for i in range(200, 400):
                index.add([i], gallery[i : i + 1])
                index.remove([i - 200])
        except BaseException as error:
            errors.append(error)

    def reader() -> None:
        try:
            for _ in range(200):
                _, found = index.search(gallery[:4], 3)
                assert (found >= 0).all()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=writer), *(threading.Thread(target=reader) for _ in range(3))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert index.size == 200 and sorted(np.asarray(index.search(gallery[399], 200)[1][0]).tolist()) == list(
        range(200, 400)
    )


def test_registry_builds_from_a_streamed_read(db: FaceStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(repository, "FACE_CHUNK", 5)  # 12 faces come in chunks of at most 5
    rng = np.random.default_rng(14)
    staff = db.create_collection("staff", None, PROFILE)
    db.create_collection("empty", None, PROFILE)
    vectors = unit(rng, 12)
    for i in range(4):
        db.add_faces("staff", f"p{i}", "", {}, [new_face(v) for v in vectors[3 * i : 3 * i + 3]])
    registry = IndexRegistry()
    (staff_id,) = [key for key, (name, _) in db.collections_at()[1].items() if name == "staff"]
    with db.collection_faces(staff_id) as faces:
        assert faces is not None and (faces.name, faces.profile) == ("staff", staff.profile)
        chunks = list(faces.chunks)
    assert [ids.size for ids, _ in chunks] == [5, 5, 2]
    with db.collection_faces(staff_id) as faces:
        assert faces is not None
        registry.install("staff", registry.build(faces.profile, faces.chunks))

    ids, stored = db.embeddings("staff")
    index = registry.get("staff")
    similarities, found = index.search(stored, 1)
    np.testing.assert_array_equal(found[:, 0], ids)  # every stored face finds itself first
    np.testing.assert_allclose(similarities[:, 0], 1.0, atol=1e-5)
    assert registry.get("empty").search(stored[:1], 5)[1].shape == (1, 0)
    with db.collection_faces(10_000) as gone:
        assert gone is None
    registry.drop("staff")
    assert "staff" not in registry


# Re-embedding for another profile.


def test_reembedding_fills_pending_embeddings_then_switches_in_one_step(db: FaceStore) -> None:
    rng = np.random.default_rng(11)
    db.create_collection("staff", 0.4, PROFILE)
    _, ids, _ = db.add_faces("staff", "alice", "", {}, [new_face(v) for v in unit(rng, 3)])
    started = db.start_reembedding("staff", "mobilefacenet+dlib")
    assert (started.profile, started.pending_profile, started.reembedded) == (PROFILE, "mobilefacenet+dlib", 0)
    assert db.reembedding_collections() == [("staff", "mobilefacenet+dlib")]

    profile, rows = db.crops_to_reembed("staff", limit=2)
    assert profile == "mobilefacenet+dlib" and [row[0] for row in rows] == ids[:2]
    assert rows[0][1] == b"\x89PNG fake" and rows[0][2] == np.arange(10.0).reshape(5, 2).tolist()
    fused_models = ("mobilefacenet@foamliu-1.0", "dlib-resnet@v1")
    new_vectors = unit(rng, 3, 256)
    assert (
        db.store_reembedded(
            "staff", profile, [(i, v, fused_models) for i, v in zip(ids[:2], new_vectors[:2], strict=True)]
        )
        == 2
    )
    assert db.get_collection("staff").reembedded == 2
    assert db.pending_embeddings("staff", profile) is None  # one face still to do
    assert not db.finish_reembedding("staff", profile, 256)
    assert db.get_collection("staff").profile == PROFILE  # still serving the old profile

    _, rows = db.crops_to_reembed("staff", limit=10)
    assert [row[0] for row in rows] == ids[2:]
    db.store_reembedded("staff", profile, [(ids[2], new_vectors[2], fused_models)])
    pending_ids, pending = db.pending_embeddings("staff", profile)  # type: ignore[misc]
    assert pending_ids.tolist() == ids and pending.shape == (3, 256)
    assert db.store_reembedded("staff", "dlib", [(ids[0], new_vectors[0], fused_models)]) == 0  # not the pending one
    assert db.finish_reembedding("staff", profile, 256)

    switched = db.get_collection("staff")
    # the collection's own threshold was a cosine of the old profile: dropped, the new calibrated one applies
    assert (switched.profile, switched.pending_profile, switched.threshold) == ("mobilefacenet+dlib", None, None)
    _, vectors = db.embeddings("staff")
    assert vectors.tobytes() == new_vectors.astype("<f4").tobytes()
    faces = db.get_subject("staff", "alice").faces
    assert {(f.profile, f.models, f.dimension) for f in faces} == {("mobilefacenet+dlib", fused_models, 256)}
    assert db.reembedding_collections() == []


def test_reembedding_can_be_cancelled_and_needs_every_crop(db: FaceStore) -> None:
    rng = np.random.default_rng(12)
    db.create_collection("staff", None, PROFILE)
    _, ids, _ = db.add_faces("staff", "alice", "", {}, [new_face(v) for v in unit(rng, 2)])
    db.start_reembedding("staff", "dlib")
    db.store_reembedded("staff", "dlib", [(ids[0], unit(rng, 1)[0], ("dlib-resnet@v1",))])
    again = db.start_reembedding("staff", PROFILE)  # back to the current profile: cancels, forgets the work done
    assert (again.pending_profile, again.reembedded) == (None, 0)
    assert db.crops_to_reembed("staff", 10) == (None, [])

    without_crop = NewFace(**{**new_face(unit(rng, 1)[0]).__dict__, "crop": None, "crop_landmarks": None})
    db.add_faces("staff", "bob", "", {}, [without_crop])
    with pytest.raises(InvalidInput, match="1 face\\(s\\) of collection 'staff' were enrolled without a stored crop"):
        db.start_reembedding("staff", "dlib")
    assert db.get_collection("staff").pending_profile is None


def test_decisions_expire_die_with_their_subject_and_a_refused_one_is_dropped(db: FaceStore) -> None:
    """The feedback writer never retries a decision the database refuses (its subject went meanwhile), and a
    decision is only found within its retention and while its subject exists."""
    from datetime import timedelta

    from argus.services.facedb.storage.models import utcnow
    from argus.services.facedb.storage.records import NewDecision
    from argus.services.facedb.storage.repository import decision_row

    rng = np.random.default_rng(9)
    collection = db.create_collection("staff", None, PROFILE)
    db.add_faces("staff", "ann", "", {}, [new_face(unit(rng, 1)[0])])
    ann = db.subject_template("staff", "ann")
    writer = db.decision_writer(wait_s=1.0, backlog=10)

    def decision(subject_row_id: int | None, seconds: float) -> NewDecision:
        return NewDecision(
            secrets.token_hex(16), "verify", collection.row_id, subject_row_id, True, unit(rng, 1)[0], PROFILE,
            MODELS, (0.0, 0.0, 10.0, 10.0), 0.9, 100.0, 40.0, None, "", utcnow() + timedelta(seconds=seconds),
        )  # fmt: skip

    kept, expired, orphan = decision(ann.row_id, 3600), decision(ann.row_id, -1), decision(ann.row_id + 999, 3600)
    for row in (kept, expired, orphan):
        writer.write(decision_row(row))
    assert writer.pending == 0  # the orphan was refused by its foreign key and dropped, not kept to retry
    found = db.decision("staff", kept.decision_id)
    assert found.subject == "ann" and np.allclose(found.embedding, kept.embedding, atol=1e-6)
    for gone in (expired, orphan):
        with pytest.raises(NotFound):
            db.decision("staff", gone.decision_id)
    assert db.prune_decisions() == 1
    db.delete_subject("staff", "ann")
    with pytest.raises(NotFound):
        db.decision("staff", kept.decision_id)
    writer.close()
