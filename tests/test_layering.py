"""Imports point one way: a lower package never imports a higher one (checked on the source, with ``ast``).

mlsearch (base) < indexing < search < evaluation, finetune, drift < api < cli. The three packages in the
middle row may use each other; ``bench/`` and ``tests/`` may import anything. Below the API and the CLI only
:mod:`indexing.backends.configs` reads the settings: every other module takes the typed configs it builds.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

LAYERS: dict[str, int] = {
    "mlsearch": 0, "indexing": 1, "search": 2, "evaluation": 3, "finetune": 3, "drift": 3, "api": 4, "cli": 5,
}


SETTINGS_READERS = {"indexing/backends/configs.py"}
"""The one module below the API and the CLI that may import the settings (it builds every config from them)."""
CONFIGURED_PACKAGES = ("indexing", "search", "evaluation", "finetune", "drift")


def imported_modules(path: Path) -> set[tuple[str, int]]:
    """Every module a module imports (anywhere in it, lazy imports included), with the line.

    ``from a.b import c`` counts as ``a.b`` and ``a.b.c`` (``c`` may be a module or a name in ``a.b``).
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update((alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module, node.lineno))
            found.update((f"{node.module}.{alias.name}", node.lineno) for alias in node.names)
    return found


def imported_packages(path: Path) -> set[tuple[str, int]]:
    """Our top-level packages that a module imports (anywhere in it, lazy imports included), with the line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[tuple[str, int]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update((name.split(".")[0], node.lineno) for name in names if name.split(".")[0] in LAYERS)
    return found


def violations() -> list[str]:
    """``file:line imports package`` for every import that points up."""
    out = []
    for package, layer in LAYERS.items():
        for path in sorted((ROOT / package).rglob("*.py")):
            for imported, line in sorted(imported_packages(path)):
                if LAYERS[imported] > layer:
                    out.append(f"{path.relative_to(ROOT)}:{line} imports {imported}")
    return out


def test_no_package_imports_a_higher_one() -> None:
    assert violations() == []


def settings_readers() -> list[str]:
    """``file:line`` for every module of the configured packages that imports the settings, but the one allowed."""
    out = []
    for package in CONFIGURED_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            if relative in SETTINGS_READERS:
                continue
            for module, line in sorted(imported_modules(path)):
                if module == "mlsearch.settings" or module.startswith("mlsearch.settings."):
                    out.append(f"{relative}:{line} imports {module}")
    return out


def test_only_the_config_builder_reads_the_settings_below_the_api() -> None:
    assert settings_readers() == []


@pytest.mark.parametrize(
    ("source", "reads"),
    [("from mlsearch.settings import Settings\n", True), ("import mlsearch.settings\n", True),
     ("def f():\n    from mlsearch.settings import get_settings\n", True), ("from mlsearch import settings\n", True),
     ("from mlsearch.configs import BuildConfig\n", False), ("from mlsearch.catalog import BACKENDS\n", False)],
)
def test_a_settings_import_is_found_in_any_form(tmp_path: Path, source: str, reads: bool) -> None:
    module = tmp_path / "m.py"
    module.write_text(source)
    modules = {name for name, _ in imported_modules(module)}
    assert ("mlsearch.settings" in modules) == reads


def test_the_base_imports_nothing_of_ours() -> None:
    for path in (ROOT / "mlsearch").rglob("*.py"):
        assert {name for name, _ in imported_packages(path)} <= {"mlsearch"}, path


@pytest.mark.parametrize(
    ("source", "expected"),
    [("from api.app import create_app\n", {"api"}), ("import cli.app, numpy\n", {"cli"}),
     ("def f():\n    from search import searcher\n", {"search"}), ("from . import x\n", set())],
)
def test_imports_are_found_anywhere_in_a_module(tmp_path: Path, source: str, expected: set[str]) -> None:
    module = tmp_path / "m.py"
    module.write_text(source)
    assert {name for name, _ in imported_packages(module)} == expected
