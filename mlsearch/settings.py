"""The one configuration class of mlsearch, read from ``MLSEARCH_*`` environment variables."""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from mlsearch.catalog import DEFAULT_BUILD_BACKENDS

DEFAULT_MODEL = "all-MiniLM-L6-v2"


class Settings(BaseSettings):
    """Every setting of mlsearch; each field can be set as ``MLSEARCH_<FIELD>`` in the environment.

    Construct it where it is needed (the CLI, the API lifespan); nothing builds one at import time.
    """

    model_config = SettingsConfigDict(env_prefix="MLSEARCH_", env_file=None, extra="ignore")

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
    encoder_backend: Literal["torch", "openvino", "onnx"] = Field(
        default="torch", description="Runs the model: torch, or the model exported to OpenVINO or ONNX Runtime."
    )
    encoder_int8: bool = Field(default=False, description="Quantize the exported model to int8 (openvino, onnx).")
    encoder_threads: int = Field(default=0, ge=0, description="OpenVINO / ONNX Runtime threads (0: every core).")
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
    faiss_factory: str = Field(default="Flat", description="FAISS index factory string: Flat, HNSW32, IVF64,Flat")
    faiss_quantization: Literal["none", "int8", "binary"] = Field(
        default="none",
        description="none: float vectors; int8: 8-bit scalar quantizer (SQ8); binary: one bit per dimension. "
        "Quantized indexes rescore faiss_rescore candidates with the float vectors.",
    )
    faiss_rescore: int = Field(default=100, ge=1, le=10_000, description="Candidates rescored exactly (quantized).")
    faiss_nprobe: int = Field(default=16, ge=1)
    faiss_hnsw_ef_search: int = Field(default=128, ge=1, description="HNSW candidates searched per query.")
    faiss_hnsw_m: int = Field(
        default=32, ge=2, le=256, description="HNSW edges per node when the factory says `HNSW` without a number."
    )
    faiss_hnsw_ef_construction: int = Field(
        default=200, ge=1, description="HNSW candidates per insertion (build; bench.scale chose 200 at 100K chunks)."
    )
    annoy_trees: int = Field(default=50, ge=1)
    annoy_search_k: int = Field(default=-1, description="Annoy search_k; -1 means n_trees * k * 10.")
    usearch_dtype: Literal["f32", "i8", "b1"] = Field(
        default="f32", description="USearch vector storage: f32 (exact), i8 or b1 (quantized, then rescored)."
    )
    usearch_connectivity: int = Field(default=16, ge=2, description="USearch HNSW edges per node.")
    usearch_expansion_add: int = Field(default=128, ge=1)
    usearch_expansion_search: int = Field(default=128, ge=1)
    usearch_rescore: int = Field(default=100, ge=1, le=10_000, description="Candidates rescored exactly (i8, b1).")
    lsi_dimensions: int = Field(default=200, ge=2)
    lsi_fit_sample: int = Field(
        default=100_000, ge=100, description="LSI fits TF-IDF and SVD on at most this many chunks (evenly spaced)."
    )
    bm25_k1: float = Field(default=1.5, gt=0)
    bm25_b: float = Field(default=0.75, ge=0, le=1)
    rrf_k: int = Field(default=60, ge=1, description="Reciprocal rank fusion constant.")
    reranker: Path | None = Field(
        default=None, description="A local cross-encoder folder for `rerank`; else the one the index's manifest "
        "names (`mlsearch rerank-train`).",
    )
    rerank_top_n: int = Field(default=20, ge=1, le=200, description="Results the reranker rescores.")
    keep_versions: int = Field(default=2, ge=1, description="Index versions kept on disk after a swap.")

    # Elasticsearch
    elasticsearch_url: str | None = None
    elasticsearch_api_key: SecretStr | None = None
    elasticsearch_username: str | None = None
    elasticsearch_password: SecretStr | None = None
    elasticsearch_ca_certs: Path | None = None
    elasticsearch_timeout: float = Field(default=10.0, gt=0)
    elasticsearch_index_prefix: str = "mlsearch"
    elasticsearch_num_candidates: int = Field(default=100, ge=1)
    elasticsearch_keep_versions: int = Field(default=2, ge=1)
    elasticsearch_max_retries: int = Field(
        default=3, ge=0, description="Retries of a transient failure (429, 502-504, timeouts) per request and document."
    )
    elasticsearch_initial_backoff: float = Field(
        default=2.0, ge=0, description="Seconds before the first bulk retry; doubled at each retry."
    )
    elasticsearch_bulk_size: int = Field(default=500, ge=1, description="Documents per bulk request.")
    elasticsearch_shards: int = Field(default=1, ge=1)
    elasticsearch_replicas: int = Field(default=0, ge=0, description="0 for a single node; 1 or more on a cluster.")
    elasticsearch_vector_index: Literal[
        "hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat"
    ] = Field(default="hnsw", description="dense_vector index_options type: hnsw keeps full float vectors.")

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
    micro_batch_workers: int = Field(default=2, ge=1, le=64, description="Threads encoding query batches.")
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
    drift_store_text: Literal["off", "hashed", "full"] = "off"
    drift_psi_warning: float = Field(default=0.1, gt=0)
    drift_psi_drift: float = Field(default=0.25, gt=0)
    drift_ks_alpha: float = Field(default=0.01, gt=0, lt=1)
    drift_reference_file: Path | None = Field(
        default=None, description="Reference queries (one a line); the first answered queries when unset."
    )
    drift_ks_correction: Literal["holm", "bh"] = "holm"
    drift_psi_bins: int = Field(default=10, ge=2, le=50)
    drift_components: int = Field(default=2, ge=0, le=32, description="Principal components watched.")
    drift_sequential_alpha: float = Field(
        default=0.01, gt=0, lt=1, description="CUSUM false-alarm probability over 10 windows of queries."
    )
    drift_warning_alpha: float = Field(
        default=0.05, gt=0, lt=1, description="CUSUM warning probability over 10 windows of in-domain queries."
    )
    drift_cusum_slack: float = Field(default=0.5, gt=0)
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


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (a FastAPI dependency)."""
    return Settings()
