"""Each backend's typed, frozen options, built from :class:`~mlsearch.settings.Settings` in one place.

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
    module = config_type.__module__
    name = next((n for n, spec in BACKENDS.items() if spec.class_path.partition(":")[0] == module), None)
    if name is None:
        raise UnknownBackendError(f"{config_type.__name__} is no backend's config")
    config = backend_config(name, settings)
    assert isinstance(config, config_type)
    return config


def backend_configs(settings: Settings) -> dict[str, object]:
    """The config of every backend the settings give options for (the others take their defaults when used).

    Building them checks every given option, so a bad one fails at start-up, not at the first search.
    """
    return {name: backend_config(name, settings) for name in settings.backend_options}


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
