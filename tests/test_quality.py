"""The package stays lint-clean and type-checked (the style guide's tooling, enforced)."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def test_ruff_lint_and_format() -> None:
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "imgbuild", "bench"], cwd=REPO, capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "imgbuild"], cwd=REPO, capture_output=True, text=True
    )
    assert fmt.returncode == 0, fmt.stdout


def test_mypy() -> None:
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout
