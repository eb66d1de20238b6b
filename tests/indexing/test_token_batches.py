"""Length-sorted, token-capped batches and their padding; the exported encoder keeps the input order."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from indexing.exported import ExportedEncoder
from indexing.text_tokenizer import HuggingFaceTokenizer
from indexing.token_batches import length_batches, pad_batch, pad_values
from tests.fakes import TINY_VOCAB

NAMES = ["input_ids", "token_type_ids", "attention_mask"]
TEXTS = [
    "dropout is a regularizer for the network",
    "adam",
    "search the vector index with a query " * 12,  # longer than max_seq_length: truncated
    "learning rate of the optimizer and the batch size",
    "x",
    "the network",
    "batch size",
]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """A tiny BERT fast tokenizer (no download)."""
    from transformers import BertTokenizerFast  # type: ignore[attr-defined]

    vocab = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n")
    return BertTokenizerFast(vocab=str(vocab), do_lower_case=True)  # transformers 5 ignores vocab_file


@pytest.mark.parametrize("batch_size", [1, 2, 3, 32])
@pytest.mark.parametrize("max_tokens", [0, 1, 10, 25])
def test_every_index_once_longest_first_within_the_caps(batch_size: int, max_tokens: int) -> None:
    lengths = [5, 12, 3, 12, 7, 1, 9, 5, 5, 2, 11]
    batches = list(length_batches(lengths, batch_size, max_tokens))
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(len(lengths)))
    assert [lengths[i] for i in flat] == sorted(lengths, reverse=True)
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        if max_tokens and len(batch) > 1:
            assert len(batch) * max(lengths[i] for i in batch) <= max_tokens
    ties = [i for i in flat if lengths[i] == 5]
    assert ties == [0, 7, 8]  # equal lengths keep the input order


def test_a_token_cap_fills_batches_as_far_as_it_allows() -> None:
    assert [b.tolist() for b in length_batches([4, 4, 4, 2, 2, 2, 2], 32, 8)] == [[0, 1], [2, 3], [4, 5, 6]]
    with pytest.raises(ValueError, match="batch_size"):
        list(length_batches([1], 0))


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_matches_the_tokenizers_own(tokenizer: Any, side: str) -> None:
    tokenizer.padding_side = side
    try:
        encoded = tokenizer(TEXTS, padding=False, truncation="longest_first", max_length=16)
        rows = [2, 0, 4]
        padded = pad_batch(encoded, rows, NAMES, pad_values(tokenizer), side)
        expected = tokenizer(
            [TEXTS[i] for i in rows], padding=True, truncation="longest_first", max_length=16, return_tensors="np"
        )
        for name in NAMES:
            assert padded[name].dtype == np.int64
            np.testing.assert_array_equal(padded[name], expected[name])
    finally:
        tokenizer.padding_side = "right"


class RecordingRunner:
    """A fake graph: each row's embedding depends on its own unpadded tokens only; records each call's shape."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        ids, mask = features["input_ids"], features["attention_mask"]
        self.shapes.append(ids.shape)
        real = (ids * mask).astype(np.float64)
        return np.stack([real.sum(1), mask.sum(1), real.max(1), (real**2).sum(1)], axis=1).astype(np.float32)


def encoder(tokenizer: Any, batch_tokens: int) -> tuple[ExportedEncoder, RecordingRunner]:
    runner = RecordingRunner()
    return ExportedEncoder(
        runner, HuggingFaceTokenizer(tokenizer, 16), NAMES, name="tiny", weights_hash="0" * 64, dimension=4,
        max_seq_length=16, normalized=False, backend="openvino", batch_tokens=batch_tokens,
    ), runner


@pytest.mark.parametrize(("batch_size", "batch_tokens"), [(2, 0), (3, 40), (32, 4096), (32, 20)])
def test_encode_returns_rows_in_input_order(tokenizer: Any, batch_size: int, batch_tokens: int) -> None:
    model, runner = encoder(tokenizer, batch_tokens)
    one_by_one = np.concatenate([model.encode([text]) for text in TEXTS])
    vectors = model.encode(TEXTS, batch_size=batch_size)
    np.testing.assert_array_equal(vectors, one_by_one)
    batched = runner.shapes[len(TEXTS):]
    assert sum(rows for rows, _ in batched) == len(TEXTS)
    assert all(rows <= batch_size for rows, _ in batched)
    if batch_tokens:
        assert all(rows * width <= batch_tokens or rows == 1 for rows, width in batched)
    assert max(width for _, width in runner.shapes) == 16  # truncated to max_seq_length
    assert model.encode([]).shape == (0, 4)


def test_one_text_is_padded_to_a_multiple_of_the_query_pad(tokenizer: Any) -> None:
    from indexing.exported import QUERY_PAD

    model, runner = encoder(tokenizer, 4096)
    vector = model.encode(["adam"])
    rows, width = runner.shapes[-1]
    assert rows == 1 and width % QUERY_PAD == 0
    np.testing.assert_array_equal(vector, model.encode(["adam", "adam"])[:1])  # padding changes nothing
