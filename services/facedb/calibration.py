"""What a cosine similarity means: the accept threshold and the probability that two faces are the same person.

A threshold alone answers "same or not"; access control and review queues also want "how sure", so a logistic
regression on the cosine turns a score into a calibrated probability (the binary-classification view of
verification). Both are fitted on labelled pairs (LFW pairsDevTest for the shipped file) by `argus calibrate`,
stored as a small JSON file next to this module and loaded once per process. Only numpy is needed at serving time;
scikit-learn is imported when fitting.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Annotated, Self, overload

import numpy as np
from pydantic import ConfigDict, Field, TypeAdapter, ValidationError, model_validator
from pydantic.dataclasses import dataclass
from pydantic_core import ErrorDetails

from argus.config import Settings
from argus.errors import InvalidInput, ModelUnavailable
from argus.files import atomic_write
from argus.profiles import Fusion, get_profile

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"

# Inverse regularisation strength of the logistic fit. A 1-d cosine feature needs a large coefficient (about 20-30)
# for a sharp sigmoid; sklearn's default C=1 would shrink it and flatten the probabilities. C=100 is practically
# unregularised on a thousand pairs yet keeps the fit finite when the pairs happen to be perfectly separable.
LOGISTIC_C = 100.0


TAIL_SAMPLES = 1000  # the largest impostor scores the exponential tail is fitted to

# The numbers a decision is computed from: NaN or infinity there would turn every answer into nonsense.
Finite = Annotated[float, Field(allow_inf_nan=False)]
# Fields are checked when a calibration is made, from a file or in code; keys a newer version added are ignored.
_FIELDS = ConfigDict(extra="ignore")


@dataclass(frozen=True, config=_FIELDS)
class ImpostorTail:
    """How often a stranger's face scores at least s against one enrolled face: P(S >= s).

    Empirical quantiles where there are enough impostor pairs, and beyond them an exponential tail fitted to the
    largest TAIL_SAMPLES scores (peaks over threshold): P(S >= s) = rate * exp(-(s - start) / scale) for s > start.
    """

    pairs: int  # impostor pairs measured
    exceedance: tuple[float, ...]  # probabilities, descending, down to `rate`
    scores: tuple[float, ...]  # the score exceeded with each probability (ascending)
    start: float  # score above which the exponential tail is used
    rate: float  # P(S >= start)
    scale: float  # mean excess over start

    def rate_at(self, score: float) -> float:
        """P(S >= score): how often a single stranger reaches this score (the inverse of score_at)."""
        if score >= self.start:
            return self.rate * math.exp(-(score - self.start) / max(self.scale, 1e-12))
        log_p = float(np.interp(score, self.scores, [-math.log(p) for p in self.exceedance]))
        return math.exp(-log_p)

    def score_at(self, probability: float) -> float:
        """The score a single stranger reaches with this probability."""
        if probability <= self.rate:
            return self.start + self.scale * math.log(self.rate / max(probability, 1e-300))
        return float(np.interp(-math.log(probability), [-math.log(p) for p in self.exceedance], self.scores))

    def gallery_threshold(self, gallery_size: int, false_accept_rate: float) -> float:
        """The threshold at which a stranger's best match among gallery_size independent people reaches it with
        probability false_accept_rate: P(max of N >= t) = 1 - (1 - P(S >= t))^N."""
        per_face = -math.expm1(math.log1p(-false_accept_rate) / max(gallery_size, 1))
        return self.score_at(per_face)


def fit_impostor_tail(scores: np.ndarray) -> ImpostorTail:
    """Fits the tail from impostor cosines (pairs of different people); needs well over TAIL_SAMPLES of them."""
    ranked = np.sort(np.asarray(scores, dtype=np.float64).ravel())[::-1]
    if ranked.size < 10 * TAIL_SAMPLES:
        raise ValueError(f"{ranked.size} impostor pairs are too few to fit the tail; {10 * TAIL_SAMPLES} are needed")
    start = float(ranked[TAIL_SAMPLES - 1])
    exceedance = np.geomspace(0.5, TAIL_SAMPLES / ranked.size, 40)
    positions = np.minimum((exceedance * ranked.size).astype(np.int64), ranked.size - 1)
    return ImpostorTail(
        pairs=int(ranked.size),
        exceedance=tuple(float(p) for p in exceedance),
        scores=tuple(float(ranked[i]) for i in positions),
        start=start,
        rate=TAIL_SAMPLES / ranked.size,
        scale=float(ranked[:TAIL_SAMPLES].mean() - start),
    )


TEMPLATE_SIZES = (2, 3)  # templates calibrated apart from single faces; the last stands for that many or more


@dataclass(frozen=True, config=_FIELDS)
class TemplateCalibration:
    """What a score against a subject's template of `faces` faces means (templates.py): a template's scores run
    higher than one face's, for the subject and for strangers alike, so each size has its own threshold,
    probability model and impostor tail."""

    faces: int  # templates of this many faces (the largest size calibrated: this many or more)
    threshold: Finite  # keeps the false-accept rate the single-face threshold has
    coef: tuple[Finite, ...]
    intercept: Finite
    impostors: ImpostorTail | None
    genuine_pairs: int
    impostor_pairs: int


@dataclass(frozen=True, config=_FIELDS)
class Calibration:
    """Everything fitted for one embedding profile: the fusion's mean vectors, the accept threshold, the
    probability model over the per-model cosines, and the impostor tail, with where they came from. A pydantic
    dataclass: every field is checked for its type, and the whole for fitting its profile, when one is made."""

    profile: str  # e.g. "mobilefacenet+dlib": a calibration is only valid for its own profile...
    models: tuple[str, ...]  # ...and for these exact model versions ("name@version"), in the profile's order
    dimensions: tuple[int, ...]  # each model's vector size
    weights: tuple[float, ...]  # the profile's member weights it was fitted with (the fused cosine depends on them)
    means: dict[str, tuple[float, ...]]  # model name -> mean unit vector, for the models the profile centres
    threshold: Finite  # fused cosine at or above which two faces are the same person (accuracy-maximising)
    coef: tuple[Finite, ...]  # P(same | per-model cosines c) = sigmoid(coef . c + intercept)
    intercept: Finite
    pairs_file: str  # the labelled pairs it was fitted on (file name only)
    pairs: int
    accuracy: float  # accuracy at `threshold` on those same pairs (optimistic: fitted there)
    flip_augmentation: bool  # embeddings were made with flip test-time augmentation
    created: str  # ISO date
    impostors: ImpostorTail | None = None  # for open-set thresholds that grow with the gallery
    # Templates of 2, 3+ faces, fitted on the development identities; without them, a template is scored as one face.
    templates: tuple[TemplateCalibration, ...] = ()

    @model_validator(mode="after")
    def _fits_its_profile(self) -> Self:
        if len(self.coef) != len(self.models) or len(self.dimensions) != len(self.models):
            raise ValueError("calibration needs one coefficient and one dimension per model")
        if any(len(template.coef) != len(self.models) for template in self.templates):
            raise ValueError("every template calibration needs one coefficient per model")
        if [template.faces for template in self.templates] != sorted({t.faces for t in self.templates}) or any(
            template.faces < 2 for template in self.templates
        ):
            raise ValueError("template calibrations must be for distinct sizes of 2 faces or more, smallest first")
        try:
            fusion = self.fusion()
        except (InvalidInput, ValueError) as exc:
            raise ValueError(f"calibration does not fit its profile: {exc}") from None
        current = tuple(member.weight for member in fusion.profile.members)
        if self.weights != current:
            raise ValueError(
                f"calibration was fitted with weights {self.weights}, but profile {self.profile} now weighs its "
                f"models {current}: its threshold no longer applies"
            )
        return self

    def fusion(self) -> Fusion:
        return Fusion(
            get_profile(self.profile), self.dimensions, {name: np.asarray(m) for name, m in self.means.items()}
        )

    def template(self, faces: int) -> TemplateCalibration:
        """The calibration of a template of this many faces: the largest size calibrated at or below it, or the
        single-face figures."""
        fitted = [template for template in self.templates if template.faces <= faces]
        if fitted:
            return fitted[-1]
        return TemplateCalibration(1, self.threshold, self.coef, self.intercept, self.impostors, 0, 0)

    def threshold_for(self, faces: int) -> float:
        """The 1:1 threshold against a template of this many faces."""
        return self.template(faces).threshold

    def identify_threshold(self, gallery_size: int, false_accept_rate: float, faces: int = 1) -> float:
        """The 1:K threshold for a subject whose template has `faces` faces, in a gallery of gallery_size subjects:
        high enough that a stranger is taken for one of them with at most false_accept_rate probability (each
        subject's share of it set by its own template's tail), and never below that template's 1:1 threshold."""
        template = self.template(faces)
        if template.impostors is None:
            return template.threshold
        return max(template.threshold, template.impostors.gallery_threshold(gallery_size, false_accept_rate))

    @overload
    def probability(self, cosines: float, faces: int = 1) -> float: ...

    @overload
    def probability(self, cosines: np.ndarray, faces: int = 1) -> np.ndarray | float: ...

    def probability(self, cosines: float | np.ndarray, faces: int = 1) -> float | np.ndarray:
        """Probability that a probe is the person of a template of `faces` faces, from its per-model cosines
        (..., k); a single-model profile may pass the cosine itself."""
        template = self.template(faces)
        return _sigmoid(cosines, template.coef, template.intercept)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Calibration:
        """Parses and checks a calibration file; every problem is a ValueError that names the fields at fault."""
        try:
            return _CALIBRATION_FILE.validate_json(text)
        except ValidationError as error:
            raise ValueError(_problems(error)) from None

    def save(self, path: Path) -> None:
        """Writes atomically, so a reader never sees half a file."""
        atomic_write(Path(path), self.to_json())

    @classmethod
    def load(cls, path: Path) -> Calibration:
        return cls.from_json(Path(path).read_text())


