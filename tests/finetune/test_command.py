"""``mlsearch finetune`` end to end on a tiny BERT: no leakage, promotion, lineage in the manifest, refusals."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import finetune.pipeline as pipeline
from cli.app import app
from cli.commands import common
from indexing.build import LINEAGE_FILE
from indexing.embedding import load_encoder, sha256_file
from indexing.layout import current_version_dir
from indexing.manifest import Manifest
from indexing.store import ChunkStore
from tests.fakes import HashingEncoder

runner = CliRunner()
FAST = ("--epochs", "1", "--batch-size", "8", "--max-seq-length", "32")


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def index_dir(finetune_corpus: Path, tiny_bert_dir: Path, tmp_path: Path) -> Path:
    index = tmp_path / "indexes" / "default"
    code, _, err = invoke("index", "build", "--corpus", finetune_corpus, "--index-dir", index,
                          "--backends", "faiss,bm25", "--model", tiny_bert_dir, "--json")
    assert code == 0, err
    return index


@pytest.fixture
def spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Records the split and the training examples that the pipeline uses."""
    seen: dict[str, Any] = {}
    split, train = pipeline.split_queries, pipeline.train_model

    def record_split(*args: Any, **kwargs: Any) -> Any:
        seen["split"] = split(*args, **kwargs)
        return seen["split"]

    def record_train(model: Any, examples: Any, *args: Any, **kwargs: Any) -> Any:
        seen["examples"] = list(examples)
        return train(model, examples, *args, **kwargs)

    monkeypatch.setattr(pipeline, "split_queries", record_split)
    monkeypatch.setattr(pipeline, "train_model", record_train)
    return seen


def test_finetune_promotes_writes_card_report_lineage_and_no_dev_query_reaches_training(
    index_dir: Path, finetune_corpus: Path, tiny_bert_dir: Path, tmp_path: Path, spy: dict[str, Any]
) -> None:
    logged = tmp_path / "logged.txt"
    logged.write_text("adam running averages of the gradients\nkolmogorov smirnov test p value\nzzz\n")
    out = tmp_path / "models" / "tuned"
    code, stdout, err = invoke("finetune", "--index-dir", index_dir, "--out", out, *FAST, "--seed", "1",
                               "--min-gain", "-1", "--tolerance", "1", "--queries", logged)
    assert code == 0, err
    assert f"promoted: {out}" in stdout
    assert (f"mlsearch index build --index-dir {index_dir} --corpus {finetune_corpus} --backends faiss,bm25 "
            f"--model {out}") in stdout
    assert "synthetic-dev: nDCG@10" in stdout and "builtin" not in stdout  # built-in set judges corpus/ only

    # no leakage: dev queries, and the passages of held-out documents, never reach training
    split, examples = spy["split"], spy["examples"]
    assert split.dev and split.train_docs.isdisjoint(split.dev_docs)
    logged_texts = {"adam running averages of the gradients", "kolmogorov smirnov test p value"}
    assert {e.anchor for e in examples} <= {q.text for q in split.train} | logged_texts
    assert {e.anchor for e in examples}.isdisjoint({q.text for q in split.dev})
    store = ChunkStore(current_version_dir(index_dir) / ChunkStore.FILE)
    doc_of_text = {c.embedding_text: c.doc_id for c in store}
    doc_of_title = {c.title: c.doc_id for c in store}
    for example in examples:
        assert doc_of_title[example.positive.split("\n")[0].split(" > ")[0]] in split.train_docs
        assert doc_of_text[example.negative] in split.train_docs

    # the model folder: loads, encodes, carries a model card, lineage and the report
    for name in ("README.md", LINEAGE_FILE, "report.md", "report.html", "report-plots/win_loss.png"):
        assert (out / name).is_file(), name
    from sentence_transformers import SentenceTransformer

    vectors = SentenceTransformer(str(out), device="cpu").encode(["what is dropout"])
    assert vectors.shape == (1, 32)
    assert load_encoder(str(out)).encode(["what is dropout"]).shape == (1, 32)
    lineage = json.loads((out / LINEAGE_FILE).read_text())
    assert lineage["promoted"] is True
    assert lineage["base_model"]["weights_hash"] == sha256_file(tiny_bert_dir / "model.safetensors")
    assert lineage["weights_hash"] == sha256_file(out / "model.safetensors")
    assert lineage["generator"]["name"] == "heuristic" and lineage["generator"]["queries_per_chunk"] == 3
    assert lineage["generator"]["logged_queries"]["given"] == 3
    assert lineage["training"]["batch_size"] == 8 and lineage["training"]["result_steps"] >= 1
    assert set(lineage["split"]["dev_documents_list"]) == set(split.dev_docs)
    assert lineage["split"]["unit"] == "document" and "held out by document" in (out / "README.md").read_text()
    assert "synthetic-dev" in lineage["gate"]["sets"]
    card = (out / "README.md").read_text()
    assert "base_model:" in card and "## Hyper-parameters" in card and "## Metrics (promotion gate)" in card
    page = (out / "report.html").read_text()
    assert "data:image/png;base64," in page and "Per-query wins and losses" in page
    assert "| gate set | queries | nDCG@10 before |" in (out / "report.md").read_text()

    # index build --model records the lineage in the manifest
    rebuilt = tmp_path / "indexes" / "tuned"
    code, _, err = invoke("index", "build", "--corpus", finetune_corpus, "--index-dir", rebuilt,
                          "--backends", "faiss", "--model", out, "--json")
    assert code == 0, err
    manifest = Manifest.load(current_version_dir(rebuilt))
    assert manifest.model.lineage == lineage
    assert manifest.model.weights_hash == lineage["weights_hash"]


