"""``mlsearch finetune`` end to end: queries → split → hard negatives → training → gate → model card → report.

Nothing is lost on failure: the candidate is written to a hidden staging folder beside ``--out`` and moved
into place only when complete, to ``--out`` when the gate promotes it, or to ``<out>.rejected`` (with the
report that says why) when it does not. The current index and its model are never touched.
"""

from __future__ import annotations

import copy
import logging
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evaluation.datasets import EvalDataset, load_dataset
from finetune.card import write_lineage, write_model_card
from finetune.filters import apply_filters
from finetune.gate import GateDecision, GatePolicy, compare, decide
from finetune.negatives import mine_hard_negatives
from finetune.pseudo import pseudo_label
from finetune.queries import SyntheticQuery, make_generator
from finetune.report import write_report
from finetune.scoring import GateSet, is_exact_copy, score_model
from finetune.split import QuerySplit, split_queries
from finetune.train import TrainingConfig, TrainingExample, TrainingStats, train_model
from indexing.backends.base import KeywordIndex
from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.configs import given_config_of
from indexing.backends.faiss_index import FaissConfig, FaissIndex
from indexing.build import corpus_fingerprint
from indexing.chunking import ChunkingConfig
from indexing.chunks import Chunk
from indexing.documents import load_corpus
from indexing.embedding import Encoder, SentenceTransformerEncoder, library_versions, sha256_file
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.store import ChunkStore
from mlsearch.configs import BuildConfig, SearchConfig
from mlsearch.errors import DatasetError, FinetuneError
from mlsearch.folders import replace_folder
from search.query_file import read_query_file

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]
REJECTED_SUFFIX = ".rejected"
STAGING_INFIX = ".staging-"
DEV_SET = "synthetic-dev"
BUILTIN_SET = "builtin"


@dataclass(frozen=True)
class FinetuneOptions:
    """What ``mlsearch finetune`` was asked to do.

    Attributes:
        out: Where the promoted model goes (a rejected candidate goes to ``<out>.rejected``).
        generator: ``heuristic`` or ``doc2query``.
        generator_model: The local seq2seq model folder for ``doc2query``.
        queries_per_chunk: Synthetic queries generated per chunk.
        training: Training hyper-parameters.
        policy: The promotion rule.
        dev_fraction: Share of documents (or of queries, for sections and blocks) held out for the gate's
            synthetic dev split.
        split_unit: What is held out: ``auto`` (documents when there are enough, else sections, else blocks of
            chunks), ``document``, ``section`` or ``block``.
        round_trip_top: Keep only queries whose chunk BM25 ranks in this top N (off when None).
        eval_dataset: An extra gate set (``builtin``, a BEIR folder, an answer-span file).
        queries_file: Logged user queries to pseudo-label and train on.
        corpus_dir: The corpus folder (the one recorded in the index's manifest by default).
        use_builtin: Score the built-in set when it judges this corpus.
        overwrite: Replace an existing model at ``out``.
    """

    out: Path
    generator: str = "heuristic"
    generator_model: Path | None = None
    queries_per_chunk: int = 3
    training: TrainingConfig = field(default_factory=TrainingConfig)
    policy: GatePolicy = field(default_factory=GatePolicy)
    dev_fraction: float = 0.2
    split_unit: str = "auto"
    round_trip_top: int | None = None
    eval_dataset: str | None = None
    queries_file: Path | None = None
    corpus_dir: Path | None = None
    use_builtin: bool = True
    overwrite: bool = False


