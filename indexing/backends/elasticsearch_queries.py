"""Pure builders of the Elasticsearch request bodies that mlsearch sends: mapping, documents, queries, aliases.

Nothing here talks to a cluster, so every body can be checked in unit tests. The mapping holds one document
per chunk: its passage (``text``, English analyzer), metadata as keywords, the chunk-store ``position`` that
maps a hit back to the chunk, and the embedding as an indexed ``dense_vector``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from indexing.chunks import Chunk
from indexing.filters import ChunkFilter, as_filter

VECTOR_FIELD = "embedding"
TEXT_FIELD = "text"
SEARCH_FIELD = "content"
"""The field ``match`` queries run on: title, heading path and passage, copied together (like the local BM25,
which indexes the same embedded text)."""
RETURNED_FIELDS = ["position", "chunk_id"]
MAX_NUM_CANDIDATES = 10_000
RESCORE_OVERSAMPLE = 3.0
UNIT_NORM_TOLERANCE = 1e-4
"""Elasticsearch rejects a ``dot_product`` vector whose squared norm is further than this from 1."""

_PREFIX = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


def check_prefix(prefix: str) -> str:
    """Validate an index prefix (it names the alias and starts every physical index name).

    Raises:
        ValueError: Not a valid lower-case Elasticsearch index name.
    """
    if not _PREFIX.match(prefix) or len(prefix) > 200:
        raise ValueError(
            f"invalid elasticsearch_index_prefix {prefix!r}: use lower-case letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return prefix


def physical_name(prefix: str, stamp: str, token: str) -> str:
    """The name of one physical index version: ``<prefix>-<UTC time>-<8 hex>``, ordered by time."""
    return f"{prefix}-{stamp}-{token}"


def physical_pattern(prefix: str) -> re.Pattern[str]:
    """Matches the physical index names written under ``prefix`` (and nothing else sharing the prefix)."""
    return re.compile(rf"^{re.escape(prefix)}-\d{{8}}t\d{{12}}-[0-9a-f]{{8}}$")


def similarity_for(vectors: np.ndarray) -> str:
    """``dot_product`` when every vector has unit length (a normalised model), else ``max_inner_product``.

    Decided from the vectors themselves, with the tolerance Elasticsearch applies to ``dot_product``, so that
    the mapping can never reject a vector that the model produced. Both similarities rank by inner product.
    """
    if len(vectors) == 0:
        return "max_inner_product"
    squared = np.einsum("ij,ij->i", vectors, vectors, dtype=np.float64)
    return "dot_product" if bool(np.all(np.abs(squared - 1.0) <= UNIT_NORM_TOLERANCE)) else "max_inner_product"


def index_body(
    dimension: int, similarity: str, vector_index: str = "hnsw", shards: int = 1, replicas: int = 0,
    meta: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Settings and mappings of a new physical index (the keyword arguments of ``indices.create``).

    Args:
        dimension: The embedding size.
        similarity: ``dot_product`` or ``max_inner_product`` (see :func:`similarity_for`).
        vector_index: The ``dense_vector`` ``index_options`` type (``hnsw``, ``int8_hnsw``, ``bbq_hnsw``, …);
            quantized types rescore their candidates with the float vectors.
        shards: Primary shards.
        replicas: Replicas per shard.
        meta: Stored as the mapping's ``_meta`` (build state, fingerprint).

    Returns:
        ``{"settings": ..., "mappings": ...}``.
    """
    if similarity not in ("dot_product", "max_inner_product"):
        raise ValueError(f"unsupported similarity {similarity!r}")
    keyword_to_content = {"type": "keyword", "copy_to": SEARCH_FIELD}
    index_options: dict[str, Any] = {"type": vector_index}
    if vector_index.startswith(("int8", "int4", "bbq")):
        # quantized graphs: fetch 3x the candidates and rescore them with the full float vectors
        index_options["rescore_vector"] = {"oversample": RESCORE_OVERSAMPLE}
    return {
        "settings": {
            "number_of_shards": shards,
            "number_of_replicas": replicas,
            # a version is written once, then refreshed explicitly before it is checked and swapped in
            "refresh_interval": "-1",
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": {"mlsearch": dict(meta or {})},
            "properties": {
                "chunk_id": {"type": "keyword"},
                "position": {"type": "integer"},
                "doc_id": {"type": "keyword"},
                "title": keyword_to_content,
                "heading": keyword_to_content,
                "tags": {"type": "keyword"},
                "source_type": {"type": "keyword"},
                "path": {"type": "keyword"},
                TEXT_FIELD: {"type": "text", "analyzer": "english", "copy_to": SEARCH_FIELD},
                SEARCH_FIELD: {"type": "text", "analyzer": "english"},
                VECTOR_FIELD: {
                    "type": "dense_vector",
                    "dims": dimension,
                    "index": True,
                    "similarity": similarity,
                    "index_options": index_options,
                },
            },
        },
    }


def document(position: int, vector: np.ndarray, chunk: Chunk | None = None) -> dict[str, Any]:
    """The source of one document; ``position`` is the chunk's id in the chunk store."""
    source: dict[str, Any] = {"position": int(position), VECTOR_FIELD: np.asarray(vector, np.float32).tolist()}
    if chunk is not None:
        source.update(
            chunk_id=chunk.id, doc_id=chunk.doc_id, title=chunk.title, heading=chunk.heading,
            tags=[tag.lower() for tag in chunk.tags], text=chunk.text, source_type=chunk.source_type,
            path=chunk.path,
        )
    return source


