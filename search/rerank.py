"""Cross-encoder reranking of the top N results of any method.

A cross-encoder reads the query and a passage together and outputs one relevance score, which is slower but
usually more precise than comparing two embeddings. Any local sentence-transformers ``CrossEncoder`` folder works:
the one ``mlsearch reranker train`` makes from the bundled MiniLM weights, or another. Nothing is downloaded.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlsearch.errors import ModelLoadError

logger = logging.getLogger(__name__)
BLEND_FILE = "mlsearch-rerank.json"
"""A file in a reranker's folder that ``mlsearch rerank-train`` writes: the blend weight it chose."""


class Reranker:
    """Scores (query, passage) pairs with a cross-encoder and reorders the top of a ranked list.

    The head's new order follows ``weight × cross-encoder score + (1 − weight) × first-stage score``, both
    min-max normalised over the head: 1 (the default, and any cross-encoder without a blend file) trusts the
    cross-encoder alone; a trained reranker carries the weight its training chose on held-out queries.

    Args:
        model: A loaded ``sentence_transformers.CrossEncoder``.
        name: What it is (its folder), for reports.
        batch_size: Pairs scored per forward pass.
        weight: The cross-encoder's share of the blended score, in [0, 1].

    Raises:
        ValueError: ``weight`` outside [0, 1].
    """

    def __init__(self, model: Any, name: str, batch_size: int = 32, weight: float = 1.0) -> None:
        if not 0.0 <= weight <= 1.0:
            raise ValueError(f"the reranker's weight must be between 0 and 1, got {weight}")
        self.model = model
        self.name = name
        self.batch_size = batch_size
        self.weight = weight

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", max_length: int = 256) -> Reranker:
        """Load a local cross-encoder folder (never from a hub).

        The blend weight comes from the folder's :data:`BLEND_FILE` when there is one (1 otherwise).

        Raises:
            ModelLoadError: No such folder, it is not a model sentence-transformers can load, or its blend file
                is unreadable.
        """
        folder = Path(path)
        if not folder.is_dir():
            raise ModelLoadError(f"no reranker at {folder} (a local CrossEncoder folder is needed)")
        weight = 1.0
        if (folder / BLEND_FILE).is_file():
            try:
                weight = float(json.loads((folder / BLEND_FILE).read_text())["weight"])
                if not 0.0 <= weight <= 1.0:
                    raise ValueError(f"weight {weight} is outside [0, 1]")
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ModelLoadError(f"the reranker's {folder / BLEND_FILE} is unreadable: {exc}") from None
        try:
            from sentence_transformers import CrossEncoder

            model = CrossEncoder(str(folder), device=device, max_length=max_length, local_files_only=True)
        except Exception as exc:  # noqa: BLE001 - any loading failure becomes one clear error
            raise ModelLoadError(f"cannot load the reranker at {folder}: {str(exc).splitlines()[0]}") from exc
        return cls(model, str(folder), weight=weight)

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
            ``(position, score)`` pairs, best first: the (blended) scores of the reranked head, then the tail
            with scores below the head's lowest, in its original order.

        Raises:
            ValueError: ``top_n`` below 1.
        """
        if top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {top_n}")
        head = [p for p, _ in ranked[:top_n]]
        scores = blend(self.score(query, [texts[p] for p in head]),
                       np.array([s for _, s in ranked[:top_n]], dtype=np.float64), self.weight)
        order = sorted(range(len(head)), key=lambda i: (-float(scores[i]), i))
        out = [(head[i], float(scores[i])) for i in order]
        floor = float(scores.min()) if len(head) else 0.0
        out += [(p, floor - (i + 1)) for i, (p, _) in enumerate(ranked[top_n:])]
        return out


def blend(cross: np.ndarray, first: np.ndarray, weight: float) -> np.ndarray:
    """``weight × minmax(cross) + (1 − weight) × minmax(first)``; the cross-encoder's raw scores at weight 1.

    Example:
        >>> blend(np.array([0.0, 2.0]), np.array([1.0, 0.0]), 0.5).tolist()
        [0.5, 0.5]
    """
    cross = np.asarray(cross, dtype=np.float64)
    if weight >= 1.0:
        return cross
    return weight * _minmax(cross) + (1.0 - weight) * _minmax(np.asarray(first, dtype=np.float64))


def _minmax(values: np.ndarray) -> np.ndarray:
    if not values.size:
        return values
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.zeros_like(values)
