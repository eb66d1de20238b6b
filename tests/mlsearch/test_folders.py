"""A staging folder takes the place of the published one whole."""

from __future__ import annotations

from pathlib import Path

from mlsearch.folders import replace_folder


def staged(tmp_path: Path, name: str, text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "file.txt").write_text(text)
    return folder


def test_a_new_folder_is_put_in_place(tmp_path: Path) -> None:
    replace_folder(staged(tmp_path, ".staging", "new"), tmp_path / "out")
    assert (tmp_path / "out" / "file.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_an_old_folder_is_replaced_whole_and_nothing_is_left_aside(tmp_path: Path) -> None:
    old = staged(tmp_path, "out", "old")
    (old / "only-in-old.txt").write_text("x")
    replace_folder(staged(tmp_path, ".staging", "new"), old)
    assert sorted(p.name for p in old.iterdir()) == ["file.txt"] and (old / "file.txt").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
