"""API keys: who may call what, on which collections, how often; and the record of calls refused.

A key looks like `argus_<id>_<secret>`. Only the sha256 of the secret is stored (secrets are random, so a plain
hash is enough; what matters is that the keys file never holds a usable key). Keys carry scopes and may be
limited to some collections and to a rate. The keys file is shared by every service and re-read when it changes,
so `argus keys create|revoke` takes effect without restarts. A keys file that disappears or cannot be parsed while
a service runs keeps the keys last read (a half-written or mistyped file must not open the ports), and the error is
logged.

Nothing here knows gRPC: argus.auth applies these rules to calls.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from argus.errors import AlreadyExists, ArgusError, InvalidInput, NotFound, Overloaded, shown
from argus.files import atomic_write

log = logging.getLogger(__name__)

ADMIN, ENROLL, VERIFY, JOBS, DETECT = "admin", "enroll", "verify", "jobs", "detect"
SCOPES = (ADMIN, ENROLL, VERIFY, JOBS, DETECT)
KEY_PREFIX = "argus"
KEY_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
ANONYMOUS = "anonymous"  # who a refused call came from when it named no key of the keys file
RELOAD_S = 1.0  # the keys file is looked at no more often than this

# Which scopes open which method. Admin opens everything. Methods not listed need admin.
METHOD_SCOPES: dict[str, frozenset[str]] = {
    "DetectObjects": frozenset({DETECT}),
    "DetectFaces": frozenset({DETECT}),
    "Embed": frozenset({DETECT}),
    "ListModels": frozenset({DETECT}),
    "Enroll": frozenset({ENROLL}),
    "DeleteFace": frozenset({ENROLL}),
    "DeleteSubject": frozenset({ENROLL}),
    # Feedback changes what later decisions are made on: a verify key (a kiosk, a door) must not grow a template.
    "ConfirmDecision": frozenset({ENROLL}),
    "RejectDecision": frozenset({ENROLL}),
    "Verify": frozenset({VERIFY}),
    "Identify": frozenset({VERIFY}),
    "Compare": frozenset({VERIFY}),
    "GetSubject": frozenset({ENROLL, VERIFY}),
    "ListSubjects": frozenset({ENROLL, VERIFY}),
    "ListCollections": frozenset({ENROLL, VERIFY}),
    "GetCollection": frozenset({ENROLL, VERIFY}),
    "ListProfiles": frozenset({ENROLL, VERIFY}),
    # The gallery's faces themselves: for who keeps the gallery, not for a door that only asks who is there.
    "GetFaceCrop": frozenset({ENROLL}),
    "SubmitJob": frozenset({JOBS}),
    "GetJob": frozenset({JOBS}),
    "WatchJob": frozenset({JOBS}),
    "CancelJob": frozenset({JOBS}),
    "ListJobs": frozenset({JOBS}),
    "ListStyles": frozenset({JOBS}),
    # What a server runs (its models, their execution providers, its version): for any key, to see the stack.
    "GetServerStatus": frozenset(SCOPES),
    "GetStackStatus": frozenset(SCOPES),
}


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


class Denied(ArgusError):
    """A refused call: the key it named (None when it named no key of the keys file) and why, in one word."""

    def __init__(self, message: str, reason: str, key: ApiKey | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.key = key


class Unauthenticated(Denied):
    """The call names no valid, active key."""


class PermissionDenied(Denied):
    """The call's key is valid but may not do this: a scope it lacks, or a collection it is not given."""


class KeysFileError(ArgusError):
    """The keys file exists but is not a keys file: it is left as it is rather than overwritten."""


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(presented: str) -> tuple[str, str]:
    parts = presented.strip().split("_")
    if len(parts) != 3 or parts[0] != KEY_PREFIX or not parts[1] or not parts[2]:
        raise Unauthenticated("the API key is malformed: it looks like argus_<id>_<secret>", "malformed_key")
    return parts[1], parts[2]


def check_key_name(name: str) -> None:
    """A key's name is what the audit trail and the logs show: one short word that says whose key it is."""
    if not KEY_NAME.fullmatch(name):
        raise InvalidInput(
            f"key name {shown(name)} is not valid: 1 to 64 letters, digits, '.', '_' or '-', without spaces"
        )


