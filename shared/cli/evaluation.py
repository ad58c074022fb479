"""Accuracy commands: `argus eval coco|widerface|lfw|identify|liveness` and `argus calibrate`. They run the models in
this process, so they need the models pulled but no running service."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from argus.cli.output import print_figures, print_json, table
from argus.config import Settings, get_settings
from argus.errors import ModelUnavailable
from argus.models.store import ModelStore
from argus.profiles import PROFILES, EmbeddingProfile, Fusion, get_profile

if TYPE_CHECKING:
    from argus.evaluation.identification import IdentificationResult
    from argus.evaluation.liveness import LivenessResult
    from argus.evaluation.local_analysis import LocalFaceAnalyzer
    from argus.services.facedb.calibration import Calibration


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
    from argus.evaluation.coco import evaluate_coco
    from argus.services.detector.objects import ObjectDetector

    settings = get_settings()
    detector = ObjectDetector(ModelStore.from_settings(settings), settings)
    try:
        result = evaluate_coco(detector, args.data or settings.eval_dir / "coco128", limit=args.limit)
    finally:
        detector.close()
    _report(result, args.json)
    return 0


def cmd_eval_widerface(args: argparse.Namespace) -> int:
    from argus.evaluation.widerface import evaluate_widerface
    from argus.services.detector.faces import FaceDetector

    settings = get_settings()
    detector = FaceDetector(ModelStore.from_settings(settings), settings)
    try:
        result = evaluate_widerface(detector, args.data or settings.eval_dir / "widerface_val_subset", limit=args.limit)
    finally:
        detector.close()
    _report(result, args.json)
    return 0


def cmd_eval_liveness(args: argparse.Namespace) -> int:
    from argus.evaluation.liveness import evaluate_liveness
    from argus.evaluation.plots import plot_liveness, require_matplotlib
    from argus.services.detector.faces import FaceDetector

    if args.plot:
        require_matplotlib()
    settings = get_settings()
    detector = FaceDetector(ModelStore.from_settings(settings), settings)
    try:
        result = evaluate_liveness(
            detector,
            detector.liveness,
            args.samples or settings.eval_dir / "liveness",
            args.data or settings.eval_dir / "lfw",
            settings.liveness_threshold,
            images=args.images,
            box_grid=args.box_grid,
        )
    finally:
        detector.close()
    if args.plot:
        plot_liveness(result, args.plot)
        print(f"BPCER curve written to {args.plot}", file=sys.stderr)
    if args.json:
        print_json(result.as_dict())
    else:
        _print_liveness(result)
    return 0


def _print_liveness(result: LivenessResult) -> None:
    from argus.evaluation.liveness import SAMPLES

    figures = result.as_dict()
    print(f"operating point {result.threshold:g} (ARGUS_LIVENESS_THRESHOLD)")
    rows = []
    for row in result.samples:
        live, species = SAMPLES[row.name]
        passed = row.score is not None and (row.score >= result.threshold) == live
        score = "no face" if row.score is None else f"{row.score:.3f}"
        rows.append([row.name, "live" if live else f"spoof ({species})", score, "yes" if passed else "NO"])
    print(table(rows, ["sample", "expected", "liveness", "as expected"]))
    print(
        f"\nLFW: {figures['lfw_images']} real photos ({figures['lfw_no_face']} without a face): "
        f"{len(result.development)} development, {len(result.test)} test"
    )
    per_threshold = [
        [
            f"{row['threshold']:g}",
            f"{row['bpcer_development']:.1%}",
            f"{row['bpcer_test']:.1%}",
            f"{row['apcer'].get('print', 0.0):.0%}",
            f"{row['apcer'].get('screen replay', 0.0):.0%}",
        ]
        for row in figures["per_threshold"]
    ]
    print(table(per_threshold, ["threshold", "BPCER dev", "BPCER test", "APCER print", "APCER screen"]))
    quantiles = "  ".join(f"{name} {value:.3f}" for name, value in figures["lfw_quantiles"].items())
    print(f"\nLFW liveness quantiles: {quantiles}")
    rejected = ", ".join(f"{row['image']} ({row['score']:.2f})" for row in figures["rejected"])
    print(f"rejected at {result.threshold:g}: {rejected or 'none'}")
    if result.grid:
        print(
            "\nface-box conventions tried (threshold: the higher spoof's score + 0.05; BPCER on the development half)"
        )
        grid = [
            [
                row.box,
                f"{row.spoof_max:.3f}",
                f"{row.live_min:.3f}",
                f"{row.threshold:.3f}",
                f"{row.development_bpcer:.1%}",
            ]
            for row in result.grid
        ]
        print(table(grid, ["box", "spoof max", "live min", "threshold", "BPCER dev"]))


def _analyzer(settings: Settings, profile: EmbeddingProfile) -> LocalFaceAnalyzer:
    from argus.evaluation.local_analysis import LocalFaceAnalyzer

    return LocalFaceAnalyzer(ModelStore.from_settings(settings), settings, profile.models)


def _calibration(settings: Settings, profile: EmbeddingProfile) -> Calibration | None:
    """The profile's calibration, or None when there is none yet."""
    from argus.services.facedb.calibration import load_calibration

    try:
        return load_calibration(settings, profile.name)
    except ModelUnavailable:
        return None


def _fusion(
    analyzer: LocalFaceAnalyzer, calibration: Calibration | None, profile: EmbeddingProfile, lfw: Path
) -> Fusion:
    """The profile's fusion as calibrated (its means were fitted on the development images), or, for a profile
    not calibrated yet, with means fitted on those images now."""
    from argus.evaluation.lfw import development_fusion

    if calibration is not None:
        return calibration.fusion()
    return development_fusion(analyzer, lfw, profile, progress=_progress)


