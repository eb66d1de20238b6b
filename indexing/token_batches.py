"""Batches of tokenized texts grouped by their exact token length, padded only to each batch's longest.

The exported encoders tokenize a whole ``encode`` call once (truncated, unpadded), sort the texts by token
count, cut the sorted list into batches of at most ``batch_size`` texts and at most ``max_tokens`` padded
tokens (rows times the batch's longest), and pad each batch alone. Sorting by token count instead of by
characters (what sentence-transformers does) and capping a batch's padded size cut the tokens the model runs on
padding (on the chunks of ``corpus/``: 34% padding with character order and batches of 32, 5% with token order)
and keep a batch's activations in the CPU's cache.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np


def length_batches(lengths: Sequence[int], batch_size: int, max_tokens: int = 0) -> Iterator[np.ndarray]:
    """Indices into ``lengths``, longest first, in batches of at most ``batch_size`` rows and ``max_tokens``.

    A batch holds at most ``batch_size`` rows, and at most ``max_tokens`` tokens counted as rows times the
    batch's longest length (0: no token cap); a single text longer than ``max_tokens`` is a batch of its own.
    Ties keep the input order.

    Args:
        lengths: The token count of each text.
        batch_size: Most rows per batch (at least 1).
        max_tokens: Most padded tokens per batch (0: unbounded).

    Yields:
        Each batch's indices into ``lengths``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, not {batch_size}")
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    start = 0
    while start < len(order):
        longest = max(int(lengths[order[start]]), 1)
        rows = min(batch_size, max(1, max_tokens // longest)) if max_tokens > 0 else batch_size
        yield order[start:start + rows]
        start += rows


def pad_batch(
    encoded: Mapping[str, Sequence[Sequence[int]]], rows: Sequence[int], input_names: Sequence[str],
    pad_values: dict[str, int], padding_side: str = "right", multiple_of: int = 1,
) -> dict[str, np.ndarray]:
    """The int64 model inputs of ``rows`` of an unpadded tokenizer output, padded to the rows' longest.

    Args:
        encoded: The tokenizer's output without padding (``input_ids``, ``attention_mask``, …: one list per text).
        rows: Which texts form the batch, in the batch's order.
        input_names: The inputs to return.
        pad_values: The padding value of each input (``input_ids``: the pad token id; 0 for the others).
        padding_side: ``right`` or ``left``, as the tokenizer pads.
        multiple_of: Pad to the longest rounded up to a multiple of this (the tokenizer's ``pad_to_multiple_of``).

    Returns:
        ``{name: array of shape (len(rows), longest)}``, as the tokenizer pads with ``padding=True``.
    """
    longest = max(len(encoded["input_ids"][i]) for i in rows)
    longest = -(-longest // multiple_of) * multiple_of
    out: dict[str, np.ndarray] = {}
    for name in input_names:
        array = np.full((len(rows), longest), pad_values.get(name, 0), dtype=np.int64)
        for row, i in enumerate(rows):
            values = encoded[name][i]
            if padding_side == "left":
                array[row, longest - len(values):] = values
            else:
                array[row, :len(values)] = values
        out[name] = array
    return out


def pad_values(tokenizer: Any) -> dict[str, int]:
    """Each model input's padding value as the Hugging Face ``tokenizer`` pads it."""
    return {
        "input_ids": int(tokenizer.pad_token_id or 0),
        "token_type_ids": int(getattr(tokenizer, "pad_token_type_id", 0) or 0),
        "attention_mask": 0,
    }
