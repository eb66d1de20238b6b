"""Load Markdown and plain-text files from a folder into Haystack documents, cleaned."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from haystack import Document

from mlsearch.errors import CorpusError

logger = logging.getLogger(__name__)

MARKDOWN_SUFFIXES = frozenset({".md", ".markdown"})
TEXT_SUFFIXES = frozenset({".txt", ".text"})
SUPPORTED_SUFFIXES = MARKDOWN_SUFFIXES | TEXT_SUFFIXES

_FRONT_MATTER = re.compile(r"\A---[ \t]*\n(.*?)\n---[ \t]*(?:\n|\Z)", re.DOTALL)
_HTML_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_MD_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|~<>])")
_FENCE = re.compile(r"^\s*(```|~~~)")
_MANY_BLANKS = re.compile(r"\n{3,}")
_LEADING_HEADING = re.compile(r"\A#\s+(.+?)\s*#*\s*$", re.MULTILINE)


@dataclass(frozen=True)
class SkippedFile:
    """A corpus file that could not be read, and why."""

    path: Path
    reason: str


@dataclass
class LoadedCorpus:
    """The documents loaded from a folder and the files that were skipped."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)


def clean_text(text: str, markdown: bool = True) -> str:
    """Normalise a document's text without changing what it says.

    Line endings, BOM and non-breaking spaces are normalised, HTML comments dropped, trailing
    whitespace trimmed and runs of blank lines collapsed. In Markdown, backslash escapes such as
    ``train\\_test\\_split`` are undone outside fenced code, so that keyword search sees the words.

    Args:
        text: The raw text.
        markdown: Whether the text is Markdown (escapes are then undone outside code fences).

    Returns:
        The cleaned text.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    text = text.replace("\u00a0", " ").replace("\u200b", "")
    text = _HTML_COMMENT.sub("", text)
    lines: list[str] = []
    in_fence = False
    for line in text.split("\n"):
        if _FENCE.match(line):
            in_fence = not in_fence
        elif markdown and not in_fence:
            line = _MD_ESCAPE.sub(r"\1", line)
        lines.append(line.rstrip())
    return _MANY_BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _split_front_matter(text: str) -> tuple[dict[str, object], str]:
    match = _FRONT_MATTER.match(text)
    if not match:
        return {}, text
    meta = yaml.safe_load(match.group(1)) or {}
    if not isinstance(meta, dict):
        raise ValueError("front matter is not a mapping")
    return meta, text[match.end() :]


def _normalise_tags(raw: object) -> list[str]:
    if raw is None:
        return []
    if isinstance(raw, str):
        raw = [t for t in re.split(r"[,\s]+", raw) if t]
    if not isinstance(raw, list):
        raise ValueError(f"tags must be a list or a string, not {type(raw).__name__}")
    return sorted({str(t).strip().lower() for t in raw if str(t).strip()})


def load_file(path: Path, doc_id: str) -> Document:
    """Read one Markdown or text file into a Haystack document.

    Args:
        path: The file.
        doc_id: The document id (its path in the corpus, without the suffix).

    Returns:
        A document whose ``meta`` holds ``doc_id``, ``title``, ``tags``, ``path`` and ``format``.

    Raises:
        UnicodeDecodeError: The file is not UTF-8.
        ValueError: The front matter is not valid YAML or has the wrong shape.
    """
    raw = path.read_bytes().decode("utf-8")
    is_markdown = path.suffix.lower() in MARKDOWN_SUFFIXES
    meta: dict[str, object] = {}
    if is_markdown:
        try:
            meta, raw = _split_front_matter(raw.lstrip("\ufeff"))
        except yaml.YAMLError as exc:
            raise ValueError(f"front matter is not valid YAML ({str(exc).splitlines()[0]})") from exc
    content = clean_text(raw, markdown=is_markdown)
    title = meta.get("title")
    if not title and is_markdown:
        heading = _LEADING_HEADING.search(content)
        title = heading.group(1) if heading else None
    if not title:
        title = path.stem.replace("-", " ").replace("_", " ").strip().capitalize()
    extra = {k: v for k, v in meta.items() if k not in {"title", "tags"} and isinstance(v, str | int | float)}
    return Document(
        id=doc_id,
        content=content,
        meta={
            **extra,
            "doc_id": doc_id,
            "title": str(title).strip(),
            "tags": _normalise_tags(meta.get("tags")),
            "path": str(path),
            "format": "markdown" if is_markdown else "text",
        },
    )


def corpus_files(corpus_dir: Path) -> list[Path]:
    """The supported files under a folder (or the file itself), sorted; hidden files and folders ignored.

    Raises:
        CorpusError: The folder does not exist, or holds no supported file.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.exists():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")
    files = [corpus_dir] if corpus_dir.is_file() else sorted(
        p
        for p in corpus_dir.rglob("*")
        if p.is_file()
        and p.suffix.lower() in SUPPORTED_SUFFIXES
        and not any(part.startswith(".") for part in p.relative_to(corpus_dir).parts)
    )
    if not files:
        raise CorpusError(f"corpus folder has no Markdown or text files: {corpus_dir}")
    return files


def iter_corpus(corpus_dir: Path) -> Iterator[Document | SkippedFile]:
    """Load the corpus one file at a time: each readable document, or a :class:`SkippedFile` saying why not.

    Only one document's text is held at a time, so that a build's memory does not grow with the corpus.

    Raises:
        CorpusError: The folder does not exist, or holds no Markdown or text file.
    """
    corpus_dir = Path(corpus_dir)
    files = corpus_files(corpus_dir)
    root = corpus_dir.parent if corpus_dir.is_file() else corpus_dir
    for path in files:
        doc_id = path.relative_to(root).with_suffix("").as_posix()
        try:
            document = load_file(path, doc_id)
        except UnicodeDecodeError:
            yield SkippedFile(path, "not valid UTF-8 text")
            continue
        except (ValueError, OSError) as exc:
            yield SkippedFile(path, str(exc))
            continue
        if not document.content:
            yield SkippedFile(path, "empty after cleaning")
            continue
        yield document


def load_corpus(corpus_dir: Path) -> LoadedCorpus:
    """Load every Markdown and text file under a folder, skipping (and reporting) bad files.

    Args:
        corpus_dir: The folder; searched recursively, hidden files and folders ignored.

    Returns:
        The loaded documents (sorted by id) and the skipped files with their reasons.

    Raises:
        CorpusError: The folder does not exist, or holds no Markdown or text file.
    """
    result = LoadedCorpus()
    for item in iter_corpus(corpus_dir):
        if isinstance(item, SkippedFile):
            result.skipped.append(item)
        else:
            result.documents.append(item)
    for skipped in result.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)
    if not result.documents:
        raise CorpusError(f"no readable documents in {corpus_dir} ({len(result.skipped)} skipped)")
    return result
