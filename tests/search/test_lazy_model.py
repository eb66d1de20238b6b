"""Searcher.open reads the manifest only; the model is loaded when a query first needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from indexing.backends.configs import search_config
from mlsearch.errors import ModelMismatchError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.conftest import ROOT
from tests.fakes import HashingEncoder


def test_keyword_methods_never_load_the_model(built_index: Path, settings: Settings) -> None:
    loads: list[str] = []

    def load(name: str) -> HashingEncoder:
        loads.append(name)
        return HashingEncoder()

    searcher = Searcher.open(built_index, search_config(settings), loader=load)
    assert searcher.loaded_encoder is None and searcher._backends == {}
    assert searcher.search("dropout", k=3, method="bm25").hits
    assert searcher.search("dropout", k=3, method="lsi", tags=["training"]).hits
    assert loads == [] and searcher.loaded_encoder is None
    assert searcher.search("dropout", k=3, method="hybrid").hits
    assert searcher.search("dropout rate", k=3, method="dense").hits
    assert loads == ["fake-hashing"]  # once, by the manifest's model name


def test_a_lazily_loaded_model_is_checked_against_the_manifest(built_index: Path, settings: Settings) -> None:
    searcher = Searcher.open(built_index, search_config(settings), model="other",
                             loader=lambda name: HashingEncoder(name=name))
    assert searcher.search("dropout", method="bm25").hits
    with pytest.raises(ModelMismatchError, match="built with model fake-hashing"):
        searcher.search("dropout", method="dense")


def test_keyword_search_does_not_import_torch(built_index: Path, settings: Settings) -> None:
    script = f"""
import json, sys
from indexing.backends.configs import search_config
from mlsearch.settings import Settings
from search.searcher import Searcher
searcher = Searcher.open({str(built_index)!r}, search_config(Settings()), loader=lambda name: 1 / 0)
hits = [len(searcher.search("dropout rate", k=3, method=m).hits) for m in ("bm25", "lsi")]
print(json.dumps({{"hits": hits, "loaded": sorted(m for m in ("torch", "sentence_transformers", "transformers")
                                                 if m in sys.modules)}}))
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(answer["hits"]) and answer["loaded"] == []
