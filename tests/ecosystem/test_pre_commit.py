"""The pre-commit hook (.pre-commit-hooks.yaml), run by the real pre-commit from a local clone
(`pre-commit try-repo`) in a temporary git project: it passes while the assets are current and
fails, naming the assets, once a staged manifest edit makes them stale.

pre-commit installs the hook's own environment from this repository. The test keeps that
offline: the virtualenv sees the packages already installed (VIRTUALENV_SYSTEM_SITE_PACKAGES),
pip uses no index and builds imgbuild with the hatchling that is installed
(PIP_NO_BUILD_ISOLATION=0 turns isolation off: pip's negated option)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from helpers import REPO, run_cli, write_project


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.invalid", *args],
        cwd=root,
        check=True,
        capture_output=True,
        timeout=60,
    )


def _try_repo(root: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("pre-commit")
    if exe is None:
        pytest.fail("pre-commit is missing: `python3 -m pip install -e '.[test]'` installs it")
    env = {
        **os.environ,
        "PRE_COMMIT_HOME": str(home),
        "VIRTUALENV_SYSTEM_SITE_PACKAGES": "1",
        "PIP_NO_INDEX": "1",
        "PIP_NO_BUILD_ISOLATION": "0",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    return subprocess.run(
        [exe, "try-repo", str(REPO), "imgbuild-check", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_hook_passes_on_current_assets_and_fails_naming_them_after_an_edit(tmp_path: Path) -> None:
    root = write_project(tmp_path / "project")
    (root / ".gitignore").write_text((REPO / "imgbuild" / "data" / "init" / "gitignore").read_text())
    assert run_cli(root, "build") == 0
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "images built")
    home = tmp_path / "pre-commit-home"

    current = _try_repo(root, home, "--all-files")
    assert current.returncode == 0, current.stdout + current.stderr
    assert "imgbuild check....." in current.stdout and "Passed" in current.stdout

    manifest = root / "batches" / "covers.yaml"
    manifest.write_text(manifest.read_text().replace("lamp light]", "lamp light, desk lamp]"))
    persona = root / "personas" / "mia.yaml"
    persona.write_text(persona.read_text().replace("lamp light]", "lamp light, desk lamp]"))
    _git(root, "add", "-A")  # staged: the hook runs on what is about to be committed
    stale = _try_repo(root, home)
    assert stale.returncode == 1, stale.stdout + stale.stderr
    assert "imgbuild check....." in stale.stdout and "Failed" in stale.stdout
    for asset in ("covers.hook.home-office.desk-lamp", "covers.hook.cafe.desk-lamp"):
        assert f"new: assets/{asset}: new asset: never generated" in stale.stdout
    assert "imgbuild check: 2 of 6 assets need attention" in stale.stdout
    assert "files were modified by this hook" not in stale.stdout  # the check writes nothing tracked
