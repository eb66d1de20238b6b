"""What a saved sentence-transformers folder says about its text inputs, read from its files without importing
sentence-transformers, transformers or torch.

An exported model (:mod:`indexing.export`) already computes the whole model, pooling and Normalize included;
running it needs only the tokenizer and three facts that the folder's files hold: the longest input
(``max_seq_length``), whether texts are lowercased first (``do_lower_case``) and whether the model normalises
its embeddings. This module reads ``modules.json``, the Transformer's ``sentence_bert_config.json``,
``tokenizer_config.json`` and ``config.json`` (for ``max_seq_length`` as sentence-transformers derives it), the
Pooling config, and finds ``tokenizer.json``. A folder it cannot read with certainty (no ``modules.json``, a first
module other than Transformer, tokenizer arguments in ``sentence_bert_config.json``, no ``tokenizer.json``) gives
None, and the caller loads the model with sentence-transformers instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

TOKENIZER_FILE = "tokenizer.json"
# sentence_bert_config.json keys that do not change how texts are tokenized (the model's own are in the export).
KNOWN_TRANSFORMER_KEYS = frozenset({
    "max_seq_length", "do_lower_case", "transformer_task", "modality_config", "module_output_name", "model_args",
    "config_args", "cache_dir", "backend",
})
FINGERPRINT_SUFFIXES = (".json", ".txt")  # configuration, tokenizer and vocabulary files, never weights


@dataclass(frozen=True)
class ModelFolder:
    """The text-input facts of a saved sentence-transformers model.

    Attributes:
        path: The model folder.
        tokenizer_file: The Transformer module's ``tokenizer.json``.
        max_seq_length: Longest input in tokens, special tokens included (longer texts are truncated).
        lowercase: ``do_lower_case``: texts are lowercased before the tokenizer's own normaliser.
        normalized: The model ends in a Normalize module.
        pooling: The Pooling module's mode (``mean``, ``cls``, …), or None without one.
        truncation_side: ``right`` or ``left``, as the tokenizer truncates.
        padding_side: ``right`` or ``left``, as the tokenizer pads.
        pad_token: The padding token, or None (id 0 is used then, as by the exported encoder before).
    """

    path: Path
    tokenizer_file: Path
    max_seq_length: int
    lowercase: bool
    normalized: bool
    pooling: str | None
    truncation_side: str = "right"
    padding_side: str = "right"
    pad_token: str | None = None


def read_model_folder(path: Path) -> ModelFolder | None:
    """The text-input facts of the model saved in ``path``, or None when the files do not settle them.

    Args:
        path: A folder saved by sentence-transformers (``modules.json`` beside the Transformer's files).

    Returns:
        The facts, or None (logged at debug level with the reason): load the model with sentence-transformers.
    """
    try:
        return _read(Path(path))
    except _Unsupported as exc:
        logger.debug("reading %s without sentence-transformers: %s", path, exc)
        return None


def files_fingerprint(path: Path) -> str:
    """sha256 over the folder's configuration, tokenizer and vocabulary files (names and bytes), weights excluded.

    An export records the fingerprints of the folders it was made from, so that a folder is matched to its
    export without loading the model.
    """
    root = Path(path)
    digest = hashlib.sha256()
    files = sorted(
        p for p in root.rglob("*")
        if p.suffix in FINGERPRINT_SUFFIXES and p.is_file() and not any(part.startswith(".") for part in
                                                                        p.relative_to(root).parts)
    )
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


class _Unsupported(Exception):
    """The folder's files do not settle how texts are tokenized."""


def _json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _Unsupported(f"cannot read {file.name}: {exc}") from None
    if not isinstance(data, dict):
        raise _Unsupported(f"{file.name} is not a JSON object")
    return data


def _optional_json(file: Path) -> dict[str, Any]:
    return _json(file) if file.is_file() else {}


def _modules(path: Path) -> list[tuple[str, Path]]:
    """(class name, folder) of each module in ``modules.json``, in order."""
    file = path / "modules.json"
    if not file.is_file():
        raise _Unsupported("no modules.json")
    try:
        entries = json.loads(file.read_text(encoding="utf-8"))
        return [(str(e["type"]).rsplit(".", 1)[-1], path / str(e.get("path", ""))) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise _Unsupported(f"cannot read modules.json: {exc}") from None


def _read(path: Path) -> ModelFolder:
    modules = _modules(path)
    if not modules or modules[0][0] != "Transformer":
        raise _Unsupported("the first module is not a Transformer")
    folder = modules[0][1]
    transformer = _optional_json(folder / "sentence_bert_config.json")
    unknown = set(transformer) - KNOWN_TRANSFORMER_KEYS
    if unknown:
        raise _Unsupported(f"sentence_bert_config.json sets {', '.join(sorted(unknown))}")
    if transformer.get("transformer_task", "feature-extraction") != "feature-extraction":
        raise _Unsupported(f"transformer task {transformer['transformer_task']!r}")
    tokenizer_file = folder / TOKENIZER_FILE
    if not tokenizer_file.is_file():
        raise _Unsupported("no tokenizer.json (a slow tokenizer only)")
    tokenizer_config = _optional_json(folder / "tokenizer_config.json")
    pooling = next((_json(p / "config.json") for name, p in modules if name == "Pooling"), None)
    return ModelFolder(
        path=path,
        tokenizer_file=tokenizer_file,
        max_seq_length=_max_seq_length(transformer, tokenizer_config, _optional_json(folder / "config.json")),
        lowercase=bool(transformer.get("do_lower_case", False)),
        normalized=any(name == "Normalize" for name, _ in modules),
        pooling=None if pooling is None else _pooling_mode(pooling),
        truncation_side=_side(tokenizer_config.get("truncation_side", "right")),
        padding_side=_side(tokenizer_config.get("padding_side", "right")),
        pad_token=_token(tokenizer_config.get("pad_token")) or _token(
            _optional_json(folder / "special_tokens_map.json").get("pad_token")
        ),
    )


def _max_seq_length(transformer: dict[str, Any], tokenizer: dict[str, Any], config: dict[str, Any]) -> int:
    """As sentence-transformers sets it: its own setting, else the tokenizer's ``model_max_length`` capped by
    the model's ``max_position_embeddings``."""
    if transformer.get("max_seq_length"):
        return int(transformer["max_seq_length"])
    limits = [int(v) for v in (tokenizer.get("model_max_length"), config.get("max_position_embeddings"))
              if isinstance(v, int | float) and 0 < v < 1 << 31]
    if not limits:
        raise _Unsupported("no max_seq_length, model_max_length or max_position_embeddings")
    return min(limits)


def _pooling_mode(config: dict[str, Any]) -> str:
    if isinstance(config.get("pooling_mode"), str):
        return str(config["pooling_mode"])
    modes = [  # the older config: one flag per mode (pooling_mode_mean_tokens, pooling_mode_cls_token, ...)
        key.removeprefix("pooling_mode_").removesuffix("_tokens").removesuffix("_token")
        for key, on in config.items() if key.startswith("pooling_mode_") and on
    ]
    return "+".join(modes) or "unknown"


def _side(value: object) -> str:
    if value not in ("right", "left"):
        raise _Unsupported(f"padding or truncation side {value!r}")
    return str(value)


def _token(value: object) -> str | None:
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None
