"""Job commands over a running jobs API: styles, stylize, jobs get|watch|cancel|list."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from argus.cli.output import as_dict, print_json, table
from argus.client import JobsClient, client_options
from argus.config import get_settings
from argus.proto.jobs.v1 import jobs_pb2

FORMATS = {".jpg": jobs_pb2.JPEG, ".jpeg": jobs_pb2.JPEG, ".png": jobs_pb2.PNG, ".webp": jobs_pb2.WEBP}


def _client(args: argparse.Namespace) -> JobsClient:
    settings = get_settings()
    return JobsClient(args.address or settings.jobs_address, args.timeout, **client_options(settings))


def _state(job: jobs_pb2.Job) -> str:
    return jobs_pb2.JobState.Name(job.state)


def _line(job: jobs_pb2.Job) -> str:
    error = f"  error: {job.error}" if job.error else ""
    return f"{job.job_id}  {_state(job):<9} {100 * job.progress:5.1f}%  attempts {job.attempts}{error}"


def cmd_styles(args: argparse.Namespace) -> int:
    with _client(args) as client:
        styles = client.styles()
    if args.json:
        print_json([as_dict(style) for style in styles])
    else:
        print(table([[s.name, s.kind, s.model, s.licence] for s in styles], ["style", "kind", "model", "licence"]))
    return 0


def cmd_stylize(args: argparse.Namespace) -> int:
    output: Path = args.output
    output_format = FORMATS.get(output.suffix.lower())
    if output_format is None:
        print(f"argus: the output must end in one of {', '.join(FORMATS)}", file=sys.stderr)
        return 2
    with _client(args) as client:
        job = client.submit_stylization(
            args.content,
            style=args.style,
            style_image=args.style_image,
            strength=args.strength,
            output_format=output_format,
            max_size=args.max_size,
        )
        if not args.json:
            print(f"submitted {job.job_id}", file=sys.stderr)
        final = job
        for final in client.watch(job.job_id, include_result=True, timeout_s=args.wait):
            if not args.json:
                print(f"  {_state(final):<9} {100 * final.progress:5.1f}%", file=sys.stderr)
    if final.state != jobs_pb2.SUCCEEDED:
        print(f"argus: job {final.job_id} ended {_state(final)}: {final.error}", file=sys.stderr)
        return 1
    output.write_bytes(final.stylization.image.data)
    if args.json:
        summary = as_dict(final)
        summary["stylization"]["image"] = {"file": str(output)}
        print_json(summary)
    else:
        size = final.stylization.size
        print(f"wrote {output} ({size.width}x{size.height})")
    return 0


def cmd_jobs_get(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(args.job_id, include_result=args.result)
    print_json(job) if args.json else print(_line(job))
    return 0


def cmd_jobs_watch(args: argparse.Namespace) -> int:
    with _client(args) as client:
        for job in client.watch(args.job_id, timeout_s=args.wait):
            print_json(job) if args.json else print(_line(job), flush=True)
    return 0


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.job_id)
    print_json(job) if args.json else print(_line(job))
    return 0


def cmd_jobs_list(args: argparse.Namespace) -> int:
    with _client(args) as client:
        response = client.list(
            state=args.state.upper() if args.state else jobs_pb2.JOB_STATE_UNSPECIFIED,
            kind=args.kind.upper() if args.kind else jobs_pb2.JOB_KIND_UNSPECIFIED,
            page_size=args.limit,
        )
    if args.json:
        print_json([as_dict(job) for job in response.jobs])
        return 0
    rows = [
        [job.job_id, jobs_pb2.JobKind.Name(job.kind).lower(), _state(job), f"{100 * job.progress:.0f}%", job.error]
        for job in response.jobs
    ]
    print(table(rows, ["job", "kind", "state", "progress", "error"]))
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="jobs API address (default: ARGUS_JOBS_ADDRESS)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline per call in seconds")
    parser.add_argument("--json", action="store_true", help="print data as JSON")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    styles = commands.add_parser("styles", help="list the styles the stylizer offers")
    styles.set_defaults(func=cmd_styles)

    stylize = commands.add_parser("stylize", help="stylize a photo: submit, follow, write the result")
    stylize.add_argument("content", type=Path)
    which = stylize.add_mutually_exclusive_group(required=True)
    which.add_argument("--style", help="a fixed style by name (see `argus styles`)")
    which.add_argument("--style-image", type=Path, help="any image as the style")
    stylize.add_argument("--strength", type=float, help="0 (the content as it is) to 1 (the full style); default 1")
    stylize.add_argument("--max-size", type=int, default=0, help="longest output side in pixels")
    stylize.add_argument("-o", "--output", type=Path, required=True, help="output file (.jpg, .png or .webp)")
    stylize.add_argument("--wait", type=float, default=600.0, help="longest to wait for the job, in seconds")
    stylize.set_defaults(func=cmd_stylize)

    jobs = commands.add_parser("jobs", help="follow, cancel or list jobs")
    sub = jobs.add_subparsers(dest="jobs_command", required=True)
    get = sub.add_parser("get")
    get.add_argument("job_id")
    get.add_argument("--result", action="store_true", help="include the result")
    get.set_defaults(func=cmd_jobs_get)
    watch = sub.add_parser("watch")
    watch.add_argument("job_id")
    watch.add_argument("--wait", type=float, default=600.0, help="longest to watch, in seconds")
    watch.set_defaults(func=cmd_jobs_watch)
    cancel = sub.add_parser("cancel")
    cancel.add_argument("job_id")
    cancel.set_defaults(func=cmd_jobs_cancel)
    listing = sub.add_parser("list")
    listing.add_argument("--state", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    listing.add_argument("--kind", choices=["detection", "stylization"])
    listing.add_argument("--limit", type=int, default=50)
    listing.set_defaults(func=cmd_jobs_list)

    for parser in (styles, stylize, get, watch, cancel, listing):
        _common(parser)
