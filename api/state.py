"""The service's state: the current Searcher, swapped atomically when the index changes.

A reload builds the new :class:`~search.searcher.Searcher` completely (manifest read, model checked, every
backend loaded, the model warmed up) before one assignment makes it current. A request takes the searcher
once when it starts and keeps it to the end, so in-flight requests finish on the old version (which stays on
disk: builds keep ``keep_versions`` versions) while new ones use the new version.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any, Protocol

import anyio.to_thread

from api.errors import NotReadyError
from api.limits import SearchRunner
from api.verify import verify_searcher
from drift.service import DriftService
from indexing.backends.configs import search_config
from indexing.layout import VersionLease
from mlsearch.errors import DriftError, IndexCorruptError, MlsearchError
from mlsearch.settings import Settings
from search.batching import QueryBatcher
from search.searcher import EncoderLoader, Searcher

logger = logging.getLogger(__name__)

SearcherFactory = Callable[[Settings, "Searcher | None"], Searcher]


@dataclass(frozen=True)
class AnswerEvent:
    """What a search or compare request answered; passed to the ``on_answer`` hooks before the response goes out.

    Attributes:
        endpoint: ``"search"`` or ``"compare"``.
        query: The query text.
        k: Results asked for.
        methods: The method (or methods, for compare) that ran.
        backend: The vector backend asked for.
        tags: The tag filter, if any.
        result: The :class:`~search.searcher.SearchResult` or :class:`~search.compare.Comparison`.
        searcher: The searcher that answered (its ``embed_query`` is cached, so hooks may reuse it).
    """

    endpoint: str
    query: str
    k: int
    methods: tuple[str, ...]
    backend: str
    tags: tuple[str, ...] | None
    result: Any
    searcher: Searcher


AnswerHook = Callable[[AnswerEvent], None]


class AnsweredRequest(Protocol):
    """What a search or compare request tells the ``on_answer`` hooks."""

    @property
    def query(self) -> str:
        """The query text."""

    @property
    def k(self) -> int:
        """Results asked for."""

    @property
    def backend(self) -> str:
        """The vector backend asked for."""

    @property
    def tags(self) -> list[str] | None:
        """The tag filter, if any."""


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did."""

    reloaded: bool
    version: str
    previous_version: str | None


def searcher_factory(load: EncoderLoader | None = None) -> SearcherFactory:
    """A factory that opens the version the index directory points to now.

    The previous searcher's encoder is reused when the new manifest names the same model weights and int8
    flag; otherwise the manifest's model is loaded with ``load``. Every backend of the index is loaded and the
    model warmed up before the searcher is returned, so the first request on it pays nothing extra. Every local
    backend is checked and probed first (:func:`api.verify.verify_searcher`): a damaged version is refused.

    Args:
        load: Loads a model by name (``indexing.embedding.open_encoder`` as the settings say by default).
    """

    def open_current(settings: Settings, previous: Searcher | None) -> Searcher:
        searcher = Searcher.open(settings.index_dir, search_config(settings), loader=load)
        kept = previous.loaded_encoder if previous is not None else None
        built = searcher.manifest.model
        reuse = kept is not None and (kept.weights_hash, getattr(kept, "quantization", None)) == (
            built.weights_hash, built.quantization
        )  # a version built in int8 or in full precision after the other loads its own encoder
        if reuse and kept is not None:
            searcher.use_encoder(kept)
        verify_searcher(searcher)  # checksums, every local backend, the store, a probe per method
        searcher.batcher = _batcher(settings, searcher, previous if reuse else None)
        if not reuse and previous is not None and previous.batcher is not None:
            previous.batcher.close()  # its queued queries still finish; later ones encode in their own thread
        try:
            warm_up(searcher, encode=not reuse)
        except MlsearchError:
            raise
        except Exception as exc:  # a damaged file makes SQLite or a backend library raise anything
            raise IndexCorruptError(f"index version {searcher.directory.name} cannot be opened: {exc}") from exc
        return searcher

    return open_current


