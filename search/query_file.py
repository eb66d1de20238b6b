"""Read a file of queries: one query a line, or JSON Lines with a ``text`` (or ``query``) field per line.

Drift monitoring reads its reference and stream files with it, fine-tuning its logged queries, so a file that
one accepts the other accepts too. BEIR's ``queries.jsonl`` (``{"_id", "text"}``) and the logs that
``mlsearch drift export`` writes are both query files.
"""

from __future__ import annotations

import json
from pathlib import Path

from mlsearch.errors import DatasetError, QueryFileError

TEXT_FIELDS = ("text", "query")


def read_query_file(path: Path, what: str = "query") -> list[str]:
    """The queries in a file, in order, whitespace collapsed.

    Blank lines and lines starting with ``#`` are skipped. In a ``.jsonl`` file every line is a JSON object;
    elsewhere a line that starts with ``{`` is one. The query is the object's first non-empty ``text`` or
    ``query`` field.

    Args:
        path: The file.
        what: What the file is, for error messages (``reference``, ``stream``, ``query``).

    Returns:
        The queries (at least one).

    Raises:
        QueryFileError: The file is missing, unreadable or not UTF-8, holds no query, or a line is bad JSON or
            has no query field (the message names the file and the line).
    """
    path = Path(path)
    if not path.is_file():
        raise QueryFileError(f"{what} file {path} not found")
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise QueryFileError(f"{what} file {path} cannot be read: {exc}") from None
    queries = []
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if path.suffix == ".jsonl" or line.startswith("{"):
            line = _json_query(line, f"{what} file {path}:{number}")
        queries.append(" ".join(line.split()))
    if not queries:
        raise QueryFileError(f"{what} file {path} holds no queries")
    return queries


def json_object(line: str, where: str, error: type[DatasetError] = DatasetError) -> dict[str, object]:
    """One line of a JSON Lines file, which must hold a JSON object.

    Args:
        line: The line.
        where: ``file:line``, to start the error message with.
        error: The exception type to raise (a :class:`~mlsearch.errors.DatasetError`).

    Raises:
        DatasetError: The line is not valid JSON, or not an object (as ``error``).
    """
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise error(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise error(f"{where}: expected a JSON object, got {type(value).__name__}")
    return value


def _json_query(line: str, where: str) -> str:
    value = json_object(line, where, QueryFileError)
    for field in TEXT_FIELDS:
        text = value.get(field)
        if isinstance(text, str) and text.strip():
            return text
    raise QueryFileError(f"{where}: a JSON line needs a non-empty 'text' or 'query' field")
