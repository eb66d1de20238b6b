"""Every vector backend against exact NumPy search (see ``conformance.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing.backends.registry import vector_backend
from mlsearch.settings import Settings
from tests.indexing.conformance import check_backend

CASES = [
    pytest.param("faiss", {"faiss_factory": "Flat"}, 1.0, id="faiss-flat"),
    pytest.param("faiss", {"faiss_factory": "HNSW32"}, 0.9, id="faiss-hnsw"),
    pytest.param("faiss", {"faiss_factory": "IVF32,Flat", "faiss_nprobe": 8}, 0.9, id="faiss-ivf"),
    pytest.param("annoy", {"annoy_trees": 50}, 0.9, id="annoy"),
]


@pytest.mark.parametrize(("backend", "overrides", "min_recall"), CASES)
def test_vector_backend_conforms(backend: str, overrides: dict, min_recall: float, tmp_path: Path) -> None:
    settings = Settings(**overrides)
    check_backend(vector_backend(backend), settings, tmp_path, min_recall)
