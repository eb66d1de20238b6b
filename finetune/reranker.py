"""A cross-encoder reranker trained without labels, promoted by the champion/challenger gate.

Steps (``mlsearch rerank-train``):

1. Synthetic queries from the index's chunks (:class:`finetune.queries.HeuristicGenerator`), split by document
   (or section, or block, for a corpus of few documents) with :func:`finetune.split.split_queries`, so that the
   gate's dev queries never reach training.
2. For each training query: its chunk as the positive, and as hard negatives the chunks the index's hybrid
   search ranks highest among training chunks of *other* units (an unlabelled answer in the same unit is never
   used as a negative), filled up with random chunks of other units.
3. A ``sentence_transformers.CrossEncoder`` initialised from a local model folder (the bundled MiniLM weights by
   default: the encoder, with a new one-output head) is trained with a listwise softmax loss (the positive
   against its hard negatives and other queries' passages), at most ``max_steps`` steps.
4. Blend: on tuning queries of the training units that training never saw, the weight of the cross-encoder's
   score against hybrid search's (both min-max normalised over the head) that ranks best; 1 is the
   cross-encoder alone. It is saved beside the model (:data:`search.rerank.BLEND_FILE`).
5. Gate: on the dev queries, nDCG@10 of the hybrid list against the same list with its top N reranked
   (:mod:`finetune.gate`). Only a reranker that gains ``min_gain`` is promoted: moved to ``out`` and named in the
   index manifest (``tuning.reranker``); a rejected one goes to ``<out>.rejected``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from finetune.filters import drop_duplicates, drop_short
from finetune.gate import GateDecision, GatePolicy, compare, decide
from finetune.queries import HeuristicGenerator, SyntheticQuery
from finetune.split import split_queries
from finetune.tune import ndcg_at_10
from indexing.embedding import bundled_model_path
from indexing.manifest import Manifest
from mlsearch.catalog import FUSED_METHOD
from mlsearch.folders import replace_folder
from search.rerank import BLEND_FILE, Reranker, blend
from search.searcher import Searcher

logger = logging.getLogger(__name__)
Progress = Callable[[str], None]
DEV_SET = "synthetic-dev"
WEIGHT_GRID: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
"""Blend weights tried (the cross-encoder's share; 0 keeps hybrid search's order)."""


@dataclass(frozen=True)
class RerankerOptions:
    """What ``mlsearch rerank-train`` was asked to do.

    Attributes:
        out: Where a promoted reranker goes (a rejected one to ``<out>.rejected``).
        base_model: The local folder the cross-encoder starts from (the bundled MiniLM when None).
        max_train_queries: Training queries used at most (sampled, seeded).
        max_dev_queries: Dev queries the gate scores at most.
        negatives: Hard negatives per query.
        in_batch_negatives: Other queries' passages each query's positive also competes with.
        top_n: Results the reranker rescores (the gate and search alike).
        epochs: Passes over the training queries.
        max_steps: Upper bound on optimizer steps (bounds the time on a small CPU).
        batch_size: Queries per step (each with its positive and negatives).
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
    in_batch_negatives: int = 2
    top_n: int = 20
    epochs: int = 3
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
    training_queries: int
    steps: int
    train_loss: float
    timings: dict[str, float]
    split: dict[str, Any]
    weight: float = 1.0

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"promoted": self.promoted, "model_dir": str(self.model_dir), "gate": self.decision.summary(),
                "training_queries": self.training_queries, "weight": self.weight, "steps": self.steps,
                "train_loss": round(self.train_loss, 5),
                "timings": self.timings, "split": self.split}


