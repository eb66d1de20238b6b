"""Evaluation datasets: BEIR folders, the built-in set for ``corpus/``, and answer-span query files.

Three shapes are read, all into one :class:`EvalDataset`:

* **BEIR** (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``): judged at the level of the dataset's
  documents; its corpus is indexed into a temporary index (see :mod:`evaluation.indexes`).
* **Qrels over a folder corpus** (``queries.jsonl`` and ``qrels/<split>.tsv`` without ``corpus.jsonl``): the
  corpus ids are document ids of a Markdown/text folder (a file's path without its suffix). The built-in set,
  ``builtin``, is one: ``evaluation/builtin/`` judged against ``corpus/``.
* **Answer spans** (a ``.tsv`` file of ``id``, ``query``, ``evidence``): judged per chunk; a chunk is relevant
  when its text contains the evidence once case, punctuation and whitespace are normalised
  (:func:`span_qrels`), so one set of questions can judge any corpus and any chunking.

Every malformed line is a :class:`~mlsearch.errors.DatasetError` that names the file and the line.
"""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from indexing.chunks import Chunk
from mlsearch.errors import DatasetError
from search.query_file import json_object

logger = logging.getLogger(__name__)

BUILTIN_NAME = "builtin"
BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"
CORPUS_FILE = "corpus.jsonl"
QUERIES_FILE = "queries.jsonl"
SPAN_HEADER = ("id", "query", "evidence")
_WHITESPACE = re.compile(r"\s")

Kind = Literal["beir", "qrels", "spans"]
Level = Literal["document", "chunk"]


@dataclass(frozen=True)
class BeirDocument:
    """One line of a BEIR ``corpus.jsonl``."""

    id: str
    title: str
    text: str


@dataclass
class EvalDataset:
    """Queries and their judgements, and where the judged corpus is.

    Attributes:
        name: A short name for reports (``builtin``, the folder's or the file's name).
        kind: ``beir`` (has its own ``corpus.jsonl``), ``qrels`` (judges a Markdown/text folder by document
            id) or ``spans`` (answer-span questions, judged per chunk).
        level: ``document`` (run ids are document ids) or ``chunk`` (run ids are chunk ids).
        queries: Query id → text, for every query that is evaluated.
        qrels: Query id → {document id: grade}; grades above 0 are relevant. Empty for ``spans`` until
            :func:`span_qrels` resolves it against an index's chunks.
        evidence: Query id → evidence text (``spans`` only).
        source: The dataset folder or file.
        corpus_file: The BEIR ``corpus.jsonl`` (``beir`` only).
        corpus_dir: The Markdown/text folder judged (``qrels`` and ``spans``).
        fingerprint: sha256 of the dataset's files (queries, judgements and ``corpus.jsonl``).
        skipped_queries: Ids of queries left out because no judgement marks anything relevant.
    """

    name: str
    kind: Kind
    level: Level
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    source: Path
    fingerprint: str
    evidence: dict[str, str] = field(default_factory=dict)
    corpus_file: Path | None = None
    corpus_dir: Path | None = None
    skipped_queries: list[str] = field(default_factory=list)

    def describe(self) -> dict[str, object]:
        """A JSON-ready summary for reports."""
        return {
            "name": self.name, "kind": self.kind, "level": self.level, "source": str(self.source),
            "queries": len(self.queries), "judgements": sum(len(v) for v in self.qrels.values()),
            "corpus": str(self.corpus_file or self.corpus_dir or ""), "fingerprint": self.fingerprint,
            "skipped_queries": len(self.skipped_queries),
        }


def load_dataset(
    name_or_path: str | Path, corpus_dir: Path | None = None, split: str = "test"
) -> EvalDataset:
    """Load an evaluation dataset by name (``builtin``) or path.

    Args:
        name_or_path: ``builtin``; a BEIR folder; a folder with ``queries.jsonl`` and ``qrels/`` that judges a
            Markdown/text corpus; or an answer-span ``.tsv`` file.
        corpus_dir: The Markdown/text folder judged by a ``qrels`` or ``spans`` dataset (``corpus/`` of the
            project when not given). Ignored for BEIR folders, which carry their corpus.
        split: The qrels file to read, ``qrels/<split>.tsv``.

    Returns:
        The dataset, with only the queries that have at least one relevant judgement (``spans``: all).

    Raises:
        DatasetError: The dataset is missing or malformed (the message names the file and line).

    Example:
        >>> ds = load_dataset("builtin")  # doctest: +SKIP
        >>> ds.level, len(ds.queries)  # doctest: +SKIP
        ('document', 60)
    """
    if str(name_or_path) == BUILTIN_NAME:
        return _load_qrels_folder(BUILTIN_DIR, corpus_dir or Path("corpus"), split, name=BUILTIN_NAME)
    path = Path(name_or_path)
    if not path.exists():
        raise DatasetError(f"dataset not found: {path} (give 'builtin', a BEIR folder or an answer-span .tsv)")
    if path.is_file():
        if path.suffix.lower() not in {".tsv", ".txt"}:
            raise DatasetError(f"{path}: an answer-span file must be a .tsv of id, query, evidence")
        return load_span_file(path, corpus_dir or Path("corpus"))
    if (path / CORPUS_FILE).is_file():
        return _load_beir(path, split)
    if (path / QUERIES_FILE).is_file():
        return _load_qrels_folder(path, corpus_dir or Path("corpus"), split, name=path.name)
    raise DatasetError(
        f"{path}: not a dataset (expected {CORPUS_FILE}, {QUERIES_FILE} and qrels/{split}.tsv)"
    )


