"""Backend options: each backend's config class lives in its own module and is filled from Settings generically."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

from indexing.backends import configs
from indexing.backends.configs import backend_config, backend_configs
from indexing.backends.registry import backend_class
from mlsearch import settings as settings_module
from mlsearch.catalog import BACKENDS
from mlsearch.errors import BackendConfigError
from mlsearch.settings import Settings


@pytest.mark.parametrize("name", list(BACKENDS))
def test_every_backend_config_is_a_frozen_class_of_its_own_module(name: str) -> None:
    cls = backend_class(name)
    config_type = cls.config_type
    module = BACKENDS[name].class_path.partition(":")[0]
    assert config_type.__module__ == cls.__module__ == module, "the config lives beside its backend"
    assert dataclasses.is_dataclass(config_type) and config_type.__dataclass_params__.frozen  # type: ignore[attr-defined]
    assert inspect.signature(cls).parameters["config"].annotation in (config_type.__name__, config_type)
    defaults = backend_config(name)
    assert isinstance(defaults, config_type) and defaults == config_type()


def _named_backends(path: Path) -> list[str]:
    """Backend names written in a module as a string or as the prefix of a name (``faiss_...``)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        words = [node.value] if isinstance(node, ast.Constant) and isinstance(node.value, str) else []
        words += [node.id] if isinstance(node, ast.Name) else []
        words += [node.arg] if isinstance(node, ast.arg) else []
        words += [node.attr] if isinstance(node, ast.Attribute) else []
        found += [w for w in words for name in BACKENDS if w == name or w.startswith(f"{name}_")]
    return found


def test_settings_and_the_config_builder_name_no_backend() -> None:
    """A new backend's options need no line in the settings or in ``configs.py``."""
    assert not [field for field in Settings.model_fields for name in BACKENDS if field.startswith(f"{name}_")]
    for module in (settings_module, configs):
        assert _named_backends(Path(module.__file__ or "")) == [], module.__name__


def test_options_come_from_flat_variables_json_and_keywords(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSEARCH_LSI_DIMENSIONS", "30")
    monkeypatch.setenv("MLSEARCH_FAISS_NPROBE", "4")
    monkeypatch.setenv("MLSEARCH_BACKEND_OPTIONS", '{"annoy": {"trees": 7}, "faiss": {"nprobe": 2, "rescore": 9}}')
    settings = Settings(faiss_factory="HNSW32")
    lsi, faiss, annoy = (backend_config(n, settings) for n in ("lsi", "faiss", "annoy"))
    assert lsi.dimensions == 30 and lsi.fit_sample == 100_000  # type: ignore[attr-defined]
    assert (faiss.factory, faiss.nprobe, faiss.rescore) == ("HNSW32", 4, 9)  # type: ignore[attr-defined]
    assert annoy.trees == 7 and annoy.search_k == -1  # type: ignore[attr-defined]
    assert set(backend_configs(settings)) == {"lsi", "faiss", "annoy"}


def test_a_bad_option_is_named_with_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSEARCH_ANNOY_TRES", "9")
    with pytest.raises(BackendConfigError, match=r"unknown option 'tres' \(MLSEARCH_ANNOY_TRES\); valid: trees"):
        backend_config("annoy", Settings())
    monkeypatch.delenv("MLSEARCH_ANNOY_TRES")
    with pytest.raises(BackendConfigError, match=r"rescore \(MLSEARCH_FAISS_RESCORE\): Input should be greater"):
        backend_config("faiss", Settings(faiss_rescore=0))
    with pytest.raises(BackendConfigError, match=r"quantization \(MLSEARCH_FAISS_QUANTIZATION\)"):
        backend_configs(Settings(faiss_quantization="int4"))
