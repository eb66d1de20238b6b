"""An :class:`~indexing.embedding.Encoder` that runs an exported model with OpenVINO or ONNX Runtime on the CPU.

It keeps the torch model's name and weights hash (indexes stay compatible: the exported graph computes the
same embeddings, cosine >= 0.9999 for fp32 exports, measured in the tests), its tokenizer and
``max_seq_length``. A batch is tokenized once, sorted by token count and run in batches capped in texts and in
padded tokens (:mod:`indexing.token_batches`); one text (a query) is tokenized and run directly.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm import tqdm

from indexing.embedding import count_tokens_untruncated
from indexing.export import MODEL_FILES, require, tokenize
from indexing.token_batches import length_batches, pad_batch, pad_values
from mlsearch.configs import DEFAULT_BATCH_TOKENS

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
        tokenizer: The model's Hugging Face tokenizer.
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
        self, runner: Runner, tokenizer: Any, input_names: Sequence[str], name: str, weights_hash: str,
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

    @property
    def weights_hash(self) -> str:
        """The torch model's weights hash: an index built with either backend opens with the other."""
        return self._weights_hash

    @cached_property
    def _counting_tokenizer(self) -> Any:
        """A copy of the tokenizer for counting: a call sets padding and truncation on the tokenizer it uses,
        which broke a query encode running at the same time in another thread (the query log counts tokens)."""
        return copy.deepcopy(self.tokenizer)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Length of each text in model tokens, special tokens included, without truncation."""
        return count_tokens_untruncated(self._counting_tokenizer, texts)

    @cached_property
    def _batch_tokenizer(self) -> Any:
        """A copy of the tokenizer for unpadded batch tokenization (the call sets the tokenizer's padding state,
        which must not change under a query tokenized with padding in another thread)."""
        return copy.deepcopy(self.tokenizer)

    def encode(self, texts: Sequence[str], batch_size: int = 32, show_progress: bool = False) -> np.ndarray:
        """Embed texts as float32, returned in input order.

        The texts are tokenized once, sorted by token count (longest first) and run in batches of at most
        ``batch_size`` texts and ``batch_tokens`` padded tokens, each padded to its own longest text (see
        :mod:`indexing.token_batches`).
        """
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if len(texts) == 1:  # a query: padded to a multiple of QUERY_PAD tokens, so that few shapes recur
            features = tokenize(self.tokenizer, texts, self.max_seq_length, self.input_names, QUERY_PAD)
            return self.runner.run(features)
        encoded = self._batch_tokenizer(
            list(texts), padding=False, truncation="longest_first", max_length=self.max_seq_length, verbose=False
        )
        lengths = [len(ids) for ids in encoded["input_ids"]]
        pads = pad_values(self.tokenizer)
        side = getattr(self.tokenizer, "padding_side", "right")
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        batches = list(length_batches(lengths, batch_size, self.batch_tokens))
        for rows in tqdm(batches, desc="Batches", disable=not show_progress):
            out[rows] = self.runner.run(pad_batch(encoded, rows, self.input_names, pads, side))
        return out


def export_encoder(
    torch_encoder: Any, backend: str, int8: bool, cache_dir: Path, threads: int = 0,
    batch_tokens: int = DEFAULT_BATCH_TOKENS,
) -> ExportedEncoder:
    """The exported twin of a loaded :class:`~indexing.embedding.SentenceTransformerEncoder`.

    The export is made once and cached (see :func:`indexing.export.ensure_export`).

    Raises:
        ModelLoadError: A missing package or a failed export.
    """
    from indexing.export import ensure_export

    model = torch_encoder.model
    folder, meta = ensure_export(model, torch_encoder.name, torch_encoder.weights_hash, backend, int8, cache_dir)
    runner = RUNNERS[backend](folder, threads)
    logger.info("encoding with %s from %s", backend + ("-int8" if int8 else ""), folder)
    return ExportedEncoder(
        runner, model.tokenizer, meta["input_names"], name=torch_encoder.name,
        weights_hash=torch_encoder.weights_hash, dimension=torch_encoder.dimension,
        max_seq_length=torch_encoder.max_seq_length, normalized=torch_encoder.normalized, backend=backend,
        quantization="int8" if int8 else None, batch_tokens=batch_tokens,
    )
