"""The face database's request checks, at the service boundary: every rule a request must meet before the domain
(database.py) and the repository (storage/) see it, each stated once. What they guarantee, the repository only
asserts; what only the stored data can tell (an unknown subject, another profile) is refused further in."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from google.protobuf import json_format, struct_pb2, timestamp_pb2

from argus.boxes import Box
from argus.errors import InvalidInput, shown
from argus.paging import decode_page_token, encode_page_token, page_size
from argus.profiles import PROFILES
from argus.services.facedb.database import EnrollPhoto
from argus.services.facedb.storage.models import (
    COSINE_RANGE,
    DECISION_ID_LENGTH,
    MAX_COLLECTION_NAME,
    MAX_DISPLAY_NAME,
    MAX_EXTERNAL_ID,
    MAX_ROW_ID,
    MAX_SUBJECT_ROW_ID,
)

COLLECTION_NAME = re.compile(rf"^[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_COLLECTION_NAME - 1}}}$")
MAX_TOP_K = 100
# Page tokens carry a row id behind their listing's tag, so a token of one listing is refused by the other.
SUBJECTS_PAGE, AUDIT_PAGE = "s", "e"


def collection_name(name: str) -> str:
    """The name of a collection to create; a look-up by any other name simply finds nothing."""
    if not COLLECTION_NAME.match(name):
        raise InvalidInput(
            f"collection name {shown(name)} is not valid: use 1 to {MAX_COLLECTION_NAME} letters, digits, '_', '.' "
            "or '-', starting with a letter or digit"
        )
    return name


def subject_id(value: str) -> str:
    if not value.strip():
        raise InvalidInput("subject_id is empty: give the ID your application knows this person by")
    if len(value) > MAX_EXTERNAL_ID:
        raise InvalidInput(f"subject_id is {len(value)} characters; the limit is {MAX_EXTERNAL_ID}")
    return _storable("subject_id", value)


def display_name(value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME:
        raise InvalidInput(f"display_name is longer than {MAX_DISPLAY_NAME} characters")
    return _storable("display_name", value)


def _storable(kind: str, value: str) -> str:
    # PostgreSQL text cannot hold NUL; refused on every backend alike, before the database sees it.
    if "\x00" in value:
        raise InvalidInput(f"{kind} contains a NUL character")
    return value


def metadata(message: struct_pb2.Struct | None, *, max_bytes: int, max_depth: int) -> dict[str, Any] | None:
    """Subject metadata is a small JSON object: at most max_bytes as compact JSON, nested at most max_depth deep.
    Every listing carries it, so its size is what bounds a page of subjects. None: not given."""
    if message is None:
        return None
    try:
        value: dict[str, Any] = json_format.MessageToDict(message)
    except ValueError as error:  # NaN or infinite numbers: a Struct may hold them, JSON cannot
        raise InvalidInput(f"metadata must be plain JSON: {error}") from None
    if not value:
        return value
    depth = _json_depth(value)
    if depth > max_depth:
        raise InvalidInput(f"metadata is nested {depth} levels deep; the limit is {max_depth}")
    try:
        size = len(json.dumps(value, separators=(",", ":"), allow_nan=False).encode())
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"metadata must be plain JSON: {error}") from None
    if size > max_bytes:
        raise InvalidInput(f"metadata is {size} bytes as JSON; the limit is {max_bytes} bytes")
    return value


def _json_depth(value: Any) -> int:
    """Levels of objects and lists; iterative, so no input can exhaust the stack."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children)
    return deepest


def threshold(value: float) -> float | None:
    """A cosine threshold a request sets; 0 (the proto default) means none: the calibrated one applies."""
    low, high = COSINE_RANGE
    if not (math.isfinite(value) and low <= value <= high):
        raise InvalidInput(f"threshold {value} is not a cosine similarity in [{low:g}, {high:g}]; 0 means the default")
    return value or None


def top_k(value: int) -> int:
    if value == 0:
        return 1
    if not 1 <= value <= MAX_TOP_K:
        raise InvalidInput(f"top_k {value} is out of range: ask for 1 to {MAX_TOP_K} candidates")
    return value


def profile(name: str) -> str:
    """The profile a collection is to change to (which ones are usable, the domain knows)."""
    if not name:
        raise InvalidInput(f"name the profile to change to; known: {', '.join(PROFILES)}")
    return name


def subjects_page(size: int, token: str) -> tuple[int, int]:
    """(page size, the subject row id the page starts after: 0 for the first page)."""
    return page_size(size), decode_page_token(SUBJECTS_PAGE, token, MAX_SUBJECT_ROW_ID)


def subjects_token(after: int | None) -> str:
    return "" if after is None else encode_page_token(SUBJECTS_PAGE, after)


def audit_page(size: int, token: str) -> tuple[int, int | None]:
    """(page size, the event id the page goes back from: None for the newest)."""
    return page_size(size), decode_page_token(AUDIT_PAGE, token, MAX_ROW_ID) or None


