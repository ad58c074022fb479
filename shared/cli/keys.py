"""`argus keys create|list|revoke`: API keys in the keys file every service reads (ARGUS_KEYS_FILE)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from argus.auth import SCOPES, KeyRing
from argus.cli.output import print_json, table
from argus.config import get_settings


def _keyring() -> KeyRing:
    return KeyRing(get_settings().resolved_keys_file)


def cmd_create(args: argparse.Namespace) -> int:
    key, secret = _keyring().create(args.name, args.scope, args.collection or [], args.rate)
    if args.json:
        print_json({**asdict(key), "key": secret})
    else:
        print(secret)
        print(f"key {key.key_id} ({key.name}): scopes {', '.join(key.scopes)}; shown once, only its hash is kept")
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


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = commands.add_parser("keys", help="create, list or revoke API keys")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="make a key; it is printed once")
    create.add_argument("name")
    create.add_argument("--scope", action="append", choices=SCOPES, required=True, help="repeat for several")
    create.add_argument("--collection", action="append", help="limit the key to this collection (repeatable)")
    create.add_argument("--rate", type=float, default=0.0, help="calls a second this key may make (0: no limit)")
    create.add_argument("--json", action="store_true")
    create.set_defaults(func=cmd_create)
    listing = sub.add_parser("list")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(func=cmd_list)
    revoke = sub.add_parser("revoke")
    revoke.add_argument("key", help="key id or name")
    revoke.set_defaults(func=cmd_revoke)
