"""Paged listings, one rule for every service: how big a page may be, and the opaque token that says where the next
page starts (a position the server gave out, tagged with what it counts, so a token of one listing is refused by
another)."""

from __future__ import annotations

import base64
import binascii

from argus.errors import InvalidInput

DEFAULT_PAGE_SIZE = 100  # what page_size 0 (the proto default) asks for
MAX_PAGE_SIZE = 1000


def page_size(requested: int) -> int:
    """The page size a request asks for: 0 means DEFAULT_PAGE_SIZE; outside 1..MAX_PAGE_SIZE is InvalidInput."""
    size = requested or DEFAULT_PAGE_SIZE
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise InvalidInput(f"page_size {requested} is out of range: 1 to {MAX_PAGE_SIZE}, or 0 for {DEFAULT_PAGE_SIZE}")
    return size


def encode_page_token(tag: str, position: int) -> str:
    """The token for a page starting after `position` (a row id, an offset: the listing's own `tag` says which)."""
    return base64.urlsafe_b64encode(f"{tag}{position}".encode()).decode().rstrip("=")


def decode_page_token(tag: str, token: str, limit: int) -> int:
    """The position a token of this listing carries, 0 for the empty token (the first page). Anything the server did
    not give out, including a position past `limit` (it would overflow the query's parameter), is InvalidInput."""
    if not token:
        return 0
    try:
        raw = base64.b64decode(token.rstrip("=") + "=" * (-len(token.rstrip("=")) % 4), altchars=b"-_", validate=True)
        text = raw.decode("ascii")
    except (binascii.Error, UnicodeError, ValueError):
        text = ""
    digits = text[len(tag) :]
    # Only what encode_page_token makes: the tag and a plain decimal number (no sign, no spaces, no other digits).
    if not text.startswith(tag) or not (digits.isascii() and digits.isdigit()) or len(digits) > len(str(limit)):
        digits = ""
    if not digits or int(digits) > limit:
        raise InvalidInput(
            f"page_token {token[:80]!r} was not issued by this server; pass the next_page_token of the previous "
            "response, or an empty token for the first page"
        )
    return int(digits)
