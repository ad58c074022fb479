"""API keys: who may call what, on which collections, how often.

A key looks like `argus_<id>_<secret>`. Only the sha256 of the secret is stored (secrets are random, so a plain
hash is enough; what matters is that the keys file never holds a usable key). Keys carry scopes and may be
limited to some collections and to a rate. The keys file is shared by every service and re-read when it changes,
so `argus keys create|revoke` takes effect without restarts. With no keys at all, auth is off and the services
say so loudly at start.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import logging
import os
import secrets
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from argus.errors import ArgusError, InvalidInput, NotFound, Overloaded

log = logging.getLogger(__name__)

ADMIN, ENROLL, VERIFY, JOBS, DETECT = "admin", "enroll", "verify", "jobs", "detect"
SCOPES = (ADMIN, ENROLL, VERIFY, JOBS, DETECT)
KEY_PREFIX = "argus"
METADATA_KEY = "authorization"  # "Bearer <key>"; "x-api-key: <key>" is accepted too

# Which scopes open which method. Admin opens everything. Methods not listed need admin.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "DetectObjects": frozenset({DETECT}),
    "DetectFaces": frozenset({DETECT}),
    "Embed": frozenset({DETECT}),
    "ListModels": frozenset({DETECT}),
    "Enroll": frozenset({ENROLL}),
    "DeleteFace": frozenset({ENROLL}),
    "DeleteSubject": frozenset({ENROLL}),
    "Verify": frozenset({VERIFY}),
    "Identify": frozenset({VERIFY}),
    "Compare": frozenset({VERIFY}),
    "GetSubject": frozenset({ENROLL, VERIFY}),
    "ListSubjects": frozenset({ENROLL, VERIFY}),
    "ListCollections": frozenset({ENROLL, VERIFY}),
    "GetCollection": frozenset({ENROLL, VERIFY}),
    "ListProfiles": frozenset({ENROLL, VERIFY}),
    "SubmitJob": frozenset({JOBS}),
    "GetJob": frozenset({JOBS}),
    "WatchJob": frozenset({JOBS}),
    "CancelJob": frozenset({JOBS}),
    "ListJobs": frozenset({JOBS}),
    "ListStyles": frozenset({JOBS}),
}


class Unauthenticated(ArgusError):
    status = grpc.StatusCode.UNAUTHENTICATED


class PermissionDenied(ArgusError):
    status = grpc.StatusCode.PERMISSION_DENIED


@dataclass(frozen=True)
class ApiKey:
    key_id: str
    name: str
    secret_sha256: str
    scopes: tuple[str, ...]
    collections: tuple[str, ...] = ()  # empty: every collection
    rate_per_s: float = 0.0  # 0: no limit
    created: str = ""
    revoked: str = ""

    def allows(self, method: str) -> bool:
        return ADMIN in self.scopes or bool(METHOD_SCOPES.get(method, frozenset()) & set(self.scopes))

    def allows_collection(self, collection: str) -> bool:
        return not self.collections or collection in self.collections


# The key of the call being served, for code below the interceptor (audit, collection filters).
current_key: contextvars.ContextVar[ApiKey | None] = contextvars.ContextVar("argus_current_key", default=None)


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str]:
    parts = presented.strip().split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        raise Unauthenticated("the API key is malformed: it looks like argus_<id>_<secret>")
    return parts[1], parts[2]


class KeyRing:
    """The keys file, re-read (at most once a second) when it changes on disk."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[float, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()
        self._reload(force=True)

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < 1.0:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            stamp = (stat.st_mtime, stat.st_size)
        except FileNotFoundError:
            self._keys, self._stamp = {}, None
            return
        if stamp == self._stamp:
            return
        data = json.loads(self.path.read_text())
        self._keys = {
            item["key_id"]: ApiKey(
                **{**item, "scopes": tuple(item["scopes"]), "collections": tuple(item["collections"])}
            )
            for item in data.get("keys", [])
        }
        self._stamp = stamp

    @property
    def enabled(self) -> bool:
        with self._lock:
            self._reload()
            return any(not key.revoked for key in self._keys.values())

    def keys(self) -> list[ApiKey]:
        with self._lock:
            self._reload(force=True)
            return sorted(self._keys.values(), key=lambda key: key.created)

    def authenticate(self, presented: str) -> ApiKey:
        key_id, secret = parse_key(presented)
        with self._lock:
            self._reload()
            key = self._keys.get(key_id)
        if key is None or not hmac.compare_digest(key.secret_sha256, _hash(secret)):
            raise Unauthenticated("the API key is not valid")
        if key.revoked:
            raise Unauthenticated(f"the API key {key.name!r} was revoked on {key.revoked}")
        return key

    # --- management (the `argus keys` commands) -------------------------------------------------------------

    def create(self, name: str, scopes: list[str], collections: list[str], rate_per_s: float) -> tuple[ApiKey, str]:
        """Adds a key and returns it with the full key string, which is shown once and never stored."""
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInput(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
        key_id, secret = secrets.token_hex(4), secrets.token_urlsafe(32).replace("_", "-")
        key = ApiKey(
            key_id=key_id,
            name=name,
            secret_sha256=_hash(secret),
            scopes=tuple(sorted(set(scopes))),
            collections=tuple(sorted(set(collections))),
            rate_per_s=rate_per_s,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self._write([*self.keys(), key])
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id_or_name: str) -> ApiKey:
        keys = self.keys()
        matches = [k for k in keys if key_id_or_name in (k.key_id, k.name) and not k.revoked]
        if len(matches) != 1:
            raise NotFound(f"no single active key with id or name {key_id_or_name!r}")
        revoked = ApiKey(**{**asdict(matches[0]), "revoked": datetime.now(UTC).isoformat(timespec="seconds")})
        self._write([revoked if k.key_id == revoked.key_id else k for k in keys])
        return revoked

    def _write(self, keys: list[ApiKey]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.")
        with os.fdopen(handle, "w") as stream:
            json.dump({"keys": [asdict(k) for k in keys]}, stream, indent=2)
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.path)
        with self._lock:
            self._reload(force=True)


@dataclass
class _Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    """A token bucket per key: rate_per_s tokens a second, bursts up to one second's worth (at least 1)."""

    buckets: dict[str, _Bucket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, key: ApiKey) -> None:
        if key.rate_per_s <= 0:
            return
        capacity = max(1.0, key.rate_per_s)
        now = time.monotonic()
        with self.lock:
            bucket = self.buckets.setdefault(key.key_id, _Bucket(capacity, now))
            bucket.tokens = min(capacity, bucket.tokens + (now - bucket.updated) * key.rate_per_s)
            bucket.updated = now
            if bucket.tokens < 1:
                raise Overloaded(f"key {key.name!r} is over its rate limit of {key.rate_per_s:g} calls a second")
            bucket.tokens -= 1


def presented_key(context: grpc.ServicerContext) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if name == METADATA_KEY and value.lower().startswith("bearer "):
            return value[7:].strip()
        if name == "x-api-key":
            return value.strip()
    return None


def request_collection(request: Any) -> str | None:
    """The collection a facedb request is about, if any (collection RPCs name it `name`)."""
    descriptor = getattr(request, "DESCRIPTOR", None)
    if descriptor is None:
        return None
    if "collection" in descriptor.fields_by_name:
        return request.collection
    if descriptor.name.endswith("CollectionRequest") and "name" in descriptor.fields_by_name:
        return request.name
    return None


class Gatekeeper:
    """Decides, before a call runs, whether it may: authentication, scope, collection, rate."""

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring
        self.limiter = RateLimiter()

    def admit(self, method: str, request: Any, context: grpc.ServicerContext) -> ApiKey | None:
        if not self.keyring.enabled:
            return None
        presented = presented_key(context)
        if not presented:
            raise Unauthenticated("an API key is required: send it as 'authorization: Bearer <key>' metadata")
        key = self.keyring.authenticate(presented)
        if not key.allows(method):
            needed = " or ".join(sorted(METHOD_SCOPES.get(method, {ADMIN})))
            raise PermissionDenied(f"key {key.name!r} lacks the scope for {method} (needs {needed})")
        collection = request_collection(request)
        if collection is not None and collection and not key.allows_collection(collection):
            raise PermissionDenied(f"key {key.name!r} may not use collection {collection!r}")
        self.limiter.take(key)
        return key


def warn_if_open(keyring: KeyRing, service: str) -> None:
    if not keyring.enabled:
        log.warning(
            "AUTH IS OFF for %s: no API keys in %s, so anyone who can reach this port can call it. "
            "Create one with `argus keys create NAME --scope admin`.",
            service,
            keyring.path,
        )
