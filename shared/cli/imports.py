"""`argus import COLLECTION SOURCE`: bulk enrollment from a folder of subject folders or a CSV, with a progress bar,
resumable by running the same command again (argus.importer does the work)."""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

from tqdm import tqdm

from argus.cli.faces import facedb_client
from argus.config import get_settings
from argus.importer import ImportStopped, Journal, import_items, journal_path, report_rows

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C


def cmd_import(args: argparse.Namespace) -> int:
    settings = get_settings()
    try:
        items = import_items(args.source)
    except ImportStopped as exc:
        print(f"argus: {exc}", file=sys.stderr)
        return 2
    journal = Journal(args.journal or journal_path(args.source), args.collection)
    bar = tqdm(total=len(items), unit="photo", desc=f"import {args.collection}", file=sys.stderr)
    try:
        with facedb_client(args) as client:
            summary = client.import_photos(
                args.collection,
                items,
                journal=journal,
                concurrency=args.concurrency,
                max_bytes=settings.max_image_bytes,
                take_largest_face=args.largest,
                progress=lambda _result: bar.update(),
            )
    except KeyboardInterrupt:
        bar.close()
        journal.close()
        print(
            f"\ninterrupted; the journal {journal.path} keeps what is done: run the same command to resume",
            file=sys.stderr,
        )
        return INTERRUPTED
    except ImportStopped as exc:
        bar.close()
        journal.close()
        print(f"argus: import stopped: {exc}; the journal {journal.path} keeps what is done", file=sys.stderr)
        return 1
    bar.close()
    journal.close()
    print(
        f"{summary.enrolled} enrolled, {summary.already_enrolled} already enrolled, {summary.skipped} done before "
        f"(journal {journal.path}), {len(summary.refused)} refused, {len(summary.warnings)} warned"
    )
    for result in summary.refused:
        print(f"  refused {result.item.path} ({result.item.subject}): {result.detail}")
    for result in summary.warnings:
        print(f"  warning {result.item.path} ({result.item.subject}): {'; '.join(result.warnings)}")
    if args.report:
        with Path(args.report).open("w", newline="", encoding="utf-8") as file:
            writer = csv.DictWriter(file, fieldnames=["subject", "photo", "status", "detail"])
            writer.writeheader()
            writer.writerows(report_rows(summary))
    return 3 if summary.refused else 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "import",
        help="enroll many photos: a folder of subject folders, or a CSV of subject,name,photo (exit 3: some refused)",
    )
    parser.add_argument("collection")
    parser.add_argument("source", type=Path, help="folder with one sub-folder per subject, or a CSV file")
    parser.add_argument("--concurrency", type=int, default=4, help="photos in flight at once (default 4)")
    parser.add_argument("--journal", type=Path, help=f"progress file (default: beside SOURCE, {'.argus-import.jsonl'})")
    parser.add_argument(
        "--largest", action="store_true", help="from a photo of several faces, take the largest (else it is refused)"
    )
    parser.add_argument("--report", type=Path, help="write every refused and warned photo to this CSV")
    parser.add_argument("--address", help="face database address (default: ARGUS_FACEDB_ADDRESS)")
    parser.add_argument("--timeout", type=float, default=60.0, help="deadline of each call in seconds")
    parser.set_defaults(func=cmd_import)
