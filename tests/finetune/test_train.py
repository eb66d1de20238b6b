"""Training with SentenceTransformerTrainer + MultipleNegativesRankingLoss on a tiny BERT built from a config."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pytest
import torch

from finetune.train import TrainingConfig, TrainingExample, loss_for, train_model
from indexing.embedding import SentenceTransformerEncoder, load_encoder

EXAMPLES = [
    TrainingExample("what is dropout", "Dropout\n\ndropout randomly zeroes hidden activations", "adam keeps averages"),
    TrainingExample("adam running averages", "Optimizers > Adam\n\nadam keeps running averages of the gradients",
                    "dropout zeroes units"),
    TrainingExample("population stability index", "Data drift\n\nthe population stability index bins a sample",
                    "momentum accumulates a velocity"),
    TrainingExample("canary share of traffic", "Canary releases\n\na canary release sends a small share of traffic",
                    "weight decay keeps weights small"),
    TrainingExample("flat index exact search", "Vector search\n\na flat index compares the query with every vector",
                    "augmentation flips and crops"),
]
CONFIG = TrainingConfig(epochs=2, batch_size=2, learning_rate=1e-3, max_seq_length=32, seed=0)


def _weights(model: object) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}  # type: ignore[attr-defined]


def test_a_training_step_changes_the_weights(tiny_encoder: SentenceTransformerEncoder) -> None:
    model = tiny_encoder.model
    before = _weights(model)
    modules_before = [type(m).__name__ for m in model]
    stats = train_model(model, EXAMPLES, CONFIG)
    after = _weights(model)
    assert stats.steps == 6 and stats.with_negatives and np.isfinite(stats.train_loss)  # ceil(5 / 2) * 2
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("encoder.layer" in k for k in changed)
    assert model.max_seq_length == 128  # training used 32 tokens; the model keeps its own
    assert [type(m).__name__ for m in model] == modules_before  # no Normalize added to a dot-product model
    assert (stats.similarity, stats.scale) == ("dot_score", 1.0)


def test_training_is_reproducible_with_a_seed(tiny_encoder: SentenceTransformerEncoder) -> None:
    first, second = copy.deepcopy(tiny_encoder.model), copy.deepcopy(tiny_encoder.model)
    train_model(first, EXAMPLES, CONFIG)
    train_model(second, EXAMPLES, CONFIG)
    a, b = _weights(first), _weights(second)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_pairs_without_negatives_train_too(tiny_encoder: SentenceTransformerEncoder) -> None:
    pairs = [TrainingExample(e.anchor, e.positive) for e in EXAMPLES]
    pairs[0] = TrainingExample(EXAMPLES[0].anchor, EXAMPLES[0].positive, EXAMPLES[0].negative)
    stats = train_model(tiny_encoder.model, pairs, TrainingConfig(batch_size=4, max_seq_length=32))
    assert not stats.with_negatives and stats.steps == 2


def test_loss_follows_the_model_similarity(tiny_encoder: SentenceTransformerEncoder) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize

    normalized = SentenceTransformer(modules=[*tiny_encoder.model, Normalize()], device="cpu")
    loss = loss_for(normalized)
    assert (loss.similarity_fct.__name__, loss.scale) == ("cos_sim", 20.0)


def test_saved_model_reloads_and_encodes(tiny_encoder: SentenceTransformerEncoder, tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    train_model(tiny_encoder.model, EXAMPLES, CONFIG)
    tiny_encoder.model.save(str(tmp_path / "tuned"))
    texts = ["what is dropout", "population stability index bins"]
    expected = tiny_encoder.encode(texts)
    reloaded = SentenceTransformer(str(tmp_path / "tuned"), device="cpu")
    np.testing.assert_allclose(reloaded.encode(texts), expected, atol=1e-5)
    encoder = load_encoder(str(tmp_path / "tuned"))
    assert (encoder.dimension, encoder.max_seq_length, encoder.normalized) == (32, 128, False)
    np.testing.assert_allclose(encoder.encode(texts), expected, atol=1e-5)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="batch size"):
        TrainingConfig(batch_size=1)
    with pytest.raises(ValueError, match="epochs"):
        TrainingConfig(epochs=0)
    with pytest.raises(ValueError, match="at least 2 training examples"):
        train_model(object(), EXAMPLES[:1], TrainingConfig())
