"""A cross-encoder reranker trained without labels, promoted by the champion/challenger gate.

Steps (``mlsearch rerank-train``):

1. Synthetic queries from the index's chunks (:class:`finetune.queries.HeuristicGenerator`), split by document
   (or section, or block, for a corpus of few documents) with :func:`finetune.split.split_queries`, so that the
   gate's dev queries never reach training.
2. For each training query: its chunk as the positive, and as hard negatives the chunks the index's hybrid
   search ranks highest among training chunks of *other* units (an unlabelled answer in the same unit is never
   used as a negative), plus one random training chunk.
3. A ``sentence_transformers.CrossEncoder`` initialised from a local model folder (the bundled MiniLM weights by
   default: the encoder, with a new one-output head) is trained with binary cross-entropy, at most
   ``max_steps`` steps, on the CPU.
4. Gate: on the dev queries, nDCG@10 of the hybrid list against the same list with its top N reranked
   (:mod:`finetune.gate`). Only a reranker that gains ``min_gain`` is promoted: moved to ``out`` and named in the
   index manifest (``tuning.reranker``); a rejected one goes to ``<out>.rejected``.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from finetune.filters import drop_duplicates, drop_short
from finetune.gate import GateDecision, GatePolicy, compare, decide
from finetune.queries import HeuristicGenerator, SyntheticQuery
from finetune.split import split_queries
from finetune.tune import ndcg_at_10
from indexing.embedding import bundled_model_path
from indexing.manifest import Manifest
from mlsearch.catalog import FUSED_METHOD
from search.rerank import Reranker
from search.searcher import Searcher

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]
DEV_SET = "synthetic-dev"


@dataclass(frozen=True)
class RerankerOptions:
    """What ``mlsearch rerank-train`` was asked to do.

    Attributes:
        out: Where a promoted reranker goes (a rejected one to ``<out>.rejected``).
        base_model: The local folder the cross-encoder starts from (the bundled MiniLM when None).
        max_train_queries: Training queries used at most (sampled, seeded).
        max_dev_queries: Dev queries the gate scores at most.
        negatives: Hard negatives per query (plus one random negative).
        top_n: Results the reranker rescores (the gate and search alike).
        epochs: Passes over the training pairs.
        max_steps: Upper bound on optimizer steps (bounds the time on a small CPU).
        batch_size: Pairs per step.
        learning_rate: Peak learning rate.
        max_length: Tokens per (query, passage) pair.
        seed: Seeds sampling and training.
        policy: The promotion rule.
    """

    out: Path
    base_model: Path | None = None
    max_train_queries: int = 400
    max_dev_queries: int = 150
    negatives: int = 3
    top_n: int = 20
    epochs: int = 1
    max_steps: int = 150
    batch_size: int = 16
    learning_rate: float = 5e-5
    max_length: int = 192
    seed: int = 0
    policy: GatePolicy = GatePolicy(primary=DEV_SET)


@dataclass
class RerankerResult:
    """What a run trained and decided."""

    promoted: bool
    model_dir: Path
    decision: GateDecision
    pairs: int
    steps: int
    train_loss: float
    timings: dict[str, float]
    split: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"promoted": self.promoted, "model_dir": str(self.model_dir), "gate": self.decision.summary(),
                "pairs": self.pairs, "steps": self.steps, "train_loss": round(self.train_loss, 5),
                "timings": self.timings, "split": self.split}


def train_pairs(
    searcher: Searcher, queries: Sequence[SyntheticQuery], allowed: frozenset[int], units: dict[int, str],
    negatives: int, seed: int,
) -> list[tuple[str, str, float]]:
    """``(query, passage, label)`` pairs: the source chunk (1), hard negatives from hybrid search and one random
    chunk (0), all from ``allowed`` positions of units other than the query's own."""
    rng = random.Random(seed)
    chunks = dict(enumerate(searcher.store))
    pool = sorted(allowed)
    pairs: list[tuple[str, str, float]] = []
    for query in queries:
        own = units.get(query.position)
        pairs.append((query.text, chunks[query.position].embedding_text, 1.0))
        ranked = searcher.retrieve(query.text, 30, FUSED_METHOD)
        hard = [p for p, _ in ranked if p in allowed and units.get(p) != own][:negatives]
        others = [p for p in pool if units.get(p) != own]
        extra = [rng.choice(others)] if others else []
        for position in dict.fromkeys([*hard, *extra]):
            pairs.append((query.text, chunks[position].embedding_text, 0.0))
    return pairs


