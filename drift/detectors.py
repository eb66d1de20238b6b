"""Drift detectors over one feature (KS, PSI, ADWIN, CUSUM) or over the embeddings (MMD).

Window tests compare the reference sample with the current window: the Kolmogorov–Smirnov two-sample test
(with a Holm or Benjamini–Hochberg correction across features), the Population Stability Index, and an MMD
permutation test on the embeddings. Stream detectors see the queries one at a time: ADWIN (river) reports where
it cut the stream; one-sided CUSUMs on per-query scores of several features and on their combination,
with a small and a large slack, calibrated together by a bootstrap on the reference, fire within a few queries of a
clear shift and accumulate the evidence of a gradual one.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from river.drift import ADWIN
from scipy import stats

from mlsearch.configs import Correction


def _finite(values: Sequence[float] | np.ndarray) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    return array[np.isfinite(array)]


# -- Kolmogorov–Smirnov ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KsResult:
    """A two-sample KS test: the largest gap between the two empirical CDFs, and its p-value."""

    statistic: float
    p_value: float


def ks_test(reference: Sequence[float] | np.ndarray, window: Sequence[float] | np.ndarray) -> KsResult | None:
    """SciPy's two-sample Kolmogorov–Smirnov test, ignoring missing (NaN) values.

    Returns:
        The result, or None when either sample is empty.
    """
    a, b = _finite(reference), _finite(window)
    if a.size == 0 or b.size == 0:
        return None
    with warnings.catch_warnings():  # SciPy falls back from the exact to the asymptotic p-value, and says so
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ks_2samp(a, b)
    return KsResult(float(result.statistic), float(result.pvalue))


def adjust_p_values(p_values: Sequence[float], method: Correction = "holm") -> np.ndarray:
    """Correct p-values for testing several features at once.

    Args:
        p_values: Raw p-values.
        method: ``holm`` (controls the family-wise error rate) or ``bh`` (Benjamini–Hochberg, the false
            discovery rate).

    Returns:
        Adjusted p-values, in the input order, capped at 1.
    """
    p = np.asarray(p_values, dtype=np.float64)
    if p.size == 0:
        return p
    if method == "bh":
        return np.asarray(stats.false_discovery_control(p, method="bh"), dtype=np.float64)
    if method != "holm":
        raise ValueError(f"unknown correction {method!r}; valid: holm, bh")
    order = np.argsort(p)
    m = p.size
    stepped = np.maximum.accumulate((m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.minimum(stepped, 1.0)
    return adjusted


# -- Population Stability Index ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PsiResult:
    """The PSI of a window against a reference, with the bins it used.

    Attributes:
        value: ``sum((w - r) * ln(w / r))`` over bins.
        edges: Inner bin edges (bin ``i`` holds values in ``(edges[i-1], edges[i]]``).
        reference_share: Share of the reference in each bin.
        window_share: Share of the window in each bin.
    """

    value: float
    edges: list[float]
    reference_share: list[float]
    window_share: list[float]


def psi_value(reference_share: Sequence[float] | np.ndarray, window_share: Sequence[float] | np.ndarray) -> float:
    """The PSI formula over bin shares that are all positive."""
    r = np.asarray(reference_share, dtype=np.float64)
    w = np.asarray(window_share, dtype=np.float64)
    return float(np.sum((w - r) * np.log(w / r)))


def quantile_edges(reference: np.ndarray, bins: int) -> np.ndarray:
    """Inner edges at the reference's quantiles, with repeated edges (ties) merged."""
    inner = np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1])
    edges = np.unique(inner)
    edges = edges[edges < reference.max()]
    return edges if edges.size else np.array([reference.max()])  # a constant reference: at it, and above


