"""Where a command finds its project: imgbuild.yaml at or above the folder, or the folder a
pyproject.toml names in ``[tool.imgbuild] project``. Outside any project every command but
`init` refuses with exit 2 and writes nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from helpers import REPO, copy_repo_layout, run_cli, run_doit, write_project

import imgbuild.main
from imgbuild.error_handler import error_handler
from imgbuild.errors import EXIT_BUG, EXIT_INVALID, InvalidInput, NotAProject
from imgbuild.project import find_project_root

EXAMPLE_ASSET = "covers.hook.cafe-window-seat.warm-evening-desk-lamp-light"
NOT_A_PROJECT = (
    "imgbuild: error: no imgbuild project here: no imgbuild.yaml in {folder} or any folder above it"
    " (run `imgbuild init` to make one, or `imgbuild -C DIR` to point at one)\n"
)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clone's top folder (pyproject.toml, dodo.py, batches/), as the working folder."""
    root = copy_repo_layout(tmp_path / "repo")
    monkeypatch.chdir(root)
    return root


def here(*args: str) -> int:
    """`imgbuild ARGS` in the working folder, without -C, as a user at a prompt types it."""
    return imgbuild.main.main(list(args))


# -- the repository root -----------------------------------------------------------------------


def test_the_repository_points_at_its_example_project() -> None:
    """The real pyproject.toml names batches/, so imgbuild at the root acts on the examples
    (read only: nothing is built in the repository)."""
    with (REPO / "pyproject.toml").open("rb") as file:
        assert tomllib.load(file)["tool"]["imgbuild"] == {"project": "batches"}
    assert find_project_root(REPO) == REPO / "batches"
    assert find_project_root(REPO / "docs") == REPO / "batches"


def test_every_command_at_the_repository_root_acts_on_the_examples(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert here("plan") == 0
    out, err = capsys.readouterr()
    assert "covers: 5 assets (1 variant test), 15 candidates; 15 to generate (5 new)" in out
    assert "persona-candidates: 3 assets (0 variant tests), 6 candidates; 6 to generate (3 new)" in out
    assert "problem" not in out + err

    assert here("status") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "covers: 0/5 current (5 new), 0 approved, 5 unreviewed; image-seedream-v5-lite-text",
        "persona-candidates: 0/3 current (3 new), 0 approved, 3 unreviewed; image-seedream-v5-lite-text",
    ]
    assert err == ""

    assert here("check") == 1  # nothing built yet: every example asset is new
    out, err = capsys.readouterr()
    assert out.splitlines()[-1] == "imgbuild check: 8 of 8 assets need attention (run `imgbuild plan`, then `doit`)"
    assert "problem" not in out + err

    assert here("explain", EXAMPLE_ASSET) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:2] == [
        f"asset: {EXAMPLE_ASSET}",
        "  batch covers (batches/covers.yaml), shot hook",
    ]
    assert err == ""

    assert here("build") == 0
    out, err = capsys.readouterr()
    assert "imgbuild: 21 generated, 0 up to date, 0 failed" in out
    assert len(list((repo / "batches/assets").glob("*/asset.json"))) == 8

    assert here("check") == 0
    assert capsys.readouterr().out == "imgbuild check: all 8 assets match their manifests\n"

    assert here("approve", EXAMPLE_ASSET, "2", "--pass", "all", "--by", "ana") == 0
    out, _ = capsys.readouterr()
    assert out.startswith(f"approved {EXAMPLE_ASSET} candidate 2 (by ana)\n")

    assert here("gallery") == 0
    out, _ = capsys.readouterr()
    assert "gallery/covers.html: 5 assets" in out
    assert (repo / "batches/gallery/covers.html").is_file()
    assert (repo / "batches/gallery/persona-candidates.html").is_file()

    assert here("poll") == 0
    assert capsys.readouterr().out == "imgbuild poll: nothing in flight\n"

    # Everything went into the example project; the top folder is as the clone left it.
    assert sorted(p.name for p in repo.iterdir()) == ["batches", "dodo.py", "pyproject.toml"]


def test_plain_doit_at_the_repository_root_lists_the_examples(repo: Path) -> None:
    """The root dodo.py finds the project the same way (test_workflow builds it end to end)."""
    result = run_doit(repo, "list")
    assert result.returncode == 0, result.stderr
    assert [line.split()[0] for line in result.stdout.splitlines()] == ["covers", "persona-candidates"]
    assert not (repo / ".imgbuild").exists()
    assert (repo / "batches/.imgbuild/doit.db").exists()


# -- discovery rules ---------------------------------------------------------------------------


def test_dash_c_into_a_subfolder_finds_the_project_above(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project = write_project(tmp_path / "proj")
    assert run_cli(project / "personas", "plan") == 0
    assert "covers: 4 assets" in capsys.readouterr().out
    assert not (project / "personas/.imgbuild").exists()


def test_dash_c_into_a_subfolder_of_a_pointed_project(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(repo / "batches/templates", "status") == 0
    assert capsys.readouterr().out.startswith("covers: 0/5 current")


def test_the_nearest_imgbuild_yaml_wins_over_a_pointer_above(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.imgbuild]\nproject = "examples"\n')
    write_project(tmp_path / "examples")
    write_project(tmp_path / "other")
    assert find_project_root(tmp_path) == tmp_path / "examples"
    assert find_project_root(tmp_path / "other/batches") == tmp_path / "other"


def test_a_pyproject_without_the_table_is_passed_over(tmp_path: Path) -> None:
    write_project(tmp_path)
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg/pyproject.toml").write_text('[project]\nname = "pkg"\n\n[tool.ruff]\nline-length = 100\n')
    assert find_project_root(tmp_path / "pkg") == tmp_path


@pytest.mark.parametrize(
    ("pyproject", "message"),
    [
        (
            '[tool.imgbuild]\nproject = "nowhere"\n',
            "pyproject.toml tool.imgbuild.project: 'nowhere' names no imgbuild project: there is no"
            " {root}/nowhere/imgbuild.yaml",
        ),
        ("[tool.imgbuild]\nproject = 3\n", "pyproject.toml tool.imgbuild.project: must be a folder name, not 3"),
        (
            "[tool.imgbuild\n",
            "pyproject.toml: cannot be read: Expected ']' at the end of a table declaration (at line 1, column 15)",
        ),
    ],
)
def test_a_broken_pointer_is_invalid_input(tmp_path: Path, pyproject: str, message: str) -> None:
    """Not passed over: this may be the file meant to point at the project."""
    (tmp_path / "pyproject.toml").write_text(pyproject)
    with pytest.raises(InvalidInput) as caught:
        find_project_root(tmp_path)
    assert caught.value.exit_code == EXIT_INVALID
    assert [str(p) for p in caught.value.problems] == [f"{tmp_path}/" + message.format(root=tmp_path)]


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
