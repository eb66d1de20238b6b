"""Keyword backends built from texts streamed out of the chunk store give the same index as from a list."""

from __future__ import annotations

import bm25s
import numpy as np

from indexing.backends.bm25 import Bm25Config, Bm25Index
from indexing.backends.lsi import LsiConfig
from indexing.backends.text import analyze
from indexing.store import ChunkStore
from tests.conftest import TINY_CORPUS

TEXTS = list(TINY_CORPUS.values()) + ["dropout dropout dropout", "a b", "momentum and adam"]


def test_bm25_from_integer_ids_scores_as_bm25s_from_tokens() -> None:
    index = Bm25Index(Bm25Config())
    index.build(iter(TEXTS))  # any iterable, read once
    reference = bm25s.BM25(k1=1.5, b=0.75, method="lucene")
    reference.index([analyze(text) for text in TEXTS], show_progress=False)
    assert index._vocabulary.keys() == reference.vocab_dict.keys()
    for query in ("dropout rate", "adam momentum gradient", "population stability index"):
        terms = [t for t in analyze(query) if t in reference.vocab_dict]
        np.testing.assert_allclose(index._retriever.get_scores(terms), reference.get_scores(terms), rtol=1e-6)


def test_stored_texts_stream_the_embedded_texts(tmp_path, fake_encoder) -> None:  # type: ignore[no-untyped-def]
    from indexing.chunks import Chunk

    chunks = [Chunk(id=f"c{i}", doc_id="d", title="T", heading=f"H{i}", text=f"text {i}", position=i)
              for i in range(7)]
    store = ChunkStore.write(tmp_path, chunks, None)
    texts = store.embedding_texts(batch_size=3)
    assert len(texts) == 7
    assert list(texts) == [c.embedding_text for c in chunks]
    assert texts[5] == chunks[5].embedding_text and texts[-1] == chunks[-1].embedding_text
    assert texts[2:6] == [c.embedding_text for c in chunks[2:6]]


def test_lsi_fitted_on_a_sample_projects_every_text() -> None:
    from indexing.backends.lsi import LsiIndex

    rng = np.random.default_rng(0)
    topics = [[f"topic{t}word{i}" for i in range(15)] for t in range(8)]
    shared = [f"common{i}" for i in range(30)]
    labels = rng.integers(0, 8, 400)
    texts = [" ".join([*rng.choice(topics[t], 8), *rng.choice(shared, 6)]) for t in labels]
    sampled = LsiIndex(LsiConfig(dimensions=20, fit_sample=200))
    sampled.build(texts)
    assert len(sampled) == len(texts) and sampled._documents.shape == (400, 20)
    np.testing.assert_allclose(np.linalg.norm(sampled._documents, axis=1), 1.0, rtol=1e-5)
    # every text is projected, in or out of the fitting sample: its neighbours share its topic
    for i in (0, 1, 199, 200, 201, 399):
        ids = sampled.search(texts[i], 10)[1][0]
        assert i in ids[:3]
        assert np.mean(labels[ids] == labels[i]) >= 0.9