def psi(
    reference: Sequence[float] | np.ndarray, window: Sequence[float] | np.ndarray, bins: int = 10,
    min_per_bin: int = 20,
) -> PsiResult | None:
    """Population Stability Index with bins at the reference's quantiles.

    Guards: fewer bins for a small window (so that each bin expects at least ``min_per_bin`` window queries,
    and never fewer than 2 bins); tied quantiles merge (a feature that is mostly 0 gets one bin for 0); an
    empty bin counts as half a query instead of zero, so that the logarithm stays finite.

    Args:
        reference: The reference sample.
        window: The current window.
        bins: Most bins (10 is customary).
        min_per_bin: Window queries each bin should expect.

    Returns:
        The result, or None when either sample is empty.
    """
    ref, win = _finite(reference), _finite(window)
    if ref.size == 0 or win.size == 0:
        return None
    count = max(2, min(bins, win.size // max(min_per_bin, 1)))
    edges = quantile_edges(ref, count)
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="left"), minlength=edges.size + 1)
    win_counts = np.bincount(np.searchsorted(edges, win, side="left"), minlength=edges.size + 1)
    ref_share = np.maximum(ref_counts, 0.5) / ref.size
    win_share = np.maximum(win_counts, 0.5) / win.size
    return PsiResult(psi_value(ref_share, win_share), edges.tolist(), ref_share.tolist(), win_share.tolist())


# -- ADWIN ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Cut:
    """Where ADWIN cut the stream: the first position of the newer part, and the means on both sides."""

    position: int
    detected_at: int
    mean_before: float
    mean_after: float


class AdwinTracker:
    """River's ADWIN on one stream, remembering where it cut.

    River says *when* it detects a change; this tracker locates *where* the change starts
    (:func:`change_point` over the values since the last cut) and refills a fresh ADWIN with the values after
    it, so that the newer part is not forgotten.

    Args:
        delta: ADWIN's confidence (smaller: fewer false alarms, later detection).
        clock: How often (in values) ADWIN checks for a cut; 1 checks after every query.
        keep: Most recent values remembered to locate cuts.
    """

    def __init__(self, delta: float = 0.002, clock: int = 1, keep: int = 5000) -> None:
        self.delta = delta
        self.clock = clock
        self._adwin = self._new()
        self._values: deque[tuple[int, float]] = deque(maxlen=keep)
        self.cuts: list[Cut] = []

    def _new(self) -> ADWIN:
        return ADWIN(delta=self.delta, clock=self.clock)

    @property
    def mean(self) -> float:
        """ADWIN's estimate of the current mean."""
        return float(self._adwin.estimation)

    def update(self, value: float, position: int) -> Cut | None:
        """Add one value (NaN is ignored); the cut when ADWIN found one."""
        if not math.isfinite(value):
            return None
        self._values.append((position, float(value)))
        self._adwin.update(float(value))
        if not self._adwin.drift_detected:
            return None
        items = list(self._values)
        split = change_point(np.array([v for _, v in items]))
        kept = items[split:]
        cut = Cut(
            position=kept[0][0], detected_at=position,
            mean_before=float(np.mean([v for _, v in items[:split]])) if split else math.nan,
            mean_after=float(np.mean([v for _, v in kept])),
        )
        self.cuts.append(cut)
        self._adwin = self._new()
        self._values.clear()
        for pos, v in kept:
            self._values.append((pos, v))
            self._adwin.update(v)
        return cut


def change_point(values: np.ndarray) -> int:
    """The index where a single mean shift most likely starts (the split with the largest standardised mean
    difference, ``|mean(a) - mean(b)| * sqrt(|a||b| / n)``); 0 for fewer than two values."""
    n = values.size
    if n < 2:
        return 0
    sums = np.cumsum(values)[:-1]
    left = np.arange(1, n)
    right = n - left
    gap = np.abs(sums / left - (values.sum() - sums) / right) * np.sqrt(left * right / n)
    return int(np.argmax(gap)) + 1


