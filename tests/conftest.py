"""Shared fixtures: a fake encoder, a tiny corpus, a small built index, and the shared data paths."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from indexing.backends.configs import build_config
from indexing.embedding import DEFAULT_EXPORT_CACHE
from mlsearch.settings import Settings
from tests.fakes import HashingEncoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
# One export cache for every test that runs the real model with the default (exported) encoder, kept between
# runs: the first run exports and calibrates all-MiniLM-L6-v2 once (about 35 s), later runs find it.
os.environ.setdefault("MLSEARCH_ENCODER_CACHE_DIR", str(DEFAULT_EXPORT_CACHE))

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
CORPUS_DIR = ROOT / "corpus"

TINY_CORPUS = {
    "dropout.md": """---
title: Dropout
tags: [deep-learning, training]
---
# Dropout

Dropout randomly zeroes activations during training so that a network cannot rely on any single unit.

## Rates

A rate of 0.5 for hidden layers and 0.2 for inputs is a common start. Dropout is switched off at inference.

```python
layer = torch.nn.Dropout(p=0.5)
```
""",
    "optimizers.md": """---
title: Optimizers
tags: [training]
---
# Optimizers

## Adam

Adam keeps running averages of gradients and squared gradients; the learning rate is scaled per parameter.

## SGD with momentum

Momentum accumulates a velocity vector so that gradient descent moves faster along consistent directions.
""",
    "drift.md": """---
title: Data drift
tags: [drift, mlops]
---
# Data drift

The Kolmogorov-Smirnov test compares two samples of a feature. The population stability index bins a
reference sample and compares the share of a new sample in each bin.

| statistic | warning | drift |
|---|---|---|
| PSI | 0.1 | 0.25 |
""",
    "faiss.txt": "FAISS is a library for similarity search over dense vectors with flat, IVF and HNSW indexes.",
}


@pytest.fixture
def fake_encoder() -> HashingEncoder:
    """A deterministic fake embedding model (64 dimensions, 128-token limit)."""
    return HashingEncoder()


@pytest.fixture
def cli_fake_model(monkeypatch: pytest.MonkeyPatch, fake_encoder: HashingEncoder) -> HashingEncoder:
    """Make the CLI load the fake encoder instead of a real model."""
    from cli.commands import common

    monkeypatch.setattr(common, "get_encoder", lambda settings, model=None: fake_encoder)
    return fake_encoder


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """A folder with three Markdown articles and one text file."""
    folder = tmp_path / "corpus"
    folder.mkdir()
    for name, text in TINY_CORPUS.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with small chunks, pointing into the test's temporary folder."""
    return Settings(
        index_dir=tmp_path / "indexes" / "default",
        corpus_dir=tmp_path / "corpus",
        chunk_target_tokens=48,
        chunk_overlap_tokens=8,
        backend_options={"annoy": {"trees": 10}, "lsi": {"dimensions": 16}},
        state_dir=tmp_path / "state",
    )


@pytest.fixture
def built_index(tiny_corpus: Path, settings: Settings, fake_encoder: HashingEncoder) -> Path:
    """The tiny corpus built with the fake encoder into ``settings.index_dir`` (all local backends)."""
    from indexing.build import build_index

    build_index(build_config(settings), fake_encoder, corpus_dir=tiny_corpus,
                backends=["faiss", "annoy", "lsi", "bm25"])
    return settings.index_dir


@pytest.fixture(scope="session")
def real_encoder():  # type: ignore[no-untyped-def]
    """The bundled all-MiniLM-L6-v2 (loaded once per session)."""
    from indexing.embedding import load_encoder

    return load_encoder("all-MiniLM-L6-v2")


def shared_path(*parts: str) -> Path:
    """A path under ../shared, skipping the test when it is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is not available")
    return path


@pytest.fixture(scope="session")
def real_corpus_index(tmp_path_factory: pytest.TempPathFactory, real_encoder) -> Path:  # type: ignore[no-untyped-def]
    """The shipped corpus/ built once per session with the bundled model (all local backends)."""
    from indexing.build import build_index

    if not any(CORPUS_DIR.glob("*.md")):
        pytest.skip("corpus/ is empty")
    index_dir = tmp_path_factory.mktemp("real") / "default"
    build_index(build_config(Settings(index_dir=index_dir)), real_encoder, corpus_dir=CORPUS_DIR)
    return index_dir
