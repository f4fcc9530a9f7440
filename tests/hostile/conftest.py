"""Shared checks of the hostile corpus: every case asserts the message, the exit code, that
nothing was written (under assets/, or anywhere for input errors) and a time bound."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import rejected, write_project

# Every hostile input is refused or fails its asset within this bound, on a loaded 2-core machine.
SECONDS = 10.0

Refuse = Callable[..., str]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A valid project in tmp_path/p, with tmp_path/outside holding a file that is not the project's."""
    root = write_project(tmp_path / "p")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not the project's\n")
    return root


@pytest.fixture
def refused(capsys: pytest.CaptureFixture[str]) -> Refuse:
    """`refused(root, *expected)`: `imgbuild plan` exits 2 in time, with no traceback and no file
    written, and each expected text appears in the problems it reports; returns them."""

    def check(root: Path, *expected: str, command: str = "plan", problems: int | None = None) -> str:
        started = time.monotonic()
        lines = rejected(root, capsys, command)
        assert time.monotonic() - started < SECONDS
        if problems is not None:
            assert len(lines) == problems + 1, lines
        text = "\n".join(lines[:-1])
        for part in expected:
            assert part in text, (part, text)
        return text

    return check
