"""A collection's counters (subjects, faces, faces awaiting re-embedding) agree with counting its rows, after every
kind of change, on SQLite and PostgreSQL, also under concurrent enrollments; and the bulk path keeps them."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import sqlalchemy as sa

from argus.errors import AlreadyExists
from argus.services.facedb.storage import FaceStore, NewFace, alembic_config

PROFILE = "mobilefacenet"
OTHER = "dlib"
DIM = 128


RNG = np.random.default_rng(7)


def faces(n: int, *, crop: bool = True) -> list[NewFace]:
    vectors = RNG.standard_normal((n, DIM)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        NewFace(
            vector,
            PROFILE,
            ("mobilefacenet@foamliu-1.0",),
            (0.0, 0.0, 90.0, 90.0),
            0.9,
            90.0,
            40.0,
            b"\x89PNG" if crop else None,
        )
        for vector in vectors
    ]


def counted(store: FaceStore, name: str) -> tuple[int, int, int]:
    """(subjects, faces, faces re-embedded) by counting rows, as get_collection did before the counters."""
    with store.engine.connect() as conn:
        (cid,) = conn.execute(sa.text("SELECT id FROM collections WHERE name = :n"), {"n": name}).one()
        count = "SELECT count(*) FROM {} WHERE collection_id = :c{}"
        return (
            conn.execute(sa.text(count.format("subjects", "")), {"c": cid}).scalar_one(),
            conn.execute(sa.text(count.format("faces", "")), {"c": cid}).scalar_one(),
            conn.execute(sa.text(count.format("faces", " AND pending_embedding IS NOT NULL")), {"c": cid}).scalar_one(),
        )


def agrees(store: FaceStore, name: str) -> tuple[int, int, int]:
    record = store.get_collection(name)
    kept = (record.subject_count, record.face_count, record.reembedded)
    assert kept == counted(store, name)
    listed = next(c for c in store.list_collections() if c.name == name)
    assert (listed.subject_count, listed.face_count, listed.reembedded) == kept
    return kept


def embedded(face_ids: list[int]) -> list[tuple[int, np.ndarray, tuple[str, ...]]]:
    return [(face_id, np.full(DIM, 1 / np.sqrt(DIM), dtype=np.float32), ("dlib-resnet@v1",)) for face_id in face_ids]


def test_counters_follow_every_kind_of_change(db: FaceStore) -> None:
    db.create_collection("door", None, PROFILE)
    assert agrees(db, "door") == (0, 0, 0)
    _, ann, _ = db.add_faces("door", "ann", "Ann", {}, faces(2))
    db.add_faces("door", "ann", "", {}, faces(1))  # an existing subject: faces only
    assert agrees(db, "door") == (1, 3, 0)
    bulk = db.add_subjects_bulk("door", [(f"s{i}", "", faces(2)) for i in range(5)], chunk=2)
    assert len(bulk) == 10 and agrees(db, "door") == (6, 13, 0)
    db.delete_face("door", ann[0])
    assert agrees(db, "door") == (6, 12, 0)
    db.delete_subject("door", "s0")
    assert agrees(db, "door") == (5, 10, 0)
    assert db.list_subjects("door", 2).total == 5

    assert db.start_reembedding("door", OTHER).reembedded == 0
    _, rows = db.crops_to_reembed("door", 3)
    assert db.store_reembedded("door", OTHER, embedded([row[0] for row in rows])) == 3
    assert db.store_reembedded("door", OTHER, embedded([rows[0][0]])) == 0  # stored once
    assert agrees(db, "door") == (5, 10, 3)
    _, new, _ = db.add_faces("door", "bob", "", {}, faces(2))  # enrolled meanwhile: awaits its new embedding too
    assert agrees(db, "door") == (6, 12, 3)
    db.delete_face("door", rows[0][0])  # a face already re-embedded
    db.delete_face("door", new[0])  # a face still awaiting
    assert agrees(db, "door") == (6, 10, 2)
    db.delete_subject("door", "s1")  # holds a re-embedded face and one awaiting
    assert agrees(db, "door") == (5, 8, 1)

    db.cancel_reembedding("door")
    assert agrees(db, "door") == (5, 8, 0)
    db.start_reembedding("door", OTHER)
    _, rows = db.crops_to_reembed("door", 100)
    db.store_reembedded("door", OTHER, embedded([row[0] for row in rows]))
    assert agrees(db, "door") == (5, 8, 8)
    assert db.finish_reembedding("door", OTHER, DIM)
    assert agrees(db, "door") == (5, 8, 0)
    assert db.start_reembedding("door", OTHER).pending_profile is None  # the current one: nothing pending
    assert agrees(db, "door") == (5, 8, 0)
    assert db.delete_collection("door") == (5, 8)


def test_the_bulk_path_refuses_a_chunk_with_a_known_subject_and_keeps_those_before(db: FaceStore) -> None:
    db.create_collection("door", None, PROFILE)
    db.add_faces("door", "s3", "", {}, faces(1))
    with pytest.raises(AlreadyExists, match=r"among 's2' \.\. 's3'"):
        db.add_subjects_bulk("door", [(f"s{i}", "", faces(1)) for i in range(4)], chunk=2)
    assert agrees(db, "door") == (3, 3, 0)  # s0 and s1 landed; s2 went with its chunk
    assert db.add_subjects_bulk("door", [("nobody", "", [])]) == []  # a subject may come without faces
    assert agrees(db, "door") == (4, 3, 0)


def test_counters_agree_under_concurrent_enrollments(db: FaceStore) -> None:
    db.create_collection("door", None, PROFILE)
    errors: list[BaseException] = []

    def enroll(worker: int) -> None:
        try:
            for i in range(8):
                # Half the calls add to a subject another thread may be creating at the same moment.
                subject = f"shared{i // 2}" if i % 2 else f"w{worker}-{i}"
                db.add_faces("door", subject, "", {}, faces(2))
            db.add_subjects_bulk("door", [(f"bulk{worker}-{i}", "", faces(1)) for i in range(5)], chunk=2)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=enroll, args=(worker,)) for worker in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert agrees(db, "door") == (6 * 4 + 4 + 6 * 5, 6 * (8 * 2 + 5), 0)


def test_the_migration_fills_the_counters_in_from_the_rows(database_url: str) -> None:
    from alembic import command

    store = FaceStore(database_url)
    command.upgrade(alembic_config(store.url), "0006")
    blob = np.zeros(DIM, dtype="<f4").tobytes()
    with store.engine.begin() as conn:
        for cid, name, pending in ((1, "idle", None), (2, "moving", OTHER), (3, "empty", None)):
            conn.execute(
                sa.text(
                    "INSERT INTO collections (id, name, profile, pending_profile, created_at) "
                    "VALUES (:id, :name, :profile, :pending, CURRENT_TIMESTAMP)"
                ),
                {"id": cid, "name": name, "profile": PROFILE, "pending": pending},
            )
        for sid, cid in ((1, 1), (2, 1), (3, 2)):
            conn.execute(
                sa.text(
                    "INSERT INTO subjects (id, collection_id, external_id, display_name, metadata, created_at) "
                    "VALUES (:id, :cid, :ext, '', '{}', CURRENT_TIMESTAMP)"
                ),
                {"id": sid, "cid": cid, "ext": f"s{sid}"},
            )
        for sid, cid, done in ((1, 1, False), (1, 1, False), (2, 1, False), (3, 2, True), (3, 2, False)):
            conn.execute(
                sa.text(
                    "INSERT INTO faces (subject_id, collection_id, embedding, dimension, profile, models, x1, y1, "
                    "x2, y2, detection_score, face_size, sharpness, pending_embedding, created_at) VALUES "
                    "(:sid, :cid, :e, :d, :p, 'm@1', 0, 0, 1, 1, 0.9, 1, 1, :pending, CURRENT_TIMESTAMP)"
                ),
                {"sid": sid, "cid": cid, "e": blob, "d": DIM, "p": PROFILE, "pending": blob if done else None},
            )
    store.migrate()
    assert agrees(store, "idle") == (2, 3, 0)
    assert agrees(store, "moving") == (1, 2, 1)
    assert agrees(store, "empty") == (0, 0, 0)
    command.downgrade(alembic_config(store.url), "0006")  # and back
    assert "face_count" not in {c["name"] for c in sa.inspect(store.engine).get_columns("collections")}
    store.close()