def bulk_action(index: str, position: int, vector: np.ndarray, chunk: Chunk | None = None) -> dict[str, Any]:
    """One action for ``elasticsearch.helpers.streaming_bulk`` (``index`` ops, so a retry is idempotent)."""
    return {"_op_type": "index", "_index": index, "_id": str(position), "_source": document(position, vector, chunk)}


def tag_filter(tags: ChunkFilter | Sequence[str] | None) -> list[dict[str, Any]]:
    """Filter clauses for a :class:`~indexing.filters.ChunkFilter` (or a list of tags); none when it is empty.

    Tags, document ids and source types each keep documents matching any of their values; a path prefix is a
    ``prefix`` query on the ``path`` keyword.
    """
    filters = as_filter(tags)
    clauses: list[dict[str, Any]] = []
    if filters.tags:
        clauses.append({"terms": {"tags": list(filters.tags)}})
    if filters.doc_ids:
        clauses.append({"terms": {"doc_id": list(filters.doc_ids)}})
    if filters.source_types:
        clauses.append({"terms": {"source_type": list(filters.source_types)}})
    if filters.path_prefix:
        clauses.append({"prefix": {"path": filters.path_prefix}})
    return clauses


def num_candidates(k: int, configured: int) -> int:
    """Candidates per shard for a kNN search: at least ``k``, at most Elasticsearch's limit of 10,000."""
    return min(max(k, configured), MAX_NUM_CANDIDATES)


def knn_body(
    vector: np.ndarray, k: int, candidates: int, tags: ChunkFilter | Sequence[str] | None = None
) -> dict[str, Any]:
    """An approximate kNN search for one query vector; tag filters are applied during the graph search.

    Args:
        vector: The query embedding.
        k: Hits wanted.
        candidates: ``num_candidates`` setting (raised to ``k`` when below it).
        tags: Keep only documents with any of these tags.

    Returns:
        A search body: ``{"knn": ..., "size": k, "_source": [...]}``.
    """
    knn: dict[str, Any] = {
        "field": VECTOR_FIELD,
        "query_vector": np.asarray(vector, np.float32).reshape(-1).tolist(),
        "k": k,
        "num_candidates": num_candidates(k, candidates),
    }
    filters = tag_filter(tags)
    if filters:
        knn["filter"] = filters
    return {"knn": knn, "size": k, "_source": RETURNED_FIELDS}


def match_body(query: str, k: int, tags: ChunkFilter | Sequence[str] | None = None) -> dict[str, Any]:
    """A BM25 ``match`` query over title, heading path and passage; tags go into a non-scoring filter."""
    match: dict[str, Any] = {"match": {SEARCH_FIELD: {"query": query}}}
    filters = tag_filter(tags)
    body_query = {"bool": {"must": [match], "filter": filters}} if filters else match
    return {"query": body_query, "size": k, "_source": RETURNED_FIELDS}


def hybrid_searches(
    vector: np.ndarray, query: str, k: int, candidates: int, tags: ChunkFilter | Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """The ``msearch`` lines of a hybrid search: a kNN and a BM25 search sent in one request.

    The two rankings are fused on the client by :mod:`search.fusion` (server-side RRF needs a paid licence).
    """
    return [{}, knn_body(vector, k, candidates, tags), {}, match_body(query, k, tags)]


def alias_actions(alias: str, new_index: str, current: Sequence[str]) -> list[dict[str, Any]]:
    """``indices.update_aliases`` actions that move ``alias`` to ``new_index`` in one atomic request."""
    removes = [{"remove": {"index": name, "alias": alias}} for name in sorted(current) if name != new_index]
    return [*removes, {"add": {"index": new_index, "alias": alias}}]


def to_inner_product(score: float, similarity: str) -> float:
    """Undo Elasticsearch's kNN score transform, giving back the raw inner product.

    ``dot_product`` scores are ``(1 + dot) / 2``; ``max_inner_product`` scores are ``dot + 1`` for a
    non-negative dot and ``1 / (1 - dot)`` for a negative one.
    """
    if similarity == "dot_product":
        return 2.0 * score - 1.0
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / score


def versions_to_delete(
    indices: dict[str, str], keep: int, current: str, previous: Sequence[str], pattern: re.Pattern[str]
) -> list[str]:
    """Physical indices to delete after a swap: versions beyond ``keep`` and leftovers of killed builds.

    The versions the alias pointed to before the swap are kept first (a server still reading the previous
    local index version searches them until it reloads), then the newest other complete versions.

    Args:
        indices: Physical index name → build state (``complete`` once swapped in, ``building`` before).
        keep: Versions to keep, the current one included.
        current: The index the alias now points to (never deleted).
        previous: The indices the alias pointed to before the swap.
        pattern: Only names that match are ours to delete.

    Returns:
        Names to delete, sorted.
    """
    ours = {name: state for name, state in indices.items() if pattern.match(name) and name != current}
    versions = sorted((n for n in ours if n in previous), reverse=True) + sorted(
        (n for n, s in ours.items() if s == "complete" and n not in previous), reverse=True
    )
    stale = [n for n, s in ours.items() if s != "complete" and n not in previous and n < current]
    return sorted(versions[max(0, keep - 1):] + stale)
