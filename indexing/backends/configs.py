"""The one place below the CLI and the API that reads :class:`~mlsearch.settings.Settings`: it builds each
component's typed, frozen config (:mod:`mlsearch.configs`) and each backend's own config from them.

The CLI and the API call :func:`build_config`, :func:`search_config`, :func:`encoder_config` and
:func:`drift_service_config` and hand the results down; no other module of ``indexing``, ``search``,
``evaluation``, ``finetune`` or ``drift`` imports the settings (``tests/test_layering.py`` checks it).

A backend defines its own config class in its own module: a frozen pydantic dataclass that refuses unknown
options, named by the backend's ``config_type`` class attribute. :func:`backend_config` is the only code that
reads backend options from the settings: ``settings.backend_options[name]`` (filled from
``MLSEARCH_<BACKEND>_<OPTION>`` variables, the JSON of ``MLSEARCH_BACKEND_OPTIONS`` or
``Settings(<backend>_<option>=...)``), checked against that class. A new backend thus needs no line here nor
in the settings.

Example:
    >>> backend_config("bm25", Settings(bm25_k1=1.2))
    Bm25Config(k1=1.2, b=0.75, stemmer='english', stop_words='english', rm3_terms=0, rm3_docs=10, rm3_weight=0.5)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from functools import cache
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from indexing.backends.registry import backend_class
from mlsearch.catalog import BACKENDS, KEYWORD_BACKEND_NAMES, VECTOR_BACKEND_NAMES
from mlsearch.configs import (
    BuildConfig,
    DriftConfig,
    DriftServiceConfig,
    EncoderConfig,
    FeedbackConfig,
    SearchConfig,
    SmoothingConfig,
)
from mlsearch.errors import BackendConfigError, UnknownBackendError
from mlsearch.settings import ENV_PREFIX, Settings

C = TypeVar("C")


def backend_config(name: str, settings: Settings | None = None) -> object:
    """The config of backend ``name``: its options in ``settings`` (none: its defaults), checked by its class.

    Raises:
        UnknownBackendError: No such backend.
        BackendUnavailableError: Its library is not installed.
        BackendConfigError: An option is unknown or has a bad value (named with its environment variable).
    """
    config_type = backend_class(name).config_type
    options = settings.backend_options.get(name, {}) if settings is not None else {}
    return _validate(name, config_type, options)


def config_of(config_type: type[C], settings: Settings | None = None) -> C:
    """One backend's config by its type (``config_of(FaissConfig, settings)``), typed as that config.

    The backend is the one whose module defines ``config_type``.
    """
    config = backend_config(_backend_of(config_type), settings)
    assert isinstance(config, config_type)
    return config


def given_config(name: str, configs: Mapping[str, object]) -> object:
    """Backend ``name``'s config in ``configs`` (a component config's ``backend_configs``), else its defaults."""
    return configs.get(name) or backend_config(name)


def given_config_of(config_type: type[C], configs: Mapping[str, object]) -> C:
    """:func:`given_config` by the config's type (``given_config_of(Bm25Config, build.backend_configs)``)."""
    config = given_config(_backend_of(config_type), configs)
    assert isinstance(config, config_type)
    return config


def _backend_of(config_type: type) -> str:
    module = config_type.__module__
    name = next((n for n, spec in BACKENDS.items() if spec.class_path.partition(":")[0] == module), None)
    if name is None:
        raise UnknownBackendError(f"{config_type.__name__} is no backend's config")
    return name


def backend_configs(settings: Settings) -> dict[str, object]:
    """The config of every backend the settings give options for (the others take their defaults when used).

    Building them checks every given option, so a bad one fails at start-up, not at the first search.
    """
    return {name: backend_config(name, settings) for name in settings.backend_options}


def encoder_config(settings: Settings, threads: int | None = None) -> EncoderConfig:
    """How the settings run the model (``MLSEARCH_DEVICE``, ``MLSEARCH_ENCODER_*``); ``threads`` overrides theirs."""
    return EncoderConfig(
        device=settings.device, backend=settings.encoder_backend, int8=settings.encoder_int8,
        cache_dir=settings.resolved_encoder_cache_dir,
        threads=settings.encoder_threads if threads is None else threads,
        processes=settings.encode_processes, batch_tokens=settings.encoder_batch_tokens,
    )


