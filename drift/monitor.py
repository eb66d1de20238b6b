"""The drift verdict: compares the current window of queries with the reference, feature by feature.

:class:`DriftEngine` holds a frozen reference, the window (the last ``window`` queries after it) and the stream
detectors; :meth:`DriftEngine.evaluate` returns a :class:`DriftStatus`. :class:`DriftMonitor` feeds an engine
from the query log: it collects the reference from the first answered queries when none is stored, persists it,
and replays recent log rows after a restart.

How a status is decided (per feature, then the worst feature wins):

- ``drift``: a sequential test is above its drift threshold. Each stream feature (top score, unknown-term
  share, keyword match, distance to the reference centroid) becomes a per-query score, its reference standard
  score signed so that leaving the corpus is positive (clipped to ±4); one-sided CUSUMs watch each feature and
  their combined score (the sum over its reference spread), each with the small slack ``cusum_slack`` (a mild,
  gradual shift) and the large ``cusum_fast_slack`` (a clear one). Each chart has its own two thresholds,
  calibrated together by a bootstrap on the reference (features resampled together, so the correction for
  watching several charts allows for their correlation) for a false-alarm probability ``sequential_alpha``
  (drift) and ``warning_alpha`` (warning) of the whole family over ten windows of in-domain traffic. These are
  the detectors built to be re-run after every query. With ``psi_confirms`` set, a feature whose KS test is
  significant and whose PSI is at least ``psi_drift`` also counts as drift (the textbook rule, which a sliding
  window tested after every query raises now and then by chance, see ``bench/drift.py``);
- ``warning``: a CUSUM above its warning threshold, or ADWIN cut the stream inside the window and the newer
  part moved away from the reference, or (when enabled) the MMD test on the embeddings is significant, or
  (with ``ks_warns``) the KS test after the multiple-testing correction;
- ``warming_up``: no reference yet, or fewer than ``min_window`` queries since it; never ``drift``.

KS p-values and PSI are reported for every feature, but raise no level by default: re-tested after every
query, a KS test at p < 0.01 fires by chance in about one in six in-domain streams of 200 queries, and PSI
between two 100-query samples of one distribution is about 0.1 by chance.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import deque
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from drift.detectors import (
    AdwinTracker,
    OneSidedCusum,
    ScoreScale,
    adjust_p_values,
    calibrate_joint_cusum,
    ks_test,
    mmd_test,
    percentiles,
    psi,
)
from drift.features import FeatureSpace, QueryObservation, describe_feature
from drift.log import QueryLog
from drift.reference import Reference, ReferenceStore
from mlsearch.configs import DriftConfig

logger = logging.getLogger(__name__)

STREAM_FEATURES: tuple[str, ...] = ("top_score", "unknown_share", "keyword_match", "centroid_distance")
"""Features watched query by query: one-sided CUSUMs on their reference standard scores (and on the combined
score), ADWIN on their reference percentiles (a value in (0, 1), the range ADWIN's bound assumes, that an
in-reference stream keeps near ½)."""
STREAM_DIRECTIONS: dict[str, int] = {"top_score": -1, "unknown_share": 1, "keyword_match": -1, "centroid_distance": 1}
"""The side each stream feature moves to when queries leave the corpus: the best passage scores lower, more
words are unknown to the index, no passage covers as much of the query's words, the query is further from the
reference's centroid."""
COMBINED = "combined"
"""The name of the CUSUM on the combined score of the stream features."""
LEVELS: tuple[str, ...] = ("ok", "warning", "drift")


