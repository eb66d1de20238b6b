"""The component configs that :mod:`indexing.backends.configs` builds from the settings carry every value down."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.configs import (
    build_config,
    drift_service_config,
    encoder_config,
    search_config,
)
from indexing.backends.faiss_index import FaissConfig
from mlsearch.configs import BuildConfig, DriftServiceConfig, SearchConfig
from mlsearch.settings import Settings


def _settings(tmp_path: Path) -> Settings:
    return Settings(
        corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "indexes" / "main", model="some/model",
        backends=["faiss", "bm25"], faiss_factory="HNSW32", batch_size=7, checkpoint_chunks=11,
        chunk_target_tokens=90, chunk_overlap_tokens=9, chunk_max_tokens=120, keep_versions=3,
        update_refit_delay_s=0.5, rrf_k=17, fusion="rrf", query_cache_size=5, rerank_top_n=4, reranker=tmp_path / "rr",
        encoder_threads=3, encode_processes=2, drift_window=50, drift_log_max_rows=500, drift_store_text="hashed",
        drift_log_retention_days=2.0, drift_reference_file=tmp_path / "reference.txt",
    )


def test_the_build_config_carries_paths_sizes_and_backend_configs(tmp_path: Path) -> None:
    build = build_config(_settings(tmp_path))
    assert build == BuildConfig(
        corpus_dir=tmp_path / "corpus", index_dir=tmp_path / "indexes" / "main", state_dir=None, model="some/model",
        backends=("faiss", "bm25"), backend_configs={"faiss": FaissConfig(factory="HNSW32")}, batch_size=7,
        checkpoint_chunks=11, chunk_target_tokens=90, chunk_overlap_tokens=9, chunk_max_tokens=120,
        keep_versions=3, refit_delay_s=0.5,
    )


def test_the_search_config_carries_fusion_cache_reranker_and_encoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSEARCH_ENCODER_CACHE_DIR", raising=False)  # tests/conftest.py shares one export cache
    settings = _settings(tmp_path)
    search = search_config(settings)
    assert search == SearchConfig(
        rrf_k=17, fusion="rrf", query_cache_size=5, encoder=encoder_config(settings), reranker=tmp_path / "rr",
        rerank_top_n=4, backends={"faiss": FaissConfig(factory="HNSW32")},
    )
    assert (search.encoder.threads, search.encoder.processes) == (3, 2)
    assert search.encoder.cache_dir == tmp_path / "indexes" / "encoders"  # beside the index by default
    assert search_config(settings, threads=1).encoder.threads == 1


def test_the_drift_service_config_carries_the_log_and_the_monitor(tmp_path: Path) -> None:
    config = drift_service_config(_settings(tmp_path))
    assert config == DriftServiceConfig(
        state_dir=tmp_path / "indexes" / "main-state", monitor=config.monitor,
        reference_file=tmp_path / "reference.txt", log_max_rows=500, log_retention_days=2.0, store_text="hashed",
    )
    assert config.monitor.window == 50 and config.monitor.min_window == 30
