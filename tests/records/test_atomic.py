"""Atomic writes: old or new content, never a mix; leftovers of dead writers are removed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from imgbuild.records.atomic import atomic_write_bytes, atomic_write_json, remove_stale_temp_files


def test_write_replaces_whole_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b.json"
    temp = tmp_path / "tmp"
    atomic_write_json(target, {"b": 1, "a": 2}, temp_dir=temp)
    assert target.read_text() == '{\n  "a": 2,\n  "b": 1\n}\n'
    atomic_write_bytes(target, b"new", temp_dir=temp)
    assert target.read_bytes() == b"new"
    assert list(temp.iterdir()) == []


def test_stale_temp_files_of_dead_processes_are_removed(tmp_path: Path) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    (tmp_path / f".{dead_pid}-0.asset.json.tmp").write_text("half")
    mine = tmp_path / f".{os.getpid()}-0.asset.json.tmp"
    mine.write_text("in progress")
    assert remove_stale_temp_files(tmp_path) == 1
    assert [p.name for p in tmp_path.iterdir()] == [mine.name]


def test_new_folders_are_made_from_the_nearest_one_known(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A run's folders (runs/image/<run>/) are made top-down from the asset folder already
    written into: one mkdir each, none that fails for a missing parent first."""
    temp = tmp_path / ".imgbuild" / "tmp"
    atomic_write_json(tmp_path / "assets" / "a" / "asset.json", {}, temp_dir=temp)
    made: list[tuple[str, bool]] = []
    real = os.mkdir

    def mkdir(path: Any, *args: Any, **kwargs: Any) -> None:
        try:
            real(path, *args, **kwargs)
        except OSError:
            made.append((Path(path).relative_to(tmp_path).as_posix(), False))
            raise
        made.append((Path(path).relative_to(tmp_path).as_posix(), True))

    monkeypatch.setattr(os, "mkdir", mkdir)
    atomic_write_json(tmp_path / "assets" / "a" / "runs" / "image" / "r1" / "request.json", {}, temp_dir=temp)
    assert made == [("assets/a/runs", True), ("assets/a/runs/image", True), ("assets/a/runs/image/r1", True)]
    assert (tmp_path / "assets/a/runs/image/r1/request.json").read_text() == "{}\n"


@given(st.lists(st.text(alphabet="ab.-_ é", min_size=1, max_size=4), max_size=5), st.booleans())
def test_atomic_writes_find_a_folder_as_pathlib_does(parts: list[str], absolute: bool) -> None:
    """records/atomic.py handles paths as strings; each folder up is the one pathlib names."""
    from imgbuild.records.atomic import _parent

    path = str(Path("/" if absolute else ".", *parts))
    for _ in range(len(parts) + 2):
        assert _parent(path) == str(Path(path).parent)
        path = _parent(path)
