"""``index build --backends elasticsearch`` when the cluster is unreachable or not configured: one line, exit 1,
and the index that was there before is untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from indexing.layout import current_version_dir, versions_dir

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("cli_fake_model")


def build(corpus: Path, index: Path, backends: str, *extra: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["index", "build", "--corpus", str(corpus), "--index-dir", str(index),
                                 "--backends", backends, *extra])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MLSEARCH_ELASTICSEARCH_URL": "http://127.0.0.1:9"},
         "error: backend 'elasticsearch' is unavailable: http://127.0.0.1:9 is unreachable: Connection refused"),
        ({}, "error: backend 'elasticsearch' is unavailable: no cluster configured; set MLSEARCH_ELASTICSEARCH_URL"),
    ],
    ids=["unreachable", "not-configured"],
)
def test_failed_elasticsearch_build_is_one_line_and_keeps_the_index(
    env: dict[str, str], message: str, tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLSEARCH_ELASTICSEARCH_URL", raising=False)
    index = tmp_path / "idx"
    code, _, err = build(tiny_corpus, index, "faiss,bm25")
    assert code == 0, err
    before = current_version_dir(index)
    manifest = (before / "manifest.json").read_text()

    for name, value in {**env, "MLSEARCH_ELASTICSEARCH_TIMEOUT": "1"}.items():  # default retries: they log quietly
        monkeypatch.setenv(name, value)
    (tiny_corpus / "new.md").write_text("# New\n\nA new article that the failed build must not publish.")
    code, out, err = build(tiny_corpus, index, "faiss,bm25,elasticsearch", "--json")
    assert code == 1 and out == ""
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert err.startswith(message)

    # nothing lost: the link still points at the same, whole version, and no half-built version is left
    # (only the checkpoint of the stopped build: its chunk store, for the next build to resume from)
    assert current_version_dir(index) == before
    assert (before / "manifest.json").read_text() == manifest
    assert json.loads(manifest)["counts"]["documents"] == 4
    versions = [p.name for p in versions_dir(index).iterdir() if p.is_dir() and not p.name.endswith(".tmp")]
    assert versions == [before.name]  # the build lock's file beside them is no version
    for checkpoint in versions_dir(index).glob("*.tmp"):
        assert sorted(p.name for p in checkpoint.iterdir()) == ["checkpoint.json", "chunks.sqlite"]

    # without --json the progress lines come first, and the error is still the last line alone
    code, _, err = build(tiny_corpus, index, "faiss,elasticsearch")
    assert code == 1 and err.strip().splitlines()[-1].startswith(message) and "Traceback" not in err


def test_real_process_prints_one_line_even_while_the_client_retries(tiny_corpus: Path, tmp_path: Path) -> None:
    """In a real process the CLI's logging is live: the client's retry warnings must not reach stderr."""
    script = (
        "import sys; from cli.commands import common; from tests.fakes import HashingEncoder; "
        "common.get_encoder = lambda settings, model=None: HashingEncoder(); "
        "from cli.app import main; sys.argv[0] = 'mlsearch'; main()"
    )
    env = {**os.environ, "MLSEARCH_ELASTICSEARCH_URL": "http://127.0.0.1:9", "MLSEARCH_ELASTICSEARCH_TIMEOUT": "1",
           "MLSEARCH_ELASTICSEARCH_MAX_RETRIES": "2", "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run(
        [sys.executable, "-c", script, "index", "build", "--corpus", str(tiny_corpus), "--index-dir",
         str(tmp_path / "i"), "--backends", "faiss,elasticsearch", "--json"],
        capture_output=True, text=True, timeout=120, env=env,
    )
    assert result.returncode == 1
    assert result.stderr.startswith(
        "error: backend 'elasticsearch' is unavailable: http://127.0.0.1:9 is unreachable: Connection refused"
    )
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not (tmp_path / "i").exists()
