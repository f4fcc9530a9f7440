"""GitHub Actions: `imgbuild check --format github` annotations and step summary, and the
composite action (action.yml) and the example workflow (docs/ci/) checked by the real actionlint."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import BATCH, PERSONA, REPO, run_cli, write_project

ENVIRONMENTS = ["home office", "cafe", "library", "park bench", "train seat", "kitchen"]


def _actionlint() -> str:
    found = shutil.which("actionlint")
    if found is None:
        pytest.fail("actionlint is missing: `python3 -m pip install -e '.[test]'` installs it")
    return found


def _lint(repo: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_actionlint(), "-no-color"], cwd=repo, capture_output=True, text=True, timeout=60, check=False
    )


@pytest.fixture
def action_repo(tmp_path: Path) -> Path:
    """A repository that uses the action from its own checkout (`uses: ./`) in the example
    workflow, so that actionlint reads action.yml and checks the inputs the workflow passes."""
    repo = tmp_path / "repo"
    (repo / ".github" / "workflows").mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    shutil.copy(REPO / "action.yml", repo / "action.yml")
    workflow = (REPO / "docs" / "ci" / "imgbuild-check.yml").read_text()
    assert "uses: your-org/imgbuild@v0.1.0" in workflow
    (repo / ".github" / "workflows" / "imgbuild-check.yml").write_text(
        workflow.replace("your-org/imgbuild@v0.1.0", "./")
    )
    return repo


def test_the_action_and_the_example_workflow_pass_actionlint(action_repo: Path) -> None:
    result = _lint(action_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    # The example as shipped (a remote action) too.
    direct = subprocess.run(
        [_actionlint(), "-no-color", str(REPO / "docs" / "ci" / "imgbuild-check.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert direct.returncode == 0, direct.stdout + direct.stderr


def test_actionlint_sees_a_broken_action_and_an_unknown_input(action_repo: Path) -> None:
    """The lint is real: the same check fails on a misspelt input and on a bad runner."""
    workflow = action_repo / ".github" / "workflows" / "imgbuild-check.yml"
    workflow.write_text(workflow.read_text().replace("args: --approved", "arguments: --approved"))
    result = _lint(action_repo)
    assert result.returncode == 1
    assert 'input "arguments" is not defined in action "imgbuild check"' in result.stdout
    workflow.write_text(workflow.read_text().replace("arguments: --approved", "args: --approved"))
    action = action_repo / "action.yml"
    action.write_text(action.read_text().replace("using: composite", "using: compose"))
    result = _lint(action_repo)
    assert result.returncode == 1
    assert 'invalid runner name "compose"' in result.stdout


@pytest.fixture
def stale_project(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """Twelve assets built, then the fixed wardrobe edited: all twelve are stale."""
    persona = PERSONA.replace("environment: [home office, cafe]", f"environment: [{', '.join(ENVIRONMENTS)}]")
    batch = BATCH.replace("environment: [home office, cafe]", f"environment: [{', '.join(ENVIRONMENTS)}]")
    batch = batch.replace("candidates: 2", "candidates: 1")
    root = write_project(tmp_path / "repo" / "art", personas={"mia": persona}, batches={"covers": batch})
    assert run_cli(root, "build") == 0
    manifest = root / "batches" / "covers.yaml"
    manifest.write_text(manifest.read_text().replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    capsys.readouterr()
    return root


def test_check_format_github_annotates_ten_lines_and_writes_the_summary(
    stale_project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step-summary.md"
    summary.write_text("## an earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path / "repo"))
    assert run_cli(stale_project, "check", "--format", "github") == 1
    out = capsys.readouterr().out.splitlines()
    annotations = [line for line in out if line.startswith("::error ")]
    assert len(annotations) == 10
    line = (stale_project / "batches" / "covers.yaml").read_text().splitlines().index("  wardrobe: navy blazer") + 1
    pattern = re.compile(
        rf"::error file=art/batches/covers\.yaml,line={line},title=imgbuild check%3A changed::"
        r"covers\.hook\.[a-z-]+\.[a-z-]+: fixed\.wardrobe: 'cream sweater' → 'navy blazer'; prompt changed"
    )
    assert all(pattern.fullmatch(a) for a in annotations), annotations[0]
    assert "::notice::2 more findings are in the job summary" in out
    # The plain report is there too, for the log.
    assert "imgbuild check: 12 of 12 assets need attention (run `imgbuild plan`, then `doit`)" in out
    written = summary.read_text()
    assert written.startswith("## an earlier step\n## imgbuild check\n")  # appended, not replaced
    rows = [r for r in written.splitlines() if r.startswith("| ❌ | changed |")]
    assert len(rows) == 12
    assert all(f"`art/batches/covers.yaml:{line}`" in r for r in rows)


def test_check_format_github_without_a_summary_file(
    stale_project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Outside Actions (no GITHUB_STEP_SUMMARY) it still annotates, with paths from the working folder."""
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.delenv("GITHUB_WORKSPACE", raising=False)
    monkeypatch.chdir(stale_project)
    (stale_project / "assets" / "covers.hook.cafe.morning-light" / "asset.json").unlink()
    assert run_cli(stale_project, "check", "--format", "github") == 1
    out = capsys.readouterr().out
    shot_line = 16  # `  - id: hook`
    title = "title=imgbuild check%3A new"
    assert f"::error file=batches/covers.yaml,line={shot_line},{title}::covers.hook.cafe.morning-light:" in out
