"""`argus keys create|list|revoke`: API keys in the keys file every service reads (ARGUS_KEYS_FILE)."""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import asdict
from pathlib import Path

from argus.cli.output import print_json, table
from argus.config import get_settings
from argus.keys import SCOPES, KeyRing


def _keyring() -> KeyRing:
    return KeyRing(get_settings().resolved_keys_file)


def _write_secret(path: Path, secret: str) -> None:
    """The key, readable by its owner only, in a file that did not exist (a container secret, a service's key)."""
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as stream:
        stream.write(secret + "\n")


def cmd_create(args: argparse.Namespace) -> int:
    if args.output is not None and args.output.exists():
        print(f"argus: {args.output} exists; the key is written to a new file only", file=sys.stderr)
        return 2
    key, secret = _keyring().create(args.name, args.scope, args.collection or [], args.rate)
    if args.output is not None:
        _write_secret(args.output, secret)
    shown = {} if args.output is not None else {"key": secret}
    if args.json:
        print_json({**asdict(key), **shown})
        return 0
    if args.output is None:
        print(secret)
    where = f"written to {args.output}" if args.output is not None else "shown once"
    print(f"key {key.key_id} ({key.name}): scopes {', '.join(key.scopes)}; {where}, only its hash is kept")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    keys = _keyring().keys()
    if args.json:
        print_json([{k: v for k, v in asdict(key).items() if k != "secret_sha256"} for key in keys])
        return 0
    rows = [
        [
            key.key_id,
            key.name,
            ",".join(key.scopes),
            ",".join(key.collections) or "(all)",
            f"{key.rate_per_s:g}/s" if key.rate_per_s else "-",
            f"revoked {key.revoked}" if key.revoked else "active",
        ]
        for key in keys
    ]
    print(table(rows, ["id", "name", "scopes", "collections", "rate", "state"]))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    key = _keyring().revoke(args.key)
    print(f"revoked {key.key_id} ({key.name})")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="create, list or revoke API keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="make a key; it is printed once")
    create.add_argument("name", help="who or what holds the key: unique, 1-64 letters, digits, '.', '_' or '-'")
    create.add_argument("--scope", action="append", choices=SCOPES, required=True, help="repeat for several")
    create.add_argument("--collection", action="append", help="limit the key to this collection (repeatable)")
    create.add_argument("--rate", type=float, default=0.0, help="calls a second this key may make (0: no limit)")
    create.add_argument("--output", type=Path, help="write the key to this new file (mode 0600) instead of printing it")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_create)
    listing = sub.add_parser("list")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    revoke = sub.add_parser("revoke")
    revoke.add_argument("key", help="key id or name")
    revoke.set_defaults(func=cmd_revoke)
