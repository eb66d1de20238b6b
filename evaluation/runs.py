"""Runs in TREC format: ``qid Q0 docno rank score tag``, one retrieved item a line."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mlsearch.errors import DatasetError


def write_trec_run(path: Path, run: Mapping[str, Mapping[str, float]], tag: str) -> None:
    """Write a run, each query's items best first (scores written exactly, so a reader gets the same run).

    Args:
        path: The file to write.
        run: Query id → {document id: score}; ids must not contain whitespace.
        tag: The run's name (last column).
    """
    lines: list[str] = []
    for qid, items in run.items():
        ranked = sorted(items.items(), key=lambda kv: -kv[1])
        lines.extend(f"{qid} Q0 {doc} {rank} {score!r} {tag}" for rank, (doc, score) in enumerate(ranked, 1))
    path.write_text("\n".join(lines) + ("\n" if lines else ""))


def read_trec_run(path: Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file into query id → {document id: score}.

    Raises:
        DatasetError: A line without six fields or with a score that is not a number (with its line).
    """
    run: dict[str, dict[str, float]] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 6:
            raise DatasetError(f"{path}:{number}: expected 6 fields (qid Q0 docno rank score tag)")
        try:
            score = float(parts[4])
        except ValueError:
            raise DatasetError(f"{path}:{number}: score {parts[4]!r} is not a number") from None
        run.setdefault(parts[0], {})[parts[2]] = score
    return run
