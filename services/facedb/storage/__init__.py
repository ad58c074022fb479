"""The face database's storage: collections, subjects, faces and the audit trail in SQL (SQLite or PostgreSQL).

models.py holds the tables, records.py what the repository hands out, engine.py the connection and the migrations
(Alembic: the schema is never made by `create_all`, so a deployed database and a fresh one have the same shape),
repository.py FaceStore, the one way in.
"""

from argus.services.facedb.storage.engine import SQLITE_BUSY_TIMEOUT_S, alembic_config, normalize_url
from argus.services.facedb.storage.models import Base
from argus.services.facedb.storage.records import (
    AuditRecord,
    CollectionRecord,
    FaceRecord,
    NewFace,
    SubjectPage,
    SubjectRecord,
)
from argus.services.facedb.storage.repository import FaceStore

__all__ = [
    "SQLITE_BUSY_TIMEOUT_S",
    "AuditRecord",
    "Base",
    "CollectionRecord",
    "FaceRecord",
    "FaceStore",
    "NewFace",
    "SubjectPage",
    "SubjectRecord",
    "alembic_config",
    "normalize_url",
]