def _batcher(settings: Settings, searcher: Searcher, previous: Searcher | None) -> QueryBatcher | None:
    """The query batcher (the previous searcher's when the model is the same), or None when it is off."""
    if not settings.micro_batch:
        return None
    if previous is not None and previous.batcher is not None:
        return previous.batcher
    return QueryBatcher(lambda texts: searcher.encoder.encode(texts), max_wait_ms=settings.micro_batch_wait_ms,
                        max_batch=settings.micro_batch_max, workers=settings.micro_batch_workers)


def warm_up(searcher: Searcher, encode: bool = True) -> None:
    """Load every backend of the index (logging those that are unavailable), compute the neighbour graph of score
    smoothing, and run the model once."""
    for name in searcher.built_backends:
        try:
            searcher.backend(name)
        except MlsearchError as exc:
            logger.warning("backend %s is not available: %s", name, exc)
    len(searcher.store)
    searcher.smoothing_graph  # noqa: B018 - smoothing's graph read now (when it applies), not by the first search
    if encode:
        searcher.encoder.encode(["warm up"])


@cache
def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:  # not glibc
        return None


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc's ``malloc_trim``; nothing elsewhere).

    A replaced version's arrays are freed inside the process's heaps, and glibc keeps freed pages; with a
    version published per document write, the resident size crept up between reloads.
    """
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


@dataclass
class ServiceState:
    """The current searcher and how it got there, and the drift monitor; shared by every request of one app.

    Args:
        settings: The service settings.
        factory: Builds a searcher over the current index version (see :func:`searcher_factory`).
        drift: The drift monitor (:mod:`api.drift` starts it in the lifespan), None while it is off.
        drift_off_reason: Why there is no drift monitor, for ``GET /drift``.
    """

    settings: Settings
    factory: SearcherFactory
    searcher: Searcher | None = None
    loaded_at: datetime | None = None
    reloads: int = 0
    load_error: str | None = None
    failed_target: str | None = None
    on_answer: list[AnswerHook] = field(default_factory=list)
    drift: DriftService | None = None
    drift_off_reason: str = "drift monitoring is not running"
    _lock: asyncio.Lock | None = field(default=None, repr=False)
    _users: dict[int, int] = field(default_factory=dict, repr=False)  # id(searcher) -> holds (requests, drift log)
    _retired: list[Searcher] = field(default_factory=list, repr=False)
    _leases: dict[int, VersionLease] = field(default_factory=dict, repr=False)
    _holds: threading.Lock = field(default_factory=threading.Lock, repr=False)  # the drift log holds one too
    runner: SearchRunner = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.runner = SearchRunner(self.settings.request_timeout_s, self.settings.inline_search_ms)

    def start(self) -> None:
        """Prepare for the event loop that is starting (called by the app's lifespan)."""
        self._lock = asyncio.Lock()

    def require_searcher(self) -> Searcher:
        """The current searcher.

        Raises:
            NotReadyError: No index is loaded (yet).
        """
        searcher = self.searcher
        if searcher is None:
            reason = self.load_error or "the index is still loading"
            raise NotReadyError(f"the service is not ready: {reason}")
        return searcher

    def acquire(self) -> Searcher:
        """The current searcher, held for one request until :meth:`release` (so a reload does not close it).

        Raises:
            NotReadyError: No index is loaded (yet).
        """
        with self._holds:
            searcher = self.require_searcher()
            self._users[id(searcher)] = self._users.get(id(searcher), 0) + 1
        return searcher

    @contextmanager
    def borrowed(self) -> Iterator[Searcher]:
        """The current searcher, held (as a request holds it) until the block ends; any thread.

        Raises:
            NotReadyError: No index is loaded (yet).
        """
        searcher = self.acquire()
        try:
            yield searcher
        finally:
            self.release(searcher)

    def release(self, searcher: Searcher) -> None:
        """End one hold on ``searcher``; a replaced searcher is closed once nobody holds it (any thread)."""
        with self._holds:
            left = self._users.get(id(searcher), 0) - 1
            if left > 0:
                self._users[id(searcher)] = left
            else:
                self._users.pop(id(searcher), None)
            idle = self._take_idle()
        self._close(idle)

    def _retire(self, searcher: Searcher) -> None:
        """Put a replaced searcher aside; it is closed now if nobody holds it, else by the last release."""
        with self._holds:
            self._retired.append(searcher)
            idle = self._take_idle()
        self._close(idle)

    def _take_idle(self) -> list[tuple[Searcher, VersionLease | None]]:
        """Take the replaced searchers that nobody holds (with their version leases) out of the state."""
        idle = [s for s in self._retired if id(s) not in self._users]
        for searcher in idle:
            self._retired.remove(searcher)
        return [(searcher, self._leases.pop(id(searcher), None)) for searcher in idle]

    @staticmethod
    def _close(idle: list[tuple[Searcher, VersionLease | None]]) -> None:
        """Close replaced searchers: connections, backends and version lease; then give freed memory back."""
        for searcher, lease in idle:
            searcher.close_all()
            if lease is not None:
                lease.release()
            logger.debug("closed the searcher of index version %s", searcher.version)
        if idle:
            trim_heap()

    def require_drift(self) -> DriftService:
        """The drift monitor of the service.

        Raises:
            DriftError: Drift monitoring is off or could not start (the message says why).
        """
        drift = self.drift
        if drift is None:
            raise DriftError(self.drift_off_reason)
        return drift

    def target(self) -> str:
        """The version directory that the index directory points to now."""
        return os.path.realpath(self.settings.index_dir)

    def is_current(self, target: str) -> bool:
        """Whether the loaded searcher already reads ``target``."""
        return self.searcher is not None and Path(target) == self.searcher.directory

    async def reload(self, force: bool = False) -> ReloadOutcome:
        """Open the index version the directory points to and swap it in (off the event loop).

        Reloads run one at a time; when the directory still points to the loaded version nothing is done
        unless ``force`` is set. On failure the current searcher stays in place.

        Raises:
            MlsearchError: The new version cannot be opened (the current one keeps serving).
        """
        if self._lock is None:
            self.start()
        assert self._lock is not None
        async with self._lock:
            previous = self.searcher
            target = await anyio.to_thread.run_sync(self.target)
            if previous is not None and not force and self.is_current(target):
                return ReloadOutcome(False, previous.version, previous.version)
            try:
                searcher = await anyio.to_thread.run_sync(self.factory, self.settings, previous)
            except MlsearchError as exc:
                self.failed_target = target
                if previous is None:
                    self.load_error = str(exc)
                logger.warning("cannot load index %s: %s", target, exc)
                raise
            try:  # builds and updates never prune a version while this service reads it
                self._leases[id(searcher)] = VersionLease(searcher.directory)
            except OSError as exc:
                logger.warning("cannot lease index version %s: %s", searcher.directory.name, exc)
            with self._holds:
                self.searcher = searcher
            if previous is not None:
                self._retire(previous)
            self.loaded_at = datetime.now(UTC)
            self.load_error = self.failed_target = None
            if previous is not None:
                self.reloads += 1
            logger.info("serving index version %s (was %s)", searcher.version,
                        previous.version if previous else "none")
            return ReloadOutcome(True, searcher.version, previous.version if previous else None)

    def after_answer(
        self, endpoint: str, request: AnsweredRequest, methods: Sequence[str], result: Any, searcher: Searcher,
    ) -> None:
        """Call the ``on_answer`` hooks with what the request answered (nothing when there are none).

        They run right here, on the event loop, before the response goes out: a hook must return at once (the
        drift log's only puts the query on its writer's queue). Run as a background task instead, each answer
        cost a hop to a worker thread and back.

        Args:
            endpoint: ``"search"`` or ``"compare"``.
            request: The request body (query, k, backend, tags).
            methods: The method or methods that ran.
            result: What the searcher answered.
            searcher: The searcher that answered.
        """
        if self.on_answer:
            self.notify_answer(AnswerEvent(
                endpoint=endpoint, query=request.query, k=request.k, methods=tuple(methods),
                backend=request.backend, tags=tuple(request.tags) if request.tags else None, result=result,
                searcher=searcher,
            ))

    def notify_answer(self, event: AnswerEvent) -> None:
        """Call every ``on_answer`` hook; a failing hook is logged and never reaches the client."""
        for hook in list(self.on_answer):
            try:
                hook(event)
            except Exception:  # a hook (drift log, …) must never break the service
                logger.exception("on_answer hook %r failed", hook)