def read_keys(path: Path) -> dict[str, ApiKey]:
    """The keys in the file by id; {} when there is no file. Raises KeysFileError when it cannot be read."""
    try:
        data = json.loads(path.read_text())
        return {
            item["key_id"]: ApiKey(
                **{**item, "scopes": tuple(item["scopes"]), "collections": tuple(item["collections"])}
            )
            for item in data["keys"]
        }
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as error:
        raise KeysFileError(f"the keys file {path} cannot be read: {type(error).__name__}: {error}") from None


def active_keys(keys: dict[str, ApiKey]) -> dict[str, ApiKey]:
    """The keys not revoked, by id."""
    return {key_id: key for key_id, key in keys.items() if not key.revoked}


def _names(keys: Sequence[ApiKey]) -> str:
    return ", ".join(f"{key.name} ({key.key_id})" for key in keys) or "none"


class KeyRing:
    """The keys file, re-read (at most once a RELOAD_S) when it changes on disk.

    Every change of the active keys is logged. A file that disappears or cannot be parsed keeps the keys last read,
    and the problem is logged once (until the file changes again).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[str, ApiKey] = {}
        self._stamp: tuple[float, int, int] | None = None
        self._checked = 0.0
        self._problem: str | None = None  # what is wrong with the file now, once logged
        self._started = False  # changes are logged from the first reading on
        self._lock = threading.Lock()
        with self._lock:
            self._reload(force=True)
        self._started = True

    def _reload(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_S:
            return
        self._checked = now
        try:
            stat = self.path.stat()
            stamp: tuple[float, int, int] | None = (stat.st_mtime, stat.st_size, stat.st_ino)
        except OSError:
            stamp = None
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if stamp is None:
            self._report(f"the keys file {self.path} is gone; keeping the {self._active_count()} active keys last read")
            return
        try:
            keys = read_keys(self.path)
        except KeysFileError as error:
            self._report(f"{error}; keeping the {self._active_count()} active keys last read")
            return
        self._report(None)
        self._changed(keys)

    def _report(self, problem: str | None) -> None:
        """Logs a problem with the file once, and its end."""
        if problem == self._problem:
            return
        if problem is not None:
            log.error("%s", problem)
        elif self._started:
            log.warning("the keys file %s is readable again", self.path)
        self._problem = problem

    def _changed(self, keys: dict[str, ApiKey]) -> None:
        before, after = active_keys(self._keys), active_keys(keys)
        added = [key for key_id, key in after.items() if key_id not in before]
        gone = [key for key_id, key in before.items() if key_id not in after]
        edited = [key for key_id, key in after.items() if key_id in before and before[key_id] != key]
        self._keys = keys
        if self._started and (added or gone or edited):
            log.warning(
                "API keys changed in %s: %d active; added %s; revoked or removed %s; edited %s",
                self.path,
                len(after),
                _names(added),
                _names(gone),
                _names(edited),
            )

    def _active_count(self) -> int:
        return len(active_keys(self._keys))

    @property
    def active_count(self) -> int:
        with self._lock:
            self._reload()
            return self._active_count()

    @property
    def problem(self) -> str | None:
        """What is wrong with the keys file, if anything: it is being ignored in favour of the keys last read."""
        with self._lock:
            self._reload()
            return self._problem

    def known(self, key_id: str) -> ApiKey | None:
        with self._lock:
            self._reload()
            return self._keys.get(key_id)

    def authenticate(self, presented: str) -> ApiKey:
        key_id, secret = parse_key(presented)
        key = self.known(key_id)
        if key is None:
            raise Unauthenticated("the API key is not valid", "unknown_key")
        if not hmac.compare_digest(key.secret_sha256, _hash(secret)):
            raise Unauthenticated("the API key is not valid", "wrong_secret", key)
        if key.revoked:
            raise Unauthenticated(f"the API key {key.name!r} was revoked on {key.revoked}", "revoked_key", key)
        return key

    # --- management (the `argus keys` commands): they read the file as it is, and refuse to overwrite a bad one --

    def keys(self) -> list[ApiKey]:
        return sorted(read_keys(self.path).values(), key=lambda key: key.created)

    def create(self, name: str, scopes: list[str], collections: list[str], rate_per_s: float) -> tuple[ApiKey, str]:
        """Adds a key and returns it with the full key string, which is shown once and never stored."""
        check_key_name(name)
        unknown = sorted(set(scopes) - set(SCOPES))
        if unknown or not scopes:
            raise InvalidInput(f"scopes must be some of {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
        keys = self.keys()
        if any(key.name == name and not key.revoked for key in keys):
            raise AlreadyExists(f"an active key is already named {name!r}; pick another name or revoke it first")
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
        self._write([*keys, key])
        return key, f"{KEY_PREFIX}_{key_id}_{secret}"

    def revoke(self, key_id_or_name: str) -> ApiKey:
        keys = self.keys()
        active = [key for key in keys if not key.revoked]
        matches = [key for key in active if key.key_id == key_id_or_name] or [
            key for key in active if key.name == key_id_or_name
        ]
        if not matches:
            raise NotFound(f"no active key has the id or name {shown(key_id_or_name)}; `argus keys list` shows them")
        revoked = ApiKey(**{**asdict(matches[0]), "revoked": datetime.now(UTC).isoformat(timespec="seconds")})
        self._write([revoked if key.key_id == revoked.key_id else key for key in keys])
        return revoked

    def _write(self, keys: list[ApiKey]) -> None:
        atomic_write(self.path, json.dumps({"keys": [asdict(k) for k in keys]}, indent=2), private=True)


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


@dataclass
class Denials:
    """The calls refused for one key and reason within one report interval."""

    key_id: str  # ANONYMOUS when the call named no key of the keys file
    key_name: str
    reason: str  # no_key, malformed_key, unknown_key, wrong_secret, revoked_key, no_active_key, scope, collection
    count: int = 0
    methods: set[str] = field(default_factory=set)
    last_message: str = ""

    def summary(self) -> str:
        return f"{self.count} calls refused ({', '.join(sorted(self.methods))}): {self.last_message}"


DenialSink = Callable[[list[Denials]], None]


class DenialLog:
    """Refused calls, counted per (key, reason) and reported once per interval: a warning line each, and to every
    sink (facedb's audit trail). A flood of refusals costs a counter, never a log line or a row per call; the entries
    are bounded by construction (a key id only when it names a key of the keys file, a reason from a fixed set,
    methods the server hosts)."""

    def __init__(self, interval_s: float, sinks: Sequence[DenialSink] = ()) -> None:
        self.interval_s = interval_s
        self.sinks = list(sinks)
        self._pending: dict[tuple[str, str], Denials] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._reporter: threading.Thread | None = None  # started by the first refusal

    def add(self, denial: Denied, method: str) -> None:
        key_id, name = (denial.key.key_id, denial.key.name) if denial.key else (ANONYMOUS, "")
        with self._lock:
            entry = self._pending.setdefault((key_id, denial.reason), Denials(key_id, name, denial.reason))
            entry.count += 1
            entry.methods.add(method)
            entry.last_message = str(denial)
            if self._reporter is None and not self._closed.is_set():
                self._reporter = threading.Thread(target=self._report_loop, name="denials", daemon=True)
                self._reporter.start()

    def report(self) -> list[Denials]:
        """Logs and hands to the sinks what was refused since the last report."""
        with self._lock:
            pending, self._pending = list(self._pending.values()), {}
        for entry in pending:
            log.warning("auth: key %s (%s), %s: %s", entry.key_id, entry.key_name or "-", entry.reason, entry.summary())
        if pending:
            for sink in self.sinks:
                try:
                    sink(pending)
                except Exception:  # a sink that fails must not stop the reports, nor the logging above
                    log.exception("auth: %d refusal reports could not be recorded", len(pending))
        return pending

    def close(self) -> None:
        """Stops the reporter after a last report."""
        self._closed.set()
        if self._reporter is not None:
            self._reporter.join(timeout=10)
        self.report()

    def _report_loop(self) -> None:
        while not self._closed.wait(self.interval_s):
            self.report()
