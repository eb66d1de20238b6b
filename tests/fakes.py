"""Test doubles: a deterministic hashing encoder that stands in for the embedding model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mlsearch.settings import Settings

_TOKEN = re.compile(r"\w+|[^\w\s]")


class HashingEncoder:
    """A tiny, deterministic bag-of-words encoder with the :class:`indexing.embedding.Encoder` interface.

    Each lower-cased token maps to a fixed random unit vector (seeded by its hash); a text is the
    normalised sum of its tokens' vectors, so texts that share words are similar. One token is one word
    or punctuation mark, plus two special tokens per text, as a BERT tokenizer counts.
    """

    def __init__(self, dimension: int = 64, max_seq_length: int = 128, name: str = "fake-hashing") -> None:
        self.name = name
        self.weights_hash = hashlib.sha256(name.encode()).hexdigest()
        self.dimension = dimension
        self.max_seq_length = max_seq_length
        self.normalized = True
        self.encoded_texts = 0

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Words and punctuation marks, plus two special tokens."""
        return [len(_TOKEN.findall(text)) + 2 for text in texts]

    def _token_vector(self, token: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(token.encode()).digest()[:8], "little")
        return np.random.default_rng(seed).standard_normal(self.dimension).astype(np.float32)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Normalised sum of token vectors (a zero text gets a fixed vector)."""
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for i, text in enumerate(texts):
            tokens = [t.lower() for t in _TOKEN.findall(text) if t.isalnum()] or ["<empty>"]
            vector = np.sum([self._token_vector(t) for t in tokens], axis=0)
            out[i] = vector / (np.linalg.norm(vector) or 1.0)
        self.encoded_texts += len(texts)
        return out


class CountingEncoder(HashingEncoder):
    """The hashing encoder, recording the texts of each ``encode`` call in ``calls``."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Record the texts, then encode them."""
        self.calls.append(list(texts))
        return super().encode(texts, batch_size, show_progress)


TINY_VOCAB = (
    ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    + list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-()")
    + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    + "the a of and to in is for on with by dropout learning rate model training data search vector "
    "index query drift test network layer gradient loss optimizer adam batch epoch".split()
)


def build_tiny_sentence_transformer(directory: Path, normalize: bool = False, max_seq_length: int = 64) -> Path:
    """Save a tiny BERT sentence-transformer built from a config (no download) into ``directory``.

    Without ``normalize`` it has no Normalize module: a dot-product model, like
    msmarco-distilbert-base-dot-prod-v3.
    """
    import torch
    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel, BertTokenizerFast  # type: ignore[attr-defined]

    torch.manual_seed(0)
    raw = directory / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "vocab.txt").write_text("\n".join(TINY_VOCAB) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(raw / "vocab.txt"), do_lower_case=True)  # transformers 5 ignores vocab_file
    config = BertConfig(
        vocab_size=len(TINY_VOCAB), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(raw)
    tokenizer.save_pretrained(raw)
    transformer = models.Transformer(str(raw), max_seq_length=max_seq_length)
    modules: list[torch.nn.Module] = [transformer, models.Pooling(transformer.get_embedding_dimension(), "mean")]
    if normalize:
        modules.append(models.Normalize())
    model = SentenceTransformer(modules=modules, device="cpu")
    out = directory / "model"
    model.save(str(out))
    return out


def updated_settings(settings: Settings, **changes: Any) -> Settings:
    """A validated copy of ``settings`` with ``changes``; backend options may be flat (``faiss_factory="Flat"``).

    ``Settings.model_copy`` neither validates nor folds ``<backend>_<option>`` keys into ``backend_options``.
    """
    return Settings.model_validate({**settings.model_dump(), **changes})