_CALIBRATION_FILE = TypeAdapter(Calibration)


def _sigmoid(cosines: float | np.ndarray, coef: Sequence[float], intercept: float) -> float | np.ndarray:
    features = np.asarray(cosines, dtype=np.float64)
    if features.ndim == 0 or features.shape[-1] != len(coef):
        features = features[..., None]
    z = features @ np.asarray(coef, dtype=np.float64) + intercept
    p = 0.5 * (1.0 + np.tanh(0.5 * z))  # the logistic sigmoid, without exp overflow warnings
    return float(p) if np.ndim(p) == 0 else p


def _problems(error: ValidationError) -> str:
    """One line for a refused calibration file: what is missing, malformed or inconsistent."""
    problems = error.errors(include_url=False)
    if any(problem["type"] == "json_invalid" for problem in problems):
        return f"calibration is not valid JSON: {problems[0]['msg']}"
    if any(problem["type"] == "dataclass_type" for problem in problems):
        return "calibration JSON must be an object"
    missing = [_field(problem) for problem in problems if problem["type"] == "missing"]
    if missing:
        return f"calibration lacks {', '.join(missing)}"
    if all(problem["type"] == "value_error" for problem in problems):  # the whole does not fit its profile
        return "; ".join(str(problem["ctx"]["error"]) for problem in problems)
    return "calibration has a field of the wrong type: " + "; ".join(
        f"{_field(problem)}: {problem['msg']}" for problem in problems
    )


