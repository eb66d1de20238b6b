"""Fixtures for fine-tuning tests: a tiny BERT and a tiny T5 built from configs (never downloaded), a small
multi-document corpus, and an index of it built with the tiny BERT."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from indexing.backends.configs import build_config
from indexing.build import build_index
from indexing.chunks import Chunk
from indexing.embedding import SentenceTransformerEncoder, load_encoder
from mlsearch.settings import Settings

ARTICLES = {
    "dropout.md": """---
title: Dropout
tags: [training]
---
# Dropout

Dropout randomly zeroes hidden activations during training so that no unit can rely on a partner unit.
It acts like an ensemble of many thinned networks that share their weights.

## Rates

A rate of one half for hidden layers and a smaller rate for inputs is a common starting point.
Dropout is switched off at inference time and the activations are scaled during training instead.
""",
    "optimizers.md": """---
title: Optimizers
tags: [training]
---
# Optimizers

## Adam

Adam keeps running averages of the gradients and of the squared gradients for every parameter.
The effective learning rate is scaled per parameter by the second moment estimate.

## Momentum

Momentum accumulates a velocity vector so that gradient descent moves faster along consistent directions.
Heavy ball momentum damps the oscillations across steep and narrow valleys of the loss surface.
""",
    "drift.md": """---
title: Data drift
tags: [mlops]
---
# Data drift

The Kolmogorov Smirnov test compares two samples of one numeric feature and reports a p value.
The population stability index bins a reference sample and compares the share of new data in each bin.

## Alerts

A population stability index above one quarter is usually read as a major shift of the feature.
Alerts should page a person only when the shift persists over several windows of traffic.
""",
    "faiss.md": """---
title: Vector search
tags: [search]
---
# Vector search

FAISS searches dense vectors with flat, inverted file and graph indexes on a single machine.
A flat index compares the query with every stored vector and returns the exact nearest neighbours.

## Graphs

Hierarchical navigable small world graphs give fast approximate search with high recall.
The graph links each vector to a few close neighbours on several layers of decreasing density.
""",
    "canary.md": """---
title: Canary releases
tags: [deployment]
---
# Canary releases

A canary release sends a small share of live traffic to the new model version first.
The share grows step by step while error rates and latency stay within their budgets.

## Rollback

When the canary breaks a guardrail metric the router sends all traffic back to the old version.
Automated rollback keeps the blast radius of a bad model release small and short.
""",
    "regularization.md": """---
title: Regularization
tags: [training]
---
# Regularization

Weight decay adds the squared norm of the weights to the loss and keeps the weights small.
Early stopping halts training when the validation loss stops improving for several epochs.

## Data augmentation

Augmentation creates new training examples by flipping, cropping and adding noise to the inputs.
It teaches the network invariances that the raw training set does not show often enough.
""",
}

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


@pytest.fixture
def finetune_corpus(tmp_path: Path) -> Path:
    """Six short articles with sections, written to ``tmp_path/corpus``."""
    folder = tmp_path / "corpus"
    folder.mkdir(exist_ok=True)
    for name, text in ARTICLES.items():
        (folder / name).write_text(text)
    return folder


def _vocabulary() -> list[str]:
    words = sorted({w for text in ARTICLES.values() for w in re.findall(r"[a-z]+", text.lower())})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789.,;:!?-_'\"()[]{}|/<>=+*#$%&`")
    return SPECIAL + words + [w for w in letters if w not in words] + [f"##{c}" for c in letters]


def make_tiny_bert(folder: Path, seed: int = 0, max_seq_length: int = 128) -> Path:
    """Save a tiny random BERT (2 layers, 32 wide) with mean pooling and NO Normalize as a sentence-transformers
    model folder, with a WordPiece tokenizer built from a vocabulary file."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer
    from transformers import BertConfig, BertModel, BertTokenizer

    raw = folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    vocab = raw / "vocab.txt"
    vocab.write_text("\n".join(_vocabulary()) + "\n")
    tokenizer = BertTokenizer.from_pretrained(str(raw), do_lower_case=True)  # reads raw/vocab.txt
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_seq_length)
    torch.manual_seed(seed)
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = Transformer(str(raw), max_seq_length=max_seq_length)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    out = folder / "model"
    model.save(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random BERT sentence-transformers folder (session-wide; load it, never change it)."""
    return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def tiny_encoder(tiny_bert_dir: Path) -> SentenceTransformerEncoder:
    """The tiny BERT, freshly loaded through :func:`indexing.embedding.load_encoder`."""
    return load_encoder(str(tiny_bert_dir))


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random T5 with a word-level tokenizer, saved as a seq2seq model folder."""
    import torch
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = sorted({w for text in ARTICLES.values() for w in re.findall(r"[a-z]+", text.lower())})
    vocab = {token: i for i, token in enumerate(["<pad>", "</s>", "<unk>", *words])}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = Whitespace()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    config = T5Config(vocab_size=len(vocab), d_model=16, d_kv=8, d_ff=32, num_layers=1, num_decoder_layers=1,
                      num_heads=2, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny-t5")
    T5ForConditionalGeneration(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def tiny_index(finetune_corpus: Path, settings: Settings, tiny_encoder: SentenceTransformerEncoder) -> Path:
    """The corpus built with the tiny BERT (faiss and bm25) into ``settings.index_dir``."""
    build_index(build_config(settings), tiny_encoder, corpus_dir=finetune_corpus, backends=["faiss", "bm25"])
    return settings.index_dir


@pytest.fixture
def sample_chunks(finetune_corpus: Path) -> list[tuple[int, Chunk]]:
    """The corpus chunked with a word-count tokenizer, as (position, chunk) pairs."""
    from indexing.chunking import Chunker, ChunkingConfig
    from indexing.documents import load_corpus
    from tests.fakes import HashingEncoder

    documents = load_corpus(finetune_corpus).documents
    chunks = Chunker(HashingEncoder().count_tokens, ChunkingConfig(64, 96, 8)).chunk_documents(documents)
    return list(enumerate(chunks))
