"""Document-level scores from a ranked list of chunks: the best chunk's score, or the sum of the top ``n``.

For BEIR-style evaluation, where documents rather than chunks are judged. ``max`` scores a document by its best
chunk; ``sum`` adds its ``top_n`` best chunk scores (after shifting the list so that its lowest score is 0, so
that negative scores never lower a document for having more matching chunks).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np

AGGREGATES: tuple[str, ...] = ("max", "sum")


@dataclass(frozen=True)
class DocScoring:
    """How chunk scores become a document's score.

    Attributes:
        aggregate: ``max`` (the best chunk) or ``sum`` (of the ``top_n`` best chunks).
        top_n: Chunks summed per document (``sum`` only).
        source: Where the choice came from (``default`` or ``mlsearch tune``).

    Raises:
        ValueError: An unknown aggregate or ``top_n`` below 1.
    """

    aggregate: Literal["max", "sum"] = "max"
    top_n: int = 1
    source: str = "default"

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"unknown aggregate {self.aggregate!r}; valid: {', '.join(AGGREGATES)}")
        if self.top_n < 1:
            raise ValueError(f"top_n must be at least 1, got {self.top_n}")

    def label(self) -> str:
        """``max`` or ``sum-top-N``."""
        return "max" if self.aggregate == "max" else f"sum-top-{self.top_n}"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (as stored in an index manifest)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DocScoring:
        """The scoring a :meth:`to_dict` dict describes (unknown keys are ignored)."""
        return cls(**{k: v for k, v in data.items() if k in {"aggregate", "top_n", "source"}})


def document_scores(
    ranked: Sequence[tuple[int, float]], labels: Sequence[str], k: int, scoring: DocScoring | None = None
) -> dict[str, float]:
    """Rank labels (documents) from ranked positions (chunks).

    Args:
        ranked: ``(position, score)`` pairs, best first.
        labels: Position → label (a document id, or a chunk id for chunk-level runs).
        k: How many labels to keep.
        scoring: How to score a label (``max`` when omitted).

    Returns:
        Label → score, best first, with scores strictly decreasing (a tie is lowered by one float step, keeping
        the order in which labels first appeared).

    Example:
        >>> document_scores([(0, 0.9), (1, 0.8), (2, 0.85)], ["a", "a", "b"], 10)
        {'a': 0.9, 'b': 0.85}
    """
    scoring = scoring or DocScoring()
    totals: dict[str, float] = {}
    if scoring.aggregate == "max" or not ranked:
        for position, score in ranked:
            totals.setdefault(labels[position], float(score))
    else:
        floor = min(float(s) for _, s in ranked)
        counts: dict[str, int] = {}
        for position, score in ranked:
            label = labels[position]
            if counts.get(label, 0) < scoring.top_n:
                totals[label] = totals.get(label, 0.0) + float(score) - floor
                counts[label] = counts.get(label, 0) + 1
    first = {label: i for i, label in enumerate(totals)}
    order = sorted(totals, key=lambda label: (-totals[label], first[label]))[:k]
    out: dict[str, float] = {}
    previous = np.inf
    for label in order:
        value = totals[label] if totals[label] < previous else float(np.nextafter(previous, -np.inf))
        out[label] = value
        previous = value
    return out
