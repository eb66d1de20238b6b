"""Build checkpoints: the chunk store of a build that did not finish, and whether its embeddings can be trusted.

A build writes ``checkpoint.json`` (the model's weights hash and dimension) beside the chunk store of its
``<version>.tmp`` directory and commits embeddings as it computes them. When that build is killed, the next one
finds the directory, checks it (readable, SQLite's integrity check, same model), takes back every embedding
whose text it still needs, and only then deletes it. A checkpoint that fails a check is discarded and logged.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from indexing.embedding import Encoder
from indexing.layout import TMP_SUFFIX, versions_dir
from indexing.store import ChunkStore, check_store

logger = logging.getLogger(__name__)
CHECKPOINT_FILE = "checkpoint.json"


def write_checkpoint_info(build_dir: Path, encoder: Encoder) -> None:
    """Record which model the embeddings of this build come from."""
    info = {"model": encoder.name, "weights_hash": encoder.weights_hash, "dimension": encoder.dimension,
            "quantization": getattr(encoder, "quantization", None)}
    (build_dir / CHECKPOINT_FILE).write_text(json.dumps(info))


def _rejection(directory: Path, encoder: Encoder) -> str | None:
    """Why the checkpoint in ``directory`` cannot be used with this encoder, or None when it can."""
    try:
        info = json.loads((directory / CHECKPOINT_FILE).read_text())
        weights_hash, dimension = str(info["weights_hash"]), int(info["dimension"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {CHECKPOINT_FILE} ({type(exc).__name__})"
    if info.get("quantization") != getattr(encoder, "quantization", None):
        return "embeddings of another quantization (int8 or full precision)"
    if weights_hash != encoder.weights_hash or dimension != encoder.dimension:
        return "embeddings of another model"
    store = directory / ChunkStore.FILE
    if not store.is_file():
        return "no chunk store"
    return check_store(store)


def usable_checkpoints(index_dir: Path, encoder: Encoder, except_dir: Path | None = None) -> list[Path]:
    """Chunk stores left by killed builds of ``index_dir`` that hold trustworthy embeddings of this model.

    Directories that fail a check are logged and left for :func:`indexing.layout.remove_stale_builds`.

    Returns:
        Their ``chunks.sqlite`` files, newest first.
    """
    root = versions_dir(index_dir)
    if not root.is_dir():
        return []
    found = []
    candidates = sorted(root.glob(f"*{TMP_SUFFIX}"), key=lambda p: p.stat().st_mtime, reverse=True)
    for directory in candidates:
        if directory == except_dir or not directory.is_dir():
            continue
        if not (directory / CHECKPOINT_FILE).exists() and not (directory / ChunkStore.FILE).exists():
            continue  # a build killed before it wrote anything
        reason = _rejection(directory, encoder)
        if reason:
            logger.warning("discarding the checkpoint of an unfinished build %s: %s", directory.name, reason)
            continue
        found.append(directory / ChunkStore.FILE)
    return found
