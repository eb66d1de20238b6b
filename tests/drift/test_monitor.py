"""The drift verdict: warm-up rule, quiet on one distribution, drift with reasons on a shift, persistence."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from drift.features import QueryObservation
from drift.log import QueryLog
from drift.monitor import DriftEngine, DriftMonitor
from drift.reference import Reference, ReferenceStore
from indexing.backends.configs import drift_config
from mlsearch.configs import DriftConfig

Make = Callable[..., list[QueryObservation]]


def test_one_distribution_stays_ok(make_observations: Make, small_config: DriftConfig) -> None:
    engine = DriftEngine(Reference(make_observations(40, seed=1)), small_config)
    statuses = []
    for observation in make_observations(80, seed=2):
        engine.observe([observation])
        statuses.append(engine.evaluate().status)
    assert "drift" not in statuses
    assert statuses[-1] == "ok"
    status = engine.evaluate()
    assert status.window_size == 40 and status.queries_since_reference == 80
    assert set(status.features) == {"top_score", "token_count", "unknown_share", "keyword_match", "centroid_distance",
                                    "pc1", "pc2"}
    top = status.features["top_score"]
    assert top.ks_p is not None and top.psi is not None and top.cusum_threshold and not top.cusum_alarm


def test_a_shift_is_drift_and_the_reasons_name_the_features(make_observations: Make,
                                                            small_config: DriftConfig) -> None:
    engine = DriftEngine(Reference(make_observations(40, seed=1)), small_config)
    engine.observe(make_observations(20, seed=2))
    assert engine.evaluate().status == "ok"
    first_drift = None
    for index, observation in enumerate(make_observations(40, seed=3, shift=0.8), start=1):
        engine.observe([observation])
        if engine.evaluate().status == "drift":
            first_drift = index
            break
    assert first_drift is not None and first_drift <= 15
    engine.observe(make_observations(20, seed=4, shift=0.8))
    status = engine.evaluate()
    assert status.drift and status.detectors["cusum"] and status.detectors["ks"]
    named = " ".join(status.reasons)
    assert "top_score" in named and "centroid_distance" in named
    body = status.to_dict()
    assert body["drift"] is True and body["features"]["top_score"]["window_mean"] < 0.5
    assert set(body["features"]["top_score"]) >= {"ks_p", "psi", "adwin_change", "reference_mean", "window_mean"}


def test_a_gradual_shift_warns_before_it_is_drift_and_the_combined_score_is_reported(
    make_observations: Make, small_config: DriftConfig
) -> None:
    engine = DriftEngine(Reference(make_observations(40, seed=1)), small_config)
    engine.observe(make_observations(20, seed=2))
    first: dict[str, int] = {}
    for index in range(1, 61):  # the shift grows to 0.8 over 30 queries
        engine.observe(make_observations(1, seed=100 + index, shift=0.8 * min(1.0, index / 30)))
        status = engine.evaluate().status
        if status in ("warning", "drift"):
            first.setdefault("warning", index)
        if status == "drift":
            first.setdefault("drift", index)
            break
    assert "drift" in first and first["warning"] <= first["drift"] <= 30
    body = engine.evaluate().to_dict()
    sequential = body["sequential"]
    assert sequential["features"] == ["top_score", "unknown_share", "keyword_match", "centroid_distance"]
    assert 0 < sequential["warning_threshold"] < sequential["drift_threshold"]
    charts = sequential["charts"]  # each feature and the combined score, with the small and the large slack
    names = [*sequential["features"], "combined"]
    assert set(charts) == {f"{name}{suffix}" for name in names for suffix in ("", "@1.5")}
    assert sequential["slacks"] == [0.5, 1.5]
    top = body["features"]["top_score"]
    assert top["cusum_warning_threshold"] in (charts["top_score"]["warning_threshold"],
                                              charts["top_score@1.5"]["warning_threshold"])
    assert body["detectors"]["cusum_warning"]


def test_warm_up_never_reports_drift(make_observations: Make) -> None:
    config = DriftConfig(reference_size=40, window=40, min_window=30)
    engine = DriftEngine(Reference(make_observations(40, seed=1)), config)
    for observation in make_observations(29, seed=3, shift=1.0):
        engine.observe([observation])
        status = engine.evaluate()
        assert status.status == "warming_up"
        assert status.reasons[0].startswith("window:")
    assert status.detectors["cusum"]  # the detectors see the shift; the status waits for the window
    engine.observe(make_observations(1, seed=4, shift=1.0))
    assert engine.evaluate().status == "drift"


def test_psi_confirms_switches_on_the_textbook_rule(make_observations: Make) -> None:
    config = DriftConfig(reference_size=40, window=40, min_window=10, psi_confirms=True, sequential_alpha=1e-9,
                         cusum_fast_slack=0)
    engine = DriftEngine(Reference(make_observations(40, seed=1)), config)
    engine.observe(make_observations(40, seed=3, shift=0.8))
    status = engine.evaluate()
    assert status.drift and any("KS p=" in reason and "≥ 0.25" in reason for reason in status.reasons)


def test_queries_embedded_by_another_model_are_skipped_and_reported(make_observations: Make,
                                                                    small_config: DriftConfig) -> None:
    engine = DriftEngine(Reference(make_observations(40)), small_config)
    other = make_observations(1)[0]
    other.embedding = np.ones(8, dtype=np.float32)
    engine.observe([other])
    assert engine.window_size == 0 and "another model" in engine.evaluate().reasons[-1]


def _monitor(tmp_path: Path, config: DriftConfig) -> tuple[QueryLog, DriftMonitor]:
    log = QueryLog(tmp_path / "drift" / "queries.sqlite")
    return log, DriftMonitor(log, ReferenceStore(tmp_path / "drift"), config)


def test_reference_is_collected_from_the_first_queries_then_survives_a_restart(
    tmp_path: Path, make_observations: Make, small_config: DriftConfig
) -> None:
    log, monitor = _monitor(tmp_path, small_config)
    first = make_observations(25, seed=1)
    log.append(first)
    monitor.ingest(first)
    status = monitor.status()
    assert status.status == "warming_up" and "25 of 40" in status.reasons[0]
    more = make_observations(35, seed=2)
    log.append(more)
    monitor.ingest(more)
    assert monitor.reference is not None and monitor.reference.last_id == 40
    assert monitor.status().window_size == 20
    reference_scores = [o.top_score for o in monitor.reference.observations]
    log.close()

    log, restarted = _monitor(tmp_path, small_config)
    assert restarted.reference is not None
    assert [o.top_score for o in restarted.reference.observations] == pytest.approx(reference_scores)
    status = restarted.status()
    assert status.window_size == 20 and status.status == "ok"  # the window was replayed from the log


def test_reset_starts_a_new_reference_from_the_next_queries(
    tmp_path: Path, make_observations: Make, small_config: DriftConfig
) -> None:
    log, monitor = _monitor(tmp_path, small_config)
    rows = make_observations(50, seed=1)
    log.append(rows)
    monitor.ingest(rows)
    assert monitor.reference is not None
    monitor.reset()
    assert monitor.reference is None and monitor.status().status == "warming_up"
    newer = make_observations(40, seed=5, shift=0.5)
    log.append(newer)
    monitor.ingest(newer)
    assert monitor.reference is not None and monitor.reference.observations[0].id == 51
    log.close()
    log, restarted = _monitor(tmp_path, small_config)  # a restart after a reset keeps the new reference
    assert restarted.reference is not None and restarted.reference.last_id == 90


def test_rows_already_seen_are_not_counted_twice(tmp_path: Path, make_observations: Make,
                                                 small_config: DriftConfig) -> None:
    log, monitor = _monitor(tmp_path, small_config)
    rows = make_observations(50)
    log.append(rows)
    monitor.ingest(rows)
    monitor.ingest(rows)
    assert monitor.status().window_size == 10


def test_config_from_settings(drift_settings) -> None:  # type: ignore[no-untyped-def]
    config = drift_config(drift_settings.model_copy(update={"drift_ks_correction": "bh"}))
    assert (config.reference_size, config.window, config.min_window) == (10, 10, 5)
    assert config.ks_correction == "bh" and config.psi_drift == 0.25 and not config.mmd