def cmd_eval_lfw(args: argparse.Namespace) -> int:
    from argus.evaluation.lfw import evaluate_lfw
    from argus.evaluation.plots import plot_roc, require_matplotlib

    if args.plot:
        require_matplotlib()
    settings = get_settings()
    profile = get_profile(args.profile or settings.profile)
    lfw = args.data or settings.eval_dir / "lfw"
    analyzer = _analyzer(settings, profile)
    try:
        fusion = _fusion(analyzer, _calibration(settings, profile), profile, lfw)
        result = evaluate_lfw(analyzer, lfw, fusion, args.pairs, limit_folds=args.folds, progress=_progress)
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
    from argus.evaluation.identification import evaluate_identification

    settings = get_settings()
    profile = get_profile(args.profile or settings.profile)
    lfw = args.data or settings.eval_dir / "lfw"
    analyzer = _analyzer(settings, profile)
    try:
        calibration = _calibration(settings, profile)
        fusion = _fusion(analyzer, calibration, profile, lfw)

        def threshold_at(gallery_size: int) -> float:
            """By default the threshold Identify itself would use with this many people enrolled."""
            if args.threshold:
                return float(args.threshold)
            if calibration is None:
                return math.nan
            return calibration.identify_threshold(gallery_size, settings.open_set_far)

        result = evaluate_identification(
            analyzer, lfw, fusion, threshold_at, limit_identities=args.limit, progress=_progress
        )
    finally:
        analyzer.close()
    if args.json:
        print_json(result.as_dict())
    else:
        _print_identification(result)
    return 0


def _print_identification(result: IdentificationResult) -> None:
    print(
        f"{result.model}: {result.open_set_probes} strangers (never enrolled), {result.images} images, "
        f"{result.missed} without a face, {result.seconds:.1f} s"
    )
    header = ["enrolled", "probes", "rank-1", "rank-5"]
    far_targets = [point.far_target for point in result.galleries[0].points]
    header += [f"DIR@FAR {far:g}" for far in far_targets]
    header += ["Identify threshold", "its DIR", "its FAR"]
    rows = [
        [
            g.identities,
            g.probes,
            f"{100 * g.rank1:.1f}%",
            f"{100 * g.rank5:.1f}%",
            *[f"{100 * p.dir:.1f}% (t {p.threshold:.3f})" for p in g.points],
            f"{g.threshold:.3f}",
            f"{100 * g.dir_at_threshold:.1f}%",
            f"{100 * g.open_set_far:.2f}%",
        ]
        for g in result.galleries
    ]
    print(table(rows, header))


def cmd_calibrate(args: argparse.Namespace) -> int:
    from argus.evaluation.lfw import calibrate_lfw
    from argus.services.facedb.calibration import default_calibration_path

    settings = get_settings()
    profile = get_profile(args.profile or settings.profile)
    analyzer = _analyzer(settings, profile)
    try:
        calibration = calibrate_lfw(analyzer, args.pairs.parent, profile, args.pairs.name, progress=_progress)
    finally:
        analyzer.close()
    if args.output:
        output = args.output
    elif settings.calibration_dir:
        output = settings.calibration_dir / f"{profile.name}.json"
    else:
        output = default_calibration_path(profile.name)
    calibration.save(output)
    print(calibration.to_json(), end="")
    print(f"calibration written to {output}", file=sys.stderr)
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
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

    identify = sub.add_parser(
        "identify", help="LFW 1:K with 100, 500 and all enrolled: rank-1, DIR at FAR 1%% and 0.1%%, open-set FAR"
    )
    identify.add_argument("--data", type=Path, help="LFW folder (default: EVAL_DIR/lfw)")
    identify.add_argument("--threshold", type=float, default=0.0, help="cosine threshold (default: Identify's own)")
    identify.add_argument("--limit", type=int, help="first N identities of each kind only")
    identify.set_defaults(func=cmd_eval_identify)

    liveness = sub.add_parser(
        "liveness", help="passive liveness: upstream's samples and LFW's real photos, BPCER/APCER per threshold"
    )
    liveness.add_argument("--samples", type=Path, help="the samples folder (default: EVAL_DIR/liveness)")
    liveness.add_argument("--data", type=Path, help="LFW folder (default: EVAL_DIR/lfw)")
    liveness.add_argument("--images", type=int, default=400, help="LFW photos drawn, half development (default 400)")
    liveness.add_argument("--box-grid", action="store_true", help="also try other face-box conventions (slower)")
    liveness.add_argument("--plot", type=Path, help="write the BPCER curve with the samples to this PNG")
    liveness.set_defaults(func=cmd_eval_liveness)

    for parser in (coco, wider, lfw, identify, liveness):
        parser.add_argument("--json", action="store_true")
    for parser in (lfw, identify):
        parser.add_argument("--profile", choices=list(PROFILES), help="embedding profile (default: ARGUS_PROFILE)")

    calibrate = commands.add_parser(
        "calibrate", help="fit a profile's fusion means, threshold, score fusion and impostor tail on labelled pairs"
    )
    calibrate.add_argument("--profile", choices=list(PROFILES), help="embedding profile (default: ARGUS_PROFILE)")
    calibrate.add_argument("--pairs", type=Path, required=True, help="an LFW-format pairs file, e.g. pairsDevTest.txt")
    calibrate.add_argument("--output", type=Path, help="where to write (default: ARGUS_CALIBRATION_DIR or shipped)")
    calibrate.set_defaults(func=cmd_calibrate)