@dataclass
class FeatureDrift:
    """How one feature compares between the reference and the window."""

    name: str
    description: str
    reference_mean: float | None
    window_mean: float | None
    ks_statistic: float | None = None
    ks_p: float | None = None
    ks_p_adjusted: float | None = None
    psi: float | None = None
    psi_bins: int | None = None
    adwin_change: bool = False
    adwin_cut_queries_ago: int | None = None
    cusum: float | None = None
    cusum_threshold: float | None = None
    cusum_warning_threshold: float | None = None
    cusum_alarm: bool = False
    cusum_warning: bool = False
    level: str = "ok"
    why: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (NaN becomes None)."""
        return {k: _clean(v) for k, v in asdict(self).items() if k not in ("name", "why")}


@dataclass
class DriftStatus:
    """The drift verdict at one moment (what ``GET /drift`` returns)."""

    status: str
    reference_size: int
    window_size: int
    features: dict[str, FeatureDrift] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    detectors: dict[str, bool] = field(default_factory=dict)
    multivariate: dict[str, Any] = field(default_factory=dict)
    sequential: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)
    queries_since_reference: int = 0
    log: dict[str, Any] = field(default_factory=dict)

    @property
    def drift(self) -> bool:
        """Whether the status is ``drift``."""
        return self.status == "drift"

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``GET /drift``."""
        return {
            "status": self.status,
            "drift": self.drift,
            "reference_size": self.reference_size,
            "window_size": self.window_size,
            "features": {name: f.to_dict() for name, f in self.features.items()},
            "reasons": list(self.reasons),
            "detectors": dict(self.detectors),
            "multivariate": {k: _clean(v) for k, v in self.multivariate.items()},
            "sequential": {k: _clean(v) for k, v in self.sequential.items()},
            "reference": {k: _clean(v) for k, v in self.reference.items()},
            "queries_since_reference": self.queries_since_reference,
            "log": dict(self.log),
        }


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, np.floating | np.integer | np.bool_):
        return value.item()
    return value


def _mean(values: np.ndarray) -> float | None:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else None


