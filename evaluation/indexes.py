"""The index a dataset is evaluated on: the default index when it holds the same corpus, else a cached one.

A BEIR ``corpus.jsonl`` is written out as a folder of Markdown files (the title in the front matter, the text as
the body) and built with :func:`indexing.build.build_index`, unchanged: the same loader, chunker, model and
backends as the service. The folder is kept as ``corpus/`` in the cache entry, the corpus the index's manifest
names, so that commands that read an index's corpus (``mlsearch finetune``) work on an evaluation index too.
File names are safe versions of the ``_id``; ``ids.json`` in the cache maps them back. A document with an empty
text is indexed by its title; one with neither is skipped by the loader.

Built indexes are cached under ``<cache_dir>/<dataset>-<key>``, where the key hashes the corpus, the model's
weights, the chunking and the backend settings, so a second evaluation of the same dataset is fast.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from evaluation.datasets import EvalDataset, iter_beir_corpus
from indexing import chunking as chunker
from indexing import documents
from indexing.build import build_backend_configs, build_index, chunking_config, corpus_fingerprint
from indexing.chunking import ChunkingConfig
from indexing.documents import load_corpus
from indexing.embedding import Encoder
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from mlsearch.catalog import METHODS, required_backends, runs_as
from mlsearch.configs import BuildConfig
from mlsearch.errors import DatasetError, IndexNotBuiltError
from mlsearch.folders import replace_folder

logger = logging.getLogger(__name__)
IDS_FILE = "ids.json"
CORPUS_FOLDER = "corpus"
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")
_MD_LINE_START = re.compile(r"^(#{1,6}\s)", re.MULTILINE)


@dataclass(frozen=True)
class PreparedIndex:
    """An index ready for evaluation.

    Attributes:
        index_dir: The index directory to open with :meth:`search.searcher.Searcher.open`.
        origin: ``default`` (the service's index, same corpus), ``cache`` (built before) or ``built`` (now).
        id_map: Index document id → dataset document id (``None`` when they are the same).
        corpus_dir: The folder of documents the index holds (for a BEIR set, the Markdown copy in the cache).
    """

    index_dir: Path
    origin: str
    id_map: dict[str, str] | None = None
    corpus_dir: Path | None = None


def needed_backends(methods: Sequence[str], vector_backend: str) -> list[str]:
    """The backends the methods use with this vector backend, in order (as :func:`mlsearch.catalog.plan` says).

    Unknown methods are skipped (:func:`evaluation.runner.check_options` reports them).
    """
    # a reranked method ("<method>+rerank") needs what it reranks; fusion variants run as the fused method
    bases = [runs_as(method.removesuffix("+rerank")) for method in methods]
    names = [name for method in bases if method in METHODS for name in required_backends(method, vector_backend)]
    return list(dict.fromkeys(names))


def _usable(index_dir: Path, encoder: Encoder, backends: Sequence[str], fingerprint: str | None) -> bool:
    try:
        manifest = Manifest.load(current_version_dir(index_dir))
    except IndexNotBuiltError:
        return False
    return (
        manifest.model.weights_hash == encoder.weights_hash
        and manifest.model.quantization == getattr(encoder, "quantization", None)
        and all(name in manifest.backends for name in backends)
        and (fingerprint is None or manifest.corpus.get("fingerprint") == fingerprint)
    )


def cache_key(content: str, chunks: ChunkingConfig, encoder: Encoder, configs: Mapping[str, object]) -> str:
    """A short hash of what decides an index: corpus content, model weights and int8 flag, chunking code and
    config, backends and their configs.

    The chunker's and the loader's source files are part of the key, so a change in how documents are read or
    cut never reuses an index built the old way.
    """
    relevant = {"chunking": asdict(chunks), "backends": {name: repr(config) for name, config in configs.items()}}
    code = [hashlib.sha256(Path(module.__file__ or "").read_bytes()).hexdigest() for module in (chunker, documents)]
    model = encoder.weights_hash + ("-int8" if getattr(encoder, "quantization", None) == "int8" else "")
    blob = json.dumps([content, model, relevant, code], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def prepare_index(
    dataset: EvalDataset,
    config: BuildConfig,
    encoder: Encoder,
    backends: Sequence[str],
    cache_dir: Path,
    show_progress: bool = False,
    progress: Callable[[str], None] | None = None,
    index_dir: Path | None = None,
    chunking: ChunkingConfig | None = None,
    configs: Mapping[str, object] | None = None,
) -> PreparedIndex:
    """Find or build the index to evaluate a dataset on.

    A folder corpus (``qrels`` and ``spans`` datasets) uses ``index_dir`` when its manifest shows the same
    corpus fingerprint, model and backends; otherwise, and for BEIR corpora, a cached index is used or built.

    Args:
        dataset: The dataset.
        config: Chunk sizes, backend configs and the default index directory.
        encoder: The embedding model.
        backends: Backends the evaluated methods need (see :func:`needed_backends`).
        cache_dir: Where evaluation indexes are cached.
        show_progress: Show a progress bar while embedding.
        progress: Called with a short message at each step.
        index_dir: The index to use when it holds the dataset's corpus (``config.index_dir`` by default).
        chunking: How a built index cuts documents, instead of the config's (see :func:`~indexing.build.build_index`).
        configs: Backend name → config for a built index, instead of the one in ``config.backend_configs``.

    Raises:
        DatasetError: The BEIR corpus is malformed.
        CorpusError: The folder corpus is missing or empty.
    """
    say = progress or (lambda message: logger.info("%s", message))
    default_dir = Path(index_dir or config.index_dir)
    chunks = chunking_config(config, encoder, chunking)
    resolved = build_backend_configs(config, backends, configs)

    def build(corpus_dir: Path) -> None:
        build_index(config, encoder, corpus_dir=corpus_dir, index_dir=target, backends=backends,
                    show_progress=show_progress, progress=say, chunking=chunks, configs=resolved)

    if dataset.kind == "beir":
        assert dataset.corpus_file is not None
        content = dataset.fingerprint
    else:
        assert dataset.corpus_dir is not None
        content = corpus_fingerprint(load_corpus(dataset.corpus_dir).documents)
        if _usable(default_dir, encoder, backends, content):
            say(f"using the index at {default_dir} (same corpus and model)")
            return PreparedIndex(default_dir, "default", corpus_dir=dataset.corpus_dir)
    entry = Path(cache_dir) / f"{_safe_name(dataset.name)}-{cache_key(content, chunks, encoder, resolved)}"
    target = entry / "index"
    ids_path = entry / IDS_FILE
    id_map_ready = dataset.kind != "beir" or ids_path.is_file()
    if id_map_ready and _usable(target, encoder, backends, None):
        say(f"using the cached evaluation index at {target}")
        if dataset.kind != "beir":
            return PreparedIndex(target, "cache", corpus_dir=dataset.corpus_dir)
        corpus = _kept_beir_corpus(dataset.corpus_file, entry)  # type: ignore[arg-type]
        return PreparedIndex(target, "cache", _read_ids(ids_path), corpus_dir=corpus)
    entry.mkdir(parents=True, exist_ok=True)
    if dataset.kind != "beir":
        assert dataset.corpus_dir is not None
        say(f"building an evaluation index over {dataset.corpus_dir} in {target}")
        build(dataset.corpus_dir)
        return PreparedIndex(target, "built", corpus_dir=dataset.corpus_dir)
    corpus, id_map = _write_kept_corpus(dataset.corpus_file, entry)  # type: ignore[arg-type]
    say(f"building an evaluation index over {len(id_map)} documents of {dataset.name} in {target}")
    build(corpus)
    tmp = ids_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(id_map))
    os.replace(tmp, ids_path)
    return PreparedIndex(target, "built", id_map, corpus_dir=corpus)


def _kept_beir_corpus(corpus_file: Path, entry: Path) -> Path:
    """The Markdown copy of a BEIR corpus in a cache entry, written again when it is missing (an entry cached
    before the copy was kept). The documents are the same whenever the entry's key is, and the corpus fingerprint
    ignores the folder's path, so the copy matches the index's manifest."""
    corpus = entry / CORPUS_FOLDER
    return corpus if corpus.is_dir() else _write_kept_corpus(corpus_file, entry)[0]


def _write_kept_corpus(corpus_file: Path, entry: Path) -> tuple[Path, dict[str, str]]:
    """Write a BEIR corpus as ``<entry>/corpus`` whole: into a hidden temporary folder, then renamed over it.

    Returns:
        The folder and its file id → ``_id`` map.
    """
    corpus = entry / CORPUS_FOLDER
    entry.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".beir-corpus-", dir=entry))
    try:
        id_map = write_beir_corpus(corpus_file, folder)
        replace_folder(folder, corpus)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return corpus, id_map


def write_beir_corpus(corpus_file: Path, folder: Path) -> dict[str, str]:
    """Write a BEIR ``corpus.jsonl`` as Markdown files, one per document, for the standard loader.

    Each file has the title in YAML front matter and the text as its body; a line of the text that would read
    as a Markdown heading is indented by one space so that it stays text. A document with an empty text gets
    its title as its body.

    Args:
        corpus_file: The ``corpus.jsonl``.
        folder: An empty folder to write into.

    Returns:
        File id (the loader's document id) → the document's ``_id``.

    Raises:
        DatasetError: A malformed line (with its number).
    """
    id_map: dict[str, str] = {}
    taken: set[str] = set()
    for document in iter_beir_corpus(corpus_file):
        file_id = _file_id(document.id, taken)
        body = document.text.strip() or document.title
        body = _MD_LINE_START.sub(r" \1", body.replace("\r\n", "\n"))
        front = yaml.safe_dump({"title": document.title}, allow_unicode=True, width=1 << 20) if document.title else ""
        text = f"---\n{front}---\n\n{body}\n" if front else f"{body}\n"
        (folder / f"{file_id}.md").write_text(text, encoding="utf-8")
        id_map[file_id] = document.id
    if not id_map:
        raise DatasetError(f"{corpus_file}: no documents")
    return id_map


def _file_id(doc_id: str, taken: set[str]) -> str:
    """A file name for a document id: the id when it is safe, else a hash of it; never one taken (any case)."""
    candidate = doc_id if _SAFE_ID.match(doc_id) else "id-" + hashlib.sha1(doc_id.encode()).hexdigest()[:20]
    while candidate.lower() in taken:
        candidate += "_"
    taken.add(candidate.lower())
    return candidate


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "dataset"


def _read_ids(path: Path) -> dict[str, str]:
    return {str(k): str(v) for k, v in json.loads(path.read_text()).items()}
