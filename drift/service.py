"""Drift monitoring of one running service: its query log, the log writer thread and the monitor together.

The API creates one :class:`DriftService` in its lifespan, records each answered query with :meth:`record`
(a queue put: the measuring and writing happen on the writer thread), and answers ``GET /drift`` with
:meth:`status`, which first waits for every query recorded before the call to be written.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from drift.features import SearcherLike
from drift.log import Borrow, LogWriter, QueryLog, drift_dir
from drift.monitor import DriftMonitor, DriftStatus
from drift.reference import ReferenceStore, file_digest, read_queries, reference_from_queries
from drift.report import ReportData, render_html, report_data
from mlsearch.configs import DriftServiceConfig

logger = logging.getLogger(__name__)

SearcherProvider = Callable[[], SearcherLike | None]


class DriftService:
    """The query log, its writer and the drift monitor of a service.

    Args:
        config: The state directory, the query log's limits, the reference file and the monitor's config.
        searcher: Returns the searcher serving now (or None before the index is loaded); used to measure a
            reference file.
        borrow: Lends the searcher serving now, held open, to measure logged queries with (see
            :class:`~drift.log.LogWriter`); without it each query is measured with the searcher that answered it.
        quiet_for: Seconds since the service last searched; the log measures queries in the pauses (see
            :class:`~drift.log.LogWriter`).

    Raises:
        DriftError: The state directory cannot be written, or the reference file is missing or empty.
    """

    def __init__(self, config: DriftServiceConfig, searcher: SearcherProvider | None = None,
                 borrow: Borrow | None = None, quiet_for: Callable[[], float] | None = None) -> None:
        self.config = config.monitor
        self.reference_file = config.reference_file
        if self.reference_file is not None:
            read_queries(self.reference_file)  # fail fast on a missing or empty file
        self._searcher = searcher or (lambda: None)
        directory = drift_dir(config.state_dir)
        self.log = QueryLog(directory / QueryLog.FILE, config.log_max_rows, config.store_text,
                            retention_days=config.log_retention_days)
        self.store = ReferenceStore(directory)
        self.monitor = DriftMonitor(self.log, self.store, self.config, collect=self.reference_file is None)
        self.writer = LogWriter(self.log, on_written=self.monitor.ingest, borrow=borrow, quiet_for=quiet_for)
        self._reference_lock = threading.Lock()
        self._references = 0  # references set by this service: a new one changes every figure of the report
        self._page: tuple[tuple[int, int, int], str] | None = None
        self._page_lock = threading.Lock()

    def start(self) -> DriftService:
        """Start the writer thread."""
        self.writer.start()
        return self

    def stop(self) -> None:
        """Write what is queued, stop the writer and close the log."""
        self.writer.stop()
        self.log.close()

    def record(self, searcher: SearcherLike, query: str, method: str, result_count: int) -> bool:
        """Queue one answered query (never blocks; False when the queue was full and it was dropped)."""
        return self.writer.submit_query(searcher, query, method, result_count)

    def ensure_reference(self, searcher: SearcherLike | None = None) -> bool:
        """Measure the reference file with the searcher unless the stored reference already came from it.

        Returns:
            Whether a reference is in place.
        """
        if self.reference_file is None:
            return self.monitor.reference is not None
        searcher = searcher or self._searcher()
        with self._reference_lock:
            digest = file_digest(self.reference_file)
            current = self.monitor.reference
            model = getattr(getattr(searcher, "encoder", None), "name", None)
            if current is not None and current.digest == digest and (model is None or current.model == model):
                return True
            if searcher is None:
                return False
            self._measure_file(searcher, digest, keep_waiting=current is None)
            return True

    def _measure_file(self, searcher: SearcherLike, digest: str, keep_waiting: bool) -> None:
        assert self.reference_file is not None
        path = Path(self.reference_file)
        queries = read_queries(path)
        logger.info("measuring the drift reference: %d queries from %s", len(queries), path)
        reference = reference_from_queries(searcher, queries, source=f"file:{path}", digest=digest)
        self.monitor.reset(reference, keep_waiting=keep_waiting)
        self._references += 1

    def reset(self, searcher: SearcherLike | None = None) -> DriftStatus:
        """Start a new reference: the reference file measured again, or the next answered queries.

        Returns:
            The status right after the reset.
        """
        self.writer.flush()
        searcher = searcher or self._searcher()
        if self.reference_file is not None and searcher is not None:
            with self._reference_lock:
                self._measure_file(searcher, file_digest(self.reference_file), keep_waiting=False)
        else:
            self.monitor.reset()
            self._references += 1
        return self.status()

    def status(self, timeout: float = 10.0) -> DriftStatus:
        """The verdict over every query recorded before the call."""
        if not self.writer.flush(timeout):
            logger.warning("drift log writer did not catch up within %.0fs", timeout)
        if self.reference_file is not None and self.monitor.reference is None:
            self.ensure_reference()
        status = self.monitor.status()
        status.log = self.log_info()
        return status

    def log_info(self) -> dict[str, Any]:
        """Rows held, queries written, dropped and failed, the text mode and the last write error."""
        try:
            rows = self.log.count()
        except Exception:  # the status must come back even when the log cannot be read
            rows = None
        return {
            "path": str(self.log.path), "rows": rows, "max_rows": self.log.max_rows,
            "retention_days": self.log.retention_s / 86_400 if self.log.retention_s else None,
            "text_mode": self.log.text_mode, "written": self.writer.written, "dropped": self.writer.dropped,
            "failed": self.writer.failed, "last_error": self.writer.last_error,
            "moved_aside": str(self.log.moved_aside) if self.log.moved_aside else None,
        }

    def report(self) -> ReportData:
        """Everything the HTML report shows."""
        status = self.status()
        with self.monitor.lock:
            return report_data(self.monitor.engine, status, self.config)

    def report_page(self) -> str:
        """The HTML report, drawn again only when a query was logged or the reference changed since the last.

        Drawing its plots takes seconds on a busy machine; the same figures are not drawn twice.
        """
        status = self.status()  # waits for the queries recorded before the call
        key = (self.writer.written, self.writer.failed, self._references)  # read before the data: never newer
        with self._page_lock:
            if self._page is None or self._page[0] != key:
                with self.monitor.lock:
                    data = report_data(self.monitor.engine, status, self.config)
                self._page = (key, render_html(data))
            return self._page[1]
