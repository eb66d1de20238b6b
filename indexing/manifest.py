"""``manifest.json``: how an index was built, so that it can be checked, shown and reproduced."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError

from mlsearch.errors import IndexNotBuiltError, ModelMismatchError

MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 1


class ModelInfo(BaseModel):
    """The embedding model an index was built with."""

    name: str
    weights_hash: str
    dimension: int
    max_seq_length: int
    normalized: bool
    lineage: dict[str, Any] | None = None
    backend: str = "torch"
    quantization: str | None = None
    device: str = "cpu"


class Manifest(BaseModel):
    """Everything that identifies a built index."""

    format_version: int = FORMAT_VERSION
    version: str
    built_at: str
    build_seconds: float
    model: ModelInfo
    metric: str = "inner_product"
    chunking: dict[str, int]
    corpus: dict[str, Any]
    backends: dict[str, dict[str, Any]]
    counts: dict[str, int]
    library_versions: dict[str, str] = Field(default_factory=dict)
    tuning: dict[str, Any] | None = Field(
        default=None, description="Label-free retrieval choices from `mlsearch tune` (fusion, document scoring)."
    )

    def save(self, directory: Path) -> None:
        """Write ``manifest.json`` into the directory (a temporary file renamed over it, never half-written)."""
        path = Path(directory) / MANIFEST_FILE
        tmp = path.with_name(f".{MANIFEST_FILE}.{os.getpid()}.tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        os.replace(tmp, path)

    @classmethod
    def load(cls, directory: Path) -> Manifest:
        """Read the manifest of an index directory.

        Raises:
            IndexNotBuiltError: There is no index, or its manifest is unreadable.
        """
        path = Path(directory) / MANIFEST_FILE
        if not path.is_file():
            raise IndexNotBuiltError(
                f"no index at {directory} (run `mlsearch index build --index-dir {directory}` first)"
            )
        try:
            return cls.model_validate(json.loads(path.read_text()))
        except (ValueError, ValidationError) as exc:
            raise IndexNotBuiltError(f"unreadable manifest {path}: {str(exc).splitlines()[0]}") from exc

    def check_precision(self, quantization: str | None) -> None:
        """Fail when embeddings of this index's model at ``quantization`` (``int8`` or None) are not the index's.

        Raises:
            ModelMismatchError: The index was built at the other precision.
        """
        if quantization != self.model.quantization:
            built = self.model.quantization or "full precision"
            raise ModelMismatchError(
                f"index {self.version} was built with {built} embeddings, not {quantization or 'full precision'}; "
                f"set MLSEARCH_ENCODER_INT8={'true' if self.model.quantization else 'false'} or rebuild the index"
            )

    def check_model(self, name: str, weights_hash: str, quantization: str | None = None) -> None:
        """Fail when an encoder is not the model this index was built with.

        The backend that ran the model (torch, OpenVINO, ONNX Runtime) may differ: their full-precision
        embeddings agree to a cosine of 0.9999 or more. A quantized (int8) encoder and a full-precision one
        do not, so they must agree.

        Raises:
            ModelMismatchError: The weights hash or the quantization differs.
        """
        if weights_hash == self.model.weights_hash:
            self.check_precision(quantization)
        else:
            raise ModelMismatchError(
                f"index {self.version} was built with model {self.model.name} "
                f"(weights {self.model.weights_hash[:12]}), not {name} (weights {weights_hash[:12]}); "
                f"rebuild the index with this model or search with --model {self.model.name}"
            )