def build_config(settings: Settings) -> BuildConfig:
    """How the settings build and update an index (paths, backends and their configs, chunks, batches)."""
    return BuildConfig(
        corpus_dir=settings.corpus_dir, index_dir=settings.index_dir, state_dir=settings.state_dir,
        model=settings.model, backends=tuple(settings.backends), backend_configs=backend_configs(settings),
        batch_size=settings.batch_size, checkpoint_chunks=settings.checkpoint_chunks,
        chunk_target_tokens=settings.chunk_target_tokens, chunk_overlap_tokens=settings.chunk_overlap_tokens,
        chunk_max_tokens=settings.chunk_max_tokens, keep_versions=settings.keep_versions,
        refit_delay_s=settings.update_refit_delay_s,
    )


def search_config(settings: Settings, threads: int | None = None) -> SearchConfig:
    """How the settings search (fusion, query cache, reranker, the model's device, backend configs).

    ``threads`` overrides the encoder's threads (as in :func:`encoder_config`).
    """
    return SearchConfig(
        rrf_k=settings.rrf_k, fusion=settings.fusion, query_cache_size=settings.query_cache_size,
        encoder=encoder_config(settings, threads), reranker=settings.reranker,
        rerank_top_n=settings.rerank_top_n, backends=backend_configs(settings),
        feedback=FeedbackConfig(docs=settings.prf_docs, query_weight=settings.prf_query_weight,
                                terms=settings.prf_terms, term_weight=settings.prf_term_weight,
                                keep_first_pass=settings.prf_keep_first_pass),
        smoothing=SmoothingConfig(weight=settings.smoothing_weight, neighbours=settings.smoothing_neighbours,
                                  max_chunks=settings.smoothing_max_chunks),
    )


def drift_config(settings: Settings) -> DriftConfig:
    """The drift monitor's sizes and thresholds: each field from the ``drift_<field>`` setting of its name."""
    values = {f.name: getattr(settings, f"drift_{f.name}") for f in fields(DriftConfig)
              if hasattr(settings, f"drift_{f.name}")}
    return DriftConfig(**values)


def drift_service_config(settings: Settings) -> DriftServiceConfig:
    """A service's drift monitoring as the settings describe it (state directory, query log, reference)."""
    return DriftServiceConfig(
        state_dir=settings.resolved_state_dir, monitor=drift_config(settings),
        reference_file=settings.drift_reference_file, log_max_rows=settings.drift_log_max_rows,
        log_retention_days=settings.drift_log_retention_days, store_text=settings.drift_store_text,
    )


def vector_config(name: str, settings: Settings | None = None) -> object:
    """The config of vector backend ``name``.

    Raises:
        UnknownBackendError: No such vector backend.
    """
    if name not in VECTOR_BACKEND_NAMES:
        raise UnknownBackendError(f"unknown vector backend {name!r}; valid: {', '.join(VECTOR_BACKEND_NAMES)}")
    return backend_config(name, settings)


def keyword_config(name: str, settings: Settings | None = None) -> object:
    """The config of keyword backend ``name``.

    Raises:
        UnknownBackendError: No such keyword backend.
    """
    if name not in KEYWORD_BACKEND_NAMES:
        raise UnknownBackendError(f"unknown keyword backend {name!r}; valid: {', '.join(KEYWORD_BACKEND_NAMES)}")
    return backend_config(name, settings)


@cache
def _adapter(config_type: type) -> TypeAdapter[Any]:
    return TypeAdapter(config_type)


def _validate(name: str, config_type: type, options: Mapping[str, Any]) -> object:
    try:
        return _adapter(config_type).validate_python(dict(options))
    except ValidationError as exc:
        valid = ", ".join(f.name for f in fields(config_type))
        problems = []
        for error in exc.errors():
            option = ".".join(str(part) for part in error["loc"])
            variable = f"{ENV_PREFIX}{name}_{option}".upper()
            if error["type"] == "unexpected_keyword_argument":
                problems.append(f"unknown option {option!r} ({variable}); valid: {valid}")
            else:
                problems.append(f"{option} ({variable}): {error['msg']}")
        raise BackendConfigError(f"bad {name} backend options: {'; '.join(problems)}") from None
