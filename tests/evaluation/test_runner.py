"""evaluate(): every method over a small index, document and chunk level, with honest bookkeeping."""

from __future__ import annotations

from pathlib import Path

import pytest

from evaluation.datasets import load_dataset
from evaluation.metrics import METRICS
from evaluation.runner import LATENCY_KEYS, evaluate
from indexing.backends.configs import search_config
from mlsearch.errors import BadQueryError, UnknownBackendError
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.evaluation.independent import ndcg_at
from tests.fakes import HashingEncoder


@pytest.fixture
def searcher(built_index: Path, settings: Settings, fake_encoder: HashingEncoder) -> Searcher:
    return Searcher.open(built_index, search_config(settings), encoder=fake_encoder)


def test_document_level_evaluation_of_every_method(
    searcher: Searcher, qrels_dir: Path, tiny_corpus: Path
) -> None:
    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    cache = searcher.cache
    result = evaluate(searcher, dataset, ["lsi", "bm25", "dense", "hybrid"], k=3, backend="annoy")
    assert searcher.cache is cache
    table = result.metrics_table()
    assert list(table) == ["lsi", "bm25", "dense", "hybrid"]
    for method, metrics in table.items():
        assert list(metrics) == [*METRICS, *LATENCY_KEYS], method
        assert all(0.0 <= metrics[m] <= 1.0 for m in METRICS)
        assert 0 < metrics["latency_ms_p50"] <= metrics["latency_ms_p95"]
        outcome = result.methods[method]
        assert set(outcome.run) == set(dataset.queries) == set(outcome.latency_ms)
        for qid, items in outcome.run.items():
            assert 0 < len(items) <= 3 and set(items) <= {"dropout", "optimizers", "drift", "faiss"}
            scores = list(items.values())
            assert all(a > b for a, b in zip(scores, scores[1:], strict=False)), (method, qid)
            assert outcome.per_query["ndcg@10"][qid] == pytest.approx(ndcg_at(dataset.qrels[qid], items))
    assert table["bm25"]["mrr@10"] == 1.0  # the tiny queries name their article's words
    assert len(result.comparisons) == 6 and result.comparisons[0].metric == "ndcg@10"
    assert result.level == "document" and "best chunk" in result.scoring
    assert result.index["version"] == searcher.version and result.index["model"] == "fake-hashing"
    assert result.dataset["name"] == "tinyqrels" and result.created_at


def test_chunk_level_evaluation_of_answer_spans(
    searcher: Searcher, span_file: Path, tiny_corpus: Path, caplog: pytest.LogCaptureFixture
) -> None:
    dataset = load_dataset(span_file, corpus_dir=tiny_corpus)
    result = evaluate(searcher, dataset, ["bm25", "dense"], k=5)
    assert result.unjudged == ["s4"]
    assert set(result.qrels) == {"s1", "s2", "s3"}
    chunk_ids = {chunk.id for chunk in searcher.store}
    for qid, relevant in result.qrels.items():
        assert relevant and set(relevant) <= chunk_ids
        assert set(result.methods["bm25"].run[qid]) <= chunk_ids
    assert result.level == "chunk" and "evidence" in result.scoring
    assert "s4" in caplog.text


def test_bad_options_fail_before_any_search(searcher: Searcher, qrels_dir: Path, tiny_corpus: Path) -> None:
    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    with pytest.raises(BadQueryError, match="unknown method"):
        evaluate(searcher, dataset, ["dense", "splade"])
    with pytest.raises(BadQueryError, match="k must be"):
        evaluate(searcher, dataset, ["dense"], k=0)
    with pytest.raises(UnknownBackendError, match="unknown vector backend"):
        evaluate(searcher, dataset, ["dense"], backend="lsi")


class _FavouriteCrossEncoder:
    """A stand-in cross-encoder that scores passages mentioning one word far above the rest."""

    def __init__(self, word: str) -> None:
        self.word = word

    def predict(self, pairs: list[tuple[str, str]], **_: object) -> list[float]:
        return [10.0 if self.word in passage.lower() else 0.0 for _, passage in pairs]


def test_a_reranked_method_reorders_its_head_with_the_cross_encoder(
    searcher: Searcher, qrels_dir: Path, tiny_corpus: Path
) -> None:
    from evaluation.indexes import needed_backends
    from evaluation.runner import check_options
    from search.rerank import Reranker

    searcher._reranker = Reranker(_FavouriteCrossEncoder("faiss"), "favourite")
    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    result = evaluate(searcher, dataset, ["hybrid", "hybrid+rerank", "bm25+rerank"], k=3, backend="annoy")
    assert list(result.metrics_table()) == ["hybrid", "hybrid+rerank", "bm25+rerank"]
    for qid in dataset.queries:
        plain, reranked = result.methods["hybrid"].run[qid], result.methods["hybrid+rerank"].run[qid]
        assert set(reranked) <= {"dropout", "optimizers", "drift", "faiss"}
        assert next(iter(reranked)) == "faiss"  # every hybrid head of the tiny corpus holds the faiss article
        assert set(plain) != set() and list(plain) != list(reranked) or next(iter(plain)) == "faiss"
    assert needed_backends(["hybrid+rerank"], "annoy") == needed_backends(["hybrid"], "annoy")
    check_options(["hybrid-rrf+rerank"], 10, "faiss")
    with pytest.raises(BadQueryError, match="unknown method"):
        check_options(["hybrid+rerank+rerank"], 10, "faiss")


def test_the_feedback_variant_runs_hybrid_with_the_fixed_feedback_and_fusion_variants_without(
    searcher: Searcher, qrels_dir: Path, tiny_corpus: Path
) -> None:
    from dataclasses import replace

    from evaluation.indexes import needed_backends
    from search.feedback import FEEDBACK_VARIANTS
    from search.fusion import FUSION_VARIANTS

    dataset = load_dataset(qrels_dir, corpus_dir=tiny_corpus)
    asked: list[object] = []
    retrieve = searcher.retrieve

    def spy(*args: object, **kwargs: object) -> list[tuple[int, float]]:
        asked.append(kwargs.get("feedback"))
        return retrieve(*args, **kwargs)  # type: ignore[arg-type]

    searcher.retrieve = spy  # type: ignore[method-assign]
    searcher.config = replace(searcher.config, feedback=FEEDBACK_VARIANTS["hybrid-prf"])
    result = evaluate(searcher, dataset, ["hybrid-prf", "hybrid-zscore", "hybrid", "hybrid-noprf"], k=3)
    assert list(result.metrics_table()) == ["hybrid-prf", "hybrid-zscore", "hybrid", "hybrid-noprf"]
    count = len(dataset.queries) + 1  # the warm-up too
    assert asked[:count] == [FEEDBACK_VARIANTS["hybrid-prf"]] * count
    assert all(f is not None and not f.enabled for f in asked[count : 2 * count])  # type: ignore[attr-defined]
    assert asked[2 * count : 3 * count] == [None] * count  # hybrid: the searcher's own feedback setting
    assert all(f is not None and not f.enabled for f in asked[3 * count :])  # type: ignore[attr-defined]
    assert result.methods["hybrid"].run == result.methods["hybrid-prf"].run
    assert result.methods["hybrid-noprf"].run == result.methods["hybrid-zscore"].run  # untuned: the same fusion
    assert "hybrid-zscore" in FUSION_VARIANTS
    assert needed_backends(["hybrid-prf"], "faiss") == needed_backends(["hybrid"], "faiss")
