"""Drift monitoring inside the service: started and stopped by the lifespan, fed by the ``on_answer`` hook.

Every answered ``POST /search`` and ``POST /compare`` is queued for the drift log (the measuring and the SQLite
writes happen on the log writer's thread). When the state directory cannot be written, the service logs
why and keeps answering searches; ``GET /drift`` then says why drift monitoring is off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from api.state import AnswerEvent, ServiceState
from drift.service import DriftService
from indexing.backends.configs import drift_service_config
from mlsearch.catalog import DEFAULT_METHOD
from mlsearch.errors import MlsearchError

logger = logging.getLogger(__name__)

STATUS_LEVELS = {"warming_up": -1, "ok": 0, "warning": 1, "drift": 2}


def start_drift(app: FastAPI) -> asyncio.Task[None] | None:
    """Open the drift log and start its writer; returns the task that measures a reference file, if any."""
    state: ServiceState = app.state.service
    settings = state.settings
    state.drift = None
    if not settings.drift_log:
        state.drift_off_reason = "drift monitoring is off (MLSEARCH_DRIFT_LOG=false)"
        return None
    try:
        service = DriftService(drift_service_config(settings), searcher=lambda: state.searcher,
                               borrow=state.borrowed, quiet_for=state.runner.quiet_for).start()
    except MlsearchError as exc:
        state.drift_off_reason = f"drift monitoring is off: {exc}"
        logger.error("%s; the service keeps answering searches", state.drift_off_reason)
        return None
    state.drift = service
    state.on_answer.append(lambda event: record_answer(service, event))
    app.state.metrics.registry.register(DriftCollector(service))
    if service.reference_file is None:
        return None
    return asyncio.create_task(_measure_reference(state, service), name="mlsearch-drift-reference")


async def _measure_reference(state: ServiceState, service: DriftService) -> None:
    """Wait for the index, then measure the reference file with it (off the event loop)."""
    while state.searcher is None:
        await asyncio.sleep(0.1)
    searcher = state.acquire()  # held: a reload meanwhile must not close it under the measurement
    try:
        await anyio.to_thread.run_sync(service.ensure_reference, searcher)
    except MlsearchError as exc:
        logger.error("cannot measure the drift reference: %s", exc)
    finally:
        state.release(searcher)


def stop_drift(app: FastAPI) -> None:
    """Write what is queued and stop the writer."""
    state: ServiceState = app.state.service
    if state.drift is not None:
        state.drift.stop()
        state.drift = None


def record_answer(service: DriftService, event: AnswerEvent) -> None:
    """The ``on_answer`` hook: queue the answered query (a search, or a comparison of several methods).

    The log measures it later, on its writer's thread, with the searcher serving then (borrowed from the
    state, held while a batch is measured): a queued query keeps no replaced version open.
    """
    result: Any = event.result
    if event.endpoint == "compare":
        runs = list(getattr(result, "runs", {}).values())
        count = len(runs[0].hits) if runs else 0
        method = "compare:" + ",".join(event.methods)
    else:
        count = len(getattr(result, "hits", []))
        method = event.methods[0] if event.methods else DEFAULT_METHOD
    service.record(event.searcher, event.query, method, count)


class DriftCollector(Collector):
    """Prometheus gauges computed from the drift status at scrape time."""

    def __init__(self, service: DriftService) -> None:
        self.service = service

    def describe(self) -> list[Any]:
        """No description up front (the collector is only asked at scrape time)."""
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """The status, and each feature's PSI and KS p-value."""
        try:
            status = self.service.status(timeout=2.0)
        except Exception as exc:  # a scrape must never fail because of drift monitoring
            logger.warning("drift status for /metrics failed: %s", exc)
            return
        level = GaugeMetricFamily(
            "mlsearch_drift_status", "Drift status: -1 warming_up, 0 ok, 1 warning, 2 drift.")
        level.add_metric([], STATUS_LEVELS.get(status.status, -1))
        yield level
        state = GaugeMetricFamily("mlsearch_drift_state", "1 for the current drift status.", labels=["status"])
        for name in STATUS_LEVELS:
            state.add_metric([name], 1.0 if status.status == name else 0.0)
        yield state
        psi = GaugeMetricFamily("mlsearch_drift_psi", "Population stability index per feature.",
                                labels=["feature"])
        ks = GaugeMetricFamily("mlsearch_drift_ks_p", "KS p-value per feature (multiple-testing adjusted).",
                               labels=["feature"])
        for name, feature in status.features.items():
            if feature.psi is not None:
                psi.add_metric([name], feature.psi)
            if feature.ks_p_adjusted is not None:
                ks.add_metric([name], feature.ks_p_adjusted)
        yield psi
        yield ks
        sizes = GaugeMetricFamily("mlsearch_drift_queries", "Queries in the drift reference and window.",
                                  labels=["sample"])
        sizes.add_metric(["reference"], status.reference_size)
        sizes.add_metric(["window"], status.window_size)
        yield sizes
