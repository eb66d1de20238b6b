"""Method and backend names are written in the catalog only: other code reads them from it.

A backend's own module (``indexing/backends/``) may name itself and the methods it implements; docstrings and
tests may name anything.
"""

from __future__ import annotations

import ast
from pathlib import Path

from mlsearch.catalog import BACKENDS, METHODS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("mlsearch", "indexing", "search", "evaluation", "finetune", "drift", "api", "cli")
NAMES = set(METHODS) | set(BACKENDS)


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
        if isinstance(node, ast.Module | ast.ClassDef):  # attribute docstrings: a string after an assignment
            for before, after in zip(node.body, node.body[1:], strict=False):
                if isinstance(before, ast.Assign | ast.AnnAssign) and isinstance(after, ast.Expr):
                    found.add(id(after.value))
    return found


def _written_names(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip = _docstrings(tree)
    return [
        f"{path.relative_to(ROOT)}:{node.lineno} {node.value!r}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in NAMES and id(node) not in skip
    ]


def test_no_method_or_backend_name_is_written_outside_the_catalog() -> None:
    files = [
        path for package in PACKAGES for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "mlsearch" / "catalog.py" and "backends" not in path.relative_to(ROOT).parts
    ]
    assert files
    assert [hit for path in files for hit in _written_names(path)] == []
