"""Auth on the gRPC side: which key a call presents, whether it may run (argus.keys has the rules), and the key of
the call being served, for the servicers to pass on.

Auth is a mode (ARGUS_AUTH), never inferred from the keys file: with `required`, every call needs an active key,
and no active key means every call is refused.
"""

from __future__ import annotations

import contextvars
import logging
from typing import Any

import grpc

from argus.errors import shown
from argus.keys import (
    ADMIN,
    METHOD_SCOPES,
    ApiKey,
    DenialLog,
    Denied,
    KeyRing,
    PermissionDenied,
    RateLimiter,
    Unauthenticated,
)

log = logging.getLogger(__name__)

METADATA_KEY = "authorization"  # "Bearer <key>"; "x-api-key: <key>" is accepted too

# The key of the call being served, set by the interceptor; servicers pass it on to the domain (the audit trail's
# actor, a job's owner) and filter listings by it.
current_key: contextvars.ContextVar[ApiKey | None] = contextvars.ContextVar("argus_current_key", default=None)


def visible_collections() -> tuple[str, ...] | None:
    """The collections the call being served may see: its key's, or None for every one (an unlimited key, or auth
    off). Listings filter by this, so a limited key learns nothing of other collections."""
    key = current_key.get()
    return key.collections if key is not None and key.collections else None


def presented_key(context: grpc.ServicerContext) -> str | None:
    for name, value in context.invocation_metadata() or ():
        if not isinstance(value, str):  # binary metadata ("-bin" names) never carries a key
            continue
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
        return str(request.collection)
    if descriptor.name.endswith("CollectionRequest") and "name" in descriptor.fields_by_name:
        return str(request.name)
    return None


class Gatekeeper:
    """Decides, before a call runs, whether it may: authentication, scope, collection, rate. Off, it admits every
    call as the anonymous caller; required, a call needs an active key, and none active refuses every call."""

    def __init__(self, keyring: KeyRing, required: bool, denials: DenialLog) -> None:
        self.keyring = keyring
        self.required = required
        self.denials = denials
        self.limiter = RateLimiter()
        self._refusing_all: bool | None = None  # whether no key was active when last looked at

    def announce(self, service: str) -> None:
        """Says at start what the mode means for this service."""
        active = self.keyring.active_count
        if not self.required:
            log.warning(
                "AUTH IS OFF for %s (ARGUS_AUTH=off): anyone who can reach this port can call it%s.",
                service,
                f"; the {active} keys in {self.keyring.path} are not checked" if active else "",
            )
        elif self.keyring.problem is None:
            log.info("auth required for %s: %d active keys in %s", service, active, self.keyring.path)
        self._watch(active)

    def _watch(self, active: int) -> None:
        """Logs when the service starts or stops refusing every call for want of an active key."""
        refusing_all = self.required and active == 0
        if refusing_all == self._refusing_all:
            return
        self._refusing_all = refusing_all
        if refusing_all:
            log.error(
                "auth: no active API key in %s, so every call is refused; create one with "
                "`argus keys create NAME --scope admin`",
                self.keyring.path,
            )
        elif self.required:
            log.warning("auth: %d active keys in %s; calls with one are served again", active, self.keyring.path)

    def admit(self, method: str, request: Any, context: grpc.ServicerContext) -> ApiKey | None:
        if not self.required:
            return None
        try:
            key = self._authorized(method, request, context)
        except Denied as denial:
            self.denials.add(denial, method)
            raise
        self.limiter.take(key)
        return key

    def _authorized(self, method: str, request: Any, context: grpc.ServicerContext) -> ApiKey:
        active = self.keyring.active_count
        self._watch(active)
        if active == 0:
            raise Unauthenticated(
                "no API key is active on this server, so every call is refused; an operator creates one with "
                "`argus keys create`",
                "no_active_key",
            )
        presented = presented_key(context)
        if not presented:
            raise Unauthenticated("an API key is required: send it as 'authorization: Bearer <key>' metadata", "no_key")
        key = self.keyring.authenticate(presented)
        if not key.allows(method):
            needed = " or ".join(sorted(METHOD_SCOPES.get(method, {ADMIN})))
            raise PermissionDenied(f"key {key.name!r} lacks the scope for {method} (needs {needed})", "scope", key)
        collection = request_collection(request)
        if collection and not key.allows_collection(collection):
            raise PermissionDenied(f"key {key.name!r} may not use collection {shown(collection)}", "collection", key)
        return key
