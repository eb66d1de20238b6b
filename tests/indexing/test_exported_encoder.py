"""Exported encoders (OpenVINO, ONNX Runtime, int8) on a tiny BERT: same embeddings as torch, cached exports,
device and backend checks, and what the manifest records."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.app import app
from indexing import export, exported
from indexing.backends.configs import build_config, encoder_config, search_config
from indexing.build import build_index
from indexing.embedding import check_device, load_encoder, open_encoder
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.model_folder import files_fingerprint
from indexing.text_tokenizer import PROBE_TEXTS, FastTokenizer, HuggingFaceTokenizer
from mlsearch.configs import EncoderConfig
from mlsearch.errors import ModelLoadError, ModelMismatchError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import build_tiny_sentence_transformer

TEXTS = [
    "dropout is a regularizer for the network",
    "adam",
    "search the vector index with a query " * 12,  # longer than max_seq_length: truncated alike
    "learning rate of the optimizer and the batch size",
    "x",
]


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.asarray((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))


@pytest.mark.parametrize("backend", ["onnx", pytest.param("openvino", marks=pytest.mark.slow)])
def test_exported_model_matches_torch(tiny_model: Path, cache_dir: Path, backend: str) -> None:
    torch_encoder = load_encoder(str(tiny_model))
    encoder = open_encoder(str(tiny_model), EncoderConfig(backend=backend, cache_dir=cache_dir, threads=1))
    expected = torch_encoder.encode(TEXTS)
    vectors = encoder.encode(TEXTS, batch_size=2)  # batches that do not divide the texts evenly
    assert vectors.shape == (len(TEXTS), torch_encoder.dimension) and vectors.dtype == np.float32
    assert cosines(vectors, expected).min() >= 0.9999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)  # the model's own Normalize
    single = encoder.encode([TEXTS[2]])
    assert cosines(single, vectors[2:3])[0] >= 0.9999  # padding in a batch changes nothing
    assert encoder.count_tokens(TEXTS) == torch_encoder.count_tokens(TEXTS)
    assert (encoder.name, encoder.weights_hash, encoder.dimension, encoder.max_seq_length, encoder.normalized) == (
        torch_encoder.name, torch_encoder.weights_hash, torch_encoder.dimension, torch_encoder.max_seq_length,
        torch_encoder.normalized,
    )
    assert encoder.encode([]).shape == (0, torch_encoder.dimension)


def test_unnormalized_model_keeps_its_own_similarity(tmp_path: Path, cache_dir: Path) -> None:
    path = build_tiny_sentence_transformer(tmp_path, normalize=False, max_seq_length=32)
    encoder = open_encoder(str(path), EncoderConfig(backend="onnx", cache_dir=cache_dir))
    assert encoder.normalized is False
    vectors = encoder.encode(TEXTS)
    assert not np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)
    assert cosines(vectors, load_encoder(str(path)).encode(TEXTS)).min() >= 0.9999


def test_export_is_cached_by_weights_hash(tiny_model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = open_encoder(str(tiny_model), EncoderConfig(backend="onnx", cache_dir=cache_dir))
    structure = export.structure_hash(load_encoder(str(tiny_model)).model)
    folder = export.export_dir(cache_dir, first.name, first.weights_hash, "onnx", False, structure)
    assert (folder / "export.json").is_file() and (folder / "model.onnx").is_file()

    def no_export(*args: object, **kwargs: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(export, "_export", no_export)
    again = open_encoder(str(tiny_model), EncoderConfig(backend="onnx", cache_dir=cache_dir))
    np.testing.assert_allclose(again.encode(TEXTS), first.encode(TEXTS), atol=1e-6)
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_damaged_export_is_made_again(tiny_model: Path, tmp_path: Path) -> None:
    config = EncoderConfig(backend="onnx", cache_dir=tmp_path / "cache")
    encoder = open_encoder(str(tiny_model), config)
    structure = export.structure_hash(load_encoder(str(tiny_model)).model)
    folder = export.export_dir(tmp_path / "cache", encoder.name, encoder.weights_hash, "onnx", False, structure)
    (folder / "model.onnx").unlink()
    again = open_encoder(str(tiny_model), config)
    assert (folder / "model.onnx").is_file()
    assert cosines(again.encode(TEXTS), encoder.encode(TEXTS)).min() >= 0.9999


def test_int8_onnx_stays_close(tiny_model: Path, cache_dir: Path) -> None:
    encoder = open_encoder(str(tiny_model), EncoderConfig(backend="onnx", int8=True, cache_dir=cache_dir))
    assert encoder.quantization == "int8"
    assert cosines(encoder.encode(TEXTS), load_encoder(str(tiny_model)).encode(TEXTS)).min() >= 0.99


@pytest.mark.slow
def test_int8_openvino_stays_close(tiny_model: Path, cache_dir: Path) -> None:
    encoder = open_encoder(str(tiny_model), EncoderConfig(backend="openvino", int8=True, cache_dir=cache_dir))
    assert encoder.quantization == "int8"
    assert cosines(encoder.encode(TEXTS), load_encoder(str(tiny_model)).encode(TEXTS)).min() >= 0.99


def test_bad_devices_and_backends_are_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="no CUDA GPU.*--device cpu"):
        check_device("cuda")
    with pytest.raises(ModelLoadError, match="CPU only"):
        check_device("cuda:0", "openvino")
    with pytest.raises(ModelLoadError, match="unknown device"):
        check_device("gpu")
    with pytest.raises(ModelLoadError, match="unknown encoder backend"):
        check_device("cpu", "tensorrt")
    with pytest.raises(ModelLoadError, match="int8 encoding needs"):
        open_encoder("unused", EncoderConfig(backend="torch", int8=True))
    with pytest.raises(ValueError, match="unknown device 'gpu'"):
        Settings(device="gpu")


def test_missing_package_names_the_fix(tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def without_openvino(name: str, *args: object, **kwargs: object) -> object:
        if name.split(".")[0] == "openvino":
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", without_openvino)
    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    with pytest.raises(ModelLoadError, match="pip install openvino"):
        open_encoder(str(tiny_model), EncoderConfig(backend="openvino", cache_dir=tmp_path / "cache"))


def test_manifest_records_backend_and_int8_must_agree(
    tiny_model: Path, cache_dir: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    settings = Settings(index_dir=tmp_path / "idx", chunk_target_tokens=24, chunk_overlap_tokens=4,
                        model=str(tiny_model), encoder_backend="onnx", encoder_cache_dir=cache_dir)
    encoder = open_encoder(str(tiny_model), encoder_config(settings))
    build_index(build_config(settings), encoder, corpus_dir=tiny_corpus, backends=["faiss"])
    manifest = Manifest.load(current_version_dir(settings.index_dir))
    assert (manifest.model.backend, manifest.model.quantization, manifest.model.device) == ("onnx", None, "cpu")

    torch_searcher = Searcher.open(settings.index_dir,
                                   search_config(settings.model_copy(update={"encoder_backend": "torch"})))
    onnx_searcher = Searcher.open(settings.index_dir, search_config(settings), encoder=encoder)
    assert [h.id for h in torch_searcher.search("dropout rate", k=3).hits] == [
        h.id for h in onnx_searcher.search("dropout rate", k=3).hits
    ]
    int8 = open_encoder(str(tiny_model), EncoderConfig(backend="onnx", int8=True, cache_dir=cache_dir))
    with pytest.raises(ModelMismatchError, match="MLSEARCH_ENCODER_INT8=false"):
        Searcher.open(settings.index_dir, search_config(settings), encoder=int8)


def test_build_on_a_missing_gpu_fails_and_keeps_the_index(
    tiny_corpus: Path, tmp_path: Path, cli_fake_model: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    runner = CliRunner()
    index = str(tmp_path / "idx")
    assert runner.invoke(app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", index]).exit_code == 0
    before = current_version_dir(Path(index))
    for args in (["--device", "cuda"], ["--device", "tpu"], ["--encoder-backend", "tensorrt"]):
        result = runner.invoke(app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", index, *args])
        assert result.exit_code == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert current_version_dir(Path(index)) == before
    assert "--device cpu" in runner.invoke(
        app, ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", index, "--device", "cuda"]
    ).stderr


@pytest.mark.slow
def test_multi_process_encoding_equals_one_process(tiny_model: Path) -> None:
    texts = [f"{TEXTS[i % len(TEXTS)]} {i}" for i in range(300)]  # above the pool's threshold
    pooled = load_encoder(str(tiny_model), processes=2)
    try:
        np.testing.assert_allclose(pooled.encode(texts, batch_size=7), load_encoder(str(tiny_model)).encode(texts),
                                   atol=1e-5)
        assert pooled._pool is not None
    finally:
        pooled.close()
    assert pooled._pool is None


def test_int8_calibration_is_reproducible_and_holds_long_passages() -> None:
    texts = export.calibration_texts()
    assert texts == export.calibration_texts()  # seeded: the same export every time
    assert len(texts) == export.CALIBRATION_SAMPLES and texts[: len(export.CALIBRATION_TEXTS)] == list(
        export.CALIBRATION_TEXTS
    )
    longest_sentence = max(len(t) for t in export.CALIBRATION_TEXTS)
    assert sum(len(t) > 2 * longest_sentence for t in texts) >= 100  # passages of several sentences


VARIED = [*PROBE_TEXTS, "Dropout DROPOUT dropout", "adam"]


def fail_to_load(*args: object, **kwargs: object) -> None:
    raise AssertionError("loaded the model with sentence-transformers")


def test_cached_export_opens_from_the_folder_files_alone(
    tiny_model: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EncoderConfig(backend="onnx", cache_dir=cache_dir)
    first = open_encoder(str(tiny_model), config)  # exported or found through sentence-transformers
    torch_encoder = load_encoder(str(tiny_model))
    monkeypatch.setattr(exported, "load_encoder", fail_to_load)
    fast = open_encoder(str(tiny_model), config)
    assert isinstance(fast, exported.ExportedEncoder) and isinstance(fast.tokenizer, FastTokenizer)
    assert (fast.name, fast.weights_hash, fast.dimension, fast.max_seq_length, fast.normalized) == (
        torch_encoder.name, torch_encoder.weights_hash, torch_encoder.dimension, torch_encoder.max_seq_length,
        torch_encoder.normalized,
    )
    # the same graph fed the Hugging Face tokenizer's ids (the path before): the very same embeddings
    before = exported.ExportedEncoder(
        fast.runner, HuggingFaceTokenizer(torch_encoder.model.tokenizer, torch_encoder.max_seq_length),
        fast.input_names, fast.name, fast.weights_hash, fast.dimension, fast.max_seq_length, fast.normalized, "onnx",
    )
    np.testing.assert_array_equal(fast.encode(VARIED, batch_size=3), before.encode(VARIED, batch_size=3))
    for text in ("", VARIED[5], VARIED[-3]):
        np.testing.assert_array_equal(fast.encode([text]), before.encode([text]))
    np.testing.assert_allclose(fast.encode(VARIED), first.encode(VARIED), atol=1e-6)
    assert fast.count_tokens(VARIED) == torch_encoder.count_tokens(VARIED)


def test_an_export_made_before_fingerprints_gains_one(tiny_model: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    config = EncoderConfig(backend="onnx", cache_dir=tmp_path / "cache")
    encoder = open_encoder(str(tiny_model), config)
    meta_file = next((tmp_path / "cache").glob("*/onnx/export.json"))
    meta = json.loads(meta_file.read_text())
    assert meta["model_files"] == [files_fingerprint(tiny_model)]
    meta_file.write_text(json.dumps({k: v for k, v in meta.items() if k != "model_files"}))  # an older export
    monkeypatch.setattr(export, "_export", no_export)
    open_encoder(str(tiny_model), config)  # through sentence-transformers, which finds the export and records
    assert json.loads(meta_file.read_text())["model_files"] == [files_fingerprint(tiny_model)]
    monkeypatch.setattr(exported, "load_encoder", fail_to_load)
    np.testing.assert_array_equal(open_encoder(str(tiny_model), config).encode(TEXTS), encoder.encode(TEXTS))


def no_export(*args: object, **kwargs: object) -> None:
    raise AssertionError("exported again")


def test_a_folder_without_tokenizer_json_uses_the_hugging_face_tokenizer(
    tiny_model: Path, cache_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = EncoderConfig(backend="onnx", cache_dir=cache_dir)
    reference = open_encoder(str(tiny_model), config)
    slow = tmp_path / "slow"
    shutil.copytree(tiny_model, slow)
    (slow / "tokenizer.json").unlink()
    shutil.copy(tiny_model.parent / "raw" / "vocab.txt", slow / "vocab.txt")  # a slow tokenizer's files
    for _ in range(2):
        encoder = open_encoder(str(slow), config)
        assert isinstance(encoder, exported.ExportedEncoder)
        assert isinstance(encoder.tokenizer, HuggingFaceTokenizer)
        np.testing.assert_allclose(encoder.encode(VARIED), reference.encode(VARIED), atol=1e-5)
        assert encoder.count_tokens(VARIED) == reference.count_tokens(VARIED)
        monkeypatch.setattr(export, "_export", no_export)  # the second time, the cached export serves


def test_a_folder_whose_files_disagree_is_not_opened_from_them(
    tiny_model: Path, cache_dir: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "cased"
    shutil.copytree(tiny_model, folder)
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["normalizer"]["lowercase"] = False  # tokenizer_config.json still says do_lower_case: transformers
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))  # lowercases, tokenizer.json alone would not
    config = EncoderConfig(backend="onnx", cache_dir=cache_dir)
    for _ in range(2):
        encoder = open_encoder(str(folder), config)
        assert isinstance(encoder, exported.ExportedEncoder)
        assert isinstance(encoder.tokenizer, HuggingFaceTokenizer)
    assert not any(
        files_fingerprint(folder) in json.loads(f.read_text()).get("model_files", [])
        for f in cache_dir.glob("*/*/export.json")
    )


def test_a_build_with_a_cached_export_imports_no_torch(
    tiny_model: Path, cache_dir: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    open_encoder(str(tiny_model), EncoderConfig(backend="onnx", cache_dir=cache_dir))  # exported once
    args = ["index", "build", "--corpus", str(tiny_corpus), "--index-dir", str(tmp_path / "idx"), "--model",
            str(tiny_model), "--encoder-backend", "onnx", "--json"]
    script = (  # the whole `mlsearch index build` command in a fresh interpreter, then what it imported
        "import json, sys\n"
        "from cli.app import main\n"
        f"sys.argv = ['mlsearch', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit as exc:\n    assert not exc.code, exc.code\n"
        "heavy = ('torch', 'transformers', 'sentence_transformers', 'haystack')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)))\n"
    )
    env = {**os.environ, "MLSEARCH_ENCODER_CACHE_DIR": str(cache_dir), "MLSEARCH_CHUNK_TARGET_TOKENS": "24",
           "MLSEARCH_CHUNK_OVERLAP_TOKENS": "4"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=Path(__file__).resolve().parents[2])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []
    assert Manifest.load(current_version_dir(tmp_path / "idx")).model.backend == "onnx"


@pytest.mark.slow
def test_a_first_int8_export_keeps_stdout_for_the_json_summary(
    tiny_model: Path, tiny_corpus: Path, tmp_path: Path
) -> None:
    # NNCF prints progress bars and INFO lines on stdout; `index build --json` must print only its JSON there
    env = {**os.environ, "MLSEARCH_ENCODER_CACHE_DIR": str(tmp_path / "fresh"), "MLSEARCH_CHUNK_TARGET_TOKENS": "24",
           "MLSEARCH_CHUNK_OVERLAP_TOKENS": "4", "MLSEARCH_BACKENDS": '["faiss"]'}
    result = subprocess.run(
        [sys.executable, "-m", "cli", "index", "build", "--corpus", str(tiny_corpus), "--index-dir",
         str(tmp_path / "idx"), "--model", str(tiny_model), "--encoder-backend", "openvino", "--int8", "--json"],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["chunks"] > 0
    assert Manifest.load(current_version_dir(tmp_path / "idx")).model.quantization == "int8"
