"""Logged user queries as training data: each is labelled with its top passage where dense and BM25 agree."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from finetune.queries import SyntheticQuery, synthetic_query
from indexing.backends.base import KeywordIndex, VectorIndex
from indexing.chunks import Chunk
from indexing.embedding import Encoder

logger = logging.getLogger(__name__)


def pseudo_label(
    queries: Sequence[str],
    encoder: Encoder,
    dense: VectorIndex,
    keyword: KeywordIndex,
    chunk_at: Mapping[int, Chunk],
    batch_size: int = 32,
) -> list[SyntheticQuery]:
    """Label each query with its top passage, keeping only queries where dense and BM25 agree on it.

    Args:
        queries: User queries (duplicates are labelled once).
        encoder: The index's model.
        dense: The index's vector backend.
        keyword: The index's BM25 (or other keyword) backend over the same positions.
        chunk_at: Chunk by position.
        batch_size: Queries embedded at a time.

    Returns:
        One ``logged`` query per agreeing query, its positive the agreed passage.
    """
    unique = list(dict.fromkeys(q.strip() for q in queries if q.strip()))
    if not unique:
        return []
    _, dense_ids = dense.search(encoder.encode(unique, batch_size=batch_size), 1)
    labelled = []
    for text, dense_top in zip(unique, dense_ids[:, 0].tolist(), strict=True):
        _, keyword_ids = keyword.search(text, 1)
        if dense_top >= 0 and keyword_ids.shape[1] and int(keyword_ids[0, 0]) == dense_top:
            chunk = chunk_at.get(int(dense_top))
            if chunk is not None:
                labelled.append(synthetic_query(text, "logged", int(dense_top), chunk))
    logger.info("pseudo-labelled %d of %d logged queries (dense and BM25 agree)", len(labelled), len(unique))
    return labelled
