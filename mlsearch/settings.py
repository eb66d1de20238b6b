"""The one configuration class of mlsearch, read from ``MLSEARCH_*`` environment variables."""

from __future__ import annotations

import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mlsearch.catalog import BACKEND_NAMES, DEFAULT_BUILD_BACKENDS
from mlsearch.configs import (
    DEFAULT_BATCH_TOKENS,
    DEFAULT_FEEDBACK,
    DEFAULT_MODEL,
    DEFAULT_SMOOTHING,
    Correction,
    StoreText,
    UntunedFusion,
)

ENV_PREFIX = "MLSEARCH_"
_BACKEND_KEY = re.compile(rf"({'|'.join(sorted(map(re.escape, BACKEND_NAMES), key=len, reverse=True))})_(\w+)")
"""``<backend>_<option>``: one backend option given as a flat setting."""


class Settings(BaseSettings):
    """Every setting of mlsearch; each field can be set as ``MLSEARCH_<FIELD>`` in the environment.

    Construct it where it is needed (the CLI, the API lifespan); nothing builds one at import time.
    """

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_file=None, extra="ignore")

    # Paths
    corpus_dir: Path = Path("corpus")
    index_dir: Path = Path("indexes/default")
    state_dir: Path | None = Field(
        default=None, description="Drift log and other service state; beside the index by default."
    )

    # Model
    model: str = Field(default=DEFAULT_MODEL, description="Sentence-transformers name or path.")
    device: str = Field(default="cpu", description="cpu, cuda, cuda:N or mps (a GPU with the torch backend only).")
    batch_size: int = Field(default=32, ge=1, le=4096, description="Texts per encoding batch when indexing.")
    encoder_backend: Literal["torch", "openvino", "onnx"] | None = Field(
        default=None,
        description="Runs the model: torch, or the model exported to OpenVINO or ONNX Runtime. Unset: the index's "
        "own when one is opened or rebuilt, else the default (see mlsearch.configs.DEFAULT_ENCODER_BACKEND).",
    )
    encoder_int8: bool | None = Field(
        default=None,
        description="Quantize the exported model to int8 (openvino, onnx). Unset: the index's own, else int8 with "
        "the default backend and full precision with a backend that was set.",
    )
    encoder_threads: int = Field(default=0, ge=0, description="OpenVINO / ONNX Runtime threads (0: every core).")
    encoder_batch_tokens: int = Field(
        default=DEFAULT_BATCH_TOKENS, ge=0,
        description="OpenVINO / ONNX Runtime: most padded tokens per inference call (0: no cap).",
    )
    encode_processes: int = Field(
        default=0, ge=0, description="Torch: encode large batches in this many processes (0 or 1: one process)."
    )
    encoder_cache_dir: Path | None = Field(
        default=None, description="Exported models, by weights hash; <index parent>/encoders by default."
    )
    checkpoint_chunks: int = Field(
        default=1000, ge=1, le=100_000,
        description="Chunks embedded between two checkpoints of a build (a killed build redoes at most these).",
    )

    # Chunking
    chunk_target_tokens: int = Field(default=200, ge=16, description="Target chunk length in model tokens.")
    chunk_overlap_tokens: int = Field(default=32, ge=0, description="Tokens repeated from the previous chunk.")
    chunk_max_tokens: int | None = Field(
        default=None, ge=8, description="Hard cap; the model's max_seq_length when unset (never above it)."
    )

    # Backends
    backends: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BUILD_BACKENDS), description="Backends built (see mlsearch.catalog)."
    )
    backend_options: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Backend name → its options, checked against the backend's own config class when it is "
        "used. Set one as MLSEARCH_<BACKEND>_<OPTION> (MLSEARCH_FAISS_FACTORY=HNSW32), or all as JSON in "
        "MLSEARCH_BACKEND_OPTIONS; Settings(faiss_factory=...) works too.",
    )
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal rank fusion constant.")
    fusion: UntunedFusion = Field(
        default="zscore", description="Hybrid's fusion of dense and BM25 (equal weights) on an index `mlsearch "
        "tune` has not tuned: zscore or minmax (normalised-score convex combination) or rrf (reciprocal rank fusion).",
    )
    reranker: Path | None = Field(
        default=None, description="A local cross-encoder folder for `rerank`; else the one the index's manifest "
        "names (`mlsearch rerank-train`).",
    )
    rerank_top_n: int = Field(default=20, ge=1, le=200, description="Results the reranker rescores.")
    prf_docs: int = Field(
        default=DEFAULT_FEEDBACK.docs, ge=0, le=100, description="Hybrid pseudo-relevance feedback: chunks from the "
        "top of the first fused list that refine the dense query (Rocchio) and the BM25 query (RM3 terms); 0 turns "
        "it off.",
    )
    prf_query_weight: float = Field(
        default=DEFAULT_FEEDBACK.query_weight, ge=0, le=1, description="Feedback: the original query vector's "
        "weight against the feedback chunks' centroid.",
    )
    prf_terms: int = Field(
        default=DEFAULT_FEEDBACK.terms, ge=0, description="Feedback: BM25 expansion terms (0: BM25 not refined).")
    prf_term_weight: float = Field(
        default=DEFAULT_FEEDBACK.term_weight, ge=0, le=1,
        description="Feedback: the original query terms' share of the expanded BM25 query.",
    )
    prf_keep_first_pass: bool = Field(
        default=DEFAULT_FEEDBACK.keep_first_pass,
        description="Feedback: fuse the first-pass lists beside the refined ones (else the refined ones only).",
    )
    smoothing_weight: float = Field(
        default=DEFAULT_SMOOTHING.weight, ge=0, lt=1, description="BM25 smoothing: the share of a chunk's score "
        "taken from the mean score of its nearest chunks by embedding (0 turns it off).",
    )
    smoothing_neighbours: int = Field(
        default=DEFAULT_SMOOTHING.neighbours, ge=1, le=50, description="BM25 smoothing: nearest chunks per chunk.")
    smoothing_max_chunks: int = Field(
        default=DEFAULT_SMOOTHING.max_chunks, ge=0, description="BM25 smoothing: the largest index whose "
        "neighbour graph a searcher computes itself when the version has none saved (built before graphs were "
        "saved); a larger one without a saved graph is not smoothed.",
    )
    keep_versions: int = Field(default=2, ge=1, description="Index versions kept on disk after a swap.")

    # Service
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    admin_api_key: SecretStr | None = None
    max_body_bytes: int = Field(default=16_384, ge=256)
    max_upload_bytes: int = Field(
        default=20_000_000, ge=1024, description="Largest document accepted by PUT/POST /documents, in bytes."
    )
    update_coalesce_s: float = Field(
        default=0.2, ge=0, description="Quiet time before document writes are applied to the index as one update."
    )
    update_refit_delay_s: float = Field(
        default=2.0, ge=0, description="Quiet time after the last document write before LSI, into which updates "
        "fold new texts, is fitted again in the background (the index then equals a clean rebuild).",
    )
    query_cache_size: int = Field(default=1024, ge=0)
    watch_index: bool = Field(default=True, description="Reload when the index directory points elsewhere.")
    watch_interval_s: float = Field(default=2.0, gt=0)
    micro_batch: bool = Field(
        default=True, description="Encode concurrent dense queries together (bounded wait: micro_batch_wait_ms)."
    )
    micro_batch_wait_ms: float = Field(
        default=2.0, ge=0, le=100, description="Longest wait for more queries once concurrent queries are seen."
    )
    micro_batch_max: int = Field(default=32, ge=1, le=1024, description="Most queries encoded in one batch.")
    micro_batch_workers: int = Field(default=2, ge=1, le=64, description="Most query batches encoded at once.")
    read_api_key: SecretStr | None = Field(
        default=None,
        description="When set, /drift, /drift/report and /metrics need it (or the admin key) in X-API-Key.",
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser; none (CORS off) when empty."
    )
    rate_limit_per_minute: int = Field(
        default=0, ge=0, description="Requests a minute per client address (0: no limit); /health, /ready are free."
    )
    rate_limit_burst: int = Field(default=0, ge=0, description="Extra requests a client may burst (0: a tenth).")
    inline_search_ms: float = Field(
        default=10.0, ge=0, description="A search whose kind (method, index version) recently took at most this "
        "many ms, asked while no other search is in flight, runs on the event loop instead of a worker thread: "
        "it saves two thread wake-ups, and holds the loop that long (0: always a worker thread).",
    )
    request_timeout_s: float = Field(
        default=30.0, gt=0, description="A search or comparison that takes longer answers 503 search_timeout."
    )
    shutdown_grace_s: int = Field(
        default=20, ge=0, description="On SIGTERM, seconds in-flight requests get to finish before the server exits."
    )
    serve_torch_threads: int = Field(
        default=1, ge=0,
        description="Torch intra-op threads in `mlsearch serve` (0: torch's default). One thread per request "
        "keeps query latency steady when requests run in parallel or the CPU is shared.",
    )

    # Drift
    drift_reference_size: int = Field(default=200, ge=10)
    drift_window: int = Field(default=200, ge=10)
    drift_min_window: int = Field(default=30, ge=5)
    drift_log_max_rows: int = Field(default=100_000, ge=100)
    drift_log_retention_days: float = Field(
        default=30.0, ge=0, description="Logged queries older than this are deleted (0: kept until max_rows)."
    )
    drift_store_text: StoreText = "off"
    drift_psi_warning: float = Field(default=0.1, gt=0)
    drift_psi_drift: float = Field(default=0.25, gt=0)
    drift_ks_alpha: float = Field(default=0.01, gt=0, lt=1)
    drift_reference_file: Path | None = Field(
        default=None, description="Reference queries (one a line); the first answered queries when unset."
    )
    drift_ks_correction: Correction = "holm"
    drift_psi_bins: int = Field(default=10, ge=2, le=50)
    drift_components: int = Field(default=2, ge=0, le=32, description="Principal components watched.")
    drift_sequential_alpha: float = Field(
        default=0.01, gt=0, lt=1, description="CUSUM false-alarm probability over 10 windows of queries."
    )
    drift_warning_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="CUSUM warning probability over 10 windows of in-domain queries."
    )
    drift_cusum_slack: float = Field(
        default=0.5, gt=0, description="CUSUM allowance per query, in standard scores (tuned to a shift of twice it)."
    )
    drift_cusum_fast_slack: float = Field(
        default=1.5, ge=0,
        description="Slack of a second set of CUSUMs, tuned to large shifts (0: none); calibrated with the first.",
    )
    drift_ks_warns: bool = Field(
        default=False, description="Also warn when a KS test (repeated after every query) is significant."
    )
    drift_adwin_delta: float = Field(default=0.002, gt=0, lt=1)
    drift_psi_confirms: bool = Field(
        default=False, description="Also call drift when KS is significant and PSI reaches drift_psi_drift."
    )
    drift_mmd: bool = Field(default=False, description="MMD permutation test on the query embeddings.")
    drift_log: bool = Field(default=True, description="Log answered queries for drift monitoring.")
    drift_mmd_permutations: int = Field(default=200, ge=20)

    # Evaluation
    eval_cache_dir: Path | None = Field(
        default=None, description="Cached evaluation indexes; <index parent>/eval-cache by default."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """The usual sources, plus ``MLSEARCH_<BACKEND>_<OPTION>`` variables (see :class:`BackendOptionsEnv`)."""
        return init_settings, env_settings, BackendOptionsEnv(settings_cls), dotenv_settings, file_secret_settings

    @model_validator(mode="before")
    @classmethod
    def _gather_backend_options(cls, data: Any) -> Any:
        """Fold ``<backend>_<option>`` keys into ``backend_options`` (they win over the same option there)."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        options = {name: dict(values) for name, values in (data.get("backend_options") or {}).items()}
        for key in [k for k in data if isinstance(k, str) and k not in cls.model_fields]:
            found = _BACKEND_KEY.fullmatch(key)
            if found:
                options.setdefault(found.group(1), {})[found.group(2)] = data.pop(key)
        data["backend_options"] = options
        return data

    @field_validator("device")
    @classmethod
    def _check_device(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|mps|cuda(:\d+)?", value):
            raise ValueError(f"unknown device {value!r}; valid: cpu, cuda, cuda:N, mps")
        return value

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_target_tokens:
            raise ValueError(
                f"chunk_overlap_tokens ({self.chunk_overlap_tokens}) must be below "
                f"chunk_target_tokens ({self.chunk_target_tokens})"
            )
        return self

    @property
    def resolved_encoder_cache_dir(self) -> Path:
        """Where exported models are cached: the setting, or ``encoders/`` beside the index directory."""
        return self.encoder_cache_dir or self.index_dir.parent / "encoders"

    @property
    def resolved_state_dir(self) -> Path:
        """The state directory: the setting, or ``<index parent>/state`` beside the index."""
        if self.state_dir is not None:
            return self.state_dir
        return self.index_dir.parent / f"{self.index_dir.name}-state"

    @property
    def resolved_eval_cache_dir(self) -> Path:
        """Where evaluation indexes are cached: the setting, or ``eval-cache/`` beside the index directory."""
        return self.eval_cache_dir or self.index_dir.parent / "eval-cache"


class BackendOptionsEnv(PydanticBaseSettingsSource):
    """``MLSEARCH_<BACKEND>_<OPTION>`` environment variables as ``<backend>_<option>`` keys.

    The backend is any name in :data:`mlsearch.catalog.BACKEND_NAMES`; the option is checked later against that
    backend's config class, so a new backend's options need no field here.
    """

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """Unused: this source adds keys that are not fields."""
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for variable, value in os.environ.items():
            key = variable.lower().removeprefix(ENV_PREFIX.lower())
            if variable.upper().startswith(ENV_PREFIX) and key not in Settings.model_fields:
                if _BACKEND_KEY.fullmatch(key):
                    found[key] = value
        return found


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (a FastAPI dependency)."""
    return Settings()
