"""``mlsearch drift report | simulate | export`` and ``mlsearch serve --drift-reference``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from drift.service import DriftService
from indexing.backends.configs import drift_service_config, search_config
from mlsearch.settings import Settings
from search.searcher import Searcher
from tests.fakes import HashingEncoder

IN_DOMAIN = [
    "dropout rate for hidden layers", "adam learning rate", "momentum in gradient descent",
    "population stability index bins", "kolmogorov smirnov test", "faiss hnsw index", "dropout at inference",
    "sgd with momentum velocity", "drift warning threshold", "similarity search dense vectors",
    "switch off dropout at inference", "adam running averages of gradients", "flat ivf and hnsw indexes",
    "reference sample bins", "squared gradients per parameter",
]
OFF_TOPIC = [
    "how long to rest a steak", "cheap flights to tokyo", "offside rule in football", "sourdough bread recipe",
    "best hiking boots for iceland", "tennis serve technique", "roast chicken wine pairing", "rome train pass",
    "marathon training plan", "keep basil alive indoors", "ski wax for cold snow", "paris metro at night",
]


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, fake_encoder: HashingEncoder) -> CliRunner:
    monkeypatch.setattr("cli.commands.common.get_encoder", lambda settings, model=None: fake_encoder)
    for name in ("MLSEARCH_STATE_DIR", "MLSEARCH_INDEX_DIR"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner()


@pytest.fixture
def served(built_index: Path, drift_settings: Settings, fake_encoder: HashingEncoder) -> Path:
    """A state directory whose log holds a reference of in-domain queries, then off-topic ones."""
    searcher = Searcher.open(built_index, search_config(drift_settings), encoder=fake_encoder)
    service = DriftService(drift_service_config(drift_settings)).start()
    for query in IN_DOMAIN + OFF_TOPIC * 2:  # a 10-query reference needs a longer shift to be sure
        service.record(searcher, query, "dense", 3)
    service.stop()
    return drift_settings.resolved_state_dir


def env(settings: Settings) -> dict[str, str]:
    return {"MLSEARCH_DRIFT_REFERENCE_SIZE": "10", "MLSEARCH_DRIFT_WINDOW": "10", "MLSEARCH_DRIFT_MIN_WINDOW": "5",
            "MLSEARCH_INDEX_DIR": str(settings.index_dir), "MLSEARCH_CHUNK_TARGET_TOKENS": "48",
            "MLSEARCH_CHUNK_OVERLAP_TOKENS": "8", "MLSEARCH_LSI_DIMENSIONS": "16"}


def test_report_writes_the_three_files(runner: CliRunner, served: Path, drift_settings: Settings,
                                       tmp_path: Path) -> None:
    out = tmp_path / "report"
    result = runner.invoke(app, ["drift", "report", "--state-dir", str(served), "--out", str(out)],
                           env=env(drift_settings))
    assert result.exit_code == 0, result.output
    # no reference query had an unknown term, so twenty off-topic ones in a row are drift
    assert result.output.startswith("status drift: reference 10 queries, window 10")
    assert "  - unknown_share: sequential test (CUSUM) above its threshold" in result.output
    assert {p.name for p in out.iterdir()} >= {"drift.json", "report.md", "report.html", "stream.png"}
    as_json = runner.invoke(app, ["drift", "report", "--state-dir", str(served), "--out", str(out), "--json"],
                            env=env(drift_settings))
    document = json.loads(as_json.stdout)
    assert document["status"] == "drift" and document["reference_size"] == 10


def test_report_against_a_reference_file(runner: CliRunner, served: Path, drift_settings: Settings,
                                         tmp_path: Path) -> None:
    reference = tmp_path / "reference.txt"
    reference.write_text("\n".join(OFF_TOPIC) + "\n")
    result = runner.invoke(app, ["drift", "report", "--state-dir", str(served), "--reference", str(reference),
                                 "--out", str(tmp_path / "r"), "--json"], env=env(drift_settings))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["reference"]["source"] == f"file:{reference}" and document["reference_size"] == len(OFF_TOPIC)


def test_report_without_a_log_is_one_clear_error(runner: CliRunner, tmp_path: Path, drift_settings: Settings) -> None:
    result = runner.invoke(app, ["drift", "report", "--state-dir", str(tmp_path / "empty")], env=env(drift_settings))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: no query log at") and len(result.stderr.splitlines()) == 1


def test_simulate_prints_when_each_detector_fires(runner: CliRunner, built_index: Path, drift_settings: Settings,
                                                  tmp_path: Path) -> None:
    reference, stream = tmp_path / "reference.txt", tmp_path / "stream.txt"
    reference.write_text("\n".join(IN_DOMAIN) + "\n")
    stream.write_text("\n".join(IN_DOMAIN[:6] + OFF_TOPIC * 2) + "\n")
    args = ["drift", "simulate", "--reference", str(reference), "--stream", str(stream), "--window", "10",
            "--min-window", "5"]
    result = runner.invoke(app, [*args, "--json"], env=env(drift_settings))
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["stream"] == 30 and len(document["statuses"]) == 30
    assert document["statuses"][:4] == ["warming_up"] * 4
    first = document["first_fire"]["warning"]
    assert first is not None and first > 6  # not before the off-topic questions start
    assert document["final"]["status"] in ("warning", "drift")
    assert set(document["first_fire"]) >= {"ks", "psi", "adwin", "cusum", "drift"}
    text = runner.invoke(app, args, env=env(drift_settings))
    assert text.exit_code == 0 and f"warning  query {first}" in text.output


@pytest.mark.parametrize(("reference_text", "stream_text", "message"), [
    ("what is dropout\n", "", "stream file"), ("", "what is dropout\n", "reference file"),
])
def test_simulate_refuses_empty_files(runner: CliRunner, drift_settings: Settings, tmp_path: Path,
                                      reference_text: str, stream_text: str, message: str) -> None:
    reference, stream = tmp_path / "reference.txt", tmp_path / "stream.txt"
    reference.write_text(reference_text)
    stream.write_text(stream_text)
    result = runner.invoke(app, ["drift", "simulate", "--reference", str(reference), "--stream", str(stream)],
                           env=env(drift_settings))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: {message} {stream if 'stream' in message else reference} holds no queries"


def test_export_writes_one_query_per_line_for_finetune(runner: CliRunner, served: Path, drift_settings: Settings,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "exported" / "queries.txt"
    result = runner.invoke(app, ["drift", "export", "--state-dir", str(served), "--out", str(out)],
                           env=env(drift_settings))
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines() == IN_DOMAIN + OFF_TOPIC
    window = runner.invoke(app, ["drift", "export", "--state-dir", str(served), "--out", str(out), "--window"],
                           env=env(drift_settings))
    assert window.exit_code == 0 and out.read_text().splitlines() == IN_DOMAIN[10:] + OFF_TOPIC


def test_export_without_kept_text_says_how_to_keep_it(runner: CliRunner, built_index: Path,
                                                      drift_settings: Settings, fake_encoder: HashingEncoder,
                                                      tmp_path: Path) -> None:
    settings = drift_settings.model_copy(update={"drift_store_text": "hashed"})
    service = DriftService(drift_service_config(settings)).start()
    service.record(Searcher.open(built_index, search_config(settings), encoder=fake_encoder), "what is dropout",
                   "dense", 1)
    service.stop()
    result = runner.invoke(app, ["drift", "export", "--state-dir", str(settings.resolved_state_dir), "--out",
                                 str(tmp_path / "q.txt")], env=env(drift_settings))
    assert result.exit_code == 1 and "MLSEARCH_DRIFT_STORE_TEXT=full" in result.stderr


def test_serve_refuses_a_missing_drift_reference(runner: CliRunner, drift_settings: Settings, tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve", "--drift-reference", str(tmp_path / "missing.txt")],
                           env=env(drift_settings))
    assert result.exit_code == 1
    assert result.stderr.strip() == f"error: reference file {tmp_path / 'missing.txt'} not found"
