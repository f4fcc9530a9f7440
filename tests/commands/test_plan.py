"""`imgbuild plan`: counts, reasons and the cost estimate, before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import BATCH, run_cli, run_with_reader_gone, write_project


def test_plan_before_and_after_a_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    batch = BATCH + "variant_tests:\n  - id: neon\n    reason: tried on purpose\n    fixed: {lighting: neon}\n"
    write_project(tmp_path, batches={"covers": batch})
    assert run_cli(tmp_path, "plan", "-v") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "provider: preview (offline placeholders, no cost)"
    assert out[1] == (
        "covers: 6 assets (2 variant tests), 12 candidates; 12 to generate (6 new);"
        " image-seedream-v5-lite-text at draft"
    )
    assert out[2] == "  covers.hook.home-office.morning-light #1,2: new asset: never generated"
    assert out[-1] == "total: 12 images to generate (free with preview; about $0.42 at list price on a hosted provider)"
    assert not (tmp_path / "assets").exists()  # planning generates nothing

    assert run_cli(tmp_path, "build") == 0
    capsys.readouterr()
    assert run_cli(tmp_path, "plan") == 0
    assert capsys.readouterr().out.splitlines()[-1] == "total: 0 images to generate"


def test_a_reader_that_goes_away_ends_the_command_quietly(tmp_path: Path) -> None:
    """`imgbuild plan -v | head -1`: the pipe closes under the command; it stops with 141, as a
    shell tool does, with no traceback and no crash log."""
    project = write_project(tmp_path)
    code, err = run_with_reader_gone("-C", str(project), "plan", "-v")
    assert code == 141, err
    assert err == ""
    assert not (project / ".imgbuild" / "logs" / "crash.log").exists()
