"""Heading-aware, token-bounded chunking of Markdown and plain text.

Lengths are measured with the embedding model's own tokenizer (through a :class:`TokenCounter`), and no
chunk's embedding text exceeds the model's limit. Fenced code blocks, math blocks and table rows are kept
whole where they fit; one that is longer than the limit is split between lines (code, re-fenced) or between
rows (tables, with the header row repeated), never inside a line or a row unless that line alone is over
the limit.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from indexing.chunks import HEADING_SEPARATOR, Chunk, chunk_id, embedding_text
from indexing.document import Document

TokenCounter = Callable[[Sequence[str]], list[int]]
"""Counts the model tokens of each text, special tokens included."""

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```+|~~~+)")
_TABLE_ROW = re.compile(r"^\s*\|")
_TABLE_RULE = re.compile(r"^\s*\|?\s*:?-{2,}")
_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")


@dataclass(frozen=True)
class ChunkingConfig:
    """How to cut documents.

    Attributes:
        target_tokens: Chunks are packed up to about this many tokens.
        max_tokens: Hard limit for a chunk's embedding text (the model's ``max_seq_length``).
        overlap_tokens: Up to this many tokens of the previous chunk's closing sentences start the next
            chunk of the same section.
    """

    target_tokens: int = 200
    max_tokens: int = 256
    overlap_tokens: int = 32

    def __post_init__(self) -> None:
        if self.max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8, got {self.max_tokens}")
        if not 0 < self.target_tokens:
            raise ValueError(f"target_tokens must be positive, got {self.target_tokens}")
        if self.overlap_tokens < 0 or self.overlap_tokens >= self.target_tokens:
            raise ValueError(
                f"overlap_tokens must be in [0, target_tokens), got {self.overlap_tokens}"
            )


@dataclass(frozen=True)
class Block:
    """A unit of a document that chunking prefers not to cut: paragraph, code, math or table."""

    kind: str  # "text" | "code" | "math" | "table"
    text: str
    heading: tuple[str, ...]
    location: int | None = None  # the page or cell the block starts in, for paged or celled documents


def parse_blocks(
    text: str, title: str = "", markdown: bool = True, locations: Sequence[Sequence[int]] = ()
) -> list[Block]:
    """Split a document into blocks, each carrying the heading path above it.

    Args:
        text: The cleaned document text.
        title: The document title; a level-1 heading equal to it is not repeated in heading paths.
        markdown: Whether to read headings, fences and tables (plain text is split on blank lines).
        locations: ``[first_line, number]`` of each page or cell (see :mod:`indexing.loaders.base`); a block
            never spans two of them, and records the number of the one it is in.

    Returns:
        The blocks in document order.
    """
    blocks: list[Block] = []
    stack: list[tuple[int, str]] = []
    buffer: list[str] = []
    kind = "text"
    starts = {int(line): int(number) for line, number in locations}
    location: int | None = None

    def heading() -> tuple[str, ...]:
        return tuple(h for _, h in stack)

    def flush() -> None:
        nonlocal buffer, kind
        body = "\n".join(buffer).strip("\n")
        if body.strip():
            blocks.append(Block(kind, body, heading(), location))
        buffer, kind = [], "text"

    lines = text.split("\n")
    i = 0
    while i < len(lines):
        if i in starts:
            flush()
            location = starts[i]
        line = lines[i]
        if markdown and (fence := _FENCE.match(line)):
            flush()
            marker = fence.group(1)
            code = [line]
            i += 1
            while i < len(lines):
                code.append(lines[i])
                if lines[i].strip().startswith(marker[:3]) and lines[i].strip().strip(marker[0]) == "":
                    break
                i += 1
            buffer, kind = code, "code"
            flush()
        elif markdown and line.strip().startswith("$$"):
            flush()
            math = [line]
            closed = line.strip() != "$$" and line.strip().endswith("$$") and len(line.strip()) > 2
            while not closed and i + 1 < len(lines):
                i += 1
                math.append(lines[i])
                closed = lines[i].strip().endswith("$$")
            buffer, kind = math, "math"
            flush()
        elif markdown and (match := _HEADING.match(line)):
            flush()
            level, name = len(match.group(1)), match.group(2).strip()
            while stack and stack[-1][0] >= level:
                stack.pop()
            if not (level == 1 and name.lower() == title.strip().lower()) and name:
                stack.append((level, name))
        elif markdown and _TABLE_ROW.match(line):
            if kind != "table":
                flush()
                kind = "table"
            buffer.append(line)
        elif not line.strip():
            flush()
        else:
            if kind == "table":
                flush()
            buffer.append(line)
        i += 1
    flush()
    return blocks


class Chunker:
    """Cuts documents into token-bounded, heading-aware chunks.

    Args:
        count_tokens: The embedding model's token counter (special tokens included).
        config: Target, limit and overlap in tokens.
    """

    def __init__(self, count_tokens: TokenCounter, config: ChunkingConfig) -> None:
        self._count = count_tokens
        self.config = config

    # -- public -------------------------------------------------------------------------------------
    def chunk_document(self, document: Document) -> list[Chunk]:
        """Cut one document (as loaded by :func:`indexing.documents.load_corpus`) into chunks.

        Returns:
            The chunks in document order; each one's ``tokens`` is its exact embedding-text length,
            at most ``config.max_tokens``.
        """
        meta = document.meta
        title = str(meta.get("title", ""))
        doc_id = str(meta.get("doc_id", document.id))
        tags = tuple(meta.get("tags", ()))
        blocks = parse_blocks(
            document.content or "", title, markdown=meta.get("format") != "text", locations=meta.get("locations", ())
        )
        pieces: list[tuple[str, str, int | None]] = []  # (heading, text, location)
        for (section, location), section_blocks in _group_sections(blocks):
            heading = HEADING_SEPARATOR.join(section)
            for text in self._pack_section(title, heading, section_blocks):
                pieces.append((heading, text, location))
        lengths = self._count([embedding_text(title, h, t) for h, t, _ in pieces]) if pieces else []
        fitted: list[tuple[str, str, int, int | None]] = []
        for (heading, text, location), n in zip(pieces, lengths, strict=True):
            if n <= self.config.max_tokens:
                fitted.append((heading, text, n, location))
            else:  # the estimate was off (tokens across joins): split exactly
                fitted.extend((*piece, location) for piece in self._split_exact(title, heading, text))
        kind = meta.get("location_kind")
        source = {
            "source_type": str(meta.get("source_type") or meta.get("format") or ""),
            "path": str(meta.get("path") or ""),
            "url": str(meta.get("url") or ""),
        }
        seen: Counter[tuple[str, str]] = Counter()
        chunks = []
        for position, (heading, text, n, location) in enumerate(fitted):
            occurrence = seen[(heading, text)]
            seen[(heading, text)] += 1
            chunks.append(
                Chunk(
                    id=chunk_id(doc_id, heading, text, occurrence),
                    doc_id=doc_id,
                    title=title,
                    heading=heading,
                    text=text,
                    position=position,
                    tokens=n,
                    tags=tags,
                    page=location if kind == "page" else None,
                    cell=location if kind == "cell" else None,
                    **source,
                )
            )
        return chunks

    def chunk_documents(self, documents: Sequence[Document]) -> list[Chunk]:
        """Chunk several documents, in order."""
        return [chunk for document in documents for chunk in self.chunk_document(document)]

    # -- packing ------------------------------------------------------------------------------------
    def _body_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts without the special tokens (so that pieces add up)."""
        empty = self._count([""])[0]
        return [max(0, n - empty) for n in self._count(list(texts))] if texts else []

    def _pack_section(self, title: str, heading: str, blocks: Sequence[Block]) -> list[str]:
        cfg = self.config
        empty = self._count([""])[0]
        overhead = self._count([embedding_text(title, heading, "x")])[0] - self._body_tokens(["x"])[0]
        budget_max = cfg.max_tokens - overhead
        budget_target = max(1, min(cfg.target_tokens, cfg.max_tokens) - overhead)
        if budget_max < 4:  # a context line so long it leaves no room: drop it from the budget check
            budget_max = budget_target = max(4, cfg.max_tokens - empty)
        units: list[tuple[Block, int]] = []
        for block, n in zip(blocks, self._body_tokens([b.text for b in blocks]), strict=True):
            if n <= budget_max:
                units.append((block, n))
            else:
                soft = max(4, budget_target - (cfg.overlap_tokens if block.kind == "text" else 0))
                units.extend(self._split_block(block, soft, budget_max))
        out: list[str] = []
        current: list[Block] = []
        used = 0
        for block, n in units:
            too_small = used < budget_target // 4 and used + n <= budget_max  # keep a lead-in with what follows
            if current and used + n > budget_target and not too_small:
                out.append("\n\n".join(b.text for b in current))
                overlap = self._overlap(current) if block.kind == "text" else ""
                current, used = [], 0
                if overlap:
                    n_overlap = self._body_tokens([overlap])[0]
                    if n_overlap + n <= budget_max:
                        current, used = [Block("text", overlap, block.heading)], n_overlap
            current.append(block)
            used += n
        if current:
            out.append("\n\n".join(b.text for b in current))
        return out

    def _overlap(self, previous: Sequence[Block]) -> str:
        """The closing sentences of a chunk's trailing prose, up to ``overlap_tokens``, never all of it."""
        if self.config.overlap_tokens == 0:
            return ""
        tail: list[str] = []
        for block in reversed(previous):
            if block.kind != "text":
                break
            tail = _SENTENCE_END.split(" ".join(block.text.split())) + tail
        if len(tail) < 2:
            return ""
        lengths = self._body_tokens(tail)
        kept: list[str] = []
        total = 0
        for sentence, n in zip(reversed(tail[1:]), reversed(lengths[1:]), strict=True):
            if total + n > self.config.overlap_tokens:
                break
            kept.insert(0, sentence)
            total += n
        return " ".join(kept)

    # -- splitting oversized blocks -----------------------------------------------------------------
    def _split_block(self, block: Block, budget: int, hard: int) -> list[tuple[Block, int]]:
        """Cut a block longer than the limit into pieces of about ``budget`` tokens (at most ``hard``)."""
        if block.kind == "code":
            lines = block.text.split("\n")
            opening, body = lines[0], lines[1:]
            closing = body.pop() if body and _FENCE.match(body[-1]) else opening.strip()[:3]
            parts = self._pack_lines(body, budget, hard, lambda chunk: f"{opening}\n{chunk}\n{closing}")
        elif block.kind == "table":
            rows = block.text.split("\n")
            header = rows[:2] if len(rows) > 1 and _TABLE_RULE.match(rows[1]) else rows[:1]
            rest = rows[len(header) :]
            prefix = "\n".join(header)
            if self._body_tokens([prefix])[0] * 2 > hard:
                prefix = ""
            parts = self._pack_lines(rest, budget, hard, lambda chunk: f"{prefix}\n{chunk}" if prefix else chunk)
        else:
            units = [u for line in block.text.split("\n") for u in _SENTENCE_END.split(line)]
            parts = self._pack_lines(units, budget, hard, lambda chunk: chunk, joiner=" ")
        return [(Block(block.kind, p, block.heading), n) for p, n in zip(parts, self._body_tokens(parts), strict=True)]

    def _pack_lines(
        self, units: list[str], budget: int, hard: int, wrap: Callable[[str], str], joiner: str = "\n"
    ) -> list[str]:
        """Greedily pack lines (or sentences) into wrapped pieces of about ``budget`` tokens.

        A line longer than ``hard`` (the limit) is the only thing ever cut inside, between words.
        """
        overhead = self._body_tokens([wrap("x")])[0] - self._body_tokens(["x"])[0]
        soft = max(2, budget - overhead)
        room = max(2, hard - overhead)
        pieces: list[str] = []
        current: list[str] = []
        used = 0
        for unit, n in zip(units, self._body_tokens(units), strict=True):
            if n > room:  # a single line longer than the limit: cut it between words
                if current:
                    pieces.append(wrap(joiner.join(current)))
                    current, used = [], 0
                pieces.extend(wrap(w) for w in self._split_words(unit, room))
                continue
            if current and used + n > soft:
                pieces.append(wrap(joiner.join(current)))
                current, used = [], 0
            current.append(unit)
            used += n
        if current:
            pieces.append(wrap(joiner.join(current)))
        return pieces

    def _split_words(self, text: str, room: int) -> list[str]:
        words = text.split(" ")
        if len(words) == 1:  # no spaces at all: cut by characters
            half = max(1, len(text) // 2)
            parts = [text[:half], text[half:]]
        else:
            half = len(words) // 2
            parts = [" ".join(words[:half]), " ".join(words[half:])]
        out: list[str] = []
        for part, n in zip(parts, self._body_tokens(parts), strict=True):
            out.extend([part] if n <= room or len(part) <= 1 else self._split_words(part, room))
        return out

    def _split_exact(self, title: str, heading: str, text: str) -> list[tuple[str, str, int]]:
        """Split a piece whose exact length is over the limit in two, recursively."""
        paragraphs = text.split("\n\n")
        if len(paragraphs) > 1:
            half = len(paragraphs) // 2
            parts = ["\n\n".join(paragraphs[:half]), "\n\n".join(paragraphs[half:])]
        else:
            parts = self._split_words(text, max(2, len(text.split(" ")) // 2)) if " " in text else [
                text[: len(text) // 2],
                text[len(text) // 2 :],
            ]
            parts = parts[:1] + [" ".join(parts[1:])] if len(parts) > 2 else parts
        out: list[tuple[str, str, int]] = []
        lengths = self._count([embedding_text(title, heading, p) for p in parts])
        for part, n in zip(parts, lengths, strict=True):
            if n <= self.config.max_tokens or len(part) <= 1:
                out.append((heading, part, n))
            else:
                out.extend(self._split_exact(title, heading, part))
        return out


def _group_sections(
    blocks: Sequence[Block],
) -> list[tuple[tuple[tuple[str, ...], int | None], list[Block]]]:
    """Runs of blocks under the same heading path and in the same page or cell (a chunk never spans two)."""
    groups: list[tuple[tuple[tuple[str, ...], int | None], list[Block]]] = []
    for block in blocks:
        key = (block.heading, block.location)
        if groups and groups[-1][0] == key:
            groups[-1][1].append(block)
        else:
            groups.append((key, [block]))
    return groups