@dataclass
class FinetuneResult:
    """What a run did and decided."""

    promoted: bool
    model_dir: Path
    report_markdown: Path
    report_html: Path
    decision: GateDecision
    lineage: dict[str, Any]
    rebuild_command: str
    seconds: float
    timings: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (``mlsearch finetune --json``)."""
        return {
            "promoted": self.promoted, "model_dir": str(self.model_dir), "report_markdown": str(self.report_markdown),
            "report_html": str(self.report_html), "gate": self.decision.summary(),
            "rebuild_command": self.rebuild_command if self.promoted else None,
            "seconds": round(self.seconds, 1), "timings": self.timings,
        }


@dataclass
class _Context:
    """The current index, read once."""

    index_dir: Path
    manifest: Manifest
    store: ChunkStore
    chunks: list[tuple[int, Chunk]]
    corpus_dir: Path


def run_finetune(
    build: BuildConfig,
    search: SearchConfig,
    champion: Encoder,
    options: FinetuneOptions,
    show_progress: bool = False,
    progress: Progress | None = None,
) -> FinetuneResult:
    """Fine-tune the current index's model on synthetic queries, and promote it only if it measures better.

    Args:
        build: How indexes are built; ``build.index_dir`` is the current index.
        search: How the gate searches (the model's device, fusion).
        champion: The model the current index was built with (a sentence-transformers model).
        options: What to do.
        show_progress: Progress bars (generation, training, embedding) on stderr.
        progress: Called with a short message at each step.

    Returns:
        The decision, where the candidate went, and the reports.

    Raises:
        IndexNotBuiltError: No index at ``build.index_dir``.
        ModelMismatchError: ``champion`` is not the index's model.
        FinetuneError: The model cannot be trained, the corpus changed since the index was built, too little
            data, or ``out`` is in the way.
        DatasetError: A bad ``--eval-dataset`` or ``--queries`` file.
    """
    started = time.perf_counter()
    say = progress or (lambda message: logger.info("%s", message))
    timings: dict[str, float] = {}
    context = _open_index(build.index_dir, champion, options)
    out = Path(options.out)
    _check_out(out, context.manifest, options.overwrite)
    datasets = _gate_datasets(options, context)
    generator = make_generator(options.generator, seed=options.training.seed,
                               model_path=options.generator_model, device=search.encoder.device)

    t = time.perf_counter()
    say(f"generating queries ({options.generator}, {options.queries_per_chunk} per chunk) for "
        f"{len(context.chunks)} chunks")
    generated = generator.generate(context.chunks, options.queries_per_chunk)
    keyword = _keyword_index(build, context)
    queries, removed = apply_filters(generated, keyword, options.round_trip_top)
    split = split_queries(queries, context.chunks, options.dev_fraction, seed=options.training.seed,
                          unit=options.split_unit)
    logged = _logged_queries(options.queries_file, champion, context, keyword, split)
    train_queries = split.train + logged["train"]
    say(f"{len(queries)} queries kept of {len(generated)} ({removed}); split by {split.unit}: {split.describe()}"
        + (f"; {len(logged['train'])} pseudo-labelled logged queries" if options.queries_file else ""))
    timings["queries"] = round(time.perf_counter() - t, 2)

    t = time.perf_counter()
    examples = _examples(train_queries, champion, context, split)
    timings["hard_negatives"] = round(time.perf_counter() - t, 2)
    if len(examples) < 2:
        raise FinetuneError(f"only {len(examples)} training queries; generate more (--queries-per-chunk) "
                            "or give a larger corpus")

    t = time.perf_counter()
    say(f"training on {len(examples)} examples ({options.training.epochs} epoch(s), batch "
        f"{options.training.batch_size})")
    model = copy.deepcopy(champion.model)  # type: ignore[attr-defined]
    stats = train_model(model, examples, options.training, show_progress=show_progress)
    timings["train"] = round(time.perf_counter() - t, 2)

    staging = out.parent / f".{out.name}{STAGING_INFIX}{os.getpid()}"
    remove_dead_staging(out)
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        model.save(str(staging))
        weights = next((p for p in (staging / "model.safetensors", staging / "pytorch_model.bin") if p.is_file()),
                       None)
        challenger = SentenceTransformerEncoder(
            model, name=str(out), weights_hash=sha256_file(weights) if weights else None
        )
        t = time.perf_counter()
        gate_sets = [_dev_set(split.dev), *datasets]
        decision = _run_gate(champion, challenger, gate_sets, build, search, context, options.policy, show_progress,
                              say)
        timings["gate"] = round(time.perf_counter() - t, 2)
        timings["total"] = round(time.perf_counter() - started, 2)
        lineage = _lineage(champion, challenger, context, options, generated, queries, removed, split, logged,
                           stats, decision, timings)
        write_model_card(staging, lineage)
        write_lineage(staging, lineage)
        final = out if decision.promoted else out.with_name(out.name + REJECTED_SUFFIX)
        paths = write_report(staging, lineage, decision, _samples(queries), model_dir=final)
        replace_folder(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    command = rebuild_command(context, final)
    return FinetuneResult(
        promoted=decision.promoted, model_dir=final, report_markdown=final / paths["markdown"].name,
        report_html=final / paths["html"].name, decision=decision, lineage=lineage, rebuild_command=command,
        seconds=time.perf_counter() - started, timings=timings,
    )


def remove_dead_staging(out: Path) -> list[Path]:
    """Delete the staging folders beside ``out`` left by runs that were killed (their process is gone).

    Returns:
        The folders removed.
    """
    removed = []
    for folder in out.parent.glob(f".{out.name}{STAGING_INFIX}*") if out.parent.is_dir() else []:
        pid = folder.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            logger.info("removed %s, left by a fine-tuning run that was killed", folder)
            removed.append(folder)
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- steps -------------------------------------------------------------------------------------------------
def _open_index(index_dir: Path, champion: Encoder, options: FinetuneOptions) -> _Context:
    directory = current_version_dir(Path(index_dir))
    manifest = Manifest.load(directory)
    # the weights must be the index's; its precision need not (the champion is trained and gated in torch, on
    # indexes of its own: an index built in int8 is fine-tuned too)
    manifest.check_model(champion.name, champion.weights_hash, manifest.model.quantization)
    if not isinstance(champion, SentenceTransformerEncoder):
        raise FinetuneError(f"model {champion.name} is not a sentence-transformers model; it cannot be fine-tuned")
    corpus_dir = Path(options.corpus_dir or manifest.corpus.get("path", ""))
    if not corpus_dir.is_dir():
        raise FinetuneError(f"the index's corpus folder {corpus_dir} is not there; give it with --corpus")
    fingerprint = corpus_fingerprint(load_corpus(corpus_dir).documents)
    if fingerprint != manifest.corpus.get("fingerprint"):
        raise FinetuneError(
            f"{corpus_dir} has changed since index {manifest.version} was built; rebuild the index first "
            f"(mlsearch index build --index-dir {index_dir} --corpus {corpus_dir}) so that queries, "
            "negatives and the gate see the same chunks"
        )
    store = ChunkStore(directory / ChunkStore.FILE)
    chunks = list(enumerate(store))
    return _Context(Path(index_dir), manifest, store, chunks, corpus_dir)


def _check_out(out: Path, manifest: Manifest, overwrite: bool) -> None:
    base = Path(manifest.model.name)
    if base.exists() and base.resolve() == out.resolve():
        raise FinetuneError(f"--out {out} is the current model; choose another folder")
    if out.exists() and (out.is_file() or any(out.iterdir())) and not overwrite:
        raise FinetuneError(f"{out} already exists; choose another --out or pass --overwrite")


def _gate_datasets(options: FinetuneOptions, context: _Context) -> list[GateSet]:
    """The labelled gate sets, loaded before training so that a bad file fails fast."""
    sets = []
    if options.use_builtin:
        try:
            builtin = load_dataset(BUILTIN_SET, corpus_dir=context.corpus_dir)
        except DatasetError as exc:
            logger.warning("built-in evaluation set not used: %s", exc)
        else:
            if _judges_corpus(builtin, context):
                sets.append(GateSet(BUILTIN_SET, "built-in hand-written queries judged per document",
                                    dataset=builtin))
            else:
                logger.info("built-in set not used: it does not judge the documents of %s", context.corpus_dir)
    if options.eval_dataset:
        dataset = load_dataset(options.eval_dataset, corpus_dir=context.corpus_dir)
        if dataset.name in {DEV_SET, *(s.name for s in sets)}:
            dataset.name = f"{dataset.name}-eval"
        sets.append(GateSet(dataset.name, f"--eval-dataset {options.eval_dataset} ({dataset.kind}, "
                                          f"{dataset.level} level)", dataset=dataset))
    names = {DEV_SET, *(s.name for s in sets)}
    if options.policy.primary not in names:
        raise FinetuneError(f"primary gate set {options.policy.primary!r} is not available; sets: "
                            f"{', '.join(sorted(names))}")
    return sets


def _judges_corpus(dataset: EvalDataset, context: _Context) -> bool:
    documents = {chunk.doc_id for _, chunk in context.chunks}
    judged = {doc for docs in dataset.qrels.values() for doc in docs}
    return bool(judged) and judged <= documents


def _keyword_index(build: BuildConfig, context: _Context) -> KeywordIndex:
    """The index's BM25 (same positions), or one built in memory over its chunks."""
    if Bm25Index.name in context.manifest.backends:
        where = current_version_dir(context.index_dir) / Bm25Index.name
        return Bm25Index.load(where, given_config_of(Bm25Config, build.backend_configs))
    index = Bm25Index(given_config_of(Bm25Config, build.backend_configs))
    index.build([chunk.embedding_text for _, chunk in context.chunks])
    return index


def _logged_queries(
    path: Path | None, champion: Encoder, context: _Context, keyword: KeywordIndex, split: QuerySplit,
) -> dict[str, Any]:
    """Pseudo-labelled logged queries on training documents (those on held-out documents are dropped)."""
    if path is None:
        return {"file": None, "given": 0, "labelled": 0, "train": []}
    texts = read_query_file(path)
    dense = FaissIndex(champion.dimension, FaissConfig(factory="Flat"))  # exact inner products
    dense.add(context.store.embeddings(), [chunk for _, chunk in context.chunks])
    labelled = pseudo_label(texts, champion, dense, keyword, dict(context.chunks))
    train = [q for q in labelled if q.position in split.train_positions]
    return {"file": str(path), "given": len(texts), "labelled": len(labelled),
            "held_out_dropped": len(labelled) - len(train), "train": train}


def _examples(
    queries: Sequence[SyntheticQuery], champion: Encoder, context: _Context, split: QuerySplit
) -> list[TrainingExample]:
    """(query, positive, hard negative) triples; negatives come from other training units only (never a chunk
    that is held out or overlaps one)."""
    if not queries:
        return []
    vectors = context.store.embeddings()
    if vectors.shape != (len(context.chunks), champion.dimension):
        raise FinetuneError("the index holds no chunk embeddings to mine hard negatives from; rebuild it")
    query_vectors = champion.encode([q.text for q in queries], batch_size=64)
    negatives = mine_hard_negatives(
        query_vectors, vectors, [split.chunk_units[p] for p, _ in context.chunks], [q.position for q in queries],
        allowed_docs=split.train_units, allowed_positions=split.train_positions,
    )
    chunk_at = dict(context.chunks)
    return [
        TrainingExample(q.text, q.positive, chunk_at[n].embedding_text if n is not None else None)
        for q, n in zip(queries, negatives, strict=True)
    ]


def _dev_set(dev: Sequence[SyntheticQuery]) -> GateSet:
    queries = {f"dev{i}": q.text for i, q in enumerate(dev)}
    qrels = {f"dev{i}": {q.chunk_id: 1} for i, q in enumerate(dev)}
    return GateSet(DEV_SET, "synthetic queries of held-out documents, judged per chunk (their source chunk)",
                   queries=queries, qrels=qrels)


def _run_gate(
    champion: Encoder, challenger: Encoder, gate_sets: list[GateSet], build: BuildConfig, search: SearchConfig,
    context: _Context, policy: GatePolicy, show_progress: bool, say: Progress,
) -> GateDecision:
    chunking = context.manifest.chunking
    same_chunks = ChunkingConfig(target_tokens=int(chunking["target_tokens"]), max_tokens=int(chunking["max_tokens"]),
                                 overlap_tokens=int(chunking["overlap_tokens"]))
    reuse = is_exact_copy(context.manifest, champion, str(context.manifest.corpus.get("fingerprint")), chunking)
    with tempfile.TemporaryDirectory(prefix="mlsearch-gate-") as workdir:
        scores = {}
        for label, encoder in (("champion", champion), ("challenger", challenger)):
            existing = context.index_dir if label == "champion" and reuse else None
            say(f"gate: scoring the {label} on {len(gate_sets)} set(s) "
                + ("on the current index (an exact FAISS index of this corpus)" if existing
                   else "on a temporary index of the corpus"))
            scores[label] = score_model(encoder, gate_sets, context.corpus_dir, build, search, Path(workdir) / label,
                                        show_progress=show_progress, existing=existing, chunking=same_chunks)
    comparisons = [
        compare(s.name, s.description, scores["champion"][s.name], scores["challenger"][s.name], policy.alpha,
                texts=s.texts)
        for s in gate_sets
    ]
    return decide(comparisons, policy)


def _lineage(
    champion: Encoder, challenger: Encoder, context: _Context, options: FinetuneOptions,
    generated: Sequence[SyntheticQuery], queries: Sequence[SyntheticQuery], removed: dict[str, int],
    split: QuerySplit, logged: dict[str, Any], stats: TrainingStats, decision: GateDecision,
    timings: dict[str, float],
) -> dict[str, Any]:
    manifest = context.manifest
    return {
        "format": 1,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "promoted": decision.promoted,
        "base_model": {"name": champion.name, "weights_hash": champion.weights_hash,
                       "lineage": manifest.model.lineage},
        "weights_hash": challenger.weights_hash,
        "data": {"index_dir": str(context.index_dir), "index_version": manifest.version,
                 "corpus": str(context.corpus_dir), "corpus_fingerprint": manifest.corpus.get("fingerprint"),
                 "documents": manifest.counts.get("documents"), "chunks": len(context.chunks)},
        "generator": {
            "name": options.generator, "model": str(options.generator_model) if options.generator_model else None,
            "queries_per_chunk": options.queries_per_chunk, "generated": len(generated),
            "generated_by_kind": dict(Counter(q.kind for q in generated)), "kept": len(queries),
            "removed": removed, "round_trip_top": options.round_trip_top,
            "logged_queries": {k: v for k, v in logged.items() if k != "train"},
        },
        "split": {**split.describe(), "by": split.unit, "dev_fraction": options.dev_fraction,
                  "dev_units_list": sorted(split.dev_units), "dev_documents_list": sorted(split.dev_docs)},
        "training": {
            **options.training.to_dict(), **{f"result_{k}": v for k, v in stats.to_dict().items()},
            "loss": "MultipleNegativesRankingLoss", "batch_sampler": "no_duplicates",
            "hard_negatives": f"top-50 of the index by the base model, other training {split.unit}s only, "
                              "5% below the positive's score",
            "device": "cpu",
        },
        "gate": decision.summary(),
        "timings_s": timings,
        "libraries": library_versions(),
    }


def _samples(queries: Sequence[SyntheticQuery], per_kind: int = 3) -> list[SyntheticQuery]:
    picked: list[SyntheticQuery] = []
    counts: Counter[str] = Counter()
    for query in queries:
        if counts[query.kind] < per_kind:
            picked.append(query)
            counts[query.kind] += 1
    return picked


def rebuild_command(context: _Context, model_dir: Path) -> str:
    """The command that rebuilds the current index with a model, with the index's corpus and backends."""
    backends = ",".join(context.manifest.backends)
    return (f"mlsearch index build --index-dir {context.index_dir} --corpus {context.corpus_dir} "
            f"--backends {backends} --model {model_dir}")