# -- readers -----------------------------------------------------------------------------------------------
def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, object]]]:
    """Yield ``(line number, object)`` for each non-blank line of a JSON-lines file."""
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        try:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                yield number, json_object(line, f"{path}:{number}")
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: not valid UTF-8 text") from None


def _field(value: dict[str, object], key: str, path: Path, number: int, required: bool = True) -> str:
    raw = value.get(key)
    if raw is None:
        if required:
            raise DatasetError(f"{path}:{number}: missing field {key!r}")
        return ""
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise DatasetError(f"{path}:{number}: field {key!r} must be a string, got {type(raw).__name__}")
    return str(raw)


def _check_id(identifier: str, path: Path, number: int) -> str:
    if not identifier or _WHITESPACE.search(identifier):
        raise DatasetError(f"{path}:{number}: id {identifier!r} is empty or contains whitespace")
    return identifier


def read_queries(path: Path) -> dict[str, str]:
    """Read a BEIR ``queries.jsonl`` (``{"_id", "text"}`` per line).

    Raises:
        DatasetError: Missing file, bad JSON, missing or empty fields, or a repeated id (with its line).
    """
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    queries: dict[str, str] = {}
    for number, value in _jsonl(path):
        qid = _check_id(_field(value, "_id", path, number), path, number)
        text = _field(value, "text", path, number).strip()
        if not text:
            raise DatasetError(f"{path}:{number}: query {qid!r} has an empty text")
        if qid in queries:
            raise DatasetError(f"{path}:{number}: query id {qid!r} appears twice")
        queries[qid] = text
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return queries


def read_qrels(path: Path, queries: dict[str, str] | None = None) -> dict[str, dict[str, int]]:
    """Read a BEIR qrels file: tab-separated ``query-id``, ``corpus-id``, ``score``, with an optional header.

    Args:
        path: The ``.tsv`` file.
        queries: When given, every query id must be one of these.

    Raises:
        DatasetError: Missing file, wrong number of fields, a score that is not an integer, an unknown query
            id, or a pair judged twice (with its line).
    """
    if not path.is_file():
        raise DatasetError(f"missing {path}")
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not valid UTF-8 text") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.rstrip("\r").split("\t")
        if len(parts) != 3:
            raise DatasetError(
                f"{path}:{number}: expected 3 tab-separated fields (query-id, corpus-id, score), got {len(parts)}"
            )
        qid, doc_id, raw_score = (p.strip() for p in parts)
        if number == 1 and not _is_int(raw_score):
            continue  # header row
        if not _is_int(raw_score):
            raise DatasetError(f"{path}:{number}: score {raw_score!r} is not an integer")
        _check_id(qid, path, number)
        _check_id(doc_id, path, number)
        if queries is not None and qid not in queries:
            raise DatasetError(f"{path}:{number}: query id {qid!r} is not in the queries file")
        judged = qrels.setdefault(qid, {})
        if doc_id in judged:
            raise DatasetError(f"{path}:{number}: query {qid!r} judges {doc_id!r} twice")
        judged[doc_id] = int(float(raw_score))
    if not qrels:
        raise DatasetError(f"{path}: no judgements")
    return qrels


def _is_int(text: str) -> bool:
    try:
        return float(text).is_integer()
    except ValueError:
        return False


def iter_beir_corpus(path: Path) -> Iterator[BeirDocument]:
    """Stream the documents of a BEIR ``corpus.jsonl`` (``{"_id", "title"?, "text"}`` per line).

    Raises:
        DatasetError: Bad JSON, a missing ``_id`` or ``text``, a bad id or a repeated id (with its line).
    """
    seen: set[str] = set()
    for number, value in _jsonl(path):
        doc_id = _check_id(_field(value, "_id", path, number), path, number)
        if doc_id in seen:
            raise DatasetError(f"{path}:{number}: document id {doc_id!r} appears twice")
        seen.add(doc_id)
        yield BeirDocument(
            id=doc_id, title=_field(value, "title", path, number, required=False).strip(),
            text=_field(value, "text", path, number),
        )


