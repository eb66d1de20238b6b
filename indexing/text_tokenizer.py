"""Tokenizers of the exported encoders: unpadded token ids of texts, truncated or not, safe to call from threads.

:class:`FastTokenizer` runs the model folder's ``tokenizer.json`` with the ``tokenizers`` library alone (no
transformers, no torch), configured as sentence-transformers configures the Hugging Face tokenizer it loads
(truncation to ``max_seq_length``, ``do_lower_case``, the pad token). :class:`HuggingFaceTokenizer` wraps a loaded
Hugging Face tokenizer (for folders without ``tokenizer.json``). Both give the same ids for the same folder
(tested over varied texts); padding is done by :func:`indexing.token_batches.pad_batch`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Protocol

from indexing.model_folder import ModelFolder
from indexing.token_batches import pad_values

Encoded = dict[str, list[list[int]]]  # input name -> one list of ids per text

# Texts on which a folder's FastTokenizer must give the Hugging Face tokenizer's ids before its export is opened
# without sentence-transformers (see same_tokens): case, accents, scripts, emoji, invisible and control
# characters, special-token literals, numbers, an empty text, and texts longer than any max_seq_length.
PROBE_TEXTS: tuple[str, ...] = (
    "",
    "   ",
    "Dropout is a Regularizer for the NETWORK.",
    "naïve café ÅNGSTRÖM Straße İstanbul",
    "日本語のテキストと中文混合 한국어 العربية עברית",
    "emoji 🙂👍🏽 and zero\u200bwidth, non\u00a0breaking, soft\u00adhyphen",
    "ﬁ ligature ½ Ⅻ ① ＦＵＬＬＷＩＤＴＨ",
    "control\x00chars\x07and\ttabs\r\nand\nnewlines",
    "[CLS] [SEP] [PAD] [MASK] [UNK] <s> </s> <pad> literal special tokens",
    "learning rate 3e-4, batch=32; loss: 0.123 (epoch #7) — done! http://example.com/a_b?c=d",
    "supercalifragilisticexpialidocious" * 20,
    "search the vector index with a query " * 150,
)


class TextTokenizer(Protocol):
    """What an exported encoder needs of a tokenizer."""

    padding_side: str

    def tokenize(self, texts: Sequence[str], truncate: bool = True) -> Encoded:
        """``input_ids``, ``attention_mask`` and ``token_type_ids`` of each text, unpadded, special tokens included;
        truncated to the model's ``max_seq_length`` unless ``truncate`` is False."""
        ...

    def pad_values(self) -> dict[str, int]:
        """The padding value of each input (``input_ids``: the pad token's id)."""
        ...


class FastTokenizer:
    """A ``tokenizers.Tokenizer`` read from the folder's ``tokenizer.json``.

    Two copies are kept, one truncating and one not, each configured once: a call changes no state, so threads
    may tokenize at once.

    Args:
        folder: What the model folder says of its inputs (see :func:`indexing.model_folder.read_model_folder`).
    """

    def __init__(self, folder: ModelFolder) -> None:
        self.padding_side = folder.padding_side
        self._truncating = self._load(folder)
        self._truncating.enable_truncation(
            folder.max_seq_length, stride=0, strategy="longest_first", direction=folder.truncation_side
        )
        self._whole = self._load(folder)
        pad_id = self._whole.token_to_id(folder.pad_token) if folder.pad_token else None
        self._pad_id = int(pad_id or 0)

    @staticmethod
    def _load(folder: ModelFolder) -> Any:
        from tokenizers import Tokenizer, normalizers

        tokenizer = Tokenizer.from_file(str(folder.tokenizer_file))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        if folder.lowercase and not _lowercases(tokenizer.normalizer):  # as sentence-transformers' Transformer
            current: Any = tokenizer.normalizer
            sequence = isinstance(current, normalizers.Sequence)
            parts: list[Any] = [*current] if sequence else [current] if current else []
            tokenizer.normalizer = normalizers.Sequence([normalizers.Lowercase(), *parts])
        return tokenizer

    def tokenize(self, texts: Sequence[str], truncate: bool = True) -> Encoded:
        """See :meth:`TextTokenizer.tokenize`."""
        encodings = (self._truncating if truncate else self._whole).encode_batch(list(texts))
        return {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }

    def pad_values(self) -> dict[str, int]:
        """See :meth:`TextTokenizer.pad_values`."""
        return {"input_ids": self._pad_id, "token_type_ids": 0, "attention_mask": 0}


def same_tokens(ours: TextTokenizer, reference: TextTokenizer, texts: Sequence[str] = PROBE_TEXTS) -> bool:
    """Whether two tokenizers give the same ids, truncated and not, and pad alike, on ``texts``.

    transformers builds some tokenizers from their class and ``tokenizer_config.json`` rather than from
    ``tokenizer.json`` alone, so a folder whose two files disagree would tokenize differently; its export is then
    opened with the Hugging Face tokenizer (see :func:`indexing.exported.open_exported`).
    """
    return (
        all(ours.tokenize(texts, truncate) == reference.tokenize(texts, truncate) for truncate in (True, False))
        and ours.pad_values() == reference.pad_values()
        and ours.padding_side == reference.padding_side
    )


def _lowercases(normalizer: Any) -> bool:
    """Whether the normaliser is, or is a sequence holding, ``Lowercase`` (sentence-transformers' test)."""
    from tokenizers import normalizers

    if isinstance(normalizer, normalizers.Lowercase):
        return True
    sequence = isinstance(normalizer, normalizers.Sequence)
    return sequence and any(isinstance(n, normalizers.Lowercase) for n in normalizer)


class HuggingFaceTokenizer:
    """A loaded Hugging Face tokenizer (``SentenceTransformer.tokenizer``).

    A call sets the tokenizer's padding and truncation state, so each use (truncating, counting) has a copy of
    its own: a count running beside a query encode in another thread broke that encode once.

    Args:
        tokenizer: The Hugging Face tokenizer.
        max_seq_length: Truncate to this many tokens.
    """

    def __init__(self, tokenizer: Any, max_seq_length: int) -> None:
        self.padding_side = str(getattr(tokenizer, "padding_side", "right"))
        self.max_seq_length = max_seq_length
        self._truncating = copy.deepcopy(tokenizer)
        self._whole = copy.deepcopy(tokenizer)
        self._pads = pad_values(tokenizer)

    def tokenize(self, texts: Sequence[str], truncate: bool = True) -> Encoded:
        """See :meth:`TextTokenizer.tokenize`."""
        if truncate:
            encoded = self._truncating(
                list(texts), padding=False, truncation="longest_first", max_length=self.max_seq_length,
                verbose=False,
            )
        else:
            encoded = self._whole(list(texts), add_special_tokens=True, truncation=False, verbose=False)
        return {key: list(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}

    def pad_values(self) -> dict[str, int]:
        """See :meth:`TextTokenizer.pad_values`."""
        return dict(self._pads)