def _field(problem: ErrorDetails) -> str:
    return ".".join(map(str, problem["loc"]))


def accuracy_threshold(similarities: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """(threshold, accuracy): the cosine threshold that classifies the most pairs right (same when s >= threshold).

    Candidates sit midway between consecutive distinct scores (plus below the lowest and above the highest). When
    adjacent candidates tie, the threshold is the middle of that plateau of scores; when separate plateaus tie, the
    widest wins. This keeps the choice stable instead of hugging whichever score happens to come first.
    """
    scores = np.asarray(similarities, dtype=np.float64).ravel()
    labels = np.asarray(same, dtype=bool).ravel()
    if scores.shape != labels.shape:
        raise ValueError(f"{scores.size} similarities but {labels.size} labels")
    if scores.size == 0:
        raise ValueError("no pairs to choose a threshold from")
    if not np.all(np.isfinite(scores)):
        raise ValueError("similarities must be finite")
    unique, inverse = np.unique(scores, return_inverse=True)
    m = unique.size
    same_counts = np.bincount(inverse, weights=labels.astype(np.float64), minlength=m)
    diff_counts = np.bincount(inverse, weights=(~labels).astype(np.float64), minlength=m)
    same_below = np.concatenate([[0.0], np.cumsum(same_counts)])
    diff_below = np.concatenate([[0.0], np.cumsum(diff_counts)])
    # Candidate k (0..m) accepts every score >= unique[k]: sames at or above it and differents below it are right.
    correct = (labels.sum() - same_below) + diff_below
    best = correct.max()
    runs = _runs(np.flatnonzero(correct == best))
    upper_end = np.nextafter(unique[-1], np.inf)
    # Candidate k holds for thresholds in (unique[k-1], unique[k]]; the open ends are closed at the extreme scores.
    lows = [unique[k0 - 1] if k0 > 0 else unique[0] for k0, _ in runs]
    highs = [unique[k1] if k1 < m else upper_end for _, k1 in runs]
    widest = int(np.argmax(np.subtract(highs, lows)))
    low, high = lows[widest], highs[widest]
    threshold = 0.5 * (low + high)
    if threshold <= low and high > low:  # the plateau is one float wide
        threshold = high
    return float(threshold), float(best / scores.size)


def _runs(indices: np.ndarray) -> list[tuple[int, int]]:
    """Sorted integer indices to (first, last) of each run of consecutive values."""
    breaks = np.flatnonzero(np.diff(indices) > 1)
    starts = np.concatenate([[0], breaks + 1])
    ends = np.concatenate([breaks, [indices.size - 1]])
    return [(int(indices[s]), int(indices[e])) for s, e in zip(starts, ends, strict=True)]


def fit_probability(
    model_cosines: np.ndarray, same: np.ndarray, *, balanced: bool = False
) -> tuple[tuple[float, ...], float]:
    """Score fusion as binary classification: a logistic regression of same/different on the per-model cosines
    of each pair (n, k). Returns (coefficients, intercept). `balanced` weighs the classes to an even prior, as a
    pairs file has, when far more impostor pairs than genuine ones were measured."""
    from sklearn.linear_model import LogisticRegression

    features = np.asarray(model_cosines, dtype=np.float64).reshape(len(same), -1)
    regression = LogisticRegression(C=LOGISTIC_C, max_iter=1000, class_weight="balanced" if balanced else None).fit(
        features, np.asarray(same, dtype=bool)
    )
    return tuple(float(c) for c in regression.coef_[0]), float(regression.intercept_[0])


def fit_calibration(
    fusion: Fusion,
    models: Sequence[str],
    similarities: np.ndarray,
    model_cosines: np.ndarray,
    same: np.ndarray,
    *,
    pairs_file: str = "",
    flip_augmentation: bool = True,
    created: date | None = None,
    impostor_scores: np.ndarray | None = None,
) -> Calibration:
    """Fits, on labelled pairs, the accept threshold on the fused cosine (accuracy-maximising) and P(same) from the
    per-model cosines (logistic regression); the impostor tail from impostor_scores when given."""
    scores = np.asarray(similarities, dtype=np.float64).ravel()
    labels = np.asarray(same, dtype=bool).ravel()
    if labels.all() or not labels.any():
        raise ValueError("calibration needs both same-person and different-person pairs")
    threshold, accuracy = accuracy_threshold(scores, labels)
    coef, intercept = fit_probability(model_cosines, labels)
    means = {
        member.model: tuple(float(x) for x in mean)
        for member, mean in zip(fusion.profile.members, fusion.means, strict=True)
        if mean is not None
    }
    return Calibration(
        profile=fusion.profile.name,
        models=tuple(models),
        dimensions=fusion.dimensions,
        weights=tuple(member.weight for member in fusion.profile.members),
        means=means,
        threshold=threshold,
        coef=coef,
        intercept=intercept,
        pairs_file=Path(pairs_file).name if pairs_file else "",
        pairs=int(scores.size),
        accuracy=accuracy,
        flip_augmentation=flip_augmentation,
        created=(created or date.today()).isoformat(),
        impostors=fit_impostor_tail(impostor_scores) if impostor_scores is not None else None,
    )


def fit_template(
    faces: int,
    genuine_cosines: np.ndarray,
    impostor_cosines: np.ndarray,
    shares: Sequence[float],
    false_accept_rate: float,
) -> TemplateCalibration:
    """A template size's calibration from the per-model cosines of genuine (template, probe) pairs and impostor
    ones (n, k): the threshold where impostors pass at `false_accept_rate` (the single-face threshold's), the
    probability model with an even prior, and the impostor tail."""
    weights = np.asarray(shares, dtype=np.float64)
    genuine = np.asarray(genuine_cosines, dtype=np.float64).reshape(-1, len(weights))
    impostor = np.asarray(impostor_cosines, dtype=np.float64).reshape(-1, len(weights))
    tail = fit_impostor_tail(impostor @ weights)
    coef, intercept = fit_probability(
        np.concatenate([genuine, impostor]),
        np.concatenate([np.ones(len(genuine), bool), np.zeros(len(impostor), bool)]),
        balanced=True,
    )
    return TemplateCalibration(
        faces=faces,
        threshold=tail.score_at(false_accept_rate),
        coef=coef,
        intercept=intercept,
        impostors=tail,
        genuine_pairs=len(genuine),
        impostor_pairs=len(impostor),
    )


def default_calibration_path(profile: str) -> Path:
    """The calibration shipped with the package for a profile: calibration/<profile>.json beside this module."""
    return CALIBRATION_DIR / f"{get_profile(profile).name}.json"


def load_calibration(settings: Settings, profile: str) -> Calibration:
    """<profile>.json from settings.calibration_dir when set, else the shipped file; refuses a file made for
    another profile."""
    name = get_profile(profile).name
    path = (settings.calibration_dir or CALIBRATION_DIR) / f"{name}.json"
    advice = f"run `argus calibrate --profile {name}` to make one, or point ARGUS_CALIBRATION_DIR at a folder with one"
    if not path.is_file():
        raise ModelUnavailable(f"no calibration for profile {name}: {path} does not exist; {advice}")
    try:
        calibration = Calibration.load(path)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"calibration file {path} is unreadable ({exc}); {advice}") from None
    if calibration.profile != name:
        raise ModelUnavailable(
            f"calibration file {path} was fitted for profile {calibration.profile}, not {name}; thresholds do not "
            f"carry over between profiles: {advice}"
        )
    return calibration


class Calibrations:
    """Each profile's calibration, loaded on first use and then kept."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._loaded: dict[str, Calibration] = {}
        self._fusions: dict[str, Fusion] = {}
        self._lock = threading.Lock()

    def __getitem__(self, profile: str) -> Calibration:
        with self._lock:
            if profile not in self._loaded:
                self._loaded[profile] = load_calibration(self.settings, profile)
            return self._loaded[profile]

    def fusion(self, profile: str) -> Fusion:
        calibration = self[profile]
        with self._lock:
            if profile not in self._fusions:
                self._fusions[profile] = calibration.fusion()
            return self._fusions[profile]