class DriftEngine:
    """Reference, window and detectors in memory; no I/O (the benchmark and ``drift simulate`` use it directly).

    Args:
        reference: The frozen reference (at least two queries).
        config: Sizes and thresholds.
    """

    def __init__(self, reference: Reference, config: DriftConfig) -> None:
        if reference.size < 2:
            raise ValueError("a drift reference needs at least two queries")
        self.reference = reference
        self.config = config
        self.space = FeatureSpace(np.stack([o.embedding for o in reference.observations]), config.components)
        self.names = self.space.names
        self.reference_columns = self.space.reference_columns(reference.observations)
        self._reference_embeddings = np.stack([o.embedding for o in reference.observations]).astype(np.float64)
        self._rows: deque[dict[str, float]] = deque(maxlen=config.window)
        self._embeddings: deque[np.ndarray] = deque(maxlen=config.window)
        self.seen = 0
        self.skipped = 0
        horizon = 10 * config.window
        self.trace: deque[tuple[int, dict[str, float]]] = deque(maxlen=max(horizon, 2000))
        self.stream_features = [name for name in STREAM_FEATURES
                                if np.isfinite(self.reference_columns[name]).sum() >= 2]
        self._sorted: dict[str, np.ndarray] = {}
        self.adwins: dict[str, AdwinTracker] = {}
        for name in self.stream_features:
            column = self.reference_columns[name]
            self._sorted[name] = np.sort(column[np.isfinite(column)])
            tracker = AdwinTracker(delta=config.adwin_delta)
            for position, value in enumerate(percentiles(self._sorted[name], column), start=1):
                tracker.update(float(value) if np.isfinite(column[position - 1]) else math.nan, position)
            self.adwins[name] = tracker
        self.cusums: dict[str, OneSidedCusum] = {}
        """Every CUSUM chart by name: a stream feature's or ``combined`` for the first slack, ``<name>@<slack>``
        for the large one."""
        self.charts_of: dict[str, list[str]] = {}
        self.scale: ScoreScale | None = None
        if self.stream_features:
            matrix = np.column_stack([self.reference_columns[name] for name in self.stream_features])
            directions = [STREAM_DIRECTIONS[name] for name in self.stream_features]
            self.scale = ScoreScale.fit(matrix, directions)
            slacks = self.slacks
            warning, drift = calibrate_joint_cusum(
                matrix, directions, slacks, (max(config.warning_alpha, config.sequential_alpha),
                                             config.sequential_alpha), horizon)
            chart = 0
            for slack in slacks:
                for name in [*self.stream_features, COMBINED]:
                    label = name if slack == slacks[0] else f"{name}@{slack:g}"
                    self.cusums[label] = OneSidedCusum(slack, threshold=float(drift[chart]),
                                                       warning_threshold=float(warning[chart]))
                    self.charts_of.setdefault(name, []).append(label)
                    chart += 1
        for position in range(reference.size):
            self.trace.append(
                (position + 1, {name: float(self.reference_columns[name][position]) for name in STREAM_FEATURES})
            )

    @property
    def slacks(self) -> tuple[float, ...]:
        """The CUSUMs' slacks: the small one, and the large one unless it is off (0) or not larger."""
        small, large = self.config.cusum_slack, self.config.cusum_fast_slack
        return (small, large) if large > small else (small,)

    def leading(self, name: str) -> OneSidedCusum | None:
        """Of a stream feature's (or ``combined``'s) charts, the one nearest to or furthest over its thresholds."""
        charts = [self.cusums[label] for label in self.charts_of.get(name, [])]
        return max(charts, key=lambda c: (c.alarm, c.warning, c.statistic / c.threshold if c.threshold > 0 else 0.0),
                   default=None)

    @property
    def position(self) -> int:
        """Stream position of the last query (reference queries are 1..n, live ones follow)."""
        return self.reference.size + self.seen

    @property
    def window_size(self) -> int:
        """Queries in the window."""
        return len(self._rows)

    def window_columns(self) -> dict[str, np.ndarray]:
        """The window's feature columns."""
        return {name: np.array([row[name] for row in self._rows], dtype=np.float64) for name in self.names}

    def observe(self, observations: list[QueryObservation]) -> None:
        """Add answered queries (in order) to the window and the stream detectors."""
        usable = [o for o in observations if o.embedding.shape[0] == self.space.dimension]
        self.skipped += len(observations) - len(usable)
        if not usable:
            return
        columns = self.space.transform(usable)
        for i, observation in enumerate(usable):
            row = {name: float(columns[name][i]) for name in self.names}
            self._rows.append(row)
            self._embeddings.append(np.asarray(observation.embedding, dtype=np.float64))
            self.seen += 1
            if self.scale is not None:
                scores = self.scale.scores(np.array([[row[name] for name in self.stream_features]]))[0]
                for name, score in zip([*self.stream_features, COMBINED], scores, strict=True):
                    for label in self.charts_of[name]:
                        self.cusums[label].update(float(score))
            for name, tracker in self.adwins.items():
                value = row[name]
                share = float(percentiles(self._sorted[name], np.array([value]))[0])
                tracker.update(share if math.isfinite(value) else math.nan, self.position)
            point = {name: row[name] for name in STREAM_FEATURES}
            point.update({f"cusum:{name}": cusum.statistic for name, cusum in self.cusums.items()})
            self.trace.append((self.position, point))

    # -- the verdict ---------------------------------------------------------------------------------
    def evaluate(self, with_mmd: bool | None = None) -> DriftStatus:
        """The current verdict.

        Args:
            with_mmd: Run the MMD test on the embeddings (the config's choice by default).
        """
        config = self.config
        window = self.window_columns()
        features = {name: self._feature(name, window[name]) for name in self.names}
        tested = [f for f in features.values() if f.ks_p is not None]
        raw = [float(f.ks_p or 0.0) for f in tested]
        for feature, adjusted in zip(tested, adjust_p_values(raw, config.ks_correction), strict=True):
            feature.ks_p_adjusted = float(adjusted)
        for feature in features.values():
            self._grade(feature)
        status = DriftStatus(
            status="ok", reference_size=self.reference.size, window_size=self.window_size, features=features,
            reference=self.reference.meta(), queries_since_reference=self.seen,
        )
        status.detectors = {
            "ks": any(f.ks_p_adjusted is not None and f.ks_p_adjusted < config.ks_alpha for f in tested),
            "psi": any(f.psi is not None and f.psi >= config.psi_drift for f in features.values()),
            "adwin": any(f.adwin_change for f in features.values()),
            "cusum": any(c.alarm for c in self.cusums.values()),
            "cusum_warning": any(c.warning for c in self.cusums.values()),
            "ks+psi": any(f.ks_p_adjusted is not None and f.ks_p_adjusted < config.ks_alpha
                          and (f.psi or 0.0) >= config.psi_drift for f in tested),
        }
        mmd_alarm = False
        if (config.mmd if with_mmd is None else with_mmd) and self.window_size >= 2:
            result = mmd_test(self._reference_embeddings, np.stack(self._embeddings), config.mmd_permutations)
            if result is not None:
                mmd_alarm = result.p_value < config.ks_alpha
                status.multivariate = {"test": "mmd", "mmd2": result.mmd2, "p": result.p_value,
                                       "permutations": config.mmd_permutations, "alarm": mmd_alarm}
                status.detectors["mmd"] = mmd_alarm
        levels = [LEVELS.index(f.level) for f in features.values()]
        if mmd_alarm:
            levels.append(LEVELS.index("warning"))
        status.reasons = [reason for f in features.values() if f.level != "ok" for reason in f.why]
        combined = self.leading(COMBINED)
        if combined is not None:
            status.sequential = {
                "features": list(self.stream_features), "combined": combined.statistic,
                "warning_threshold": combined.warning_threshold, "drift_threshold": combined.threshold,
                "slack": combined.slack, "slacks": list(self.slacks),
                "warning_alpha": max(config.warning_alpha, config.sequential_alpha),
                "drift_alpha": config.sequential_alpha, "horizon": 10 * config.window,
                "charts": {label: {"statistic": c.statistic, "slack": c.slack, "warning_threshold": c.warning_threshold,
                                   "drift_threshold": c.threshold} for label, c in self.cusums.items()},
            }
            if combined.warning:
                level = "drift" if combined.alarm else "warning"
                levels.append(LEVELS.index(level))
                status.reasons.append(
                    f"combined score of {', '.join(self.stream_features)}: sequential test (CUSUM) above its "
                    f"{level} threshold ({combined.statistic:.1f} > "
                    f"{combined.threshold if combined.alarm else combined.warning_threshold:.1f})"
                )
        status.status = LEVELS[max(levels, default=0)]
        if mmd_alarm:
            status.reasons.append(
                f"embeddings: MMD permutation test p={status.multivariate['p']:.3g} < {config.ks_alpha}"
            )
        if self.window_size < config.min_window:
            status.status = "warming_up"
            status.reasons = [f"window: {self.window_size} of at least {config.min_window} queries "
                              f"since the reference", *status.reasons]
        if self.skipped:
            status.reasons.append(
                f"{self.skipped} queries were embedded with another model than the reference "
                f"(dimension ≠ {self.space.dimension}); reset the reference"
            )
        return status

    def _feature(self, name: str, values: np.ndarray) -> FeatureDrift:
        reference = self.reference_columns[name]
        feature = FeatureDrift(name=name, description=describe_feature(name), reference_mean=_mean(reference),
                               window_mean=_mean(values))
        ks = ks_test(reference, values)
        if ks is not None:
            feature.ks_statistic, feature.ks_p = ks.statistic, ks.p_value
        stability = psi(reference, values, bins=self.config.psi_bins)
        if stability is not None:
            feature.psi, feature.psi_bins = stability.value, len(stability.reference_share)
        cusum = self.leading(name)
        if cusum is not None:
            feature.cusum, feature.cusum_threshold, feature.cusum_alarm = cusum.statistic, cusum.threshold, cusum.alarm
            feature.cusum_warning_threshold, feature.cusum_warning = cusum.warning_threshold, cusum.warning
        if name in self.adwins:
            self._adwin(feature, self.adwins[name])
        return feature

    def _adwin(self, feature: FeatureDrift, tracker: AdwinTracker) -> None:
        """The latest cut counts when it falls inside the window and the newer part moved away from the
        reference (ADWIN watches reference percentiles, whose in-reference mean is ½)."""
        if not tracker.cuts or self.window_size == 0:
            return
        cut = tracker.cuts[-1]
        first_in_window = self.position - self.window_size + 1
        if cut.position < first_in_window:
            return
        before = cut.mean_before if math.isfinite(cut.mean_before) else 0.5
        if abs(cut.mean_after - 0.5) > abs(before - 0.5):
            feature.adwin_change = True
            feature.adwin_cut_queries_ago = self.position - cut.position + 1

    def _grade(self, feature: FeatureDrift) -> None:
        config = self.config
        moved = f"window mean {_fmt(feature.window_mean)} vs reference {_fmt(feature.reference_mean)}"
        significant = feature.ks_p_adjusted is not None and feature.ks_p_adjusted < config.ks_alpha
        psi_value = feature.psi or 0.0
        ks = (f"KS p={feature.ks_p_adjusted:.2g} ({config.ks_correction}-adjusted), PSI {psi_value:.2f}"
              if significant else "")
        if feature.cusum_alarm:
            feature.why.append(
                f"{feature.name}: sequential test (CUSUM) above its threshold "
                f"({feature.cusum:.1f} > {feature.cusum_threshold:.1f}); {moved}" + (f"; {ks}" if ks else "")
            )
        elif significant and config.psi_confirms and psi_value >= config.psi_drift:
            feature.why.append(f"{feature.name}: {ks} ≥ {config.psi_drift}; {moved}")
        if feature.why:
            feature.level = "drift"
            return
        if feature.cusum_warning:
            feature.why.append(
                f"{feature.name}: sequential test (CUSUM) above its warning threshold "
                f"({feature.cusum:.1f} > {feature.cusum_warning_threshold:.1f}); {moved}"
            )
        if significant and config.ks_warns:
            feature.why.append(f"{feature.name}: {ks}; {moved}")
        if feature.adwin_change:
            feature.why.append(
                f"{feature.name}: ADWIN cut the stream {feature.adwin_cut_queries_ago} queries ago; {moved}"
            )
        if feature.why:
            feature.level = "warning"


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3g}"


