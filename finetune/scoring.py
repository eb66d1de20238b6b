"""Per-query nDCG@10 of one model on every gate set, measured on a temporary dense (FAISS) index.

Each model gets its own temporary index of the same corpus, built by :func:`indexing.build.build_index` with
the chunking of the current index, so the champion and the challenger are compared on identical chunks. The
champion's is skipped when the current index is already exactly that (same corpus, chunking and model, exact
FAISS): scoring it gives the same figures without embedding the corpus again.
Datasets (the built-in set, ``--eval-dataset``) go through :mod:`evaluation` unchanged
(:func:`evaluation.indexes.prepare_index`, :func:`evaluation.runner.evaluate`); the synthetic dev split is
judged per chunk (its query's source chunk is the one relevant item) with the same metric code.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from evaluation.datasets import EvalDataset
from evaluation.indexes import prepare_index
from evaluation.metrics import PRIMARY_METRIC, per_query
from evaluation.runner import best_per_item, evaluate
from indexing.backends.configs import given_config_of
from indexing.backends.faiss_index import FaissConfig, FaissIndex
from indexing.build import build_index
from indexing.chunking import ChunkingConfig
from indexing.embedding import Encoder
from indexing.manifest import Manifest
from mlsearch.catalog import EMBEDDING_METHOD
from mlsearch.configs import BuildConfig, SearchConfig
from search.searcher import Searcher

logger = logging.getLogger(__name__)
VECTOR_BACKEND = FaissIndex.name
"""The gate scores on an exact (``Flat``) FAISS index."""
K = 10


@dataclass
class GateSet:
    """Queries the gate scores both models on.

    Attributes:
        name: ``synthetic-dev``, ``builtin`` or the dataset's name.
        description: One line for the report.
        queries: Query id → text (chunk-judged sets only).
        qrels: Query id → {chunk id: grade} (chunk-judged sets only).
        dataset: An evaluation dataset (document- or span-judged), scored by :mod:`evaluation`.
    """

    name: str
    description: str
    queries: dict[str, str] = field(default_factory=dict)
    qrels: dict[str, dict[str, int]] = field(default_factory=dict)
    dataset: EvalDataset | None = None

    @property
    def texts(self) -> dict[str, str]:
        """Query id → text."""
        return dict(self.dataset.queries) if self.dataset is not None else dict(self.queries)

    @property
    def size(self) -> int:
        """How many queries it holds."""
        return len(self.dataset.queries) if self.dataset is not None else len(self.queries)


def is_exact_copy(manifest: Manifest, encoder: Encoder, fingerprint: str, chunking: dict[str, int]) -> bool:
    """Whether an index is exactly the temporary index :func:`score_model` would build for ``encoder``.

    True when it holds the same corpus (fingerprint), chunking, model weights and precision (an int8 index is
    no copy of a torch build), and an exact (``Flat``) FAISS index; scoring it gives the same results as scoring a
    new build, without embedding the corpus again.
    """
    faiss = manifest.backends.get(VECTOR_BACKEND) or {}
    return (
        faiss.get("factory") == "Flat" and manifest.model.weights_hash == encoder.weights_hash
        and manifest.model.quantization == getattr(encoder, "quantization", None)
        and manifest.corpus.get("fingerprint") == fingerprint and dict(manifest.chunking) == dict(chunking)
    )


def score_chunk_set(searcher: Searcher, gate_set: GateSet, k: int = K) -> dict[str, float]:
    """Per-query nDCG@k of dense retrieval on a chunk-judged set."""
    labels = [chunk.id for chunk in searcher.store]
    run = {
        qid: best_per_item(searcher.retrieve(text, k, EMBEDDING_METHOD, VECTOR_BACKEND), labels, k)
        for qid, text in gate_set.queries.items()
    }
    return per_query(gate_set.qrels, run, [f"ndcg@{k}"])[f"ndcg@{k}"]


def score_model(
    encoder: Encoder,
    gate_sets: list[GateSet],
    corpus_dir: Path,
    build: BuildConfig,
    search: SearchConfig,
    workdir: Path,
    show_progress: bool = False,
    progress: Callable[[str], None] | None = None,
    existing: Path | None = None,
    chunking: ChunkingConfig | None = None,
) -> dict[str, dict[str, float]]:
    """Build a temporary FAISS index of the corpus with ``encoder`` and score every gate set on it.

    Args:
        encoder: The model to score.
        gate_sets: The sets.
        corpus_dir: The corpus of the current index.
        build: How indexes are built (batches, backend configs).
        search: How they are searched (the model's device, fusion).
        workdir: An empty folder for this model's temporary indexes.
        show_progress: Progress bars while embedding.
        progress: Called with a short message at each step.
        existing: An index that is already what the build would make (same corpus, chunking and model, exact
            ``Flat`` FAISS), used instead of building one; see :func:`is_exact_copy`.
        chunking: How to cut the corpus (the current index's, so both models see the same chunks).

    Returns:
        Gate set name → {query id: nDCG@10}.
    """
    say = progress or (lambda message: logger.info("%s", message))
    gate = _GateIndex(build, search, existing or workdir / "index", chunking)
    if existing is None:
        build_index(build, encoder, corpus_dir=corpus_dir, index_dir=gate.index_dir, backends=[VECTOR_BACKEND],
                    show_progress=show_progress, progress=lambda message: logger.info("%s", message),
                    chunking=chunking, configs=gate.configs)
    scores: dict[str, dict[str, float]] = {}
    searcher = Searcher.open(gate.index_dir, gate.search, encoder=encoder)
    try:
        for gate_set in gate_sets:
            say(f"scoring {encoder.name} on {gate_set.name} ({gate_set.size} queries)")
            if gate_set.dataset is None:
                scores[gate_set.name] = score_chunk_set(searcher, gate_set)
            else:
                scores[gate_set.name] = _score_dataset(encoder, gate_set.dataset, build, gate, workdir,
                                                       show_progress)
    finally:
        searcher.close()
    return scores


class _GateIndex:
    """Where and how the gate's temporary indexes are built: exact FAISS, the given chunking, no query cache."""

    def __init__(
        self, build: BuildConfig, search: SearchConfig, index_dir: Path, chunking: ChunkingConfig | None
    ) -> None:
        self.index_dir = index_dir
        self.chunking = chunking
        self.configs = {VECTOR_BACKEND: replace(given_config_of(FaissConfig, build.backend_configs), factory="Flat")}
        self.search = replace(search, query_cache_size=0, backends=self.configs)


def _score_dataset(
    encoder: Encoder, dataset: EvalDataset, build: BuildConfig, gate: _GateIndex, workdir: Path, show_progress: bool
) -> dict[str, float]:
    prepared = prepare_index(dataset, build, encoder, [VECTOR_BACKEND], cache_dir=workdir / "datasets",
                             show_progress=show_progress, index_dir=gate.index_dir, chunking=gate.chunking,
                             configs=gate.configs)
    searcher = Searcher.open(prepared.index_dir, gate.search, encoder=encoder)
    try:
        result = evaluate(searcher, dataset, methods=[EMBEDDING_METHOD], k=K, backend=VECTOR_BACKEND,
                          id_map=prepared.id_map)
    finally:
        searcher.close()
    return dict(result.methods[EMBEDDING_METHOD].per_query[PRIMARY_METRIC])
