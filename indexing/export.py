"""Export a sentence-transformers model to OpenVINO IR or ONNX, optionally int8, cached by its weights hash.

The whole model is exported, not only its transformer: the graph takes the tokenizer's tensors
(``input_ids``, ``attention_mask`` and, for BERT-like models, ``token_type_ids``, with dynamic batch and
sequence sizes) and returns the ``sentence_embedding`` that the model's own modules compute (its Pooling as
configured in ``1_Pooling/config.json``, a Dense layer, Normalize when present). So any model that
sentence-transformers loads is exported with its own pooling and normalisation.

The conversion uses ``openvino.convert_model`` and ``torch.onnx.export`` directly: optimum-intel and
optimum-onnx pin transformers and huggingface-hub versions that the rest of the project cannot use.
int8: OpenVINO models are statically quantized with NNCF (``nncf.quantize``, transformer preset,
calibrated on a fixed set of sentences shipped here and on passages joined from them with a seeded generator,
so an export is reproducible; each feed-forward output projection stays in full precision); ONNX models with
``onnxruntime.quantization.quantize_dynamic``.

An export lives in ``<cache>/<model>-<hash>/<backend>[-int8]/`` with ``export.json``; it is written to a
temporary folder and renamed into place, so a killed export leaves nothing half-written. ``export.json`` lists
under ``model_files`` the fingerprints (:func:`indexing.model_folder.files_fingerprint`) of the model folders it
is known to belong to, so that :func:`find_export` finds it from the folder's files alone, without loading the
model (the structure hash of the folder name needs the loaded modules).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import random
import re
import shutil
import sys
import uuid
from collections.abc import Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from mlsearch.errors import ModelLoadError

logger = logging.getLogger(__name__)

EXPORT_BACKENDS = ("openvino", "onnx")
EXPORT_FORMAT = 3  # 2: int8 calibrated on long passages too; 3: FULL_PRECISION_LAYERS (older exports: made again)
CALIBRATION_SAMPLES = 300  # NNCF's default subset size
# Layers int8 leaves in full precision: each feed-forward block's output projection (BERT-style names), whose
# input (after GELU) quantizes worst: on all-MiniLM-L6-v2 keeping them raised the cosine of int8 to torch
# embeddings of corpus/ from 0.997 to 0.9988 (README "Encoder backends").
FULL_PRECISION_LAYERS = (r".*layer\.\d+\.output\.dense.*",)
MODEL_FILES = {"openvino": "model.xml", "onnx": "model.onnx"}
INSTALL_HINT = {
    "openvino": "pip install openvino",
    "onnx": "pip install onnx onnxruntime",
    "nncf": "pip install nncf",
}

# Calibration sentences for static int8 quantization: queries and passages of varied length and topic.
CALIBRATION_TEXTS: tuple[str, ...] = (
    "how do I stop overfitting",
    "what is the capital of France",
    "best way to cook rice",
    "symptoms of the common cold",
    "population stability index drift",
    "Transformers use self-attention to weigh every token of the input against every other token.",
    "The committee will meet on Tuesday to review the budget for the coming year.",
    "Gradient descent updates the parameters in the direction that lowers the loss on a mini-batch.",
    "The river flooded the lower town after three days of heavy rain, and the bridge was closed.",
    "A hash index maps keys to buckets; lookups cost constant time on average but ranges need a scan.",
    "She played the violin in the city orchestra for twenty years before she began to teach.",
    "Photosynthesis turns light, water and carbon dioxide into glucose and oxygen in the chloroplasts.",
    "In 1969 two astronauts walked on the Moon while a third orbited above in the command module.",
    "To reset the router, hold the button on the back for ten seconds until the lights flash.",
    "Cross-validation splits the data into folds and averages the score of models trained on the rest.",
    "The recipe needs two cups of flour, one egg, a pinch of salt and enough milk to make a batter.",
    "Inflation measures how fast the general level of prices for goods and services is rising.",
    "Elasticsearch stores documents in shards; each shard is a Lucene index with its own segments, "
    "and a query is sent to every shard before the results are merged by score.",
    "Early stopping watches the validation loss and ends training when it has not improved for a number "
    "of epochs, keeping the weights of the best epoch so far; it is a cheap and effective regulariser.",
    "The museum's new wing opened to the public with an exhibition of maps drawn by sailors in the "
    "sixteenth century, many of them showing coasts that nobody in Europe had yet seen.",
    "Batch normalization standardises each layer's inputs over the mini-batch and then scales and shifts "
    "them with learned parameters; at inference it uses running averages collected during training.",
    "A reciprocal rank fusion score adds one over the rank plus a constant for every list a document "
    "appears in, so documents ranked well by several retrievers rise to the top.",
    "The patient was advised to rest, drink plenty of fluids and return if the fever lasted more than "
    "three days or if breathing became difficult.",
    "def train(model, data):\n    for batch in data:\n        loss = model(batch)\n        loss.backward()",
    "| metric | value |\n| --- | --- |\n| precision | 0.81 |\n| recall | 0.74 |",
    "Kolmogorov-Smirnov compares two empirical distributions by the largest gap between their "
    "cumulative distribution functions; a small p-value suggests the samples differ.",
    "Our quarterly revenue grew by eight percent, driven by subscriptions in Asia and lower costs of "
    "shipping, while hardware sales were flat compared to the same quarter last year.",
    "Annoy builds a forest of random projection trees and memory-maps it, so many processes can share "
    "one index; more trees give better recall at the cost of a larger file.",
)


def calibration_texts(count: int = CALIBRATION_SAMPLES) -> list[str]:
    """The int8 calibration inputs: every shipped sentence, then passages of 2 to 12 of them (seeded).

    Indexes embed passages of a hundred tokens and more; calibrating on single sentences only left the
    activation ranges of long inputs poorly estimated (int8 embeddings further from full precision).
    """
    rng = random.Random(0)
    texts = list(CALIBRATION_TEXTS)
    passages = [" ".join(rng.sample(CALIBRATION_TEXTS, rng.randint(2, 12))) for _ in range(count - len(texts))]
    return texts + passages


def variant_name(backend: str, int8: bool) -> str:
    """The folder name of one export variant: ``openvino``, ``openvino-int8``, ``onnx``, ``onnx-int8``."""
    return f"{backend}-int8" if int8 else backend


def export_dir(cache_dir: Path, name: str, weights_hash: str, backend: str, int8: bool, structure: str = "") -> Path:
    """Where the export of one model (by weights hash and module structure) and variant lives."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name.rstrip("/").split("/")[-1])[:60] or "model"
    suffix = f"-{structure[:8]}" if structure else ""
    return Path(cache_dir) / f"{safe}-{weights_hash[:16]}{suffix}" / variant_name(backend, int8)


