"""Face commands over a running face database: collections, enroll, verify, identify, compare, subjects."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterable
from pathlib import Path

import grpc

from argus.cli.output import as_dict, print_json, table
from argus.client import QUALITY_FILTERS, REFUSED_STATUSES, FaceDbClient, Photo, client_options, refused_photos
from argus.config import get_settings
from argus.profiles import PROFILES
from argus.proto.facedb.v1 import facedb_pb2


def facedb_client(args: argparse.Namespace) -> FaceDbClient:
    """A client of the face database at --address (default ARGUS_FACEDB_ADDRESS), with the settings' key and TLS."""
    settings = get_settings()
    return FaceDbClient(args.address or settings.facedb_address, args.timeout, **client_options(settings))


def _outcome(value: int) -> str:
    return facedb_pb2.ProbeOutcome.Name(value)


def cmd_collections_create(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        collection = client.create_collection(
            args.name, args.threshold, args.profile or "", require_liveness=args.require_live
        )
    if args.json:
        print_json(collection)
    else:
        print(f"created {collection.name} (threshold {collection.threshold:.3f}, profile {collection.profile})")
    return 0


def cmd_collections_update(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        collection = client.update_collection(args.name, require_liveness=args.require_live)
    if args.json:
        print_json(collection)
    else:
        print(f"{collection.name}: liveness {'required' if collection.require_liveness else 'not required'}")
    return 0


def cmd_collections_list(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        collections = client.list_collections()
    if args.json:
        print_json([as_dict(collection) for collection in collections])
        return 0
    rows = [[c.name, c.subject_count, c.face_count, f"{c.threshold:.3f}", c.profile, _moving(c)] for c in collections]
    print(table(rows, ["collection", "subjects", "faces", "threshold", "profile", "re-embedding"]))
    return 0


def _moving(collection: facedb_pb2.Collection) -> str:
    if not collection.pending_profile:
        return ""
    return f"-> {collection.pending_profile}: {collection.reembedded_faces}/{collection.face_count} faces"


def cmd_collections_profile(args: argparse.Namespace) -> int:
    """Starts moving a collection to another profile; with --wait, shows the progress until it has switched."""
    with facedb_client(args) as client:
        collection = client.change_profile(args.name, args.profile)
        if not collection.pending_profile:
            print(f"{collection.name} uses profile {collection.profile}; nothing to re-embed")
            return 0
        print(f"re-embedding {collection.name} ({collection.face_count} faces) for {collection.pending_profile}")
        while args.wait and collection.pending_profile:
            time.sleep(0.5)
            collection = client.get_collection(args.name)
            print(f"  {_moving(collection) or 'done'}", flush=True)
    if not args.wait:
        print(f"it keeps serving on {collection.profile} meanwhile; `argus collections list` shows the progress")
    elif collection.profile != args.profile:
        print(f"the re-embedding stopped before switching (see the face database's log); profile {collection.profile}")
        return 1
    else:
        print(f"{collection.name} now uses profile {collection.profile} (threshold {collection.threshold:.3f})")
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        profiles = client.list_profiles()
    if args.json:
        print_json([as_dict(profile) for profile in profiles])
        return 0
    rows = [
        [
            p.name + (" (default)" if p.is_default else ""),
            ", ".join(p.model_versions or p.models),
            f"{p.threshold:.3f}" if p.calibrated else "not calibrated",
            p.summary,
        ]
        for p in profiles
    ]
    print(table(rows, ["profile", "models", "threshold", "what"]))
    return 0


def cmd_collections_delete(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        result = client.delete_collection(args.name)
    print(f"deleted {args.name}: {result.deleted_subjects} subjects, {result.deleted_faces} faces")
    return 0


def photo_argument(text: str) -> Photo:
    """PHOTO, or PHOTO@X1,Y1,X2,Y2 to say which face of it to enroll (a box DetectFaces or a refusal gave)."""
    path, _, box = text.rpartition("@") if "@" in text else (text, "", "")
    if not box:
        return Photo(Path(path))
    try:
        x1, y1, x2, y2 = (float(value) for value in box.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give the face box as PHOTO@X1,Y1,X2,Y2") from None
    return Photo(Path(path), face_box=(x1, y1, x2, y2))


def _print_photos(photos: Iterable[facedb_pb2.PhotoOutcome], names: list[str]) -> None:
    """One line per photo: what became of it, and the faces to choose from where it had several."""
    for outcome in photos:
        status = facedb_pb2.PhotoStatus.Name(outcome.status).removeprefix("PHOTO_").lower()
        face = f" face {outcome.face_id}" if outcome.face_id else ""
        print(f"  {names[outcome.index]}: {status}{face}{': ' + outcome.detail if outcome.detail else ''}")
        for box in outcome.candidate_boxes:
            print(f"    candidate: {names[outcome.index]}@{box.x1:.0f},{box.y1:.0f},{box.x2:.0f},{box.y2:.0f}")


def cmd_enroll(args: argparse.Namespace) -> int:
    metadata = json.loads(args.metadata) if args.metadata else None
    names = [str(photo.image) for photo in args.images]
    with facedb_client(args) as client:
        try:
            response = client.enroll(
                args.collection,
                args.subject_id,
                args.images,
                display_name=args.name or "",
                metadata=metadata,
                take_largest_face=args.largest,
                require_live=args.require_live,
                what_passes=args.what_passes,
            )
        except grpc.RpcError as error:
            outcomes = refused_photos(error)
            if outcomes is None:
                raise
            print(f"argus: nothing enrolled: {error.details()}", file=sys.stderr)
            _print_photos(outcomes, names)
            return 3
    if args.json:
        print_json(response)
        return 0
    if response.HasField("subject"):
        verb = "created" if response.created_subject else "added to"
        ids = ", ".join(map(str, response.face_ids)) or "none new"
        print(f"{verb} {response.subject.subject_id}: face(s) {ids}; {len(response.subject.faces)} in all")
    else:
        print(f"nothing enrolled; {args.subject_id} does not exist")
    _print_photos(response.photos, names)
    for warning in response.warnings:
        print(
            f"  warning: {names[warning.photo_index]} already matches {warning.subject_id} ({warning.display_name}) "
            f"at {warning.similarity:.3f} (threshold {warning.threshold:.3f}): the same person, or a mislabel?"
        )
    return 3 if any(outcome.status in REFUSED_STATUSES for outcome in response.photos) else 0


def _decision(response: facedb_pb2.VerifyResponse | facedb_pb2.CompareResponse, as_json: bool) -> int:
    """Prints a 1:1 answer; the exit status is 0 on a match and 3 otherwise, for scripts at a door."""
    if as_json:
        print_json(response)
    elif response.outcome in (facedb_pb2.NO_FACE, facedb_pb2.SPOOF, facedb_pb2.LOW_QUALITY):
        print(f"{_outcome(response.outcome)}: {response.detail}")
    else:
        print(
            f"{_outcome(response.outcome)}: similarity {response.similarity:.3f} "
            f"(threshold {response.threshold:.3f}), probability {response.probability:.3f}"
            + (f"; {response.detail}" if response.detail else "")
        )
    if isinstance(response, facedb_pb2.VerifyResponse) and response.decision_id and not as_json:
        print(f"decision {response.decision_id} (template of {response.template_faces} face(s))")
    return 0 if response.match else 3


def cmd_verify(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        response = client.verify(
            args.collection, args.subject_id, args.image, require_live=args.require_live, quality=args.quality
        )
        return _decision(response, args.json)


def cmd_compare(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        return _decision(client.compare(args.image_a, args.image_b, args.threshold), args.json)


def cmd_identify(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        response = client.identify(
            args.collection,
            args.image,
            top_k=args.top_k,
            threshold=args.threshold,
            require_live=args.require_live,
            quality=args.quality,
        )
    if args.json:
        print_json(response)
        return 0
    print(
        f"{response.faces_found} face(s); {response.subjects_searched} subjects ({response.gallery_size} faces); "
        f"threshold {response.threshold:.3f} for a one-face subject"
    )
    for number, face in enumerate(response.faces):
        box = face.box
        where = f"[{box.x1:.0f}, {box.y1:.0f}, {box.x2:.0f}, {box.y2:.0f}]"
        best = face.candidates[0] if face.candidates else None
        verdict = (
            f"SPOOF (liveness {face.liveness:.2f})"
            if face.spoof
            else f"LOW QUALITY ({face.quality.below})"
            if face.low_quality
            else "unknown"
            if face.unknown or best is None
            else f"{best.subject_id} ({best.display_name})"
        )
        print(f"face {number} {where}: {verdict}" + (f"  decision {face.decision_id}" if face.decision_id else ""))
        for candidate in face.candidates:
            print(
                f"    {candidate.subject_id:<24} {candidate.similarity:.3f} (threshold {candidate.threshold:.3f}, "
                f"{candidate.template_faces} face(s))  p={candidate.probability:.3f}"
            )
    return 0


def cmd_decisions_confirm(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        response = client.confirm_decision(args.collection, args.decision_id, args.subject or "")
    if args.json:
        print_json(response)
    elif response.added:
        retired = f", retired face {response.retired_face_id}" if response.retired_face_id else ""
        print(f"{response.subject_id}: face {response.face_id} added to the template{retired}")
    else:
        print(f"{response.subject_id}: no face added: {response.detail}")
    return 0


def cmd_decisions_reject(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        response = client.reject_decision(args.collection, args.decision_id, args.subject or "")
    if args.json:
        print_json(response)
    else:
        print(f"{response.subject_id}: {response.impostor_examples} impostor example(s) recorded")
    return 0


def cmd_subjects_list(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        subjects = list(client.iter_subjects(args.collection))
    if args.json:
        print_json([as_dict(subject) for subject in subjects])
        return 0
    rows = [[s.subject_id, s.display_name, len(s.faces)] for s in subjects]
    print(table(rows, ["subject", "name", "faces"]))
    return 0


def cmd_subjects_get(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        subject = client.get_subject(args.collection, args.subject_id)
    if args.json:
        print_json(subject)
        return 0
    print(f"{subject.subject_id} ({subject.display_name}): {len(subject.faces)} face(s)")
    for face in subject.faces:
        print(f"    face {face.face_id}: size {face.face_size:.0f} px, score {face.detection_score:.2f}")
    return 0


def cmd_subjects_delete(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        deleted = client.delete_subject(args.collection, args.subject_id)
    print(f"deleted {args.subject_id} and {deleted} face(s)")
    return 0


def cmd_subjects_delete_face(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        client.delete_face(args.collection, args.face_id)
    print(f"deleted face {args.face_id}")
    return 0


def cmd_audit_list(args: argparse.Namespace) -> int:
    since = time.time() - args.hours * 3600 if args.hours else None
    with facedb_client(args) as client:
        response = client.audit_events(collection=args.collection or "", since_s=since, page_size=args.limit)
    if args.json:
        print_json([as_dict(event) for event in response.events])
        return 0
    rows = [
        [
            event.occurred_at.ToDatetime().isoformat(timespec="seconds"),
            event.action,
            f"{event.key_name or '-'} ({event.key_id})" if event.key_id else "-",
            event.collection,
            event.subject_id or "-",
            f"{event.similarity:.3f}" if event.HasField("similarity") else "-",
            event.decision if event.count <= 1 else f"{event.decision} x{event.count}",
        ]
        for event in response.events
    ]
    print(table(rows, ["time (UTC)", "action", "key", "collection", "subject", "similarity", "decision"]))
    return 0


def cmd_audit_prune(args: argparse.Namespace) -> int:
    with facedb_client(args) as client:
        deleted = client.prune_audit_events(args.older_than_days)
    print(f"deleted {deleted} audit events older than {args.older_than_days} days")
    return 0


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--address", help="face database address (default: ARGUS_FACEDB_ADDRESS)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline in seconds")
    parser.add_argument("--json", action="store_true", help="print the response as JSON")


def _liveness_flags(parser: argparse.ArgumentParser) -> None:
    """--require-live / --no-liveness; neither: the collection's default."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--require-live",
        action="store_true",
        default=None,
        help="require a live face: a print or a screen is refused (verify exits 3 with SPOOF)",
    )
    group.add_argument(
        "--no-liveness", dest="require_live", action="store_false", help="waive the collection's liveness requirement"
    )


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    collections = commands.add_parser("collections", help="create, list or delete face collections")
    sub = collections.add_subparsers(dest="collections_command", required=True)
    create = sub.add_parser("create")
    create.add_argument("name")
    create.add_argument("--threshold", type=float, default=0.0, help="cosine threshold (default: calibrated)")
    create.add_argument("--profile", choices=list(PROFILES), help="embedding profile (default: the server's)")
    create.add_argument(
        "--require-live",
        action="store_true",
        help="its verify, identify and enroll require a live face (passive liveness) unless a call says otherwise",
    )
    create.set_defaults(func=cmd_collections_create)
    update = sub.add_parser("update", help="change a collection's settings (admin)")
    update.add_argument("name")
    liveness = update.add_mutually_exclusive_group(required=True)
    liveness.add_argument("--require-live", action="store_true", default=None, help="require a live face by default")
    liveness.add_argument("--no-liveness", dest="require_live", action="store_false", help="no longer require it")
    update.set_defaults(func=cmd_collections_update)
    listing = sub.add_parser("list")
    listing.set_defaults(func=cmd_collections_list)
    delete = sub.add_parser("delete")
    delete.add_argument("name")
    delete.set_defaults(func=cmd_collections_delete)
    profile = sub.add_parser("profile", help="re-embed a collection for another profile, from its stored crops")
    profile.add_argument("name")
    profile.add_argument("profile", choices=list(PROFILES))
    profile.add_argument("--wait", action="store_true", help="show the progress until the collection has switched")
    profile.set_defaults(func=cmd_collections_profile)
    for parser in (create, update, listing, delete, profile):
        _common(parser)

    profiles = commands.add_parser("profiles", help="the embedding profiles and their calibrated thresholds")
    profiles.set_defaults(func=cmd_profiles)
    _common(profiles)

    enroll = commands.add_parser("enroll", help="enroll a person from one or more photos (exit 3: a photo refused)")
    enroll.add_argument("collection")
    enroll.add_argument("subject_id")
    enroll.add_argument(
        "images", nargs="+", type=photo_argument, metavar="PHOTO[@X1,Y1,X2,Y2]", help="photos; @box: which face"
    )
    enroll.add_argument("--name", help="display name")
    enroll.add_argument("--metadata", help="JSON object stored with the subject")
    enroll.add_argument("--largest", action="store_true", help="with several faces, enroll the largest")
    enroll.add_argument(
        "--what-passes", action="store_true", help="enroll the photos that pass, report the others (exit 3)"
    )
    enroll.set_defaults(func=cmd_enroll)

    verify = commands.add_parser("verify", help="1:1: is this photo that subject? (exit 0 match, 3 no match)")
    verify.add_argument("collection")
    verify.add_argument("subject_id")
    verify.add_argument("image", type=Path)
    verify.set_defaults(func=cmd_verify)

    compare = commands.add_parser("compare", help="1:1 between two photos (exit 0 match, 3 no match)")
    compare.add_argument("image_a", type=Path)
    compare.add_argument("image_b", type=Path)
    compare.add_argument("--threshold", type=float, default=0.0)
    compare.set_defaults(func=cmd_compare)

    identify = commands.add_parser("identify", help="1:K: who is each face in this photo?")
    identify.add_argument("collection")
    identify.add_argument("image", type=Path)
    identify.add_argument("--top-k", type=int, default=3)
    identify.add_argument("--threshold", type=float, default=0.0)
    identify.set_defaults(func=cmd_identify)
    for parser in (enroll, verify, identify):
        _liveness_flags(parser)
    for parser in (verify, identify):
        parser.add_argument(
            "--quality", choices=list(QUALITY_FILTERS), help="probe quality filter (default: the server's, auto)"
        )

    decisions = commands.add_parser("decisions", help="feedback on a verify or identify answer (enroll scope)")
    sub = decisions.add_subparsers(dest="decisions_command", required=True)
    feedback = []
    for name, func, what in (
        ("confirm", cmd_decisions_confirm, "the probe was this subject: its face may join the template"),
        ("reject", cmd_decisions_reject, "the probe was not this subject: kept as an impostor example"),
    ):
        parser = sub.add_parser(name, help=what)
        parser.add_argument("collection")
        parser.add_argument("decision_id")
        parser.add_argument("--subject", help="who it was (confirm) or was not (reject); default: the answer's")
        parser.set_defaults(func=func)
        feedback.append(parser)

    subjects = commands.add_parser("subjects", help="list, show or delete enrolled people")
    sub = subjects.add_subparsers(dest="subjects_command", required=True)
    s_list = sub.add_parser("list")
    s_list.add_argument("collection")
    s_list.set_defaults(func=cmd_subjects_list)
    s_get = sub.add_parser("get")
    s_get.add_argument("collection")
    s_get.add_argument("subject_id")
    s_get.set_defaults(func=cmd_subjects_get)
    s_delete = sub.add_parser("delete")
    s_delete.add_argument("collection")
    s_delete.add_argument("subject_id")
    s_delete.set_defaults(func=cmd_subjects_delete)
    s_face = sub.add_parser("delete-face")
    s_face.add_argument("collection")
    s_face.add_argument("face_id", type=int)
    s_face.set_defaults(func=cmd_subjects_delete_face)

    audit = commands.add_parser("audit", help="the audit trail of decisions, enrollments and deletions (admin)")
    sub = audit.add_subparsers(dest="audit_command", required=True)
    a_list = sub.add_parser("list")
    a_list.add_argument("--collection")
    a_list.add_argument("--hours", type=float, help="only the last N hours")
    a_list.add_argument("--limit", type=int, default=100)
    a_list.set_defaults(func=cmd_audit_list)
    a_prune = sub.add_parser("prune")
    a_prune.add_argument("--older-than-days", type=int, required=True)
    a_prune.set_defaults(func=cmd_audit_prune)

    for parser in (enroll, verify, compare, identify, s_list, s_get, s_delete, s_face, a_list, a_prune, *feedback):
        _common(parser)
