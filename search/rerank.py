"""Cross-encoder reranking of the top N results of any method.

A cross-encoder reads the query and a passage together and outputs one relevance score, which is slower but
usually more precise than comparing two embeddings. Any local sentence-transformers ``CrossEncoder`` folder works:
the one ``mlsearch reranker train`` makes from the bundled MiniLM weights, or another. Nothing is downloaded.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlsearch.errors import ModelLoadError

logger = logging.getLogger(__name__)


class Reranker:
    """Scores (query, passage) pairs with a cross-encoder and reorders the top of a ranked list.

    Args:
        model: A loaded ``sentence_transformers.CrossEncoder``.
        name: What it is (its folder), for reports.
        batch_size: Pairs scored per forward pass.
    """

    def __init__(self, model: Any, name: str, batch_size: int = 32) -> None:
        self.model = model
        self.name = name
        self.batch_size = batch_size

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", max_length: int = 256) -> Reranker:
        """Load a local cross-encoder folder (never from a hub).

        Raises:
            ModelLoadError: No such folder, or it is not a model sentence-transformers can load.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise ModelLoadError(f"no reranker at {folder} (a local CrossEncoder folder is needed)")
        try:
            from sentence_transformers import CrossEncoder

            model = CrossEncoder(str(folder), device=device, max_length=max_length, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure becomes one clear error
            raise ModelLoadError(f"cannot load the reranker at {folder}: {str(exc).splitlines()[0]}") from exc
        return cls(model, str(folder))

    def score(self, query: str, passages: Sequence[str]) -> np.ndarray:
        """One relevance score per passage (higher is more relevant)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        pairs = [(query, passage) for passage in passages]
        scores = self.model.predict(pairs, batch_size=self.batch_size, show_progress_bar=False,
                                    convert_to_numpy=True)
        return np.asarray(scores, dtype=np.float32).reshape(len(passages))

    def rerank(
        self, query: str, ranked: Sequence[tuple[int, float]], texts: Mapping[int, str], top_n: int
    ) -> list[tuple[int, float]]:
        """Reorder the first ``top_n`` of ``ranked`` by cross-encoder score; the rest follow in their order.

        Args:
            query: The question.
            ranked: ``(position, score)`` pairs, best first.
            texts: Position → the passage to score (at least the first ``top_n``).
            top_n: How many to rescore.

        Returns:
            ``(position, score)`` pairs, best first: the cross-encoder's scores for the reranked head, then the
            tail with scores below the head's lowest, in its original order.

        Raises:
            ValueError: ``top_n`` below 1.
        """
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        head = [p for p, _ in ranked[:top_n]]
        scores = self.score(query, [texts[p] for p in head])
        order = sorted(range(len(head)), key=lambda i: (-float(scores[i]), i))
        out = [(head[i], float(scores[i])) for i in order]
        floor = float(scores.min()) if len(head) else 0.0
        out += [(p, floor - (i + 1)) for i, (p, _) in enumerate(ranked[top_n:])]
        return out