def file_fingerprint(*paths: Path) -> str:
    """sha256 over the bytes of the files, in the order given."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023 - used at once
                digest.update(block)
        digest.update(b"\x00")
    return digest.hexdigest()


def _relevant_only(
    queries: dict[str, str], qrels: dict[str, dict[str, int]], qrels_path: Path
) -> tuple[dict[str, str], dict[str, dict[str, int]], list[str]]:
    keep = [q for q in queries if any(g > 0 for g in qrels.get(q, {}).values())]
    skipped = [q for q in queries if q not in set(keep)]
    if not keep:
        raise DatasetError(f"{qrels_path}: no query has a relevant judgement (a score above 0)")
    return {q: queries[q] for q in keep}, {q: qrels[q] for q in keep}, skipped


def _load_beir(folder: Path, split: str) -> EvalDataset:
    queries_path, qrels_path = folder / QUERIES_FILE, folder / "qrels" / f"{split}.tsv"
    queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path, queries)
    queries, qrels, skipped = _relevant_only(queries, qrels, qrels_path)
    return EvalDataset(
        name=folder.resolve().name, kind="beir", level="document", queries=queries, qrels=qrels,
        source=folder, corpus_file=folder / CORPUS_FILE, skipped_queries=skipped,
        fingerprint=file_fingerprint(queries_path, qrels_path, folder / CORPUS_FILE),
    )


def _load_qrels_folder(folder: Path, corpus_dir: Path, split: str, name: str) -> EvalDataset:
    queries_path, qrels_path = folder / QUERIES_FILE, folder / "qrels" / f"{split}.tsv"
    queries = read_queries(queries_path)
    qrels = read_qrels(qrels_path, queries)
    queries, qrels, skipped = _relevant_only(queries, qrels, qrels_path)
    return EvalDataset(
        name=name, kind="qrels", level="document", queries=queries, qrels=qrels, source=folder,
        corpus_dir=corpus_dir, skipped_queries=skipped, fingerprint=file_fingerprint(queries_path, qrels_path),
    )


# -- answer spans ------------------------------------------------------------------------------------------
def load_span_file(path: Path, corpus_dir: Path) -> EvalDataset:
    """Read an answer-span file: one ``id<TAB>query<TAB>evidence`` per line, an optional header row.

    Args:
        path: The ``.tsv`` file.
        corpus_dir: The Markdown/text folder the questions are asked of.

    Raises:
        DatasetError: Wrong number of fields, an empty query or evidence, or a repeated id (with its line).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError:
        raise DatasetError(f"{path}: not valid UTF-8 text") from None
    queries: dict[str, str] = {}
    evidence: dict[str, str] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        if len(parts) != 3:
            raise DatasetError(f"{path}:{number}: expected 3 tab-separated fields (id, query, evidence), "
                               f"got {len(parts)}")
        if not queries and tuple(p.lower() for p in parts) == SPAN_HEADER:
            continue
        qid, query, span = parts
        _check_id(qid, path, number)
        if not query:
            raise DatasetError(f"{path}:{number}: query {qid!r} is empty")
        if not normalize_text(span):
            raise DatasetError(f"{path}:{number}: query {qid!r} has no evidence text")
        if qid in queries:
            raise DatasetError(f"{path}:{number}: query id {qid!r} appears twice")
        queries[qid], evidence[qid] = query, span
    if not queries:
        raise DatasetError(f"{path}: no queries")
    return EvalDataset(
        name=path.stem, kind="spans", level="chunk", queries=queries, qrels={}, evidence=evidence, source=path,
        corpus_dir=corpus_dir, fingerprint=file_fingerprint(path),
    )


def normalize_text(text: str) -> str:
    """Case-folded text with punctuation turned into spaces and runs of whitespace collapsed.

    Example:
        >>> normalize_text("Adam's  learning-rate,\\nper PARAMETER.")
        'adam s learning rate per parameter'
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(ch if ch.isalnum() else " " for ch in text)
    return " ".join(kept.split())


def span_qrels(
    evidence: dict[str, str], chunks: Iterable[Chunk]
) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Judge chunks against answer spans: a chunk is relevant when its text contains the evidence.

    Both sides are compared after :func:`normalize_text`.

    Args:
        evidence: Query id → evidence text.
        chunks: The index's chunks.

    Returns:
        Query id → {chunk id: 1} for queries with at least one relevant chunk, and the ids of the queries
        whose evidence no chunk contains (they cannot be judged on this corpus and chunking).
    """
    wanted = {qid: f" {normalize_text(span)} " for qid, span in evidence.items()}
    qrels: dict[str, dict[str, int]] = {}
    for chunk in chunks:
        text = f" {normalize_text(chunk.text)} "
        for qid, span in wanted.items():
            if span in text:
                qrels.setdefault(qid, {})[chunk.id] = 1
    unmatched = [qid for qid in evidence if qid not in qrels]
    return qrels, unmatched
