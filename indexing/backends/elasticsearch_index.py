"""Elasticsearch vector and BM25 index, written as blue-green versions behind an alias.

Each build writes a new physical index ``<prefix>-<UTC time>-<token>`` (documents stream in as they are added),
then :meth:`ElasticsearchIndex.save` refreshes it, checks that it holds every document, moves the alias
``<prefix>`` to it in one ``update_aliases`` request, and deletes versions beyond
``keep_versions``. The local index version records which physical index it was built with and
searches that one, so its hits always agree with its chunk store, even in the seconds between the alias swap
and the local swap; other consumers query the alias.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from pydantic import ConfigDict, Field, SecretStr
from pydantic.dataclasses import dataclass

from indexing.backends import elasticsearch_queries as q
from indexing.chunks import Chunk
from indexing.filters import ChunkFilter
from mlsearch.errors import BackendUnavailableError, IndexNotBuiltError

try:
    from elastic_transport import ApiError, ConnectionTimeout, TransportError
    from elasticsearch import Elasticsearch, NotFoundError
    from elasticsearch.helpers import streaming_bulk
except ImportError:  # pragma: no cover - the client is a core dependency
    Elasticsearch = None  # type: ignore[assignment,misc]

logger = logging.getLogger(__name__)
BACKEND = "elasticsearch"
RETRY_ON_STATUS = (429, 502, 503, 504)
Ranked = list[tuple[int, float]]


# -- client ---------------------------------------------------------------------------------------------
class _QuietRetries(logging.Filter):
    """The client logs every retry at WARNING with a full traceback; mlsearch reports the final failure itself,
    in one line. Keep those records only when INFO logging is on (``--verbose``), and without the traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return logging.getLogger().isEnabledFor(logging.INFO)


def _quiet_client_retries() -> None:
    for name in ("elastic_transport.transport", "elastic_transport.node_pool"):
        client_logger = logging.getLogger(name)
        if not any(isinstance(f, _QuietRetries) for f in client_logger.filters):
            client_logger.addFilter(_QuietRetries())


