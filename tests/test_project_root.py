"""Where a command finds its project: imgbuild.yaml at or above the folder. Outside any project
every command but `init` refuses with exit 2 and writes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import run_cli, run_doit, write_project

import imgbuild.main
from imgbuild.error_handler import error_handler
from imgbuild.errors import EXIT_BUG, EXIT_INVALID, NotAProject
from imgbuild.project import find_project_root

EXAMPLE_ASSET = "covers.hook.cafe-window-seat.warm-evening-desk-lamp-light"
NOT_A_PROJECT = (
    "imgbuild: error: no imgbuild project here: no imgbuild.yaml in {folder} or any folder above it"
    " (run `imgbuild init` to make one, or `imgbuild -C DIR` to point at one)\n"
)


def here(*args: str) -> int:
    """`imgbuild ARGS` in the working folder, without -C, as a user at a prompt types it."""
    return imgbuild.main.main(list(args))


# -- discovery rules ---------------------------------------------------------------------------


def test_dash_c_into_a_subfolder_finds_the_project_above(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = write_project(tmp_path / "proj")
    assert run_cli(project / "personas", "plan") == 0
    assert "covers: 4 assets" in capsys.readouterr().out
    assert not (project / "personas/.imgbuild").exists()


# -- outside any project -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["plan"],
        ["status"],
        ["check"],
        ["check", "--approved"],
        ["explain", EXAMPLE_ASSET],
        ["gallery"],
        ["build"],
        ["approve", EXAMPLE_ASSET, "1", "--pass", "all"],
        ["reject", EXAMPLE_ASSET, "1", "--fail", "realism=x"],
        ["poll"],
    ],
    ids=" ".join,
)
def test_outside_a_project_every_command_refuses_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    """A CI job in the wrong folder fails (it does not pass on zero assets) and leaves no state."""
    assert here(*args) == EXIT_INVALID
    out, err = capsys.readouterr()
    assert (out, err) == ("", NOT_A_PROJECT.format(folder=tmp_path))
    assert list(tmp_path.iterdir()) == []


def test_outside_a_project_with_dash_c(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    assert run_cli(elsewhere, "check") == EXIT_INVALID
    assert capsys.readouterr().err == NOT_A_PROJECT.format(folder=elsewhere)
    assert list(elsewhere.iterdir()) == []


def test_init_works_outside_a_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert here("init") == 0
    assert (tmp_path / "imgbuild.yaml").is_file()
    assert here("plan") == 0
    assert "problem" not in capsys.readouterr().err


def test_find_project_root_outside_a_project(tmp_path: Path) -> None:
    with pytest.raises(NotAProject) as caught:
        find_project_root(tmp_path / "sub")
    assert caught.value.exit_code == EXIT_INVALID
    assert caught.value.start == tmp_path / "sub"


def test_plain_doit_outside_a_project(tmp_path: Path) -> None:
    """A project's dodo.py copied to the wrong folder: doit says so, exit 2, no traceback."""
    (tmp_path / "dodo.py").write_text(
        'from imgbuild.tasks import project_tasks\n\nDOIT_CONFIG, task_imgbuild = project_tasks(".")\n'
    )
    result = run_doit(tmp_path)
    assert result.returncode == EXIT_INVALID
    assert result.stderr == NOT_A_PROJECT.format(folder=tmp_path)
    assert result.stdout == ""
    assert {p.name for p in tmp_path.iterdir()} - {"__pycache__"} == {"dodo.py"}  # no .imgbuild/, no doit.db


def test_a_bug_before_the_project_is_known_is_reported_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No crash log folder is created where there may be no project."""
    with error_handler() as code:
        raise RuntimeError("boom")
    assert code.value == EXIT_BUG
    err = capsys.readouterr().err
    assert "RuntimeError: boom" in err
    assert err.endswith("imgbuild: this is a bug; the details are in the report above\n")
    assert list(tmp_path.iterdir()) == []