def train_groups(
    searcher: Searcher, queries: Sequence[SyntheticQuery], allowed: frozenset[int], units: dict[int, str],
    negatives: int, seed: int,
) -> list[tuple[str, ...]]:
    """``(query, positive, negative_1, …, negative_n)`` groups: the source chunk, then ``negatives`` hard
    negatives (the chunks hybrid search ranks highest among ``allowed`` positions of units other than the
    query's own), filled up with random chunks of other units when hybrid search finds too few.

    A chunk of the query's own unit (its section or document) is never a negative: it often answers the query
    too (a false negative would teach the model to push a right answer down).
    """
    rng = random.Random(seed)
    chunks = dict(enumerate(searcher.store))
    pool = sorted(allowed)
    groups: list[tuple[str, ...]] = []
    for query in queries:
        own = units.get(query.position)
        others = [p for p in pool if units.get(p) != own and p != query.position]
        if len(others) < negatives:
            continue
        ranked = searcher.retrieve(query.text, 30, FUSED_METHOD)
        chosen = [p for p, _ in ranked if p in allowed and p != query.position and units.get(p) != own][:negatives]
        while len(chosen) < negatives:
            extra = rng.choice(others)
            if extra not in chosen:
                chosen.append(extra)
        groups.append((query.text, chunks[query.position].embedding_text,
                       *(chunks[p].embedding_text for p in chosen)))
    return groups


