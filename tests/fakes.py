"""Test doubles: a deterministic hashing encoder that stands in for the embedding model."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

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