def structure_hash(model: Any) -> str:
    """A hash of the model's modules and their settings (pooling, Normalize, sequence length).

    Two models with the same weights but another pooling or normalisation export differently, so the cache
    key holds this beside the weights hash.
    """
    parts = []
    for module in model:
        config = getattr(module, "get_config_dict", None)
        parts.append([type(module).__name__, config() if callable(config) else {}])
    parts.append(["max_seq_length", model.max_seq_length])
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def read_export(folder: Path, weights_hash: str) -> dict[str, Any] | None:
    """The export's metadata when ``folder`` holds a complete export of these weights, else None."""
    meta_file = folder / "export.json"
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError):
        return None
    backend = meta.get("backend")
    if (
        meta.get("format") != EXPORT_FORMAT
        or meta.get("weights_hash") != weights_hash
        or backend not in MODEL_FILES
        or not (folder / MODEL_FILES[backend]).is_file()
    ):
        return None
    return dict(meta)


def find_export(
    cache_dir: Path, name: str, weights_hash: str, backend: str, int8: bool, fingerprint: str
) -> tuple[Path, dict[str, Any]] | None:
    """The complete export of these weights that lists the model folder's ``fingerprint``, if one is cached.

    Returns:
        The export folder and its metadata, or None (the model is loaded and :func:`ensure_export` called).
    """
    base = export_dir(cache_dir, name, weights_hash, backend, int8)
    for folder in sorted(base.parent.parent.glob(f"{base.parent.name}*/{base.name}")):
        meta = read_export(folder, weights_hash)
        if meta is not None and fingerprint in meta.get("model_files", []):
            return folder, meta
    return None