def redact(url: str) -> str:
    """The URL without user name and password, for messages and records."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


def client_options(config: ElasticsearchConfig) -> dict[str, Any]:
    """Keyword arguments of :class:`elasticsearch.Elasticsearch` from the config: auth, TLS, timeout, retries.

    Raises:
        BackendUnavailableError: The CA certificate file does not exist.
    """
    options: dict[str, Any] = {
        "request_timeout": config.timeout,
        "max_retries": config.max_retries,
        "retry_on_timeout": True,
        "retry_on_status": RETRY_ON_STATUS,
    }
    if config.api_key is not None:
        options["api_key"] = config.api_key.get_secret_value()
    elif config.username:
        password = config.password.get_secret_value() if config.password else ""
        options["basic_auth"] = (config.username, password)
    if config.ca_certs is not None:
        if not config.ca_certs.is_file():
            raise BackendUnavailableError(BACKEND, f"CA certificate {config.ca_certs} not found")
        options["ca_certs"] = str(config.ca_certs)
    return options


def make_client(url: str, config: ElasticsearchConfig) -> Elasticsearch:
    """A client for ``url`` configured from the config (no request is sent yet).

    Raises:
        BackendUnavailableError: The URL or the TLS settings are invalid.
    """
    _quiet_client_retries()
    try:
        return Elasticsearch(url, **client_options(config))
    except (ValueError, TypeError) as exc:
        raise BackendUnavailableError(BACKEND, f"cannot use {redact(url)}: {exc}") from exc


def describe_error(exc: BaseException) -> str:
    """One line saying what went wrong: the HTTP status and reason, or the network cause."""
    if isinstance(exc, ApiError):
        body = exc.body if isinstance(exc.body, dict) else {}
        error = body.get("error")
        kind = error.get("type") if isinstance(error, dict) else None
        reason = error.get("reason") if isinstance(error, dict) else error
        text = f"answered HTTP {exc.meta.status}" + (f" {kind}" if kind else "") + (f": {reason}" if reason else "")
    else:
        deepest = exc
        while (deepest.__cause__ or deepest.__context__) is not None:
            deepest = deepest.__cause__ or deepest.__context__  # type: ignore[assignment]
        cause = re.sub(r"^\[Errno -?\d+\]\s*", "", str(deepest)) or type(deepest).__name__
        prefix = "did not answer in time" if isinstance(exc, ConnectionTimeout) else "is unreachable"
        text = f"{prefix}: {cause}"
    return " ".join(text.split())


@dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class ElasticsearchConfig:
    """Elasticsearch options (``MLSEARCH_ELASTICSEARCH_<OPTION>``): cluster, credentials, naming, retries, mapping."""

    url: str | None = Field(default=None, description="The cluster, e.g. http://localhost:9200.")
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: Path | None = Field(default=None, description="A PEM file of the cluster's certificate authority.")
    timeout: float = Field(default=10.0, gt=0, description="Seconds per request.")
    index_prefix: str = Field(default="mlsearch", description="The alias; physical indexes are named after it.")
    num_candidates: int = Field(default=100, ge=1, description="kNN candidates per shard.")
    keep_versions: int = Field(default=2, ge=1, description="Physical indexes kept after an alias swap.")
    max_retries: int = Field(
        default=3, ge=0, description="Retries of a transient failure (429, 502-504, timeouts) per request and document."
    )
    initial_backoff: float = Field(
        default=2.0, ge=0, description="Seconds before the first bulk retry; doubled at each retry."
    )
    bulk_size: int = Field(default=500, ge=1, description="Documents per bulk request.")
    shards: int = Field(default=1, ge=1)
    replicas: int = Field(default=0, ge=0, description="0 for a single node; 1 or more on a cluster.")
    vector_index: Literal[
        "hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat"
    ] = Field(default="hnsw", description="dense_vector index_options type: hnsw keeps full float vectors.")


# -- the index ------------------------------------------------------------------------------------------
class ElasticsearchIndex:
    """One version of the corpus in Elasticsearch: dense kNN, BM25 ``match`` and tag filters.

    Fills the :class:`~indexing.backends.base.VectorIndex` protocol (``search`` is kNN by inner product,
    ids are chunk-store positions) and the :class:`~indexing.backends.base.FilteringIndex` one (:meth:`rank`:
    kNN and BM25 with the tag filter inside the queries); :meth:`knn`, :meth:`match` and :meth:`knn_and_match`
    are single-ranking shortcuts. The similarity is ``dot_product`` when the vectors have unit length (a
    normalised model) and ``max_inner_product`` otherwise, decided from the first vectors added.

    Args:
        dimension: The embedding size.
        config: URL, credentials, prefix, retries, mapping options (``MLSEARCH_ELASTICSEARCH_*``).
        client: An already configured client (tests); built from the config otherwise.
        url: The cluster URL when it is not the one in the config.

    Raises:
        BackendUnavailableError: No cluster URL is configured, or the client library is missing.
        ValueError: The index prefix is not a valid index name.
    """

    name: ClassVar[str] = BACKEND
    config_type: ClassVar[type[ElasticsearchConfig]] = ElasticsearchConfig
    INFO_FILE = "elasticsearch.json"
    QUERIES_PER_REQUEST = 50

    def __init__(
        self, dimension: int, config: ElasticsearchConfig, client: Elasticsearch | None = None,
        url: str | None = None,
    ) -> None:
        if Elasticsearch is None:
            raise BackendUnavailableError(BACKEND, "install the client: pip install 'elasticsearch>=9,<10'")
        url = url or config.url
        if not url:
            raise BackendUnavailableError(
                BACKEND, "no cluster configured; set MLSEARCH_ELASTICSEARCH_URL (for example http://localhost:9200)"
            )
        self.dimension = dimension
        self.config = config
        self.url = redact(url)
        self.alias = q.check_prefix(config.index_prefix)
        self.client = client if client is not None else make_client(url, config)
        self.index: str | None = None
        self.similarity: str | None = None
        self.fingerprint: str | None = None
        self._digest = hashlib.sha256()
        self.mapping: dict[str, Any] = {
            "vector_index": config.vector_index, "analyzer": "english",
            "shards": config.shards, "replicas": config.replicas,
        }
        self._count = 0
        self._dirty = False
        self._read_only = False
        self._reader_client: Elasticsearch | None = None

    @property
    def reader(self) -> Elasticsearch:
        """The client for searches: at most one retry and none after a timeout, so that a query fails fast."""
        if self._reader_client is None:
            self._reader_client = self.client.options(
                max_retries=min(1, self.config.max_retries), retry_on_timeout=False
            )
        return self._reader_client

    # -- errors -------------------------------------------------------------------------------------------
    @contextmanager
    def _talking(self, action: str) -> Iterator[None]:
        """Turn client errors into one-line :class:`BackendUnavailableError` naming the URL and the cause."""
        try:
            yield
        except (TransportError, ApiError) as exc:
            raise BackendUnavailableError(BACKEND, f"{self.url} {describe_error(exc)} (while {action})") from exc

    # -- building -----------------------------------------------------------------------------------------
    def _create(self, similarity: str) -> None:
        stamp = f"{datetime.now(UTC):%Y%m%dt%H%M%S%f}"
        name = q.physical_name(self.alias, stamp, secrets.token_hex(4))
        m = self.mapping
        body = q.index_body(
            self.dimension, similarity, m["vector_index"], m["shards"], m["replicas"],
            meta={"state": "building", "dimension": self.dimension, "similarity": similarity},
        )
        with self._talking(f"creating index {name}"):
            self.client.indices.create(index=name, **body)
        logger.info("Elasticsearch: created %s (%s, %d dimensions)", name, similarity, self.dimension)
        self.index, self.similarity = name, similarity

    def add(self, vectors: np.ndarray, chunks: Sequence[Chunk] = ()) -> None:
        """Index vectors (row ``i`` gets position ``len(self) + i``) with their chunks' text and metadata.

        The first call creates the physical index; documents are bulk-indexed right away, with retries and
        backoff on 429 and 502-504. They become visible to the alias only at :meth:`save`.

        Raises:
            ValueError: Wrong shape, ``chunks`` of another length, or non-unit vectors in a ``dot_product`` index.
            BackendUnavailableError: The cluster is unreachable or documents failed to index (the new physical
                index is then deleted; the alias is untouched).
        """
        if self._read_only:
            raise RuntimeError(f"{self.index} is a published version; build a new one instead of adding to it")
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of shape (n, {self.dimension}), got {vectors.shape}")
        if chunks and len(chunks) != len(vectors):
            raise ValueError(f"got {len(vectors)} vectors but {len(chunks)} chunks")
        if len(vectors) == 0:
            return
        similarity = q.similarity_for(vectors)
        if self.index is None:
            self._create(similarity)
        elif self.similarity == "dot_product" and similarity != "dot_product":
            raise ValueError(f"{self.index} uses dot_product, which needs unit-length vectors; these are not")
        assert self.index is not None
        start = self._count
        actions = (
            q.bulk_action(self.index, start + i, vector, chunks[i] if chunks else None)
            for i, vector in enumerate(vectors)
        )
        self._bulk(actions, len(vectors))
        self._digest.update(vectors.tobytes())
        self._digest.update("\x1f".join(c.id for c in chunks).encode())
        self._count += len(vectors)
        self._dirty = True
        logger.info("Elasticsearch: indexed %d documents into %s (%d in all)", len(vectors), self.index, self._count)

    def _bulk(self, actions: Iterable[dict[str, Any]], total: int) -> None:
        s = self.config
        failures: list[dict[str, Any]] = []
        try:
            with self._talking(f"bulk indexing into {self.index}"):
                for ok, item in streaming_bulk(
                    self.client, actions, chunk_size=s.bulk_size,
                    max_retries=s.max_retries, initial_backoff=s.initial_backoff,
                    max_backoff=60, retry_on_status=RETRY_ON_STATUS, raise_on_error=False,
                    raise_on_exception=False, yield_ok=False,
                ):
                    if not ok:
                        failures.append(next(iter(item.values())))
        except BaseException:
            self._discard()
            raise
        if failures:
            index = self.index
            self._discard()
            first = failures[0]
            error = first.get("error")
            reason = error.get("reason") if isinstance(error, dict) else error
            raise BackendUnavailableError(
                BACKEND,
                f"{len(failures)} of {total} documents failed to index into {index} at {self.url} "
                f"(first: position {first.get('_id')}, HTTP {first.get('status')}: {' '.join(str(reason).split())}); "
                "the new index was deleted and the alias left as it was",
            )

    def _holders(self) -> list[str]:
        """Physical indices the alias points to now."""
        try:
            return sorted(self.client.indices.get_alias(name=self.alias).body)
        except NotFoundError:
            return []

    def _discard(self) -> None:
        """Delete the unpublished physical index after a failure (best effort; never the alias's index)."""
        if self.index is None or self._read_only:
            return
        name, self.index = self.index, None
        try:
            if name not in self._holders():
                self.client.indices.delete(index=name)
                logger.warning("Elasticsearch: deleted unfinished index %s", name)
        except (TransportError, ApiError) as exc:
            logger.warning("Elasticsearch: could not delete unfinished index %s: %s", name, describe_error(exc))

    def _refresh(self) -> None:
        if self._dirty and self.index is not None:
            with self._talking(f"refreshing {self.index}"):
                self.client.indices.refresh(index=self.index)
            self._dirty = False

    def _verify(self) -> None:
        """Refresh, then check that the index holds every document added."""
        self._refresh()
        with self._talking(f"counting documents in {self.index}"):
            found = int(self.client.count(index=self.index)["count"])
        if found != self._count:
            index = self.index
            self._discard()
            raise BackendUnavailableError(
                BACKEND, f"{index} at {self.url} holds {found} documents instead of {self._count}; "
                "the new index was deleted and the alias left as it was",
            )

    def _swap_alias(self) -> list[str]:
        """Point the alias at this index in one atomic request; returns the indices it pointed to before."""
        assert self.index is not None
        with self._talking(f"moving alias {self.alias} to {self.index}"):
            previous = self._holders()
            self.client.indices.update_aliases(actions=q.alias_actions(self.alias, self.index, previous))
        logger.info("Elasticsearch: alias %s -> %s (was %s)", self.alias, self.index, ", ".join(previous) or "none")
        return [name for name in previous if name != self.index]

    def _mark_complete(self) -> None:
        meta = {"state": "complete", "dimension": self.dimension, "similarity": self.similarity,
                "count": self._count, "fingerprint": self.fingerprint}
        self.client.indices.put_mapping(index=str(self.index), meta={"mlsearch": meta})

    def _prune(self, previous: Sequence[str]) -> list[str]:
        """Delete versions beyond ``keep_versions`` and leftovers of killed builds."""
        assert self.index is not None
        mappings = self.client.indices.get_mapping(index=f"{self.alias}-*").body
        states = {
            name: str(((body.get("mappings") or {}).get("_meta") or {}).get("mlsearch", {}).get("state", "unknown"))
            for name, body in mappings.items()
        }
        doomed = q.versions_to_delete(
            states, self.config.keep_versions, self.index, previous,
            q.physical_pattern(self.alias),
        )
        if doomed:
            self.client.indices.delete(index=",".join(doomed))
            logger.info("Elasticsearch: deleted old versions %s", ", ".join(doomed))
        return doomed

    def save(self, directory: Path) -> None:
        """Publish this version: refresh, check the count, swap the alias, prune, and record it in ``directory``.

        Nothing is swapped unless every document is in the new index. Writes ``elasticsearch.json`` (alias,
        physical index, URL without credentials, mapping settings, count, fingerprint).

        Raises:
            BackendUnavailableError: The cluster is unreachable, or the new index is incomplete.
        """
        if self.index is None:
            self._create("max_inner_product")
        if not self._read_only:
            self.fingerprint = self._digest.hexdigest()
            try:
                self._verify()
                previous = self._swap_alias()
            except BaseException:
                self._discard()
                raise
            self._read_only = True
            try:
                self._mark_complete()
                self._prune(previous)
            except (TransportError, ApiError) as exc:
                logger.warning("Elasticsearch: %s swapped in, but cleanup failed: %s", self.index, describe_error(exc))
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.INFO_FILE).write_text(json.dumps(self.describe(), indent=2))

    # -- loading ------------------------------------------------------------------------------------------
    @classmethod
    def load(cls, directory: Path, config: ElasticsearchConfig, client: Elasticsearch | None = None) -> Self:
        """Connect to the cluster and open the physical index that this index version recorded.

        The URL comes from the config, or from the record when the config names none.

        Raises:
            IndexNotBuiltError: No ``elasticsearch.json`` in ``directory``.
            BackendUnavailableError: The cluster is unreachable, or the physical index no longer exists.
        """
        path = directory / cls.INFO_FILE
        if not path.is_file():
            raise IndexNotBuiltError(f"no Elasticsearch index record in {directory}")
        info = json.loads(path.read_text())
        index = cls(int(info["dimension"]), config, client=client, url=config.url or info["url"])
        index.alias = info["alias"]
        index.index = info["index"]
        index.similarity = info["similarity"]
        index.fingerprint = info.get("fingerprint")
        index.mapping = dict(info.get("mapping") or index.mapping)
        index._count = int(info["count"])
        index._read_only = True
        with index._talking(f"opening index {index.index}"):
            exists = bool(index.reader.indices.exists(index=info["index"]))
        if not exists:
            raise BackendUnavailableError(
                BACKEND, f"index {info['index']} no longer exists at {index.url}; rebuild with "
                "`mlsearch index build --backends elasticsearch`",
            )
        return index

    # -- searching ----------------------------------------------------------------------------------------
    def _msearch(self, searches: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
        """Run ``msearch`` lines against this version; one list of hits per search."""
        if self.index is None:
            raise IndexNotBuiltError("the Elasticsearch index holds no documents yet")
        self._refresh()
        with self._talking(f"searching {self.index}"):
            responses = self.reader.msearch(index=self.index, searches=searches)["responses"]
        out = []
        for response in responses:
            if "error" in response:
                error = response["error"]
                reason = error.get("reason") if isinstance(error, dict) else error
                raise BackendUnavailableError(BACKEND, f"{self.url} could not search {self.index}: {reason}")
            out.append(response["hits"]["hits"])
        return out

    def _ranked(self, hits: list[dict[str, Any]], dense: bool) -> Ranked:
        assert self.similarity is not None or not dense
        return [
            (int(hit["_source"]["position"]),
             q.to_inner_product(float(hit["_score"]), str(self.similarity)) if dense else float(hit["_score"]))
            for hit in hits
        ]

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """kNN by inner product for each query row; rows are padded with id -1 when short."""
        queries = np.asarray(queries, dtype=np.float32).reshape(-1, self.dimension)
        width = max(0, min(k, self._count))
        scores = np.full((len(queries), width), -np.inf, np.float32)
        ids = np.full((len(queries), width), -1, np.int64)
        if width == 0:
            return scores, ids
        candidates = self.config.num_candidates
        for start in range(0, len(queries), self.QUERIES_PER_REQUEST):
            batch = queries[start : start + self.QUERIES_PER_REQUEST]
            searches = [line for vector in batch for line in ({}, q.knn_body(vector, width, candidates))]
            for row, hits in enumerate(self._msearch(searches), start=start):
                for col, (position, score) in enumerate(self._ranked(hits, dense=True)[:width]):
                    ids[row, col], scores[row, col] = position, score
        return scores, ids

    def rank(
        self, query: str, vector: np.ndarray | None, methods: Sequence[str], k: int,
        tags: ChunkFilter | Sequence[str] | None,
    ) -> list[Ranked]:
        """``dense`` (kNN) and ``bm25`` (``match``) rankings with the tag filter inside the queries, in one
        ``msearch`` request (the :class:`~indexing.backends.base.FilteringIndex` contract).

        Raises:
            ValueError: A method this backend does not serve, or ``dense`` without a vector.
        """
        candidates = self.config.num_candidates
        searches: list[dict[str, Any]] = []
        for method in methods:
            if method == "dense":
                if vector is None:
                    raise ValueError("a dense ranking needs the query vector")
                searches += [{}, q.knn_body(vector, k, candidates, tags)]
            elif method == "bm25":
                searches += [{}, q.match_body(query, k, tags)]
            else:
                raise ValueError(f"Elasticsearch does not serve the {method!r} method")
        hits = self._msearch(searches) if searches else []
        return [self._ranked(found, dense=method == "dense") for method, found in zip(methods, hits, strict=True)]

    def knn(self, vector: np.ndarray, k: int, tags: ChunkFilter | Sequence[str] | None = None) -> Ranked:
        """The ``k`` nearest chunks by inner product as ``(position, inner product)``, tag filter applied in ES."""
        body = q.knn_body(vector, k, self.config.num_candidates, tags)
        return self._ranked(self._msearch([{}, body])[0], dense=True)

    def match(self, query: str, k: int, tags: ChunkFilter | Sequence[str] | None = None) -> Ranked:
        """The ``k`` best BM25 ``match`` hits as ``(position, score)``, tag filter applied in ES."""
        return self._ranked(self._msearch([{}, q.match_body(query, k, tags)])[0], dense=False)

    def knn_and_match(
        self, vector: np.ndarray, query: str, k: int, tags: ChunkFilter | Sequence[str] | None = None
    ) -> tuple[Ranked, Ranked]:
        """kNN and BM25 rankings for a hybrid search, fetched in one ``msearch`` request."""
        searches = q.hybrid_searches(vector, query, k, self.config.num_candidates, tags)
        dense, lexical = self._msearch(searches)
        return self._ranked(dense, dense=True), self._ranked(lexical, dense=False)

    # -- description --------------------------------------------------------------------------------------
    def describe(self) -> dict[str, Any]:
        """Alias, physical index, URL (no credentials), similarity, mapping options and count."""
        return {
            "url": self.url,
            "alias": self.alias,
            "index": self.index,
            "dimension": self.dimension,
            "similarity": self.similarity,
            "count": self._count,
            "fingerprint": self.fingerprint,
            "num_candidates": self.config.num_candidates,
            "mapping": self.mapping,
        }

    def __len__(self) -> int:
        return self._count
