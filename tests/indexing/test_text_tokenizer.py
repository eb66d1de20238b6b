"""The exported encoders' tokenizer read from ``tokenizer.json`` gives the ids of the Hugging Face tokenizer that
sentence-transformers loads, and the model folder's files give the facts sentence-transformers derives."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from indexing.embedding import bundled_model_path, load_encoder
from indexing.model_folder import files_fingerprint, read_model_folder
from indexing.text_tokenizer import PROBE_TEXTS, FastTokenizer, HuggingFaceTokenizer, same_tokens
from tests.fakes import build_tiny_sentence_transformer

VARIED_TEXTS = [*PROBE_TEXTS, " ".join(f"word{i}" for i in range(400)), "Dropout DROPOUT dropout"]


def hf_ids(tokenizer: Any, texts: list[str], max_length: int | None) -> dict[str, list[list[int]]]:
    """The ids as the exported encoder took them from the Hugging Face tokenizer before (a fresh call)."""
    if max_length is None:
        encoded = tokenizer(texts, add_special_tokens=True, truncation=False, verbose=False)
    else:
        encoded = tokenizer(texts, padding=False, truncation="longest_first", max_length=max_length, verbose=False)
    return {key: list(encoded[key]) for key in ("input_ids", "attention_mask", "token_type_ids")}


def test_bundled_model_tokenized_as_by_the_hugging_face_tokenizer() -> None:
    from transformers import AutoTokenizer

    path = bundled_model_path()
    folder = read_model_folder(path)
    assert folder is not None and (folder.max_seq_length, folder.normalized, folder.pooling) == (256, True, "mean")
    fast = FastTokenizer(folder)
    reference = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    for truncate, max_length in ((True, 256), (False, None)):
        ours = fast.tokenize(VARIED_TEXTS, truncate=truncate)
        assert ours == hf_ids(reference, VARIED_TEXTS, max_length)
    assert max(len(ids) for ids in fast.tokenize(VARIED_TEXTS)["input_ids"]) == 256
    assert max(len(ids) for ids in fast.tokenize(VARIED_TEXTS, truncate=False)["input_ids"]) > 256
    assert fast.pad_values() == HuggingFaceTokenizer(reference, 256).pad_values()
    assert fast.padding_side == reference.padding_side


def variant(
    tiny_model: Path, tmp_path: Path, lowercase_normalizer: bool, consistent: bool = True,
    transformer: dict[str, object] | None = None,
) -> Path:
    """A copy of the tiny model with its tokenizer's own lowercasing on or off (in ``tokenizer.json`` and, when
    ``consistent``, in ``tokenizer_config.json``) and ``sentence_bert_config`` keys."""
    folder = tmp_path / "variant"
    shutil.copytree(tiny_model, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["normalizer"]["lowercase"] = lowercase_normalizer
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    if consistent:
        tokenizer_config = json.loads((folder / "tokenizer_config.json").read_text())
        (folder / "tokenizer_config.json").write_text(json.dumps({**tokenizer_config,
                                                                  "do_lower_case": lowercase_normalizer}))
    config_file = folder / "sentence_bert_config.json"
    config_file.write_text(json.dumps({**json.loads(config_file.read_text()), **(transformer or {})}))
    return folder


@pytest.mark.parametrize(
    ("lowercase_normalizer", "transformer"),
    [
        (True, {}),
        (False, {}),  # a cased tokenizer: "Dropout" is no word of the vocabulary
        (False, {"do_lower_case": True}),  # sentence-transformers lowercases first
        (True, {"do_lower_case": True, "max_seq_length": 12}),
    ],
)
def test_tiny_model_tokenized_and_described_as_sentence_transformers_does(
    tiny_model: Path, tmp_path: Path, lowercase_normalizer: bool, transformer: dict[str, object]
) -> None:
    path = variant(tiny_model, tmp_path, lowercase_normalizer, transformer=transformer)
    folder = read_model_folder(path)
    torch_encoder = load_encoder(str(path))
    assert folder is not None
    assert (folder.max_seq_length, folder.normalized) == (torch_encoder.max_seq_length, torch_encoder.normalized)
    ours = FastTokenizer(folder)
    theirs = HuggingFaceTokenizer(torch_encoder.model.tokenizer, torch_encoder.max_seq_length)
    for truncate in (True, False):
        assert ours.tokenize(VARIED_TEXTS, truncate) == theirs.tokenize(VARIED_TEXTS, truncate)
    assert same_tokens(ours, theirs)
    assert ours.tokenize(VARIED_TEXTS, truncate=False)["input_ids"] == [
        [*ids] for ids in torch_encoder._counting_tokenizer(VARIED_TEXTS)["input_ids"]
    ]
    assert ours.pad_values() == theirs.pad_values()
    lowercased = lowercase_normalizer or bool(transformer.get("do_lower_case"))
    upper, lower = ours.tokenize(["Dropout", "dropout"])["input_ids"]
    assert (upper == lower) == lowercased


def test_a_folder_whose_tokenizer_files_disagree_tokenizes_otherwise(tiny_model: Path, tmp_path: Path) -> None:
    # tokenizer.json keeps case, tokenizer_config.json lowercases: transformers builds the BERT tokenizer from the
    # latter, the tokenizers library reads the former; same_tokens tells them apart
    path = variant(tiny_model, tmp_path, lowercase_normalizer=False, consistent=False)
    folder = read_model_folder(path)
    torch_encoder = load_encoder(str(path))
    assert folder is not None
    assert not same_tokens(FastTokenizer(folder), HuggingFaceTokenizer(torch_encoder.model.tokenizer, 32))


def test_unnormalized_model_described(tmp_path: Path) -> None:
    path = build_tiny_sentence_transformer(tmp_path, normalize=False, max_seq_length=20)
    folder = read_model_folder(path)
    assert folder is not None and (folder.max_seq_length, folder.normalized, folder.pooling) == (20, False, "mean")


def test_folders_the_files_do_not_settle_are_left_to_sentence_transformers(tiny_model: Path, tmp_path: Path) -> None:
    slow_only = tmp_path / "slow"
    shutil.copytree(tiny_model, slow_only)
    (slow_only / "tokenizer.json").unlink()
    assert read_model_folder(slow_only) is None
    tokenizer_args = variant(tiny_model, tmp_path, True, transformer={"tokenizer_args": {"model_max_length": 8}})
    assert read_model_folder(tokenizer_args) is None
    assert read_model_folder(tmp_path / "missing") is None
    plain = tmp_path / "plain"
    shutil.copytree(tiny_model, plain)
    (plain / "modules.json").unlink()
    assert read_model_folder(plain) is None


def test_fingerprint_follows_configuration_files_not_weights(tiny_model: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert files_fingerprint(copy) == files_fingerprint(tiny_model)
    (copy / "model.safetensors").write_bytes(b"other weights")  # the weights hash covers weights
    assert files_fingerprint(copy) == files_fingerprint(tiny_model)
    config = copy / "sentence_bert_config.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "do_lower_case": True}))
    assert files_fingerprint(copy) != files_fingerprint(tiny_model)