# -- CUSUM --------------------------------------------------------------------------------------------------
def percentiles(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Where each value falls in the reference, in (0, 1): ``(#below + ½·#equal + ½) / (n + 1)``.

    A value from the reference's own distribution is uniform on (0, 1) whatever the feature's shape; ties (a
    feature that is often 0) get mid-ranks.
    """
    ref = np.sort(np.asarray(reference, dtype=np.float64))
    values = np.asarray(values, dtype=np.float64)
    below = np.searchsorted(ref, values, side="left")
    equal = np.searchsorted(ref, values, side="right") - below
    return (below + 0.5 * equal + 0.5) / (ref.size + 1)


def normal_scores(reference: np.ndarray, values: np.ndarray) -> np.ndarray:
    """:func:`percentiles` as standard normal scores (``Φ⁻¹``): N(0, 1) for in-reference traffic."""
    return stats.norm.ppf(percentiles(reference, values))


# -- joint one-sided CUSUM -------------------------------------------------------------------------------------
SCORE_CLIP = 4.0
"""Standard scores are clipped to ±this, so that one odd query moves a CUSUM by at most a few steps."""
SPREAD_FLOOR = 0.01
"""Smallest spread, as a share of ``max(|reference mean|, 1)``: a feature that (almost) never varied in the
reference, such as an unknown-term share that was always 0, makes any change strong evidence."""


def _floor_spread(center: np.ndarray, spread: np.ndarray) -> np.ndarray:
    return np.maximum(spread, SPREAD_FLOOR * np.maximum(np.abs(center), 1.0))


@dataclass(frozen=True)
class ScoreScale:
    """How live values become per-query scores: standardised by a reference, signed so that a shift the wrong
    way is positive, clipped, and combined into one score per query.

    Attributes:
        center: Per-feature reference mean (``(features,)``).
        spread: Per-feature reference standard deviation (at least :data:`SPREAD_FLOOR` of its scale).
        directions: +1 (high values are bad) or −1 (low values are bad) per feature.
        combined_spread: The reference standard deviation of the sum of the feature scores (the features are
            correlated, so it is not ``sqrt(features)``).
    """

    center: np.ndarray
    spread: np.ndarray
    directions: np.ndarray
    combined_spread: float

    @classmethod
    def fit(cls, columns: np.ndarray, directions: Sequence[int]) -> ScoreScale:
        """Fit on ``(n, features)`` reference values (NaN: missing)."""
        columns = np.atleast_2d(np.asarray(columns, dtype=np.float64))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            center = np.nan_to_num(np.nanmean(columns, axis=0))
            spread = _floor_spread(center, np.nan_to_num(np.nanstd(columns, axis=0, ddof=1)))
        scale = cls(center, spread, np.asarray(directions, dtype=np.float64), 1.0)
        total = np.nansum(scale.feature_scores(columns), axis=1)
        deviation = float(np.std(total, ddof=1)) if total.size > 1 else 1.0
        return cls(center, spread, scale.directions, deviation if deviation > 0 else 1.0)

    def feature_scores(self, values: np.ndarray) -> np.ndarray:
        """``(m, features)`` signed, clipped standard scores (NaN stays NaN)."""
        values = np.atleast_2d(np.asarray(values, dtype=np.float64))
        return np.clip(self.directions * (values - self.center) / self.spread, -SCORE_CLIP, SCORE_CLIP)

    def scores(self, values: np.ndarray) -> np.ndarray:
        """``(m, features + 1)``: the feature scores, then their sum over its reference spread (NaN counts 0)."""
        features = self.feature_scores(values)
        combined = np.nansum(features, axis=1) / self.combined_spread
        return np.column_stack([features, combined])


@dataclass
class OneSidedCusum:
    """A one-sided CUSUM on ready-made scores: ``S ← max(0, S + z − slack)``; NaN leaves it unchanged.

    Args:
        slack: Allowance per query, in standard deviations.
        threshold: The drift threshold (calibrated by :func:`calibrate_joint_cusum`).
        warning_threshold: The lower warning threshold.
    """

    slack: float
    threshold: float
    warning_threshold: float
    statistic: float = 0.0

    @property
    def alarm(self) -> bool:
        """Whether the statistic is above the drift threshold."""
        return self.statistic > self.threshold

    @property
    def warning(self) -> bool:
        """Whether the statistic is above the warning threshold."""
        return self.statistic > self.warning_threshold

    def update(self, score: float) -> float:
        """Add one score; the new statistic."""
        if math.isfinite(score):
            self.statistic = max(0.0, self.statistic + score - self.slack)
        return self.statistic


@lru_cache(maxsize=16)
def _calibrated(
    data: bytes, shape: tuple[int, int], directions: tuple[int, ...], slacks: tuple[float, ...],
    alphas: tuple[float, ...], horizon: int, simulations: int, seed: int,
) -> tuple[tuple[float, ...], ...]:
    columns = np.frombuffer(data, dtype=np.float64).reshape(shape)
    return tuple(tuple(t) for t in _calibrate(columns, directions, slacks, alphas, horizon, simulations, seed))


def calibrate_joint_cusum(
    columns: np.ndarray, directions: Sequence[int], slacks: float | Sequence[float], alphas: Sequence[float],
    horizon: int, simulations: int = 2000, seed: int = 0,
) -> list[np.ndarray]:
    """Thresholds for a family of one-sided CUSUMs watched together: for each slack, one chart per feature and
    one on their combined score (:class:`ScoreScale`); one threshold per chart for each false-alarm probability.

    A small slack accumulates weak evidence over many queries (a gradual shift); a large one ignores ordinary
    traffic and so can fire after two or three clearly odd queries (a sudden one): watching both is the
    multi-chart CUSUM for a shift of unknown size (Han, Tsung, Hu & Wang, 2007). The charts would cross a
    common level at very different rates, so each chart's threshold is its own in-control quantile scaled by one
    factor, chosen so that the family as a whole raises a false alarm with probability ``alpha`` over
    ``horizon`` in-control queries: every chart gets the same share of the risk, and the correction for
    watching several charts takes their correlation into account (it is never more conservative than
    Bonferroni). In-control traffic is simulated by the bootstrap of Gandy & Kvaløy (2013), "Guaranteed
    conditional performance of control charts via bootstrap methods": each run draws a pseudo-reference from
    the reference rows (features kept together), fits the scores on it, and scores reference rows drawn at
    random, so the reference's own sampling error is included.

    Args:
        columns: ``(n, features)`` reference values (NaN: missing).
        directions: +1 or −1 per feature (the side that is watched).
        slacks: Allowance per query of each set of charts.
        alphas: False-alarm probabilities over ``horizon`` queries (e.g. warning and drift).
        horizon: Queries per simulated run.
        simulations: Simulated runs.
        seed: Seed of the simulation.

    Returns:
        For each ``alphas`` entry, the thresholds of the charts, slack by slack, each slack's features then its
        combined score (the same reference and settings are calibrated once per process).
    """
    columns = np.ascontiguousarray(np.atleast_2d(np.asarray(columns, dtype=np.float64)))
    slacks = (slacks,) if isinstance(slacks, int | float) else tuple(slacks)
    found = _calibrated(columns.tobytes(), columns.shape, tuple(int(d) for d in directions),
                        tuple(float(k) for k in slacks), tuple(float(a) for a in alphas), int(horizon),
                        int(simulations), int(seed))
    return [np.asarray(thresholds) for thresholds in found]


def _calibrate(
    columns: np.ndarray, directions: Sequence[int], slacks: Sequence[float], alphas: Sequence[float], horizon: int,
    simulations: int, seed: int,
) -> list[np.ndarray]:
    n, count = columns.shape
    rng = np.random.default_rng(seed)
    signs = np.asarray(directions, dtype=np.float64)
    draws = rng.integers(0, n, size=(simulations, n))
    pseudo = columns[draws]  # (simulations, n, features): one pseudo-reference per run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        center = np.nan_to_num(np.nanmean(pseudo, axis=1))[:, None, :]
        spread = _floor_spread(center, np.nan_to_num(np.nanstd(pseudo, axis=1, ddof=1))[:, None, :])
    features = np.clip(signs * (columns[None] - center) / spread, -SCORE_CLIP, SCORE_CLIP)
    sums = np.nansum(features, axis=2)  # (simulations, n): each reference row's summed score in each run
    combined_spread = np.std(np.take_along_axis(sums, draws, axis=1), axis=1, ddof=1)[:, None]
    combined_spread[~(combined_spread > 0)] = 1.0
    table = np.concatenate([features, (sums / combined_spread)[:, :, None]], axis=2)
    # a missing score leaves a CUSUM as it is: the same as a step of exactly its slack (the statistic is ≥ 0)
    steps = np.concatenate([np.nan_to_num(table, nan=slack) - slack for slack in slacks], axis=2)
    charts = steps.shape[2]
    steps = steps.reshape(simulations * n, charts)
    offsets = np.arange(simulations) * n
    state = np.zeros((simulations, charts))
    highest = np.zeros((simulations, charts))
    step = np.empty((simulations, charts))
    for _ in range(horizon):
        np.take(steps, offsets + rng.integers(0, n, size=simulations), axis=0, out=step)
        state += step
        np.maximum(state, 0.0, out=state)
        np.maximum(highest, state, out=highest)
    thresholds = []
    for alpha in alphas:
        own = np.quantile(highest, 1.0 - alpha, axis=0)
        # a chart that never rose in control (a feature the reference never varied) is scaled like the widest
        own = np.where(own > 0, own, own.max() if own.max() > 0 else 1.0)
        factor = float(np.quantile((highest / own).max(axis=1), 1.0 - alpha))
        thresholds.append(factor * own)
    return thresholds


# -- MMD -------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class MmdResult:
    """Squared maximum mean discrepancy (RBF kernel) between two samples and its permutation p-value."""

    mmd2: float
    p_value: float


def mmd_test(
    reference: np.ndarray, window: np.ndarray, permutations: int = 200, seed: int = 0
) -> MmdResult | None:
    """A permutation test of the maximum mean discrepancy between two sets of embeddings.

    The kernel is Gaussian with the median pairwise distance as its width; the statistic is the biased
    (V-statistic) MMD², which the permutation test makes exact.

    Args:
        reference: Reference embeddings, shape ``(n, d)``.
        window: Window embeddings, shape ``(m, d)``.
        permutations: Random relabellings.
        seed: Seed of the permutations.

    Returns:
        The result, or None when a sample is empty.
    """
    x = np.asarray(reference, dtype=np.float64)
    y = np.asarray(window, dtype=np.float64)
    if x.ndim != 2 or y.ndim != 2 or not len(x) or not len(y):
        return None
    pooled = np.vstack([x, y])
    squared = np.sum(pooled**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0.0)
    upper = distances[np.triu_indices(len(pooled), k=1)]
    width = float(np.median(upper[upper > 0])) if np.any(upper > 0) else 1.0
    kernel = np.exp(-distances / width)
    n, total = len(x), len(pooled)
    rng = np.random.default_rng(seed)
    ranks = np.argsort(rng.random((permutations, total)), axis=1).argsort(axis=1)
    labels = np.vstack([np.arange(total) < n, ranks < n]).T
    weights = np.where(labels, 1.0 / n, -1.0 / (total - n))
    values = np.einsum("ij,ij->j", weights, kernel @ weights)
    observed = float(values[0])
    p_value = float((1 + np.sum(values[1:] >= observed - 1e-12)) / (permutations + 1))
    return MmdResult(observed, p_value)
