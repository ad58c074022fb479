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
    from argus.evaluation.templates import ShotsResult
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

        if args.shots:
            from argus.evaluation.templates import evaluate_templates

            def own_threshold(subjects: int, faces: int) -> float:
                if args.threshold or calibration is None:
                    return threshold_at(subjects)
                return calibration.identify_threshold(subjects, settings.open_set_far, faces)

            shots = evaluate_templates(analyzer, lfw, fusion, own_threshold, args.shots, progress=_progress)
        else:
            result = evaluate_identification(
                analyzer, lfw, fusion, threshold_at, limit_identities=args.limit, progress=_progress
            )
    finally:
        analyzer.close()
    if args.shots:
        print_json(shots.as_dict()) if args.json else _print_shots(shots)
    elif args.json:
        print_json(result.as_dict())
    else:
        _print_identification(result)
    return 0


def _print_shots(result: ShotsResult) -> None:
    print(
        f"{result.model}: {result.people} people enrolled, {result.probes} probes (the same for every row), "
        f"{result.strangers} strangers; none of them among the development pairs' people"
    )
    header = ["photos per person", "rule", "rank-1", "DIR@FAR 1%", "Identify threshold", "its DIR", "its FAR"]
    rows = [
        [
            row.shots,
            row.rule,
            f"{100 * row.rank1:.1f}%",
            f"{100 * row.dir_at_far:.1f}% (t {row.threshold_at_far:.3f})",
            "" if math.isnan(row.own_threshold) else f"{row.own_threshold:.3f}",
            "" if math.isnan(row.own_dir) else f"{100 * row.own_dir:.1f}%",
            "" if math.isnan(row.own_far) else f"{100 * row.own_far:.2f}%",
        ]
        for row in result.rows
    ]
    print(table(rows, header))
    if result.feedback:
        header = ["feedback run", "faces confirmed", "impostors rejected", "DIR@FAR 1% (later probes)", "returning FAR"]
        rows = [
            [f.run, f.confirmed, f.rejected, f"{100 * f.dir_at_far:.1f}%", f"{100 * f.returning_far:.1f}%"]
            for f in result.feedback
        ]
        print(table(rows, header))


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


def _shot_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--shots takes counts like 1,2,3, not {text!r}") from None
    if not counts or counts[0] < 1 or counts[-1] > 10:
        raise argparse.ArgumentTypeError("--shots takes counts from 1 to 10")
    return counts


def cmd_eval_quality(args: argparse.Namespace) -> int:
    from argus.evaluation.quality import QUANTILES, SplitFigures, evaluate_quality
    from argus.services.facedb.calibration import load_calibration

    settings = get_settings()
    profile = get_profile(args.profile or settings.profile)
    calibration = load_calibration(settings, profile.name)

    def measured(done: int, total: int) -> None:
        if done == total or done % 1024 == 0:
            print(f"  measured {done}/{total} faces", file=sys.stderr, flush=True)

    analyzer = _analyzer(settings, profile)
    try:
        result = evaluate_quality(
            analyzer,
            args.data or settings.eval_dir / "lfw",
            calibration,
            limit_pairs=args.limit,
            progress=_progress,
            measure_progress=measured,
        )
    finally:
        analyzer.close()
    if args.json:
        print_json(result.as_dict())
        return 0

    def rate(hits: int, of: int) -> str:
        return f"{hits / of:.2%} ({hits}/{of})" if of else "-"

    def split_table(figures: SplitFigures) -> str:
        rows = [
            [
                row.level,
                row.bars.describe(),
                f"{row.dropped_share:.2%} ({row.dropped}/{row.images})",
                ", ".join(f"{measure} {count}" for measure, count in row.below.items() if count) or "-",
                rate(row.false_accepts, row.impostor),
                rate(row.true_accepts, row.genuine),
            ]
            for row in figures.levels
        ]
        return table(rows, ["level", "bars", "dropped", "dropped for", "FAR", "TAR"])

    print(f"{result.profile} at its calibrated 1:1 threshold {result.threshold:.4f}; {result.missed} faceless images")
    for title, figures in (("development, bars chosen here", result.development), ("test", result.test)):
        print(f"\n{figures.pairs_file} ({title}): {figures.pairs} pairs, {figures.images} probe images")
        print(split_table(figures))
    spread = [[measure, *(f"{v:.3g}" for v in values)] for measure, values in result.development.quantiles.items()]
    print(f"\nmeasures over the {result.development.pairs_file} images, by quantile")
    print(table(spread, ["measure", *(f"{q:g}" for q in QUANTILES)]))
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
    identify.add_argument(
        "--shots",
        type=_shot_counts,
        help="e.g. 1,2,3: enroll that many photos per person, side by side on the same probes (people outside the "
        "development pairs), with the feedback runs",
    )
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

    quality = sub.add_parser(
        "quality", help="the query quality filter's levels on LFW: probes dropped, FAR and TAR on the pairs kept"
    )
    quality.add_argument("--data", type=Path, help="LFW folder (default: EVAL_DIR/lfw)")
    quality.add_argument("--limit", type=int, help="first N pairs of each pairs file only (half same, half different)")
    quality.add_argument("--profile", choices=list(PROFILES), help="embedding profile (default: ARGUS_PROFILE)")
    quality.add_argument("--json", action="store_true")
    quality.set_defaults(func=cmd_eval_quality)

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
