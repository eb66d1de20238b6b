"""The encoder backend and int8 flag the settings leave unset follow the index (its manifest), else the defaults;
what was set is kept, and a setting that does not fit the index stays a clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from indexing import embedding
from indexing.backends.configs import build_config, search_config
from indexing.build import build_index
from indexing.embedding import follow_index, open_encoder
from indexing.manifest import ModelInfo
from mlsearch.configs import EncoderConfig
from mlsearch.errors import ModelMismatchError
from mlsearch.settings import Settings
from search.searcher import Searcher


def index_model(backend: str, int8: bool) -> ModelInfo:
    return ModelInfo(name="m", weights_hash="0" * 64, dimension=4, max_seq_length=16, normalized=True, backend=backend,
                     quantization="int8" if int8 else None)


@pytest.mark.parametrize(
    ("backend", "int8", "index", "expected"),
    [
        (None, None, None, ("openvino", True)),  # nothing chosen, no index: the defaults (patched below)
        (None, None, ("torch", False), ("torch", False)),  # the index's own, whatever the default
        (None, None, ("onnx", False), ("onnx", False)),
        (None, None, ("onnx", True), ("onnx", True)),
        ("openvino", None, None, ("openvino", False)),  # a backend that was set runs in full precision...
        ("openvino", None, ("openvino", True), ("openvino", True)),  # ...unless the index is int8 on it
        ("onnx", None, ("openvino", True), ("onnx", False)),
        ("torch", None, ("openvino", True), ("torch", False)),  # set: kept (then a mismatch, see below)
        (None, False, ("openvino", True), ("openvino", False)),
        (None, True, ("torch", False), ("openvino", True)),  # int8 alone: on OpenVINO (then a mismatch)
        (None, True, None, ("openvino", True)),
        ("onnx", True, ("torch", False), ("onnx", True)),
        ("torch", True, None, ("torch", True)),  # both set: kept (open_encoder refuses torch with int8)
    ],
)
def test_unset_choices_follow_the_index_then_the_defaults(
    monkeypatch: pytest.MonkeyPatch, backend: str | None, int8: bool | None, index: tuple[str, bool] | None,
    expected: tuple[str, bool],
) -> None:
    monkeypatch.setattr(embedding, "DEFAULT_ENCODER_BACKEND", "openvino")
    monkeypatch.setattr(embedding, "DEFAULT_ENCODER_INT8", True)
    config = EncoderConfig(backend=backend, int8=int8, threads=3)
    chosen = follow_index(config, index_model(*index) if index else None)
    assert (chosen.backend, chosen.int8) == expected
    assert chosen.threads == 3


def test_settings_leave_the_encoder_unset_by_default() -> None:
    assert (Settings().encoder_backend, Settings().encoder_int8) == (None, None)
    assert Settings(encoder_backend="onnx", encoder_int8=False).encoder_int8 is False


def built(tiny_model: Path, cache_dir: Path, corpus: Path, index_dir: Path, backend: str, int8: bool) -> Settings:
    """Settings that leave the encoder unset, over an index built with ``backend`` (int8 or not)."""
    settings = Settings(index_dir=index_dir, chunk_target_tokens=24, chunk_overlap_tokens=4, model=str(tiny_model),
                        encoder_cache_dir=cache_dir)
    encoder = open_encoder(str(tiny_model), EncoderConfig(backend=backend, int8=int8, cache_dir=cache_dir))
    build_index(build_config(settings), encoder, corpus_dir=corpus, backends=["faiss", "bm25"])
    return settings


@pytest.mark.parametrize(("index", "default"), [(("torch", False), ("onnx", True)),
                                                (("onnx", True), ("torch", False))])
def test_an_index_opens_and_serves_under_another_default(
    tiny_model: Path, cache_dir: Path, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    index: tuple[str, bool], default: tuple[str, bool],
) -> None:
    settings = built(tiny_model, cache_dir, tiny_corpus, tmp_path / "idx", *index)
    monkeypatch.setattr(embedding, "DEFAULT_ENCODER_BACKEND", default[0])
    monkeypatch.setattr(embedding, "DEFAULT_ENCODER_INT8", default[1])
    searcher = Searcher.open(settings.index_dir, search_config(settings))
    assert searcher.search("dropout rate", k=3, method="dense").hits
    encoder = searcher.encoder
    assert (getattr(encoder, "backend", None), getattr(encoder, "quantization", None) == "int8") == index


def test_an_explicit_setting_that_does_not_fit_the_index_is_a_clear_error(
    tiny_model: Path, cache_dir: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    settings = built(tiny_model, cache_dir, tiny_corpus, tmp_path / "idx", "onnx", True)
    for explicit in ({"encoder_int8": False}, {"encoder_backend": "torch"}):
        searcher = Searcher.open(settings.index_dir, search_config(settings.model_copy(update=explicit)))
        with pytest.raises(ModelMismatchError, match="built with int8 embeddings.*MLSEARCH_ENCODER_INT8=true"):
            searcher.search("dropout rate", k=3, method="dense")
