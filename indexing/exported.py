"""An :class:`~indexing.embedding.Encoder` that runs an exported model with OpenVINO or ONNX Runtime on the CPU.

It keeps the torch model's name and weights hash (indexes stay compatible: the exported graph computes the
same embeddings, cosine >= 0.9999 for fp32 exports, measured in the tests), its tokenizer and
``max_seq_length``. A batch is tokenized once, sorted by token count and run in batches capped in texts and in
padded tokens (:mod:`indexing.token_batches`); one text (a query) is tokenized and run directly.

:func:`open_exported` opens a cached export without importing sentence-transformers, transformers or torch
(about 7 s of a CLI command's start): the model folder's files are read directly (:mod:`indexing.model_folder`),
the weights are checked by sha256 as always, the export is found by weights hash and by the fingerprint of the
folder's configuration files (recorded when the export was made or first opened through sentence-transformers),
and texts are tokenized from ``tokenizer.json`` (:class:`~indexing.text_tokenizer.FastTokenizer`). Only the
first use of a model (to export it) or a folder those files do not describe loads the model with
sentence-transformers.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from indexing.embedding import DEFAULT_EXPORT_CACHE, follow_index, load_encoder, resolve_model, weights_file_hash
from indexing.export import MODEL_FILES, ensure_export, find_export, require
from indexing.model_folder import ModelFolder, files_fingerprint, read_model_folder
from indexing.text_tokenizer import FastTokenizer, HuggingFaceTokenizer, TextTokenizer, same_tokens
from indexing.token_batches import length_batches, pad_batch
from mlsearch.configs import DEFAULT_BATCH_TOKENS, EncoderConfig

logger = logging.getLogger(__name__)

QUERY_PAD = 16  # one text is padded to a multiple of this many tokens: a shape seen before runs faster


class Runner(Protocol):
    """Runs one exported graph: model inputs in, sentence embeddings out."""

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """The ``(batch, dimension)`` embeddings of one tokenized batch."""
        ...


class OpenVINORunner:
    """An OpenVINO compiled model on the CPU, one infer request per thread (so threads may encode at once).

    Args:
        folder: The export folder (``model.xml``).
        threads: ``INFERENCE_NUM_THREADS`` (0: OpenVINO's default, every core).
    """

    def __init__(self, folder: Path, threads: int = 0) -> None:
        ov = require("openvino")
        config: dict[str, Any] = {"PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = ov.Core().compile_model(str(folder / MODEL_FILES["openvino"]), "CPU", config)
        self._local = threading.local()

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Infer on this thread's request; the inputs are shared, not copied, and the output is copied out of
        the request's buffer (by OpenVINO: ``share_outputs=False``)."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        return np.asarray(request.infer(features, share_inputs=True)[0], dtype=np.float32)


class OnnxRunner:
    """An ONNX Runtime session on the CPU (``run`` is thread-safe).

    Args:
        folder: The export folder (``model.onnx``).
        threads: ``intra_op_num_threads`` (0: ONNX Runtime's default, every core).
    """

    def __init__(self, folder: Path, threads: int = 0) -> None:
        ort = require("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(folder / MODEL_FILES["onnx"]), options, providers=["CPUExecutionProvider"]
        )

    def run(self, features: dict[str, np.ndarray]) -> np.ndarray:
        """Run the session."""
        return np.asarray(self.session.run(None, features)[0], dtype=np.float32)


RUNNERS: dict[str, type[OpenVINORunner] | type[OnnxRunner]] = {"openvino": OpenVINORunner, "onnx": OnnxRunner}


class ExportedEncoder:
    """An Encoder over an exported model (see :mod:`indexing.export`).

    Args:
        runner: Runs the exported graph.
        tokenizer: The model's tokenizer (truncating to ``max_seq_length``).
        input_names: The graph's inputs, in the tokenizer's names.
        name: The model name (as the torch encoder's).
        weights_hash: The torch model's weights hash.
        dimension: Embedding size.
        max_seq_length: Longest input in tokens (longer texts are truncated, as by sentence-transformers).
        normalized: Whether the model ends in a Normalize module.
        backend: ``openvino`` or ``onnx``.
        quantization: ``int8`` or None.
        batch_tokens: Most padded tokens per inference call (0: only ``batch_size`` bounds a batch).
    """

    device = "cpu"

    def __init__(
        self, runner: Runner, tokenizer: TextTokenizer, input_names: Sequence[str], name: str, weights_hash: str,
        dimension: int, max_seq_length: int, normalized: bool, backend: str, quantization: str | None = None,
        batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> None:
        self.runner = runner
        self.tokenizer = tokenizer
        self.input_names = list(input_names)
        self.name = name
        self._weights_hash = weights_hash
        self.dimension = dimension
        self.max_seq_length = max_seq_length
        self.normalized = normalized
        self.backend = backend
        self.quantization = quantization
        self.batch_tokens = batch_tokens
        self._pads = tokenizer.pad_values()

    @property
    def weights_hash(self) -> str:
        """The torch model's weights hash: an index built with either backend opens with the other."""
        return self._weights_hash

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in model tokens, special tokens included, without truncation."""
        if not texts:
            return []
        return [len(ids) for ids in self.tokenizer.tokenize(texts, truncate=False)["input_ids"]]

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed texts as float32, returned in input order.

        The texts are tokenized once, sorted by token count (longest first) and run in batches of at most
        ``batch_size`` texts and ``batch_tokens`` padded tokens, each padded to its own longest text (see
        :mod:`indexing.token_batches`). One text (a query) is padded to a multiple of ``QUERY_PAD`` tokens, so
        that few shapes recur.
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        encoded = self.tokenizer.tokenize(texts)
        side = self.tokenizer.padding_side
        if len(texts) == 1:
            return self.runner.run(pad_batch(encoded, [0], self.input_names, self._pads, side, QUERY_PAD))
        lengths = [len(ids) for ids in encoded["input_ids"]]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        batches = list(length_batches(lengths, batch_size, self.batch_tokens))
        for rows in tqdm(batches, desc="Batches", disable=not show_progress):
            out[rows] = self.runner.run(pad_batch(encoded, rows, self.input_names, self._pads, side))
        return out


def open_exported(name_or_path: str, config: EncoderConfig) -> ExportedEncoder:
    """The model run by ``config.backend`` (``openvino`` or ``onnx``, int8 when asked) from its cached export.

    A cached export of a local folder (the bundled model included) opens without sentence-transformers,
    transformers or torch (see the module docstring); otherwise the model is loaded with sentence-transformers,
    exported once (:func:`indexing.export.ensure_export`), and the folder's fingerprint is recorded beside the
    export when its files describe the loaded model (weights, max_seq_length, Normalize, token ids), so that the
    next start takes the fast path.

    Raises:
        ModelLoadError: The model cannot be loaded offline, its weights fail their check, a package is missing,
            or the export fails.
    """
    config = follow_index(config)  # open_encoder resolved it already; a direct call takes the defaults
    backend, int8 = str(config.backend), bool(config.int8)
    cache_dir = config.cache_dir or DEFAULT_EXPORT_CACHE
    name, path = resolve_model(name_or_path)  # checks the bundled weights' sha256
    source = read_model_folder(path) if path is not None else None
    weights_hash = weights_file_hash(name_or_path, path) if source is not None and path is not None else None
    fingerprint = files_fingerprint(source.path) if source is not None and weights_hash else None
    if source is not None and weights_hash and fingerprint:
        found = find_export(cache_dir, name, weights_hash, backend, int8, fingerprint)
        if found is not None:
            folder, meta = found
            return _exported(folder, meta, FastTokenizer(source), name, weights_hash, source.max_seq_length,
                             source.normalized, config)
    torch_encoder = load_encoder(name_or_path)
    reference = HuggingFaceTokenizer(torch_encoder.model.tokenizer, torch_encoder.max_seq_length)
    fast = _verified_fast_tokenizer(source, torch_encoder, weights_hash, reference) if source is not None else None
    folder, meta = ensure_export(
        torch_encoder.model, torch_encoder.name, torch_encoder.weights_hash, backend, int8, cache_dir,
        fingerprint if fast is not None else None,
    )
    return _exported(folder, meta, fast or reference, torch_encoder.name, torch_encoder.weights_hash,
                     torch_encoder.max_seq_length, torch_encoder.normalized, config)


def _verified_fast_tokenizer(
    source: ModelFolder, torch_encoder: Any, weights_hash: str | None, reference: TextTokenizer
) -> FastTokenizer | None:
    """The folder's FastTokenizer when the folder's files agree with the model sentence-transformers loaded from
    it (weights hash, max_seq_length, Normalize, and the token ids of :data:`PROBE_TEXTS`), else None."""
    ours = (weights_hash, source.max_seq_length, source.normalized)
    theirs = (torch_encoder.weights_hash, torch_encoder.max_seq_length, torch_encoder.normalized)
    fast = FastTokenizer(source)
    if ours == theirs and same_tokens(fast, reference):
        return fast
    logger.warning("%s: its files do not describe the model as sentence-transformers loads it (weights, "
                   "max_seq_length, normalized: %s against %s, or other token ids); its export opens through "
                   "sentence-transformers", source.path, ours, theirs)
    return None


def _exported(
    folder: Path, meta: dict[str, Any], tokenizer: TextTokenizer, name: str, weights_hash: str,
    max_seq_length: int, normalized: bool, config: EncoderConfig,
) -> ExportedEncoder:
    backend, int8 = str(meta["backend"]), bool(meta["int8"])
    runner = RUNNERS[backend](folder, config.threads)
    logger.info("encoding with %s from %s", backend + ("-int8" if int8 else ""), folder)
    return ExportedEncoder(
        runner, tokenizer, meta["input_names"], name=name, weights_hash=weights_hash,
        dimension=int(meta["dimension"]), max_seq_length=max_seq_length, normalized=normalized,
        backend=backend, quantization="int8" if int8 else None, batch_tokens=config.batch_tokens,
    )
