"""Drift detectors over one feature (KS, PSI, ADWIN, CUSUM) or over the embeddings (MMD).

Window tests compare the reference sample with the current window: the Kolmogorov–Smirnov two-sample test
(with a Holm or Benjamini–Hochberg correction across features), the Population Stability Index, and an MMD
permutation test on the embeddings. Stream detectors see the queries one at a time: ADWIN (river) reports where
it cut the stream; a two-sided CUSUM on reference-relative normal scores, calibrated on the reference, fires
within a few queries of a clear shift.
"""

from __future__ import annotations

import math
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist
from typing import Literal

import numpy as np
from river.drift import ADWIN
from scipy import stats

Correction = Literal["holm", "bh"]
_STANDARD_NORMAL = NormalDist()


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


def calibrate_cusum(
    reference: np.ndarray, slack: float, alpha: float, horizon: int, simulations: int = 4000, seed: int = 0
) -> float:
    """The CUSUM threshold that in-control traffic crosses within ``horizon`` queries with probability ``alpha``.

    A bootstrap that includes the reference's own sampling error (Gandy & Kvaløy, 2013, "Guaranteed
    conditional performance of control charts via bootstrap methods"): each simulated run draws a
    pseudo-reference from the reference, scores a stream drawn from the reference against it, and records
    the run's highest statistic. Without this, a reference that happens to sit a little low makes every
    in-domain query look a little high, and the CUSUM slowly climbs to a false alarm.

    Args:
        reference: The feature's reference sample.
        slack: The CUSUM's allowance per query.
        alpha: Target false-alarm probability.
        horizon: Queries per simulated run.
        simulations: Simulated runs.
        seed: Seed of the simulation.
    """
    rng = np.random.default_rng(seed)
    values, unique_of = np.unique(np.asarray(reference, dtype=np.float64), return_inverse=True)
    n = unique_of.size
    draws = unique_of[rng.integers(0, n, size=(simulations, n))]
    cells = (np.arange(simulations)[:, None] * values.size + draws).ravel()
    counts = np.bincount(cells, minlength=simulations * values.size).reshape(simulations, values.size)
    below = np.cumsum(counts, axis=1) - counts
    scores = stats.norm.ppf((below + 0.5 * counts + 0.5) / (n + 1))
    flat = scores.ravel()
    offsets = np.arange(simulations) * values.size
    high = np.zeros(simulations)
    low = np.zeros(simulations)
    peak = np.zeros(simulations)
    for _ in range(horizon):
        z = flat[offsets + unique_of[rng.integers(0, n, size=simulations)]]
        high = np.maximum(0.0, high + z - slack)
        low = np.maximum(0.0, low - z - slack)
        np.maximum(peak, np.maximum(high, low), out=peak)
    return float(np.quantile(peak, 1.0 - alpha))


@lru_cache(maxsize=32)
def continuous_cusum_threshold(size: int, slack: float, alpha: float, horizon: int) -> float:
    """:func:`calibrate_cusum` for a reference of ``size`` distinct values (the floor for tied references)."""
    return calibrate_cusum(np.arange(size, dtype=np.float64), slack, alpha, horizon)


@dataclass
class Cusum:
    """A two-sided CUSUM on the normal scores of one feature against its reference.

    ``high`` grows while values sit above the reference's middle, ``low`` while they sit below; each forgets
    ``slack`` per query. An alarm lasts while either exceeds ``threshold`` (set by :func:`calibrate_cusum`
    so that a stream like the reference raises one within ``horizon`` queries with probability ``alpha``).

    Args:
        reference: The feature's reference sample.
        slack: Allowance per query, in standard deviations (0.5 targets shifts of about one).
        alpha: False-alarm probability over ``horizon`` queries.
        horizon: Queries the false-alarm probability covers.
        threshold: A fixed threshold instead of the calibrated one.
    """

    reference: np.ndarray
    slack: float = 0.5
    alpha: float = 0.01
    horizon: int = 1000
    threshold: float | None = None
    high: float = 0.0
    low: float = 0.0
    alarm_since: int | None = None
    seen: int = field(default=0)

    def __post_init__(self) -> None:
        self.reference = np.sort(_finite(self.reference))
        if self.reference.size < 2:
            raise ValueError("a CUSUM needs at least two reference values")
        if self.threshold is None:
            self.threshold = calibrate_cusum(self.reference, self.slack, self.alpha, self.horizon)

    @property
    def statistic(self) -> float:
        """The larger of the two sides."""
        return max(self.high, self.low)

    @property
    def alarm(self) -> bool:
        """Whether the statistic is above the threshold now."""
        return self.statistic > float(self.threshold or math.inf)

    @property
    def direction(self) -> str:
        """``up`` or ``down``: the side that leads."""
        return "up" if self.high >= self.low else "down"

    def update(self, value: float) -> bool:
        """Add one value (NaN is ignored); whether the alarm is on."""
        if not math.isfinite(value):
            return self.alarm
        z = _STANDARD_NORMAL.inv_cdf(float(percentiles(self.reference, np.array([value]))[0]))
        self.high = max(0.0, self.high + z - self.slack)
        self.low = max(0.0, self.low - z - self.slack)
        self.seen += 1
        if self.alarm and self.alarm_since is None:
            self.alarm_since = self.seen
        elif not self.alarm:
            self.alarm_since = None
        return self.alarm


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