class DriftMonitor:
    """Feeds a :class:`DriftEngine` from the query log and persists the reference (thread-safe).

    Without a stored reference it collects the first ``reference_size`` logged queries (after the last reset)
    and freezes them. After a restart it reloads the reference and replays the most recent log rows.

    Args:
        log: The query log.
        store: Where the reference lives.
        config: Sizes and thresholds.
        collect: Collect the reference from answered queries; when False (a reference file is configured)
            queries wait in memory until :meth:`reset` brings the reference.
    """

    def __init__(self, log: QueryLog, store: ReferenceStore, config: DriftConfig, collect: bool = True) -> None:
        self.log = log
        self.store = store
        self.config = config
        self.collect = collect
        self.waiting_reason = "waiting for the reference file to be measured"
        self._lock = threading.RLock()
        self._pending_lock = threading.Lock()
        self._pending: list[QueryObservation] = []
        self._engine: DriftEngine | None = None
        self._collected: list[QueryObservation] = []
        self._last_id = 0
        reference = store.load()
        if reference is not None and reference.size >= 2 and (collect or reference.source.startswith("file:")):
            self._engine = DriftEngine(reference, config)
            self._last_id = reference.last_id
            self._consume(log.tail(config.replay, after_id=reference.last_id))
        else:
            self._last_id = store.collecting_after()
            self._consume(log.rows(after_id=self._last_id, limit=config.reference_size + config.replay))

    @property
    def lock(self) -> AbstractContextManager[Any]:
        """Hold it to read the engine while the writer thread may be feeding it."""
        return self._lock

    @property
    def engine(self) -> DriftEngine | None:
        """The engine, up to date with every ingested query (None while the reference is being collected)."""
        self.catch_up()
        return self._engine

    @property
    def reference(self) -> Reference | None:
        """The frozen reference, if any (collection included every ingested query)."""
        self.catch_up()
        return self._engine.reference if self._engine else None

    def ingest(self, observations: list[QueryObservation]) -> None:
        """Accept logged queries (called by the log writer after each batch); they are fed to the detectors at
        the next :meth:`status`, or once ``window`` of them wait, so that the writer thread stays light."""
        with self._pending_lock:
            self._pending.extend(observations)
            if len(self._pending) < self.config.window:
                return
        self.catch_up()

    def catch_up(self) -> None:
        """Feed the waiting queries to the reference collection and the detectors, in order."""
        with self._lock:
            with self._pending_lock:
                pending, self._pending = self._pending, []
            self._consume(pending)

    def _consume(self, observations: list[QueryObservation]) -> None:
        with self._lock:
            fresh = [o for o in observations if o.id is None or o.id > self._last_id]
            if not fresh:
                return
            self._last_id = max([self._last_id, *(o.id for o in fresh if o.id is not None)])
            if self._engine is None:
                self._collected.extend(fresh)
                if not self.collect:
                    del self._collected[: -self.config.replay]
                    return
                if len(self._collected) < self.config.reference_size:
                    return
                chosen = self._collected[: self.config.reference_size]
                fresh = self._collected[self.config.reference_size:]
                self._collected = []
                reference = Reference(chosen, source="queries", last_id=chosen[-1].id or 0)
                try:
                    self.store.save(reference)
                except Exception as exc:  # monitoring goes on in memory; the failure is logged
                    logger.error("cannot save the drift reference: %s", exc)
                self._engine = DriftEngine(reference, self.config)
            self._engine.observe(fresh)

    def status(self) -> DriftStatus:
        """The current verdict (warming up while the reference is being collected)."""
        self.catch_up()
        with self._lock:
            if self._engine is None and not self.collect:
                status = DriftStatus(status="warming_up", reference_size=0, window_size=0,
                                     reasons=[f"reference: {self.waiting_reason}"])
            elif self._engine is None:
                status = DriftStatus(
                    status="warming_up", reference_size=len(self._collected), window_size=0,
                    reasons=[f"reference: {len(self._collected)} of {self.config.reference_size} queries "
                             f"collected"],
                )
            else:
                status = self._engine.evaluate()
        if self.log.moved_aside is not None:
            status.reasons.append(f"the query log was unreadable and was moved aside to {self.log.moved_aside}")
        return status

    def reset(self, reference: Reference | None = None, keep_waiting: bool = False) -> None:
        """Start a new reference: ``reference`` (from a file), or the next ``reference_size`` answered queries.

        Args:
            reference: A reference measured from a file; the window starts after the last logged query.
            keep_waiting: Set a file reference that was awaited since start-up: the queries logged while
                waiting go into its window instead of being dropped.
        """
        self.catch_up()
        with self._lock:
            keep = keep_waiting and self._engine is None and reference is not None
            waiting = self._collected if keep else []
            if keep:  # rows logged but not ingested yet still arrive through ingest()
                start = (waiting[0].id or 1) - 1 if waiting else self._last_id
            else:  # the new reference (or its collection) starts after everything answered so far
                start = max(self._last_id, self.log.max_id())
                self._last_id = start
            self.store.reset(after_id=start)
            self._collected = []
            self._engine = None
            if reference is not None:
                reference.last_id = start
                self.store.save(reference)
                self._engine = DriftEngine(reference, self.config)
                self._engine.observe(waiting)
