"""Accuracy commands: `argus eval coco|widerface|lfw|identify` and `argus calibrate`. They run the models in this
process, so they need the models pulled but no running service."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from argus.cli.output import print_figures, print_json
from argus.config import Settings, get_settings
from argus.models.store import ModelStore


def _store(settings: Settings) -> ModelStore:
    return ModelStore(settings.resolved_models_dir, settings.models_mirror)


def _report(result: Any, as_json: bool) -> None:
    if as_json:
        print_json(result.as_dict())
    else:
        print_figures(result.as_dict())


def _progress(done: int, total: int) -> None:
    """Images embedded so far, on stderr, so --json output stays clean."""
    if done == total or done % 500 == 0:
        print(f"  embedded {done}/{total} images", file=sys.stderr, flush=True)


def cmd_eval_coco(args: argparse.Namespace) -> int:
    from argus.services.detector.evaluation import evaluate_coco
    from argus.services.detector.objects import ObjectDetector

    settings = get_settings()
    detector = ObjectDetector(_store(settings), settings)
    try:
        result = evaluate_coco(detector, args.data or settings.eval_dir / "coco128", limit=args.limit)
    finally:
        detector.close()
    _report(result, args.json)
    return 0


def cmd_eval_widerface(args: argparse.Namespace) -> int:
    from argus.services.detector.evaluation import evaluate_widerface
    from argus.services.detector.faces import FaceDetector

    settings = get_settings()
    detector = FaceDetector(_store(settings), settings)
    try:
        result = evaluate_widerface(detector, args.data or settings.eval_dir / "widerface_val_subset", limit=args.limit)
    finally:
        detector.close()
    _report(result, args.json)
    return 0


def _analyzer(settings: Settings) -> Any:
    from argus.services.facedb.pipeline import LocalFaceAnalyzer

    return LocalFaceAnalyzer(_store(settings), settings)


def cmd_eval_lfw(args: argparse.Namespace) -> int:
    from argus.services.facedb.evaluation import evaluate_lfw, plot_roc

    settings = get_settings()
    analyzer = _analyzer(settings)
    try:
        result = evaluate_lfw(
            analyzer, args.data or settings.eval_dir / "lfw", args.pairs, limit_folds=args.folds, progress=_progress
        )
    finally:
        analyzer.close()
    if args.plot:
        plot_roc(result, args.plot)
        print(f"ROC curve written to {args.plot}", file=sys.stderr)
    if args.json:
        print_json(result.as_dict(curve=False))
    else:
        print_figures(result.as_dict(curve=False))
    return 0


def cmd_eval_identify(args: argparse.Namespace) -> int:
    from argus.services.facedb.calibration import load_calibration
    from argus.services.facedb.evaluation import IMAGES_SUBDIR, evaluate_identification, list_identities

    settings = get_settings()
    lfw = args.data or settings.eval_dir / "lfw"
    analyzer = _analyzer(settings)
    try:
        # By default, the threshold Identify itself would use with this many people enrolled.
        gallery_size = len(list_identities(lfw / IMAGES_SUBDIR, args.limit).multi)
        calibration = load_calibration(settings, analyzer.model_ref)
        threshold = args.threshold or calibration.identify_threshold(gallery_size, settings.open_set_far)
        result = evaluate_identification(
            analyzer,
            lfw,
            threshold,
            limit_identities=args.limit,
            progress=_progress,
        )
    finally:
        analyzer.close()
    _report(result, args.json)
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from argus.services.facedb.calibration import default_calibration_path
    from argus.services.facedb.evaluation import calibrate_lfw

    settings = get_settings()
    analyzer = _analyzer(settings)
    try:
        calibration = calibrate_lfw(analyzer, args.pairs.parent, args.pairs.name, progress=_progress)
    finally:
        analyzer.close()
    output = args.output or settings.calibration_file or default_calibration_path(calibration.model)
    calibration.save(output)
    print(calibration.to_json(), end="")
    print(f"calibration written to {output}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    evaluate = commands.add_parser("eval", help="accuracy on the evaluation data sets")
    sub = evaluate.add_subparsers(dest="eval_command", required=True)

    coco = sub.add_parser("coco", help="AP@0.5 and AP@0.5:0.95 (COCO json or YOLO-format folder)")
    coco.add_argument("--data", type=Path, help="data folder (default: EVAL_DIR/coco128)")
    coco.add_argument("--limit", type=int, help="first N images only")
    coco.set_defaults(func=cmd_eval_coco)

    wider = sub.add_parser("widerface", help="face recall at IoU 0.5 on the WIDER FACE subset")
    wider.add_argument("--data", type=Path, help="data folder (default: EVAL_DIR/widerface_val_subset)")
    wider.add_argument("--limit", type=int, help="first N images only")
    wider.set_defaults(func=cmd_eval_widerface)

    lfw = sub.add_parser("lfw", help="LFW verification: 10-fold accuracy, TAR at FAR, ROC AUC (whole pipeline)")
    lfw.add_argument("--pairs", default="pairs.txt", help="pairs file inside the LFW folder, or a path")
    lfw.add_argument("--data", type=Path, help="LFW folder (default: EVAL_DIR/lfw)")
    lfw.add_argument("--folds", type=int, help="first N folds only")
    lfw.add_argument("--plot", type=Path, help="write the ROC curve to this PNG")
    lfw.set_defaults(func=cmd_eval_lfw)

    identify = sub.add_parser("identify", help="LFW closed-set rank-1 and open-set false accepts")
    identify.add_argument("--data", type=Path, help="LFW folder (default: EVAL_DIR/lfw)")
    identify.add_argument("--threshold", type=float, default=0.0, help="cosine threshold (default: Identify's own)")
    identify.add_argument("--limit", type=int, help="first N identities of each kind only")
    identify.set_defaults(func=cmd_eval_identify)

    for parser in (coco, wider, lfw, identify):
        parser.add_argument("--json", action="store_true")

    calibrate = commands.add_parser("calibrate", help="fit the threshold and probability curve on labelled pairs")
    calibrate.add_argument("--pairs", type=Path, required=True, help="an LFW-format pairs file, e.g. pairsDevTest.txt")
    calibrate.add_argument("--output", type=Path, help="where to write (default: ARGUS_CALIBRATION_FILE or shipped)")
    calibrate.set_defaults(func=cmd_calibrate)
