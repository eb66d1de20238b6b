"""Train/dev split of synthetic queries BY DOCUMENT, so that no dev document's queries reach training."""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from finetune.queries import SyntheticQuery
from mlsearch.errors import FinetuneError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QuerySplit:
    """Synthetic queries split by the document of their source chunk.

    Attributes:
        train: Queries whose document is a training document.
        dev: Queries whose document is held out (used only by the promotion gate).
        train_docs: The training documents.
        dev_docs: The held-out documents.
    """

    train: list[SyntheticQuery]
    dev: list[SyntheticQuery]
    train_docs: frozenset[str]
    dev_docs: frozenset[str]

    def describe(self) -> dict[str, int]:
        """Counts for reports and lineage."""
        return {"train_queries": len(self.train), "dev_queries": len(self.dev),
                "train_documents": len(self.train_docs), "dev_documents": len(self.dev_docs)}


def split_by_document(
    queries: Sequence[SyntheticQuery], dev_fraction: float = 0.2, seed: int = 0
) -> QuerySplit:
    """Hold out a random ``dev_fraction`` of the documents (at least one, never all) with all their queries.

    Args:
        queries: Synthetic queries.
        dev_fraction: Share of documents held out, in (0, 1).
        seed: Seeds the choice of documents.

    Raises:
        ValueError: ``dev_fraction`` outside (0, 1).
        FinetuneError: Fewer than two documents have queries, so nothing can be held out.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev fraction must be between 0 and 1, got {dev_fraction}")
    docs = sorted({q.doc_id for q in queries})
    if len(docs) < 2:
        raise FinetuneError(
            f"the synthetic queries come from {len(docs)} document(s); at least 2 are needed to hold one out"
        )
    random.Random(seed).shuffle(docs)
    n_dev = min(len(docs) - 1, max(1, math.ceil(dev_fraction * len(docs))))
    dev_docs = frozenset(docs[:n_dev])
    split = QuerySplit(
        train=[q for q in queries if q.doc_id not in dev_docs],
        dev=[q for q in queries if q.doc_id in dev_docs],
        train_docs=frozenset(docs[n_dev:]), dev_docs=dev_docs,
    )
    logger.info("split by document: %s", split.describe())
    return split