def audit_token(before: int | None) -> str:
    return "" if before is None else encode_page_token(AUDIT_PAGE, before)


def moment(field: str, stamp: timestamp_pb2.Timestamp | None) -> datetime | None:
    if stamp is None:
        return None
    try:
        when: datetime = stamp.ToDatetime(tzinfo=UTC)
    except (ValueError, OverflowError) as error:  # nanos or seconds out of the Timestamp's range
        raise InvalidInput(f"{field} is not a valid timestamp: {error}") from None
    return when


def time_range(since: datetime | None, until: datetime | None) -> tuple[datetime | None, datetime | None]:
    if since is not None and until is not None and until <= since:
        raise InvalidInput(f"until ({until.isoformat()}) must be after since ({since.isoformat()})")
    return since, until


# Longest value an audit filter may hold: the longest field it is compared with (a key's name).
MAX_AUDIT_FILTER = 128


def audit_filter(field: str, value: str) -> str:
    """A filter of the audit trail; one longer than any stored value could match nothing and is refused."""
    if len(value) > MAX_AUDIT_FILTER:
        raise InvalidInput(f"{field} is {len(value)} characters; the limit is {MAX_AUDIT_FILTER}")
    return _storable(field, value)


def subjects_query(value: str) -> str:
    """What ListSubjects searches the IDs and display names for."""
    if len(value) > MAX_DISPLAY_NAME:
        raise InvalidInput(f"query is {len(value)} characters; the limit is {MAX_DISPLAY_NAME}")
    return _storable("query", value.strip())


FACE_CROP_SIDES = range(16, 257)
DEFAULT_FACE_CROP_SIDE = 128


def face_crop_side(value: int) -> int:
    """The longest side of a face crop to send: 0 means DEFAULT_FACE_CROP_SIDE."""
    if value == 0:
        return DEFAULT_FACE_CROP_SIDE
    if value not in FACE_CROP_SIDES:
        raise InvalidInput(
            f"max_side {value} is out of range: {FACE_CROP_SIDES.start} to {FACE_CROP_SIDES.stop - 1} px, "
            f"or 0 for {DEFAULT_FACE_CROP_SIDE}"
        )
    return value


def older_than_days(days: int) -> int:
    if days < 1:
        raise InvalidInput("older_than_days must be at least 1")
    return days


# LivenessRequirement's values (facedb.proto) -> required: None leaves it to the collection.
_LIVENESS = {0: None, 1: True, 2: False}


def liveness(requirement: int) -> bool | None:
    """A request's LivenessRequirement; InvalidInput for a value this server does not know."""
    if requirement not in _LIVENESS:
        raise InvalidInput(f"unknown liveness requirement {requirement}")
    return _LIVENESS[requirement]


# QualityFilter's values (facedb.proto) -> the level's name in quality.QUALITY_LEVELS; unspecified is AUTO.
_QUALITY = {0: "auto", 1: "none", 2: "auto", 3: "low", 4: "medium", 5: "high"}


def quality_filter(value: int) -> str:
    """A request's QualityFilter as a level name; InvalidInput for a value this server does not know."""
    if value not in _QUALITY:
        raise InvalidInput(f"unknown quality filter {value}")
    return _QUALITY[value]


def face_box(x1: float, y1: float, x2: float, y2: float) -> Box:
    """A box a caller marks a face with: finite, with its second corner below and right of the first."""
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)) or x2 <= x1 or y2 <= y1:
        raise InvalidInput(f"face_box ({x1}, {y1}, {x2}, {y2}) is not a box: give x1 < x2 and y1 < y2, in pixels")
    return (x1, y1, x2, y2)


# EnrollMode's values (facedb.proto) -> whether a refused photo refuses the whole call.
_ALL_OR_NOTHING = {0: True, 1: False}


def all_or_nothing(mode: int) -> bool:
    """A request's EnrollMode; InvalidInput for a value this server does not know."""
    if mode not in _ALL_OR_NOTHING:
        raise InvalidInput(f"unknown enrollment mode {mode}")
    return _ALL_OR_NOTHING[mode]


def enroll_photos(photos: list[EnrollPhoto], *, limit: int) -> list[EnrollPhoto]:
    """The photos of one enrollment (`images`, then `photos`)."""
    if not photos:
        raise InvalidInput("no images to enroll; one photo is enough")
    if len(photos) > limit:
        raise InvalidInput(f"{len(photos)} images in one enrollment; the limit is {limit}")
    return photos


DECISION_ID = re.compile(rf"^[0-9a-f]{{{DECISION_ID_LENGTH}}}$")


def decision_id(value: str) -> str:
    if not DECISION_ID.match(value):
        raise InvalidInput(
            f"decision_id {shown(value)} is not one: give the decision_id of a Verify or Identify answer"
        )
    return value


def optional_subject_id(value: str) -> str:
    """A subject a feedback call names; empty: the one the answer named."""
    return subject_id(value) if value else ""