def _record_model_files(folder: Path, meta: dict[str, Any], fingerprint: str) -> dict[str, Any]:
    """Add a model folder's fingerprint to the export's ``export.json`` (written whole, then renamed)."""
    if fingerprint in meta.get("model_files", []):
        return meta
    meta = {**meta, "model_files": [*meta.get("model_files", []), fingerprint]}
    staging = folder / f".export.json.tmp-{uuid.uuid4().hex[:8]}"
    try:
        staging.write_text(json.dumps(meta, indent=2))
        staging.replace(folder / "export.json")
    except OSError as exc:  # a read-only cache still serves; the next start loads the model again
        logger.warning("cannot record the model folder in %s (%s)", folder / "export.json", exc)
        staging.unlink(missing_ok=True)
    return meta


def require(module: str) -> Any:
    """Import an optional package, or fail with one line that names how to install it.

    Raises:
        ModelLoadError: The package is not installed.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = INSTALL_HINT.get(module.split(".")[0], f"pip install {module}")
        raise ModelLoadError(f"the {module} package is not installed ({hint})") from exc


def ensure_export(
    model: Any, name: str, weights_hash: str, backend: str, int8: bool, cache_dir: Path,
    fingerprint: str | None = None,
) -> tuple[Path, dict[str, Any]]:
    """The cached export of ``model``, made now when absent.

    Args:
        model: A loaded ``SentenceTransformer`` on the CPU.
        name: The model's name (for the folder name only).
        weights_hash: The model's weights hash (the cache key).
        backend: ``openvino`` or ``onnx``.
        int8: Quantize to int8.
        cache_dir: The export cache's root folder.
        fingerprint: The fingerprint of the folder the model was loaded from, recorded in ``export.json``
            (see :func:`find_export`); None records nothing.

    Returns:
        The export folder and its metadata (``input_names``, ``dimension``, …).

    Raises:
        ModelLoadError: Unknown backend, a missing package, or a failed conversion.
    """
    if backend not in EXPORT_BACKENDS:
        raise ModelLoadError(f"cannot export to {backend!r}; valid: {', '.join(EXPORT_BACKENDS)}")
    folder = export_dir(cache_dir, name, weights_hash, backend, int8, structure_hash(model))
    meta = read_export(folder, weights_hash)
    if meta is not None:
        return folder, _record_model_files(folder, meta, fingerprint) if fingerprint else meta
    require("openvino" if backend == "openvino" else "onnx")
    if int8:
        require("nncf" if backend == "openvino" else "onnxruntime.quantization")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.with_name(f".{folder.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir()
    logger.warning("exporting %s to %s (once; cached in %s)", name, variant_name(backend, int8), folder)
    try:
        with _stdout_to_stderr():  # NNCF prints progress bars and INFO lines: stdout is the CLI's (--json)
            input_names = _export(model, backend, int8, staging)
        meta = {
            "format": EXPORT_FORMAT, "name": name, "weights_hash": weights_hash, "backend": backend,
            "int8": int8, "input_names": input_names, "dimension": _dimension(model),
            "versions": _versions(backend, int8), "model_files": [fingerprint] if fingerprint else [],
        }
        (staging / "export.json").write_text(json.dumps(meta, indent=2))
        if folder.exists():  # an incomplete or stale export
            shutil.rmtree(folder, ignore_errors=True)
        try:
            staging.rename(folder)
        except OSError:  # another process published it first
            if read_export(folder, weights_hash) is None:
                raise
    except ModelLoadError:
        raise
    except Exception as exc:  # conversion libraries raise many types
        raise ModelLoadError(
            f"cannot export {name} to {variant_name(backend, int8)} ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''})"
        ) from exc
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder, meta


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """Send what the conversion libraries print to stderr: Python-level writes, and NNCF's log handler (bound to
    ``sys.stdout`` when NNCF was imported: imported in here, it binds to stderr); restored afterwards."""
    moved: list[tuple[logging.StreamHandler[Any], Any]] = []
    nncf_logger = logging.Logger.manager.loggerDict.get("nncf")  # never created here: NNCF sets its logger class
    for handler in nncf_logger.handlers if isinstance(nncf_logger, logging.Logger) else []:
        if isinstance(handler, logging.StreamHandler) and handler.stream in (sys.stdout, sys.__stdout__):
            moved.append((handler, handler.setStream(sys.stderr)))
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in moved:
            handler.setStream(stream)


def tokenize(
    tokenizer: Any, texts: Sequence[str], max_length: int, input_names: Sequence[str], multiple_of: int | None = None
) -> dict[str, Any]:
    """The model inputs of ``texts`` as int64 NumPy arrays, padded to the longest (rounded up to a multiple of
    ``multiple_of`` when given) and truncated as sentence-transformers does."""
    import numpy as np

    encoded = tokenizer(
        list(texts), padding=True, truncation="longest_first", max_length=max_length, return_tensors="np",
        pad_to_multiple_of=multiple_of,
    )
    return {key: np.asarray(encoded[key], dtype=np.int64) for key in input_names}


def _input_names(model: Any) -> list[str]:
    names = [n for n in model.tokenizer.model_input_names if n in ("input_ids", "attention_mask", "token_type_ids")]
    if "input_ids" not in names or "attention_mask" not in names:
        raise ModelLoadError("only text models whose tokenizer gives input_ids and attention_mask can be exported")
    return names


def _dimension(model: Any) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def _wrapper(model: Any, input_names: list[str]) -> Any:
    """A torch module that runs every module of the sentence-transformer and returns the sentence embedding."""
    import torch

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(dict(zip(input_names, tensors, strict=True)))["sentence_embedding"]

    return SentenceEmbedding().eval()


def _examples(model: Any, input_names: list[str]) -> tuple[Any, ...]:
    import torch

    features = tokenize(model.tokenizer, CALIBRATION_TEXTS[:4], model.max_seq_length, input_names)
    return tuple(torch.from_numpy(features[n]) for n in input_names)


def _export(model: Any, backend: str, int8: bool, folder: Path) -> list[str]:
    import torch

    input_names = _input_names(model)
    wrapper = _wrapper(model, input_names)
    examples = _examples(model, input_names)
    with torch.no_grad():
        if backend == "openvino":
            _export_openvino(model, wrapper, examples, input_names, int8, folder)
        else:
            _export_onnx(wrapper, examples, input_names, int8, folder)
    return input_names


def _export_openvino(
    model: Any, wrapper: Any, examples: tuple[Any, ...], input_names: list[str], int8: bool, folder: Path
) -> None:
    import openvino as ov

    shapes = [(ov.PartialShape([-1, -1]), ov.Type.i64) for _ in input_names]
    converted = ov.convert_model(wrapper, example_input=examples, input=shapes)
    for port, input_name in zip(converted.inputs, input_names, strict=True):
        port.get_tensor().set_names({input_name})
    converted.outputs[0].get_tensor().set_names({"sentence_embedding"})
    if int8:
        nncf = require("nncf")
        nncf.set_log_level(logging.WARNING)  # its INFO lines name every layer it leaves in full precision
        samples = [
            tokenize(model.tokenizer, [text], model.max_seq_length, input_names) for text in calibration_texts()
        ]
        converted = nncf.quantize(
            converted, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER, subset_size=len(samples),
            ignored_scope=nncf.IgnoredScope(patterns=list(FULL_PRECISION_LAYERS), validate=False),
        )
    ov.save_model(converted, str(folder / MODEL_FILES["openvino"]), compress_to_fp16=False)


def _export_onnx(wrapper: Any, examples: tuple[Any, ...], input_names: list[str], int8: bool, folder: Path) -> None:
    import torch

    target = folder / MODEL_FILES["onnx"]
    plain = folder / "model-fp32.onnx" if int8 else target
    dynamic = {n: {0: "batch", 1: "sequence"} for n in input_names}
    torch.onnx.export(
        wrapper, examples, str(plain), input_names=input_names, output_names=["sentence_embedding"],
        dynamic_axes={**dynamic, "sentence_embedding": {0: "batch"}}, opset_version=17, dynamo=False,
    )
    if int8:
        quantization = require("onnxruntime.quantization")
        quantization.quantize_dynamic(str(plain), str(target), weight_type=quantization.QuantType.QInt8)
        plain.unlink()


def _versions(backend: str, int8: bool) -> dict[str, str]:
    names = ["torch", "sentence-transformers", "transformers"]
    names += ["openvino"] + (["nncf"] if int8 else []) if backend == "openvino" else ["onnx", "onnxruntime"]
    out = {}
    for dist in names:
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out
