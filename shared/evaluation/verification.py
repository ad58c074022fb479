"""Verification figures from similarity scores and labels: LFW's cross-validated accuracy, TAR at FAR, the ROC.

Pure arithmetic over numbers, so a hand-worked test pins the protocol down and any data set of labelled pairs can
use it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from argus.services.facedb.calibration import accuracy_threshold, fit_probability

FAR_TARGETS = (1e-3, 1e-2)


@dataclass(frozen=True)
class OperatingPoint:
    far_target: float
    tar: float  # share of same-person pairs accepted
    far: float  # false-accept rate actually reached (<= far_target)
    threshold: float  # accept when cosine >= threshold


@dataclass(frozen=True, eq=False)
class VerificationResult:
    protocol: str  # "10-fold" style cross-validation, or "best-threshold" when there is one fold only
    pairs: int
    folds: int
    accuracy: float  # mean held-out accuracy over the folds
    accuracy_std: float  # np.std over the folds, as LFW papers report it
    threshold: float  # mean of the per-fold thresholds
    fold_accuracies: tuple[float, ...]
    fold_thresholds: tuple[float, ...]
    operating_points: tuple[OperatingPoint, ...]  # TAR at FAR targets, over all pairs
    auc: float
    mean_same: float  # mean cosine of same-person pairs
    mean_different: float
    roc_fpr: np.ndarray
    roc_tpr: np.ndarray
    roc_thresholds: np.ndarray
    model: str = ""
    pairs_file: str = ""
    # Score fusion: a logistic regression over the per-model cosines, fitted on the other folds, tested on each.
    fusion_accuracy: float | None = None
    fusion_accuracy_std: float | None = None
    images: int = 0
    retried: int = 0  # images whose face was only found at the lenient retry threshold
    missed: int = 0  # images with no face at all (zero embedding: such a pair scores 0)
    seconds: float = 0.0

    def tar_at(self, far_target: float) -> float:
        for point in self.operating_points:
            if math.isclose(point.far_target, far_target):
                return point.tar
        raise KeyError(f"no operating point at FAR {far_target}")

    def as_dict(self, *, curve: bool = True) -> dict[str, Any]:
        """JSON-safe: plain floats and lists; the ROC's infinite first threshold becomes null."""
        data: dict[str, Any] = {
            "protocol": self.protocol,
            "model": self.model,
            "pairs_file": self.pairs_file,
            "pairs": self.pairs,
            "folds": self.folds,
            "images": self.images,
            "retried": self.retried,
            "missed": self.missed,
            "accuracy": self.accuracy,
            "accuracy_std": self.accuracy_std,
            "fusion_accuracy": self.fusion_accuracy,
            "fusion_accuracy_std": self.fusion_accuracy_std,
            "threshold": self.threshold,
            "fold_accuracies": list(self.fold_accuracies),
            "fold_thresholds": list(self.fold_thresholds),
            "tar_at_far": [
                {"far_target": p.far_target, "tar": p.tar, "far": p.far, "threshold": p.threshold}
                for p in self.operating_points
            ],
            "auc": self.auc,
            "mean_same": self.mean_same,
            "mean_different": self.mean_different,
            "seconds": self.seconds,
        }
        if curve:
            data["roc"] = {
                "fpr": [float(v) for v in self.roc_fpr],
                "tpr": [float(v) for v in self.roc_tpr],
                "thresholds": [float(v) if math.isfinite(v) else None for v in self.roc_thresholds],
            }
        return data


def tar_at_far(similarities: np.ndarray, same: np.ndarray, far_target: float) -> OperatingPoint:
    """The operating point with the smallest threshold (so the most true accepts) whose false-accept rate is at most
    far_target; thresholds are the observed scores, accepting scores >= threshold."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(same, similarities, drop_intermediate=False)
    index = int(np.flatnonzero(fpr <= far_target)[-1])  # fpr rises as the threshold falls; fpr[0] is 0
    return OperatingPoint(far_target, float(tpr[index]), float(fpr[index]), float(thresholds[index]))


def verification_metrics(
    similarities: np.ndarray, same: np.ndarray, folds: np.ndarray, far_targets: Sequence[float] = FAR_TARGETS
) -> VerificationResult:
    """LFW's protocol: per fold, the accuracy-maximising threshold of the other folds is tested on it; mean and std
    over folds. With one fold (pairsDevTest) the threshold is chosen and scored on the same pairs (optimistic).
    TAR at FAR, AUC and the ROC are over all pairs."""
    from sklearn.metrics import roc_auc_score, roc_curve

    scores = np.asarray(similarities, dtype=np.float64).ravel()
    labels = np.asarray(same, dtype=bool).ravel()
    fold_ids = np.asarray(folds).ravel()
    if not scores.size == labels.size == fold_ids.size:
        raise ValueError(f"{scores.size} similarities, {labels.size} labels and {fold_ids.size} fold ids")
    if labels.all() or not labels.any():
        raise ValueError("verification needs both same-person and different-person pairs")
    unique_folds = np.unique(fold_ids)
    accuracies, thresholds = [], []
    if unique_folds.size == 1:
        threshold, accuracy = accuracy_threshold(scores, labels)
        accuracies, thresholds = [accuracy], [threshold]
    else:
        for fold in unique_folds:
            held_out = fold_ids == fold
            threshold, _ = accuracy_threshold(scores[~held_out], labels[~held_out])
            accuracies.append(float(np.mean((scores[held_out] >= threshold) == labels[held_out])))
            thresholds.append(threshold)
    fpr, tpr, roc_thresholds = roc_curve(labels, scores)
    return VerificationResult(
        protocol="best-threshold" if unique_folds.size == 1 else f"{unique_folds.size}-fold",
        pairs=int(scores.size),
        folds=int(unique_folds.size),
        accuracy=float(np.mean(accuracies)),
        accuracy_std=float(np.std(accuracies)),
        threshold=float(np.mean(thresholds)),
        fold_accuracies=tuple(accuracies),
        fold_thresholds=tuple(thresholds),
        operating_points=tuple(tar_at_far(scores, labels, far) for far in far_targets),
        auc=float(roc_auc_score(labels, scores)),
        mean_same=float(scores[labels].mean()),
        mean_different=float(scores[~labels].mean()),
        roc_fpr=fpr,
        roc_tpr=tpr,
        roc_thresholds=roc_thresholds,
    )


def in_fold_fusion_accuracy(model_cosines: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    """Score fusion as binary classification, cross-validated like LFW's protocol: per fold, a logistic regression
    over the per-model cosines is fitted on the other folds and decides (P >= 0.5) the held-out one."""
    accuracies = []
    for fold in np.unique(folds):
        held_out = folds == fold
        coef, intercept = fit_probability(model_cosines[~held_out], same[~held_out])
        z = model_cosines[held_out] @ np.asarray(coef) + intercept
        accuracies.append(float(np.mean((z >= 0) == same[held_out])))
    return float(np.mean(accuracies)), float(np.std(accuracies))
