"""Typed, frozen parameters of each backend, built from :class:`~mlsearch.settings.Settings` in one place.

Backends take their own config, never the whole settings. A config's fields are the backend's settings without
their prefix: ``FaissConfig.nprobe`` is ``MLSEARCH_FAISS_NPROBE``. :func:`backend_config` is the only code that
reads backend settings.

Example:
    >>> backend_config("bm25", Settings(bm25_k1=1.2))
    Bm25Config(k1=1.2, b=0.75)
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import SecretStr

from mlsearch.errors import UnknownBackendError
from mlsearch.settings import Settings


@dataclass(frozen=True)
class FaissConfig:
    """FAISS: factory string, quantization, HNSW graph and search parameters."""

    factory: str = "Flat"
    quantization: Literal["none", "int8", "binary"] = "none"
    rescore: int = 100
    nprobe: int = 16
    hnsw_ef_search: int = 128
    hnsw_m: int = 32
    hnsw_ef_construction: int = 200


@dataclass(frozen=True)
class AnnoyConfig:
    """Annoy: trees built and nodes inspected per search (-1: trees * k * 10)."""

    trees: int = 50
    search_k: int = -1


@dataclass(frozen=True)
class UsearchConfig:
    """USearch: stored vector type, HNSW graph and search parameters, candidates rescored when quantized."""

    dtype: Literal["f32", "i8", "b1"] = "f32"
    connectivity: int = 16
    expansion_add: int = 128
    expansion_search: int = 128
    rescore: int = 100


@dataclass(frozen=True)
class LsiConfig:
    """LSI: SVD components."""

    dimensions: int = 200
    fit_sample: int = 100_000


@dataclass(frozen=True)
class Bm25Config:
    """BM25: term-frequency saturation ``k1`` and length normalisation ``b``."""

    k1: float = 1.5
    b: float = 0.75


@dataclass(frozen=True)
class ElasticsearchConfig:
    """Elasticsearch: cluster, credentials, naming, retries and mapping options."""

    url: str | None = None
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: Path | None = None
    timeout: float = 10.0
    index_prefix: str = "mlsearch"
    num_candidates: int = 100
    keep_versions: int = 2
    max_retries: int = 3
    initial_backoff: float = 2.0
    bulk_size: int = 500
    shards: int = 1
    replicas: int = 0
    vector_index: str = "hnsw"


VectorConfig = FaissConfig | AnnoyConfig | UsearchConfig | ElasticsearchConfig
KeywordConfig = LsiConfig | Bm25Config
BackendConfig = VectorConfig | KeywordConfig

CONFIG_TYPES: dict[str, type[BackendConfig]] = {
    "faiss": FaissConfig, "annoy": AnnoyConfig, "usearch": UsearchConfig, "elasticsearch": ElasticsearchConfig,
    "lsi": LsiConfig, "bm25": Bm25Config,
}


C = TypeVar("C", FaissConfig, AnnoyConfig, UsearchConfig, ElasticsearchConfig, LsiConfig, Bm25Config)


def backend_config(name: str, settings: Settings) -> BackendConfig:
    """The config of backend ``name``, from the settings ``<name>_<field>``.

    Raises:
        UnknownBackendError: No such backend.
    """
    try:
        config_type = CONFIG_TYPES[name]
    except KeyError:
        raise UnknownBackendError(f"unknown backend {name!r}; valid: {', '.join(CONFIG_TYPES)}") from None
    return config_type(**{f.name: getattr(settings, f"{name}_{f.name}") for f in fields(config_type)})


def config_of(config_type: type[C], settings: Settings) -> C:
    """One backend's config by its type (``config_of(FaissConfig, settings)``), typed as that config."""
    config = backend_config(next(n for n, t in CONFIG_TYPES.items() if t is config_type), settings)
    assert isinstance(config, config_type)
    return config


def backend_configs(settings: Settings) -> dict[str, BackendConfig]:
    """Every backend's config (what a searcher needs to load any backend of an index)."""
    return {name: backend_config(name, settings) for name in CONFIG_TYPES}


def vector_config(name: str, settings: Settings) -> VectorConfig:
    """The config of vector backend ``name``.

    Raises:
        UnknownBackendError: No such vector backend.
    """
    return as_vector_config(name, backend_config(name, settings))


def keyword_config(name: str, settings: Settings) -> KeywordConfig:
    """The config of keyword backend ``name``.

    Raises:
        UnknownBackendError: No such keyword backend.
    """
    return as_keyword_config(name, backend_config(name, settings))


def as_vector_config(name: str, config: BackendConfig) -> VectorConfig:
    """``config``, checked to be a vector backend's (raises :class:`UnknownBackendError` otherwise)."""
    if not isinstance(config, VectorConfig):
        raise UnknownBackendError(f"{name!r} is not a vector backend")
    return config


def as_keyword_config(name: str, config: BackendConfig) -> KeywordConfig:
    """``config``, checked to be a keyword backend's (raises :class:`UnknownBackendError` otherwise)."""
    if not isinstance(config, KeywordConfig):
        raise UnknownBackendError(f"{name!r} is not a keyword backend")
    return config
