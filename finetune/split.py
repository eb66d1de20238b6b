"""Train/dev split of synthetic queries by a unit of text (document, section or block), without leakage.

The unit is the largest one that gives enough pieces to hold some out: whole **documents** when the corpus has
at least ``min_units`` of them; else top-level **sections** (the first part of the heading path, within each
document), so that one long file of notes can still be split; else contiguous **blocks** of chunks in document
order. Queries go with their source chunk, so they stay on its side.

Text must not straddle the split either. Chunks of one section may overlap (the chunker repeats the closing
sentences of a chunk at the start of the next), and notes repeat themselves. So a training chunk is *purged*
(its queries are dropped, and it is never a hard negative) when it sits next to a held-out chunk of the same
section, or shares a run of :data:`SHINGLE_WORDS` words with any held-out chunk. Held-out queries are never
dropped: the gate measures on all of them.
"""

from __future__ import annotations

import logging
import math
import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from finetune.queries import SyntheticQuery
from indexing.chunks import HEADING_SEPARATOR, Chunk
from mlsearch.errors import FinetuneError

logger = logging.getLogger(__name__)

UNITS: tuple[str, ...] = ("document", "section", "block")
MIN_UNITS = 5
"""Fewest units (with queries) a split needs: with 20% held out, at least one unit on the dev side."""
SHINGLE_WORDS = 8
"""Two chunks that share a run of this many words count as overlapping."""
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class QuerySplit:
    """Synthetic queries split by the unit of their source chunk.

    Attributes:
        train: Queries whose chunk is on the training side and not purged.
        dev: Queries whose chunk is held out (used only by the promotion gate).
        unit: What was held out: ``document``, ``section`` or ``block``.
        train_units: The training units.
        dev_units: The held-out units.
        train_positions: Index positions of the chunks that may reach training (positives and negatives).
        train_docs: Documents with a chunk on the training side.
        dev_docs: Documents with a held-out chunk (the same as ``train_docs`` when a document is cut in two).
        purged_chunks: Training-side chunks left out because they overlap a held-out chunk.
        purged_queries: Training queries dropped with them.
        chunk_units: The unit of every chunk position.
    """

    train: list[SyntheticQuery]
    dev: list[SyntheticQuery]
    unit: str
    train_units: frozenset[str]
    dev_units: frozenset[str]
    train_positions: frozenset[int]
    train_docs: frozenset[str]
    dev_docs: frozenset[str]
    purged_chunks: int = 0
    purged_queries: int = 0
    chunk_units: dict[int, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        """Counts for reports and lineage."""
        return {"unit": self.unit, "train_queries": len(self.train), "dev_queries": len(self.dev),
                "train_units": len(self.train_units), "dev_units": len(self.dev_units),
                "train_documents": len(self.train_docs), "dev_documents": len(self.dev_docs),
                "purged_chunks": self.purged_chunks, "purged_train_queries": self.purged_queries}


def describe_split(info: dict[str, Any]) -> str:
    """One sentence for the model card and the report, from the ``split`` part of a lineage."""
    unit = info.get("unit", "document")
    text = (f"held out by {unit}: {info.get('train_units', info['train_documents'])} training {unit}s "
            f"({info['train_queries']} queries), {info.get('dev_units', info['dev_documents'])} held-out "
            f"{unit}s ({info['dev_queries']} dev queries that never reached training)")
    if unit != "document":
        text += f", in {info['dev_documents']} document(s)"
    if info.get("purged_train_queries"):
        text += (f"; {info['purged_train_queries']} training queries of {info['purged_chunks']} chunks that "
                 "overlap a held-out chunk were dropped")
    return text


def split_queries(
    queries: Sequence[SyntheticQuery],
    chunks: Sequence[tuple[int, Chunk]],
    dev_fraction: float = 0.2,
    seed: int = 0,
    unit: str = "auto",
    min_units: int = MIN_UNITS,
) -> QuerySplit:
    """Hold out about ``dev_fraction`` of the queries by unit of text, and purge overlapping training chunks.

    Documents are held out as before: a random ``dev_fraction`` of them (at least one, never all). Sections and
    blocks differ much in size, so they are drawn at random until they hold ``dev_fraction`` of the queries
    (skipping one that would take more than twice that).

    Args:
        queries: Synthetic queries (their ``position`` is the chunk's position in ``chunks``).
        chunks: The index's ``(position, chunk)`` pairs.
        dev_fraction: Share held out, in (0, 1).
        seed: Seeds the choice of units.
        unit: ``auto`` (the first of :data:`UNITS` with ``min_units`` units that have queries), or one of them.
        min_units: Fewest units that ``auto`` accepts.

    Raises:
        ValueError: ``dev_fraction`` outside (0, 1), or an unknown ``unit``.
        FinetuneError: The queries come from fewer than two units, so nothing can be held out.
    """
    if not 0.0 < dev_fraction < 1.0:
        raise ValueError(f"dev fraction must be between 0 and 1, got {dev_fraction}")
    if unit not in ("auto", *UNITS):
        raise ValueError(f"unknown split unit {unit!r}; choose auto, {', '.join(UNITS)}")
    chunk_at = dict(chunks)
    missing = {q.position for q in queries} - chunk_at.keys()
    if missing:
        raise ValueError(f"queries refer to chunk positions that are not given: {sorted(missing)[:5]}")
    labels, unit = _choose_unit(queries, chunks, unit, min_units, dev_fraction)
    sizes: dict[str, int] = defaultdict(int)
    for query in queries:
        sizes[labels[query.position]] += 1
    if len(sizes) < 2:
        raise FinetuneError(
            f"the synthetic queries come from {len(sizes)} {unit}(s); at least 2 are needed to hold one out; "
            "give a larger corpus or generate more queries"
        )
    if unit == "document":
        dev_units = _draw_by_count(sorted(sizes), dev_fraction, seed)
    else:
        dev_units = _draw_by_share(sizes, dev_fraction, seed)
    dev_positions = {p for p, _ in chunks if labels[p] in dev_units}
    purged = _overlapping(chunks, dev_positions)
    train_positions = frozenset(p for p, _ in chunks if p not in dev_positions and p not in purged)
    train = [q for q in queries if q.position in train_positions]
    dev = [q for q in queries if q.position in dev_positions]
    split = QuerySplit(
        train=train, dev=dev, unit=unit,
        train_units=frozenset(sizes.keys() - dev_units), dev_units=frozenset(dev_units),
        train_positions=train_positions,
        train_docs=frozenset(chunk_at[p].doc_id for p in train_positions),
        dev_docs=frozenset(chunk_at[p].doc_id for p in dev_positions),
        purged_chunks=len(purged), purged_queries=len(queries) - len(train) - len(dev), chunk_units=labels,
    )
    logger.info("split by %s: %s", unit, split.describe())
    return split


# -- units -------------------------------------------------------------------------------------------------
def _choose_unit(
    queries: Sequence[SyntheticQuery], chunks: Sequence[tuple[int, Chunk]], unit: str, min_units: int,
    dev_fraction: float,
) -> tuple[dict[int, str], str]:
    """The unit label of every chunk position, for the chosen unit."""
    with_queries = {q.position for q in queries}
    candidates = UNITS if unit == "auto" else (unit,)
    for name in candidates:
        labels = _labels(name, chunks, dev_fraction, min_units)
        if name == candidates[-1] or len({labels[p] for p in with_queries}) >= min_units:
            return labels, name
    raise AssertionError("unreachable")  # pragma: no cover


def _labels(unit: str, chunks: Sequence[tuple[int, Chunk]], dev_fraction: float, min_units: int) -> dict[int, str]:
    if unit == "document":
        return {p: c.doc_id for p, c in chunks}
    if unit == "section":
        return {p: f"{c.doc_id}{HEADING_SEPARATOR}{c.heading.split(HEADING_SEPARATOR)[0]}" for p, c in chunks}
    # blocks: about max(min_units, 2 / dev_fraction) contiguous runs of chunks, never across documents
    n_blocks = max(min_units, math.ceil(2 / dev_fraction))
    size = max(1, math.ceil(len(chunks) / n_blocks))
    labels = {}
    for doc, members in _by_document(chunks).items():
        for i, (p, _) in enumerate(members):
            labels[p] = f"{doc}#block{i // size}"
    return labels


def _by_document(chunks: Sequence[tuple[int, Chunk]]) -> dict[str, list[tuple[int, Chunk]]]:
    grouped: dict[str, list[tuple[int, Chunk]]] = defaultdict(list)
    for p, chunk in chunks:
        grouped[chunk.doc_id].append((p, chunk))
    return {doc: sorted(members, key=lambda item: (item[1].position, item[0])) for doc, members in grouped.items()}


def _draw_by_count(units: list[str], dev_fraction: float, seed: int) -> set[str]:
    """A random ``dev_fraction`` of the units (at least one, never all)."""
    random.Random(seed).shuffle(units)
    n_dev = min(len(units) - 1, max(1, math.ceil(dev_fraction * len(units))))
    return set(units[:n_dev])


def _draw_by_share(sizes: dict[str, int], dev_fraction: float, seed: int) -> set[str]:
    """Random units until they hold ``dev_fraction`` of the queries; one that overshoots twice that is skipped."""
    order = sorted(sizes)
    random.Random(seed).shuffle(order)
    total = sum(sizes.values())
    target = dev_fraction * total
    dev: set[str] = set()
    held = 0
    for name in order:
        if held >= target:
            break
        if held + sizes[name] <= max(2 * target, 1) and held + sizes[name] < total:
            dev.add(name)
            held += sizes[name]
    if not dev:  # every unit is larger than twice the target: take the smallest
        dev.add(min(order, key=lambda name: (sizes[name], order.index(name))))
    return dev


# -- overlap -----------------------------------------------------------------------------------------------
def _shingles(text: str) -> set[tuple[str, ...]]:
    words = _WORD.findall(text.lower())
    if len(words) < SHINGLE_WORDS:
        return {tuple(words)} if words else set()
    return {tuple(words[i : i + SHINGLE_WORDS]) for i in range(len(words) - SHINGLE_WORDS + 1)}


def _overlapping(chunks: Sequence[tuple[int, Chunk]], dev_positions: set[int]) -> set[int]:
    """Training-side chunks next to a held-out chunk of the same section, or sharing a word run with one."""
    purged: set[int] = set()
    for members in _by_document(chunks).values():
        for (p, a), (q, b) in zip(members, members[1:], strict=False):
            if a.heading == b.heading and (p in dev_positions) != (q in dev_positions):
                purged.add(q if p in dev_positions else p)
    held_out: set[tuple[str, ...]] = set()
    for p, chunk in chunks:
        if p in dev_positions:
            held_out |= _shingles(chunk.text)
    for p, chunk in chunks:
        if p not in dev_positions and not _shingles(chunk.text).isdisjoint(held_out):
            purged.add(p)
    return purged
