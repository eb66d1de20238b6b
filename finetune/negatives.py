"""Hard negatives mined from the index: similar chunks of other (training) documents than the positive's."""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence

import numpy as np

logger = logging.getLogger(__name__)


def mine_hard_negatives(
    query_vectors: np.ndarray,
    chunk_vectors: np.ndarray,
    chunk_docs: Sequence[str],
    positives: Sequence[int],
    allowed_docs: Collection[str] | None = None,
    allowed_positions: Collection[int] | None = None,
    relative_margin: float = 0.05,
    depth: int = 50,
    block: int = 1024,
    seed: int = 0,
) -> list[int | None]:
    """For each query, the best-scoring chunk of another document that is not a likely false negative.

    A candidate must come from another document than the positive (a chunk of the same article may well answer
    the query), from ``allowed_docs`` when given (so held-out documents never reach training), and score below
    ``(1 - relative_margin)`` times the positive's score (a candidate that scores as high as the positive is
    more likely an unlabelled answer than a negative).

    Args:
        query_vectors: ``(n, d)`` query embeddings from the index's model.
        chunk_vectors: ``(m, d)`` chunk embeddings of the index, by position.
        chunk_docs: The document of each chunk, by position.
        positives: The positive chunk position of each query.
        allowed_docs: Documents negatives may come from (all when None).
        allowed_positions: Chunk positions negatives may come from (all when None); both limits apply.
        relative_margin: How far below the positive's score a negative must be.
        depth: How many top candidates are considered per query.
        block: Queries scored at a time (bounds memory).
        seed: Seeds the fallback: when none of the top ``depth`` qualifies, a random chunk of another allowed
            document is taken.

    Returns:
        One chunk position per query, or None when no other allowed document exists.
    """
    if len(query_vectors) != len(positives):
        raise ValueError("one positive position per query is needed")
    docs = np.asarray(chunk_docs, dtype=object)
    allowed = np.ones(len(docs), dtype=bool) if allowed_docs is None else np.isin(docs, list(allowed_docs))
    if allowed_positions is not None:
        allowed &= np.isin(np.arange(len(docs)), list(allowed_positions))
    depth = min(depth, len(docs))
    rng = np.random.default_rng(seed)
    out: list[int | None] = []
    for start in range(0, len(query_vectors), block):
        scores = query_vectors[start : start + block] @ chunk_vectors.T
        top = np.argsort(-scores, axis=1)[:, :depth]
        for row, candidates in enumerate(top):
            positive = int(positives[start + row])
            ceiling = scores[row, positive]
            ceiling = ceiling * (1 - relative_margin) if ceiling > 0 else ceiling * (1 + relative_margin)
            found = None
            for candidate in candidates:
                if (allowed[candidate] and docs[candidate] != docs[positive]
                        and scores[row, candidate] < ceiling):
                    found = int(candidate)
                    break
            if found is None:
                pool = np.flatnonzero(allowed & (docs != docs[positive]))
                found = int(rng.choice(pool)) if pool.size else None
            out.append(found)
    logger.info("hard negatives: %d of %d queries got one", sum(x is not None for x in out), len(out))
    return out
