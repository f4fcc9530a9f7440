"""`imgbuild build SELECTION`: a selection is refused with the same message `plan` gives."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli, write_project


def test_build_refuses_a_selection_that_names_nothing_as_plan_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """doit's own message pointed at `imgbuild build list`, a command that does not exist."""
    write_project(tmp_path)
    for command in ("plan", "build"):
        assert run_cli(tmp_path, command, "covers", "cover") == 2, command
        assert capsys.readouterr().err == (
            "imgbuild: error: nothing in this project is called 'cover': select batch ids or task globs"
            " such as 'covers:*' (`imgbuild ls` lists the assets)\n"
        ), command
    assert not (tmp_path / "assets").exists()  # not even the valid part was built
    assert run_cli(tmp_path, "build", "covers:*cafe*") == 0
    made = sorted(p.name for p in (tmp_path / "assets").iterdir())
    assert made and all(".cafe." in name for name in made), made
