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
    pytest.param("faiss", {"faiss_factory": "HNSW", "faiss_hnsw_m": 16, "faiss_hnsw_ef_construction": 200}, 0.9,
                 id="faiss-hnsw-m16-efc200"),
    pytest.param("faiss", {"faiss_factory": "IVF32,Flat", "faiss_nprobe": 8}, 0.9, id="faiss-ivf"),
    pytest.param("faiss", {"faiss_quantization": "int8"}, 0.99, id="faiss-int8-rescored"),
    pytest.param("faiss", {"faiss_factory": "HNSW32", "faiss_quantization": "int8"}, 0.9, id="faiss-hnsw-int8"),
    # one sign bit per dimension of 48 keeps little of these unnormalised, tightly clustered vectors: the
    # rescored candidates must be many (bench.scale reports binary recall on realistic embeddings)
    pytest.param("faiss", {"faiss_quantization": "binary", "faiss_rescore": 400}, 0.65, id="faiss-binary-rescored"),
    pytest.param("faiss", {"faiss_factory": "HNSW32", "faiss_quantization": "binary", "faiss_rescore": 400}, 0.65,
                 id="faiss-binary-hnsw"),
    pytest.param("annoy", {"annoy_trees": 50}, 0.9, id="annoy"),
    pytest.param("usearch", {"usearch_dtype": "i8"}, 0.9, id="usearch-i8-rescored"),
]


@pytest.mark.parametrize(("backend", "overrides", "min_recall"), CASES)
def test_vector_backend_conforms(backend: str, overrides: dict, min_recall: float, tmp_path: Path) -> None:
    settings = Settings(**overrides)
    check_backend(vector_backend(backend), settings, tmp_path, min_recall)
