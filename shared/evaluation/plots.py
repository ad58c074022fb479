"""Figures of the evaluation results as PNG files, drawn with matplotlib (the optional extra `argus[plots]`).

matplotlib is imported when a plot is drawn, never when the package is, so evaluation runs without it; the figure
is rendered by the Agg backend alone, with no display and no global pyplot state.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from argus.evaluation.liveness import SAMPLES, LivenessResult
from argus.evaluation.verification import VerificationResult
from argus.files import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_MISSING = "plots need matplotlib, which is not installed: pip install 'argus[plots]'"
_DPI = 100
_FAR_RANGE = (1e-4, 1.0)


def require_matplotlib() -> None:
    """Fails now, with the install command, where a plot is asked for: before an evaluation, not after it."""
    _new_figure((1, 1))


def _new_figure(size: tuple[int, int]) -> Figure:
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(_MISSING, name="matplotlib") from exc
    figure = Figure(figsize=(size[0] / _DPI, size[1] / _DPI), dpi=_DPI)
    FigureCanvasAgg(figure)
    return figure


def _save(figure: Figure, path: Path) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return atomic_write(Path(path), buffer.getvalue())


def plot_roc(result: VerificationResult, path: Path, *, size: tuple[int, int] = (800, 600)) -> Path:
    """TAR against FAR (log scale, 1e-4 to 1) as a PNG of `size` pixels, with AUC, accuracy and TAR@FAR on it."""
    visible = result.roc_tpr[result.roc_fpr >= _FAR_RANGE[0]]
    lowest = float(min(visible.min(), result.roc_tpr[-1])) if visible.size else 0.0
    tar_floor = min(0.9, math.floor(lowest * 10) / 10)

    figure = _new_figure(size)
    axes = figure.add_subplot()
    axes.plot(np.clip(result.roc_fpr, *_FAR_RANGE), result.roc_tpr, color="tab:blue", linewidth=2)
    for point in result.operating_points:
        far = max(point.far_target, _FAR_RANGE[0])
        axes.plot(far, point.tar, "o", color="tab:red")
        axes.annotate(
            f"TAR {point.tar:.3f} @ FAR {point.far_target:g}",
            (far, point.tar),
            xytext=(8, -14),
            textcoords="offset points",
            color="tab:red",
        )
    axes.set_xscale("log")
    axes.set_xlim(*_FAR_RANGE)
    axes.set_ylim(tar_floor, 1.0)
    axes.grid(True, which="major", color="0.88")
    axes.set_xlabel("FAR (false accept rate, log scale)")
    axes.set_ylabel("TAR (true accept rate)")
    axes.set_title(f"LFW {result.pairs_file or 'pairs'} ROC" + (f" - {result.model}" if result.model else ""))
    summary = "\n".join(
        [
            f"AUC {result.auc:.4f}",
            f"accuracy {100 * result.accuracy:.2f}% +/- {100 * result.accuracy_std:.2f} ({result.protocol})",
            f"threshold {result.threshold:.3f}, {result.pairs} pairs",
        ]
    )
    axes.text(0.98, 0.04, summary, transform=axes.transAxes, ha="right", va="bottom")
    figure.tight_layout()
    return _save(figure, path)


def plot_liveness(result: LivenessResult, path: Path, *, size: tuple[int, int] = (800, 600)) -> Path:
    """BPCER (real LFW photos rejected) against the liveness threshold, development and test halves, with the
    samples' scores (spoofs red, live green) and the operating point marked."""
    thresholds = np.linspace(0.0, 1.0, 201)
    figure = _new_figure(size)
    axes = figure.add_subplot()
    for rows, label, colour in (
        (result.development, "LFW development", "tab:blue"),
        (result.test, "LFW test", "tab:cyan"),
    ):
        axes.plot(thresholds, [result.bpcer(rows, t) for t in thresholds], color=colour, linewidth=2, label=label)
    for row in result.samples:
        if row.score is not None:
            live = SAMPLES[row.name][0]
            axes.axvline(row.score, color="tab:green" if live else "tab:red", linestyle=":", linewidth=1.5)
            axes.annotate(row.name.removesuffix(".jpg"), (row.score, 0.9), rotation=90, fontsize=8, ha="right")
    axes.axvline(result.threshold, color="black", linewidth=1)
    axes.set_xlim(0.0, 1.0)
    axes.set_ylim(0.0, 1.0)
    axes.grid(True, color="0.88")
    axes.set_xlabel("liveness threshold (P(live face))")
    axes.set_ylabel("BPCER: real photos rejected")
    axes.set_title(f"Passive liveness: operating point {result.threshold:g}")
    axes.legend(loc="upper left")
    return _save(figure, path)
