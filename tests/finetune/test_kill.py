"""A fine-tuning run killed with SIGKILL leaves no half model under ``--out``; the next run clears its leftovers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.app import app
from finetune.pipeline import STAGING_INFIX, remove_dead_staging
from tests.conftest import ROOT

KILL_AT_THE_REPORT = textwrap.dedent("""
    import os, signal, sys
    from finetune import pipeline

    def killed(*args, **kwargs):  # the model is saved, its card written: the worst moment to die
        os.kill(os.getpid(), signal.SIGKILL)

    pipeline.write_report = killed
    from cli.app import app
    app(sys.argv[1:])
""")


@pytest.mark.slow
def test_sigkill_during_finetune_leaves_no_half_model_under_out(
    finetune_corpus: Path, tiny_bert_dir: Path, tmp_path: Path
) -> None:
    index = tmp_path / "indexes" / "default"
    built = CliRunner().invoke(app, ["index", "build", "--corpus", str(finetune_corpus), "--index-dir", str(index),
                                     "--backends", "faiss,bm25", "--model", str(tiny_bert_dir)])
    assert built.exit_code == 0, built.output
    out = tmp_path / "models" / "tuned"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    run = subprocess.run(
        [sys.executable, "-c", KILL_AT_THE_REPORT, "finetune", "--index-dir", str(index), "--out", str(out),
         "--epochs", "1", "--batch-size", "8", "--max-seq-length", "32", "--no-builtin"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    assert not out.exists() and not out.with_name("tuned.rejected").exists()
    leftovers = list(out.parent.glob(f".tuned{STAGING_INFIX}*"))
    assert len(leftovers) == 1 and (leftovers[0] / "model.safetensors").is_file()  # the half model, hidden
    assert remove_dead_staging(out) == leftovers and not leftovers[0].exists()


def test_only_staging_folders_of_dead_runs_are_removed(tmp_path: Path) -> None:
    out = tmp_path / "tuned"
    alive = tmp_path / f".tuned{STAGING_INFIX}{os.getpid()}"
    dead_pid = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
    dead = tmp_path / f".tuned{STAGING_INFIX}{dead_pid}"
    other = tmp_path / f".other{STAGING_INFIX}{dead_pid}"
    for folder in (alive, dead, other):
        folder.mkdir()
    assert remove_dead_staging(out) == [dead]
    assert alive.exists() and other.exists() and not dead.exists()