def _beir(folder: Path) -> Path:
    (folder / "qrels").mkdir(parents=True)
    docs = [("d1", "Dropout", "dropout zeroes hidden activations during training"),
            ("d2", "Adam", "adam keeps running averages of squared gradients"),
            ("d3", "Canary", "a canary release sends a small share of traffic")]
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n"
                                                 for i, t, x in docs))
    (folder / "queries.jsonl").write_text('{"_id": "1", "text": "dropout activations"}\n'
                                          '{"_id": "2", "text": "canary traffic share"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\td1\t1\n2\td3\t1\n")
    return folder


def test_finetune_one_long_document_is_split_by_section_and_gated(
    finetune_corpus: Path, tiny_bert_dir: Path, tmp_path: Path, spy: dict[str, Any]
) -> None:
    """The user's notes are one long file: the split holds out whole sections instead of documents."""
    notes = tmp_path / "notes"
    notes.mkdir()
    sections = [re.sub(r"(?s)^---.*?---\n", "", path.read_text()) for path in sorted(finetune_corpus.glob("*.md"))]
    (notes / "ml-notes.md").write_text("\n".join(sections))
    index = tmp_path / "indexes" / "notes"
    code, _, err = invoke("index", "build", "--corpus", notes, "--index-dir", index, "--backends", "faiss,bm25",
                          "--model", tiny_bert_dir, "--json")
    assert code == 0, err
    out = tmp_path / "models" / "notes"
    code, stdout, err = invoke("finetune", "--index-dir", index, "--out", out, *FAST, "--min-gain", "0.5")
    assert code == 0, err
    assert "split by section" in err
    assert "not promoted: keeping the current model" in stdout and "promotion needs at least +0.5000" in stdout

    split, examples = spy["split"], spy["examples"]
    assert split.unit == "section" and split.train_docs == split.dev_docs == {"ml-notes"}
    assert split.dev and split.train_units.isdisjoint(split.dev_units)
    store = {c.embedding_text: p for p, c in enumerate(ChunkStore(current_version_dir(index) / ChunkStore.FILE))}
    assert {e.anchor for e in examples}.isdisjoint({q.text for q in split.dev})
    for example in examples:  # positives and negatives come from training sections only
        assert store[example.negative] in split.train_positions
    assert {q.position for q in split.train} <= split.train_positions
    assert split.train_positions.isdisjoint({q.position for q in split.dev})

    rejected = out.with_name("notes.rejected")
    lineage = json.loads((rejected / LINEAGE_FILE).read_text())
    assert lineage["promoted"] is False and lineage["split"]["unit"] == "section"
    assert set(lineage["split"]["dev_units_list"]) == set(split.dev_units)
    assert lineage["gate"]["sets"]["synthetic-dev"]["queries"] == len(split.dev)
    assert "held out by section" in (rejected / "README.md").read_text()
    assert "held out by section" in (rejected / "report.md").read_text()


def test_finetune_not_promoted_keeps_the_current_model_and_says_why(
    index_dir: Path, tiny_t5_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "models" / "tuned"
    code, stdout, err = invoke("finetune", "--index-dir", index_dir, "--out", out, *FAST,
                               "--generator", "doc2query", "--generator-model", tiny_t5_dir,
                               "--queries-per-chunk", "2", "--eval-dataset", _beir(tmp_path / "beir"),
                               "--min-gain", "0.5")
    assert code == 0, err
    assert "not promoted: keeping the current model" in stdout
    assert "promotion needs at least +0.5000" in stdout
    assert "mlsearch index build" not in stdout
    assert not out.exists()
    rejected = out.with_name("tuned.rejected")
    lineage = json.loads((rejected / LINEAGE_FILE).read_text())
    assert lineage["promoted"] is False and lineage["generator"]["name"] == "doc2query"
    assert set(lineage["gate"]["sets"]) == {"synthetic-dev", "beir"}
    assert lineage["gate"]["sets"]["beir"]["queries"] == 2
    assert "not promoted" in (rejected / "report.md").read_text()
    assert not list(out.parent.glob(".tuned.staging*"))


def test_finetune_errors_are_one_line(
    index_dir: Path, finetune_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "file").write_text("x")
    code, _, err = invoke("finetune", "--index-dir", index_dir, "--out", taken)
    assert code == 1 and "already exists" in err and "Traceback" not in err
    code, _, err = invoke("finetune", "--index-dir", index_dir, "--out", tmp_path / "x", "--primary", "nope")
    assert code == 1 and "primary gate set 'nope' is not available" in err
    code, _, err = invoke("finetune", "--index-dir", index_dir, "--out", tmp_path / "x", "--generator", "gpt")
    assert code == 1 and "unknown generator" in err
    (finetune_corpus / "new.md").write_text("# New\n\nA new article about gradient clipping in deep networks.\n")
    code, _, err = invoke("finetune", "--index-dir", index_dir, "--out", tmp_path / "x")
    assert code == 1 and "has changed since index" in err
    code, _, err = invoke("finetune", "--index-dir", tmp_path / "none", "--out", tmp_path / "x")
    assert code == 1 and "no index" in err


def test_finetune_needs_a_sentence_transformers_model(
    built_index: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common, "get_encoder", lambda settings, model=None: HashingEncoder())
    code, _, err = invoke("finetune", "--index-dir", built_index, "--out", tmp_path / "x")
    assert code == 1 and "cannot be fine-tuned" in err


def _beir_of_articles(folder: Path) -> Path:
    """The fine-tuning articles as a BEIR folder (title and body per article); the qrels judge one query."""
    from tests.finetune.conftest import ARTICLES

    (folder / "qrels").mkdir(parents=True)
    lines = []
    for name, text in ARTICLES.items():
        title = re.search(r"^title: (.+)$", text, re.MULTILINE).group(1)  # type: ignore[union-attr]
        body = re.sub(r"(?s)^---.*?---\n", "", text)
        lines.append(json.dumps({"_id": name.removesuffix(".md"), "title": title, "text": body}) + "\n")
    (folder / "corpus.jsonl").write_text("".join(lines))
    (folder / "queries.jsonl").write_text('{"_id": "1", "text": "dropout activations"}\n')
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n1\tdropout\t1\n")
    return folder


def test_finetune_on_a_beir_evaluation_index(
    tiny_bert_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`finetune --dataset` adapts the model to a BEIR set's own corpus (its cached evaluation index, whose
    Markdown copy of the corpus is kept); the set's judgements are not a gate set."""
    monkeypatch.setenv("MLSEARCH_MODEL", str(tiny_bert_dir))
    monkeypatch.setenv("MLSEARCH_EVAL_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("MLSEARCH_INDEX_DIR", str(tmp_path / "indexes" / "default"))
    beir = _beir_of_articles(tmp_path / "beir")
    out = tmp_path / "models" / "beir"
    code, stdout, err = invoke("finetune", "--dataset", beir, "--out", out, *FAST, "--min-gain", "-1",
                               "--tolerance", "1")
    assert code == 0, err
    assert f"promoted: {out}" in stdout
    lineage = json.loads((out / LINEAGE_FILE).read_text())
    corpus = Path(lineage["data"]["corpus"])
    assert corpus.parent.parent == tmp_path / "cache" and corpus.name == "corpus"
    assert Path(lineage["data"]["index_dir"]) == corpus.parent / "index"
    assert lineage["split"]["unit"] == "document" and lineage["data"]["documents"] == 6
    assert set(lineage["gate"]["sets"]) == {"synthetic-dev"}
    code, _, err = invoke("finetune", "--dataset", beir, "--index-dir", tmp_path / "x", "--out", tmp_path / "y")
    assert code != 0 and "not both" in err
