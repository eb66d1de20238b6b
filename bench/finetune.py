"""Fine-tuning benchmark: wall time of ``mlsearch finetune`` with its defaults, and the before/after metrics.

Run: ``.venv/bin/python -m bench.finetune [--corpus corpus/] [--workdir DIR] [-- extra finetune options]``

It builds an index of the corpus with the bundled model in a work folder (timed apart), then runs the real
command, ``python -m cli.app finetune --index-dir … --out …``, in a subprocess and times it from start to
exit: model loading, query generation, hard negatives, training, the gate's two temporary indexes and its
evaluations, the model card and the report. Goal: under 15 minutes on 2 cores. The before/after table is read
from the candidate's ``mlsearch_lineage.json`` (promoted or not).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from finetune.split import describe_split
from indexing.backends.configs import build_config
from indexing.build import LINEAGE_FILE, build_index
from indexing.embedding import load_encoder
from mlsearch.settings import Settings

GOAL_S = 15 * 60


def main() -> None:
    """Build the index, run ``mlsearch finetune`` and print the time and the gate's table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--workdir", type=Path, default=None, help="Kept when given; a temporary folder otherwise.")
    parser.add_argument("extra", nargs="*", help="Options passed to mlsearch finetune (after --).")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-finetune-") as tmp:
        workdir = args.workdir or Path(tmp)
        index_dir = workdir / "indexes" / "default"
        out = workdir / "models" / "finetuned"
        started = time.perf_counter()
        summary = build_index(build_config(Settings(model=args.model)), load_encoder(args.model),
                              corpus_dir=args.corpus, index_dir=index_dir)
        build_s = time.perf_counter() - started

        command = [sys.executable, "-m", "cli.app", "finetune", "--index-dir", str(index_dir),
                   "--out", str(out), "--overwrite", *args.extra]
        print("running:", " ".join(command[1:]), flush=True)
        started = time.perf_counter()
        completed = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=False)
        finetune_s = time.perf_counter() - started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu_s = usage.ru_utime + usage.ru_stime
        load = os.getloadavg()[1]  # 5-minute load average: how much else ran on the machine
        print(completed.stdout, end="")
        if completed.returncode != 0:
            sys.exit(f"mlsearch finetune failed with exit code {completed.returncode}")
        folder = out if (out / LINEAGE_FILE).is_file() else out.with_name(out.name + ".rejected")
        lineage = json.loads((folder / LINEAGE_FILE).read_text())
        _print(args.corpus, summary.documents, summary.chunks, build_s, finetune_s, lineage)
        print(f"CPU time of mlsearch finetune {cpu_s:.0f} s ({cpu_s / max(finetune_s, 1e-9):.2f} cores busy on "
              f"average; {os.cpu_count()} cores, 5-minute load average {load:.1f} at the end: a load above the core "
              "count means other processes shared the machine and the wall time is longer than on an idle one)")


def _print(corpus: Path, documents: int, chunks: int, build_s: float, finetune_s: float, lineage: dict) -> None:
    gen, split, train, gate = (lineage[k] for k in ("generator", "split", "training", "gate"))
    print()
    print(f"corpus          {corpus} ({documents} documents, {chunks} chunks); "
          f"index build {build_s:.0f} s (not counted)")
    print(f"queries         {gen['generated']} generated {gen['generated_by_kind']}, {gen['kept']} kept; "
          f"{describe_split(split)}")
    print(f"training        {train['result_examples']} examples, {train['result_steps']} steps, "
          f"{train['epochs']} epoch, batch {train['batch_size']}, lr {train['learning_rate']}, "
          f"max {train['max_seq_length']} tokens: {train['result_seconds']:.0f} s")
    print("phases (s)      " + ", ".join(f"{k} {v:.0f}" for k, v in lineage["timings_s"].items()))
    verdict = "met" if finetune_s < GOAL_S else "NOT met"
    print(f"mlsearch finetune wall time {finetune_s:.0f} s ({finetune_s / 60:.1f} min; goal < 15 min: {verdict})")
    print()
    print(f"{'gate set':>14} {'queries':>7} {'before':>7} {'after':>7} {'delta':>7} {'W/L/T':>10} {'t-test p':>8}")
    for name, s in gate["sets"].items():
        wlt = f"{s['wins']}/{s['losses']}/{s['ties']}"
        print(f"{name:>14} {s['queries']:>7} {s['before']:7.4f} {s['after']:7.4f} {s['delta']:+7.4f} {wlt:>10} "
              f"{s['t_pvalue']:8.4f}")
    print(f"promoted: {gate['promoted']}")
    for reason in gate["reasons"]:
        print(f"  - {reason}")


if __name__ == "__main__":
    main()
