"""`imgbuild init` makes a project that builds as it is, and never overwrites one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli, run_doit, snapshot


def test_init_scaffolds_a_buildable_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(tmp_path, "init", "proj") == 0
    project = tmp_path / "proj"
    for name in (
        "imgbuild.yaml",
        "dodo.py",
        ".gitignore",
        "batches/first-frames.yaml",
        "personas/ava.yaml",
        "evidence/ava-benchmark.md",
        "templates/cover.j2",
        ".imgbuild/schemas/batch.schema.json",
    ):
        assert (project / name).is_file(), name
    assert ".imgbuild/" in (project / ".gitignore").read_text().splitlines()

    built = run_doit(project)
    assert built.returncode == 0, built.stderr
    assert "imgbuild: 8 generated, 0 up to date, 0 failed" in built.stdout
    capsys.readouterr()
    assert run_cli(project, "check") == 0


def test_init_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "dodo.py").write_text("# mine\n")
    before = snapshot(tmp_path)
    assert run_cli(tmp_path, "init") == 2
    err = capsys.readouterr().err
    assert err == f"imgbuild: error: {tmp_path} already has dodo.py; nothing was written\n"
    assert snapshot(tmp_path) == before
