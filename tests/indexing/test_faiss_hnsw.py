"""FAISS HNSW graph settings: edges per node (``faiss_hnsw_m``) and build-time candidates (efConstruction)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from indexing.backends.faiss_index import LARGE_GRAPH, FaissConfig, FaissIndex, default_ef_search, hnsw_factory
from tests.indexing.conformance import clustered_vectors


def test_bare_hnsw_takes_m_from_the_setting_and_a_numbered_factory_keeps_its_own() -> None:
    assert hnsw_factory("HNSW", 48) == "HNSW48"
    assert hnsw_factory("HNSW_SQ8", 48) == "HNSW48_SQ8"
    assert hnsw_factory("HNSW32", 48) == "HNSW32"
    assert hnsw_factory("IVF64,Flat", 48) == "IVF64,Flat"


@pytest.mark.parametrize("quantization", ["none", "int8", "binary"])
def test_graph_is_built_with_the_configured_m_and_ef_construction_and_keeps_them(
    quantization: str, tmp_path: Path
) -> None:
    config = FaissConfig(factory="HNSW", hnsw_m=12, hnsw_ef_construction=77, hnsw_ef_search=64,
                         quantization=quantization)  # type: ignore[arg-type]
    index = FaissIndex(48, config)
    index.add(clustered_vectors(500, 48))
    assert index.factory.endswith("HNSW12") or index.factory.startswith("HNSW12")
    index.save(tmp_path)
    loaded = FaissIndex.load(tmp_path, FaissConfig())
    graph = loaded._index if quantization == "binary" else faiss.downcast_index(loaded._index)
    assert graph.hnsw.efConstruction == 77
    assert np.min(np.diff(faiss.vector_to_array(graph.hnsw.offsets))) == 2 * 12  # level 0 alone: 2·M edges
    assert loaded.describe()["hnsw_ef_construction"] == 77


def test_ef_search_default_widens_past_half_a_million_vectors_and_a_set_value_wins() -> None:
    assert default_ef_search(100_000) == 128
    assert default_ef_search(LARGE_GRAPH) == 128
    assert default_ef_search(LARGE_GRAPH + 1) == 256
    unset = FaissIndex(16, FaissConfig(factory="HNSW", hnsw_m=8))
    unset.add(clustered_vectors(200, 16))
    assert faiss.downcast_index(unset._index).hnsw.efSearch == 128
    assert unset.describe()["hnsw_ef_search"] == 128
    given = FaissIndex(16, FaissConfig(factory="HNSW", hnsw_m=8, hnsw_ef_search=300))
    given.add(clustered_vectors(200, 16))
    assert faiss.downcast_index(given._index).hnsw.efSearch == 300
    assert given.describe()["hnsw_ef_search"] == 300
