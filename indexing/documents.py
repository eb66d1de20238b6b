"""Load the supported files of a folder (Markdown, text, PDF, HTML, notebooks) into documents."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from indexing.document import Document
from indexing.loaders.base import clean_text, normalise_tags
from indexing.loaders.dispatch import SUPPORTED_SUFFIXES, load_bytes, source_type_for
from mlsearch.errors import CorpusError, DocumentError

logger = logging.getLogger(__name__)

__all__ = [
    "CorpusFile", "LoadedCorpus", "SkippedFile", "clean_text", "iter_corpus", "load_corpus", "load_file",
    "normalise_tags",
]


@dataclass(frozen=True)
class SkippedFile:
    """A corpus file that could not be read (or part of one, such as a scanned PDF page), and why."""

    path: Path
    reason: str


@dataclass
class LoadedCorpus:
    """The documents loaded from a folder, the files that were skipped, and notes on the loaded ones."""

    documents: list[Document] = field(default_factory=list)
    skipped: list[SkippedFile] = field(default_factory=list)
    notes: list[SkippedFile] = field(default_factory=list)


def load_file(path: Path, doc_id: str) -> Document:
    """Read one supported file into a document.

    Args:
        path: The file.
        doc_id: The document id (its path in the corpus, without the suffix).

    Returns:
        A document whose ``meta`` holds ``doc_id``, ``title``, ``tags``, ``path``, ``format`` and
        ``source_type`` (see :mod:`indexing.loaders.base`).

    Raises:
        UnsupportedDocumentError: Not a supported file type.
        DocumentError: The file cannot be read or holds no text (the message says why).
    """
    return load_bytes(path.read_bytes(), str(path), doc_id).document


def document_id_for(path: Path, root: Path) -> str:
    """A file's document id: its path under the corpus root, without the suffix, with ``/`` separators."""
    return path.relative_to(root).with_suffix("").as_posix()


def corpus_files(corpus_dir: Path) -> list[Path]:
    """Every visible file under a folder (or the file itself), sorted; hidden files and folders left out."""
    if corpus_dir.is_file():
        return [corpus_dir]
    return sorted(
        p for p in corpus_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(corpus_dir).parts)
    )


def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(2048)


@dataclass(frozen=True)
class CorpusFile:
    """One file of a corpus as loaded: its document, or why it was skipped, and notes on it."""

    path: Path
    document: Document | None = None
    skipped: SkippedFile | None = None
    notes: tuple[SkippedFile, ...] = ()


def iter_corpus(corpus_dir: Path) -> Iterator[CorpusFile]:
    """Load the supported files under a folder one at a time, in document-id order (unsupported ones first).

    Only one document's text is held at a time, so that a build's memory does not grow with the corpus.

    Raises:
        CorpusError: The folder does not exist, or holds no supported file.
    """
    corpus_dir = Path(corpus_dir)
    if not corpus_dir.exists():
        raise CorpusError(f"corpus folder not found: {corpus_dir}")
    files: list[Path] = []
    unsupported: list[CorpusFile] = []
    for path in corpus_files(corpus_dir):
        if source_type_for(path.name, _head(path)) is None:
            reason = f"unsupported file type ({path.suffix or 'no extension'})"
            unsupported.append(CorpusFile(path, skipped=SkippedFile(path, reason)))
        else:
            files.append(path)
    if not files:
        raise CorpusError(
            f"corpus folder has no Markdown, text, PDF, HTML or notebook files "
            f"({', '.join(sorted(SUPPORTED_SUFFIXES))}): {corpus_dir}"
        )
    yield from unsupported
    root = corpus_dir.parent if corpus_dir.is_file() else corpus_dir
    first_file: dict[str, Path] = {}
    for path in sorted(files, key=lambda p: (document_id_for(p, root), p)):
        doc_id = document_id_for(path, root)
        if doc_id in first_file:  # e.g. notes.md beside notes.pdf: one id, one document
            reason = f"same document id {doc_id!r} as {first_file[doc_id].name}; rename one of them"
            yield CorpusFile(path, skipped=SkippedFile(path, reason))
            continue
        first_file[doc_id] = path
        try:
            loaded = load_bytes(path.read_bytes(), str(path), doc_id)
        except (DocumentError, OSError) as exc:
            reason = str(exc).removeprefix(f"{path}: ")
            reason = reason if reason != "nothing to index (empty after extraction)" else "empty after cleaning"
            yield CorpusFile(path, skipped=SkippedFile(path, reason))
            continue
        yield CorpusFile(path, loaded.document, notes=tuple(SkippedFile(path, note) for note in loaded.notes))


def load_corpus(corpus_dir: Path) -> LoadedCorpus:
    """Load every supported file under a folder, skipping (and reporting) unsupported and bad files.

    Args:
        corpus_dir: The folder; searched recursively, hidden files and folders ignored.

    Returns:
        The loaded documents (in document-id order), the skipped files with their reasons, and notes (such as PDF
        pages without a text layer).

    Raises:
        CorpusError: The folder does not exist, or holds no supported file.
    """
    result = LoadedCorpus()
    for item in iter_corpus(corpus_dir):
        if item.skipped is not None:
            result.skipped.append(item.skipped)
        if item.document is not None:
            result.documents.append(item.document)
        result.notes.extend(item.notes)
    for skipped in result.skipped:
        logger.warning("skipped %s: %s", skipped.path, skipped.reason)
    for note in result.notes:
        logger.warning("%s: %s", note.path, note.reason)
    if not result.documents:
        raise CorpusError(f"no readable documents in {corpus_dir} ({len(result.skipped)} skipped)")
    return result