def train_cross_encoder(
    base: Path, groups: Sequence[tuple[str, ...]], options: RerankerOptions, device: str = "cpu",
    show_progress: bool = False,
) -> tuple[Any, int, float]:
    """Train a one-output ``CrossEncoder`` from ``base`` with a listwise (softmax) ranking loss.

    Each query's positive competes with its hard negatives and ``in_batch_negatives`` other queries' passages
    (sentence-transformers' cross-encoder ``MultipleNegativesRankingLoss``). A listwise loss suits a head that
    starts random: it only needs the positive to score above the others, where binary cross-entropy over one
    positive and several negatives first learns to call everything irrelevant (what a short run of it did:
    held-out nDCG@10 fell from 0.84 to 0.18).

    Returns:
        The model, the steps taken and the mean training loss.
    """
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import MultipleNegativesRankingLoss
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    model = CrossEncoder(str(base), num_labels=1, max_length=options.max_length, device=device,
                         local_files_only=True)
    width = len(groups[0])
    columns = {"query": [g[0] for g in groups], "positive": [g[1] for g in groups]}
    for i in range(2, width):
        columns[f"negative_{i - 1}"] = [g[i] for g in groups]
    dataset = Dataset.from_dict(columns)
    steps_per_epoch = max(1, math.ceil(len(groups) / options.batch_size))
    steps = min(options.max_steps, steps_per_epoch * options.epochs)
    with tempfile.TemporaryDirectory(prefix="mlsearch-rerank-") as scratch:
        args = CrossEncoderTrainingArguments(
            output_dir=scratch, num_train_epochs=options.epochs, max_steps=steps,
            per_device_train_batch_size=options.batch_size, learning_rate=options.learning_rate,
            warmup_steps=max(1, steps // 10), seed=options.seed, data_seed=options.seed,
            save_strategy="no", eval_strategy="no", report_to="none", use_cpu=device == "cpu",
            dataloader_num_workers=0, disable_tqdm=not show_progress, logging_steps=max(1, steps // 10),
        )
        loss = MultipleNegativesRankingLoss(model, num_negatives=options.in_batch_negatives)
        trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
        trainer.remove_callback(PrinterCallback)  # it prints the loss on stdout
        if not show_progress:
            trainer.remove_callback(ProgressCallback)
        output = trainer.train()
    model.model.eval()
    return model, int(output.global_step), float(output.training_loss)


def head_scores(
    searcher: Searcher, queries: Sequence[SyntheticQuery], reranker: Reranker, top_n: int
) -> list[tuple[list[tuple[int, float]], np.ndarray]]:
    """For each query: hybrid search's ranked list and the cross-encoder's scores of its top ``top_n``."""
    chunks = dict(enumerate(searcher.store))
    out = []
    for query in queries:
        ranked = searcher.retrieve(query.text, max(10, top_n), FUSED_METHOD)
        out.append((ranked, reranker.score(query.text, [chunks[p].embedding_text for p, _ in ranked[:top_n]])))
    return out


def blended_ndcg(
    queries: Sequence[SyntheticQuery], scored: Sequence[tuple[list[tuple[int, float]], np.ndarray]], weight: float,
) -> dict[str, float]:
    """Per-query nDCG@10 of the hybrid lists with their heads reordered by the blend at ``weight``."""
    out: dict[str, float] = {}
    for i, (query, (ranked, cross)) in enumerate(zip(queries, scored, strict=True)):
        head = ranked[: len(cross)]
        mixed = blend(cross, np.array([s for _, s in head]), weight)
        order = sorted(range(len(head)), key=lambda j: (-float(mixed[j]), j))
        positions = [head[j][0] for j in order] + [p for p, _ in ranked[len(cross):]]
        out[f"q{i}"] = ndcg_at_10(positions, query.position)
    return out


def choose_weight(
    queries: Sequence[SyntheticQuery], scored: Sequence[tuple[list[tuple[int, float]], np.ndarray]],
    grid: Sequence[float] = WEIGHT_GRID,
) -> tuple[float, dict[float, float]]:
    """The blend weight with the best mean nDCG@10 (ties: the larger weight), and the mean at every weight."""
    means = {w: float(np.mean(list(blended_ndcg(queries, scored, w).values()))) for w in grid}
    best = max(grid, key=lambda w: (round(means[w], 9), w))
    return best, means


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
    shuffled = rng.sample(split.train, len(split.train))
    spare = max(0, len(shuffled) - 4)
    tune = shuffled[: min(options.max_dev_queries, spare // 4)]  # training units, but never trained on
    train = shuffled[len(tune):][: options.max_train_queries]
    dev = rng.sample(split.dev, min(len(split.dev), options.max_dev_queries))
    if len(train) < 4 or not dev:
        raise FinetuneError(f"too few synthetic queries to train a reranker ({len(train)} train, {len(dev)} dev)")
    groups = train_groups(searcher, train, split.train_positions, split.chunk_units, options.negatives,
                          options.seed)
    if not groups:
        raise FinetuneError("too few training chunks outside each query's own unit to draw negatives from")
    timings["negatives"] = round(time.perf_counter() - t, 2)
    say(f"{len(groups)} training queries (each with {options.negatives} hard negatives), {len(tune)} tuning "
        f"and {len(dev)} dev queries; split by {split.unit}")

    t = time.perf_counter()
    base = options.base_model or bundled_model_path()
    model, steps, loss = train_cross_encoder(base, groups, options, searcher.config.encoder.device, show_progress)
    timings["train"] = round(time.perf_counter() - t, 2)
    say(f"trained {steps} steps (loss {loss:.4f}); choosing the blend on {len(tune)} queries, gating on "
        f"{len(dev)} dev queries")

    t = time.perf_counter()
    challenger = Reranker(model, str(options.out))
    weight, curve = choose_weight(tune, head_scores(searcher, tune, challenger, options.top_n)) if tune else (
        1.0, {})
    challenger.weight = weight
    say(f"blend weight {weight:.1f} (tuning nDCG@10 " + ", ".join(f"{w:.1f}: {v:.3f}" for w, v in curve.items())
        + ")")
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
        (staging / BLEND_FILE).write_text(json.dumps({"weight": weight, "top_n": options.top_n,
                                                      "tuning_ndcg": {str(w): v for w, v in curve.items()}}))
        replace_folder(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if decision.promoted and write_manifest:
        directory = searcher.directory
        manifest = Manifest.load(directory)
        manifest.tuning = {**(manifest.tuning or {}), "reranker": {
            "path": str(final.resolve()), "top_n": options.top_n, "weight": weight, "gate": decision.summary(),
        }}
        manifest.save(directory)
    return RerankerResult(promoted=decision.promoted, model_dir=final, decision=decision,
                          training_queries=len(groups),
                          steps=steps, train_loss=loss, timings=timings, split=split.describe(), weight=weight)