def train_cross_encoder(
    base: Path, pairs: Sequence[tuple[str, str, float]], options: RerankerOptions, device: str = "cpu",
    show_progress: bool = False,
) -> tuple[Any, int, float]:
    """Train a one-output ``CrossEncoder`` from ``base`` with binary cross-entropy.

    Returns:
        The model, the steps taken and the mean training loss.
    """
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    model = CrossEncoder(str(base), num_labels=1, max_length=options.max_length, device=device,
                         local_files_only=True)
    dataset = Dataset.from_dict({"query": [p[0] for p in pairs], "passage": [p[1] for p in pairs],
                                 "label": [p[2] for p in pairs]})
    with tempfile.TemporaryDirectory(prefix="mlsearch-rerank-") as scratch:
        args = CrossEncoderTrainingArguments(
            output_dir=scratch, num_train_epochs=options.epochs, max_steps=options.max_steps,
            per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate,
            warmup_steps=max(1, options.max_steps // 10), seed=options.seed, data_seed=options.seed,
            save_strategy="no", eval_strategy="no", report_to="none", use_cpu=device == "cpu",
            dataloader_num_workers=0, disable_tqdm=not show_progress, logging_steps=max(1, options.max_steps // 10),
        )
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset,
                                      loss=BinaryCrossEntropyLoss(model))
        trainer.remove_callback(PrinterCallback)  # it prints the loss on stdout
        if not show_progress:
            trainer.remove_callback(ProgressCallback)
        output = trainer.train()
    model.model.eval()
    return model, int(output.global_step), float(output.training_loss)


def gate_scores(
    searcher: Searcher, queries: Sequence[SyntheticQuery], reranker: Reranker | None, top_n: int
) -> dict[str, float]:
    """Per-query chunk-level nDCG@10 of hybrid search, with its top ``top_n`` reranked when a reranker is given."""
    chunks = dict(enumerate(searcher.store))
    scores: dict[str, float] = {}
    for i, query in enumerate(queries):
        ranked = searcher.retrieve(query.text, max(10, top_n), FUSED_METHOD)
        if reranker is not None:
            texts = {p: chunks[p].embedding_text for p, _ in ranked[:top_n]}
            ranked = reranker.rerank(query.text, ranked, texts, top_n)
        scores[f"q{i}"] = ndcg_at_10([p for p, _ in ranked], query.position)
    return scores


def run_reranker_training(
    searcher: Searcher, options: RerankerOptions, write_manifest: bool = True, show_progress: bool = False,
    progress: Progress | None = None,
) -> RerankerResult:
    """Make synthetic queries, train a cross-encoder, gate it against hybrid search alone, and keep it if it wins.

    Raises:
        FinetuneError: Too few units to hold queries out, or too few training queries.
        ModelLoadError: The base model cannot be loaded.
    """
    from mlsearch.errors import FinetuneError

    say = progress or (lambda message: logger.info("%s", message))
    timings: dict[str, float] = {}
    started = t = time.perf_counter()
    chunks = list(enumerate(searcher.store))
    queries = drop_duplicates(drop_short(HeuristicGenerator(seed=options.seed).generate(chunks, 3)))
    split = split_queries(queries, chunks, 0.2, seed=options.seed)
    rng = random.Random(options.seed)
    train = rng.sample(split.train, min(len(split.train), options.max_train_queries))
    dev = rng.sample(split.dev, min(len(split.dev), options.max_dev_queries))
    if len(train) < 4 or not dev:
        raise FinetuneError(f"too few synthetic queries to train a reranker ({len(train)} train, {len(dev)} dev)")
    pairs = train_pairs(searcher, train, split.train_positions, split.chunk_units, options.negatives, options.seed)
    timings["pairs"] = round(time.perf_counter() - t, 2)
    say(f"{len(train)} training queries ({len(pairs)} pairs), {len(dev)} dev queries; split by {split.unit}")

    t = time.perf_counter()
    base = options.base_model or bundled_model_path()
    model, steps, loss = train_cross_encoder(base, pairs, options, searcher.config.encoder.device, show_progress)
    timings["train"] = round(time.perf_counter() - t, 2)
    say(f"trained {steps} steps (loss {loss:.4f}); gating on {len(dev)} dev queries")

    t = time.perf_counter()
    challenger = Reranker(model, str(options.out))
    before = gate_scores(searcher, dev, None, options.top_n)
    after = gate_scores(searcher, dev, challenger, options.top_n)
    texts = {f"q{i}": q.text for i, q in enumerate(dev)}
    comparison = compare(DEV_SET, f"synthetic dev queries (held out by {split.unit}), hybrid top {options.top_n}",
                         before, after, options.policy.alpha, texts=texts)
    decision = decide([comparison], options.policy)
    timings["gate"] = round(time.perf_counter() - t, 2)
    timings["total"] = round(time.perf_counter() - started, 2)

    out = Path(options.out)
    final = out if decision.promoted else out.with_name(out.name + ".rejected")
    staging = out.parent / f".{out.name}.staging-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.parent.mkdir(parents=True, exist_ok=True)
    try:
        model.save(str(staging))
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if decision.promoted and write_manifest:
        directory = searcher.directory
        manifest = Manifest.load(directory)
        manifest.tuning = {**(manifest.tuning or {}), "reranker": {
            "path": str(final.resolve()), "top_n": options.top_n, "gate": decision.summary(),
        }}
        manifest.save(directory)
    return RerankerResult(promoted=decision.promoted, model_dir=final, decision=decision, pairs=len(pairs),
                          steps=steps, train_loss=loss, timings=timings, split=split.describe())
