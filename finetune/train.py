"""Fine-tuning with sentence-transformers: ``SentenceTransformerTrainer`` and ``MultipleNegativesRankingLoss``.

Each training example is (query, positive passage, hard negative). The loss treats every other passage in
the batch as a negative too, so a batch must not hold the same text twice (``BatchSamplers.NO_DUPLICATES``).
The model's own similarity is kept: a model that ends in ``Normalize`` is trained on cosine similarity
(scale 20), any other on the dot product (scale 1), and no module is added or removed.
"""

from __future__ import annotations

import logging
import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingConfig:
    """Hyper-parameters of one fine-tuning run.

    Attributes:
        epochs: Passes over the training queries.
        batch_size: Examples per batch (each brings one positive and one hard negative).
        learning_rate: Peak AdamW learning rate (linear warm-up, then linear decay).
        warmup_ratio: Share of the steps spent warming up.
        weight_decay: AdamW weight decay.
        max_seq_length: Tokens read per text during training (shorter is faster on a CPU); the saved model
            keeps its own ``max_seq_length``, so indexing chunks exactly as before. None: the model's.
        seed: Seeds data order, dropout and initialisation.
    """

    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 5e-5
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_seq_length: int | None = 128
    seed: int = 0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, got {self.epochs}")
        if self.batch_size < 2:
            raise ValueError(f"batch size must be at least 2 (in-batch negatives), got {self.batch_size}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning rate must be positive, got {self.learning_rate}")
        if self.max_seq_length is not None and self.max_seq_length < 8:
            raise ValueError(f"training max_seq_length must be at least 8, got {self.max_seq_length}")

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass(frozen=True)
class TrainingExample:
    """A query, its positive passage and (optionally) a hard negative passage."""

    anchor: str
    positive: str
    negative: str | None = None


@dataclass(frozen=True)
class TrainingStats:
    """What a training run did."""

    examples: int
    with_negatives: bool
    similarity: str
    scale: float
    steps: int
    train_loss: float
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)


def _log_callback(show_progress: bool) -> Any:
    """A trainer callback that logs the loss lines (the library's own print them on stdout).

    With ``show_progress`` it is the library's progress bar (tqdm, on stderr) with only ``on_log`` replaced.
    """
    from transformers.trainer_callback import ProgressCallback, TrainerCallback

    def on_log(self: Any, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        if state.is_world_process_zero and logs:
            logger.info("training: %s", {k: v for k, v in logs.items() if k != "total_flos"})

    base = ProgressCallback if show_progress else TrainerCallback
    return type("LoggedProgress", (base,), {"on_log": on_log})


def _warmup_steps(examples: int, config: TrainingConfig) -> int:
    """``warmup_ratio`` of the optimizer steps, as a whole number of steps (accepted by every transformers)."""
    steps = math.ceil(examples / config.batch_size) * config.epochs
    return int(config.warmup_ratio * steps)


def loss_for(model: Any) -> Any:
    """``MultipleNegativesRankingLoss`` on the model's own similarity (cosine if it normalises, else dot)."""
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize
    from sentence_transformers.util import cos_sim, dot_score

    if any(isinstance(module, Normalize) for module in model):
        return MultipleNegativesRankingLoss(model, scale=20.0, similarity_fct=cos_sim)
    return MultipleNegativesRankingLoss(model, scale=1.0, similarity_fct=dot_score)


def train_model(
    model: Any, examples: Sequence[TrainingExample], config: TrainingConfig, show_progress: bool = False
) -> TrainingStats:
    """Fine-tune a SentenceTransformer in place on (query, positive, negative) examples, on the CPU.

    The negative column is used only when every example has a negative.

    Args:
        model: A ``sentence_transformers.SentenceTransformer`` (changed in place).
        examples: Training examples (at least two).
        config: Hyper-parameters.
        show_progress: Show the trainer's progress bar (on stderr).

    Returns:
        Counts, the mean training loss and the time taken.

    Raises:
        ValueError: Fewer than two examples.
    """
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as transformers_logging

    if len(examples) < 2:
        raise ValueError(f"at least 2 training examples are needed, got {len(examples)}")
    started = time.perf_counter()
    with_negatives = all(e.negative for e in examples)
    columns: dict[str, list[str]] = {
        "anchor": [e.anchor for e in examples], "positive": [e.positive for e in examples],
    }
    if with_negatives:
        columns["negative"] = [str(e.negative) for e in examples]
    dataset = Dataset.from_dict(columns)
    original_length = model.max_seq_length
    if config.max_seq_length:
        model.max_seq_length = min(config.max_seq_length, original_length or config.max_seq_length)
    transformers_logging.set_verbosity_error()
    try:
        with tempfile.TemporaryDirectory(prefix="mlsearch-train-") as scratch:
            args = SentenceTransformerTrainingArguments(
                output_dir=scratch, num_train_epochs=config.epochs,
                per_device_train_batch_size=min(config.batch_size, len(examples)),
                learning_rate=config.learning_rate, warmup_steps=_warmup_steps(len(examples), config),
                weight_decay=config.weight_decay, seed=config.seed, data_seed=config.seed,
                batch_sampler=BatchSamplers.NO_DUPLICATES, save_strategy="no", eval_strategy="no",
                report_to="none", use_cpu=True, dataloader_num_workers=0,
                logging_steps=max(1, len(examples) // config.batch_size // 10),
                disable_tqdm=not show_progress,
            )
            loss = loss_for(model)
            trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=loss)
            trainer.remove_callback(ProgressCallback)
            trainer.remove_callback(PrinterCallback)
            trainer.add_callback(_log_callback(show_progress))
            output = trainer.train()
    finally:
        model.max_seq_length = original_length
        model.eval()
    stats = TrainingStats(
        examples=len(examples), with_negatives=with_negatives, similarity=loss.similarity_fct.__name__,
        scale=float(loss.scale), steps=int(output.global_step),
        train_loss=round(float(output.training_loss), 5), seconds=round(time.perf_counter() - started, 2),
    )
    logger.info("trained: %s", stats)
    return stats
