"""The progress of a build as a user sees it: a live line in a terminal (a real pty), plain
periodic lines in a log. Hosted builds against the loopback fakes, whose calls take a while."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import BATCH, run_doit, write_project

from imgbuild.resolve import resolve
from imgbuild.state import estimate

CONFIG = """\
provider: ark
providers:
  ark:
    concurrency: 2
    retries: {attempts: 2, base_delay: 0.01, max_delay: 0.05}
"""
IMAGES = 8  # BATCH: 4 assets × 2 candidates
LINE = re.compile(
    r"\[\s*(\d+)/8\] (\d+) in flight · (\d+) images/min · (ETA \S+|done) · (\d+) failed · \$(\d+\.\d\d) so far"
)


def project(root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> Path:
    write_project(root, batches={"covers": BATCH}, config=CONFIG)
    monkeypatch.setenv("ARK_API_KEY", fake.keys["ark"])
    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", fake.base_urls["ark"])
    return root


def list_price(root: Path) -> str:
    """What the 8 images cost at list prices (plan's rule), as the line prints it."""
    requests = [req for batch in resolve(root).requests.values() for req in batch]
    images, cost, _ = estimate((req, tuple(range(1, req.candidates + 1))) for req in requests)
    assert images == IMAGES
    return f"{cost:.2f}"


def test_a_log_gets_a_line_every_interval_and_one_at_the_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGBUILD_PROGRESS_INTERVAL", "0.25")
    with FakeProviders(latency=0.4) as fake:  # 8 images, 2 at a time: about 1.6 s
        root = project(tmp_path, fake, monkeypatch)
        result = run_doit(root, timeout=60)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "\x1b[" not in out and "\r" not in out  # plain lines only
    lines = LINE.findall(out)
    assert 4 <= len(lines) <= 12, out  # periodic, not one per image nor one per refresh
    done = [int(line[0]) for line in lines]
    assert done == sorted(done) and done[-1] == IMAGES
    assert any(int(line[1]) == 2 for line in lines)  # seen with both calls in flight
    assert lines[-1][3] == "done" and lines[-1][4] == "0"
    assert lines[-1][5] == list_price(root)
    assert out.splitlines()[-1].startswith(f"imgbuild: {IMAGES} generated, 0 up to date, 0 failed, 0 not started")


def test_a_terminal_gets_one_line_redrawn_in_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProviders(latency=0.4) as fake:
        root = project(tmp_path, fake, monkeypatch)
        out = run_in_terminal(root, [sys.executable, "-m", "doit"])
    assert "Traceback" not in out
    # rich redraws the line: cursor up / erase line between the states, no new line per image
    assert "\x1b[2K" in out or "\x1b[1A" in out, out
    states = LINE.findall(out)
    assert len(states) >= 2, out
    assert states[-1][0] == str(IMAGES) and states[-1][3] == "done" and states[-1][5] == list_price(root)
    # what the terminal shows at the end: the last state of the line, then the summary
    shown = screen(out)
    assert len(shown) == 2, shown
    assert LINE.fullmatch(shown[0]) and shown[0].startswith(f"[{IMAGES}/{IMAGES}] "), shown
    assert shown[1].startswith(f"imgbuild: {IMAGES} generated, 0 up to date, 0 failed, 0 not started"), shown


def screen(out: str) -> list[str]:
    """The non-empty rows a terminal shows after `out` (text, CR, LF, cursor up, erase line)."""
    rows, row, col = [""], 0, 0
    for token in re.split(r"(\x1b\[[0-9;?]*[A-Za-z]|\r|\n)", out):
        if token == "\n":
            row, col = row + 1, 0
            rows.extend([""] * (row + 1 - len(rows)))
        elif token == "\r":
            col = 0
        elif token.startswith("\x1b["):
            arg, command = token[2:-1], token[-1]
            if command == "A":
                row = max(0, row - int(arg or 1))
            elif command == "K":
                rows[row] = "" if arg == "2" else rows[row][:col]
        elif token:
            rows[row] = rows[row][:col].ljust(col) + token + rows[row][col + len(token) :]
            col += len(token)
    return [r.rstrip() for r in rows if r.strip()]


def run_in_terminal(cwd: Path, argv: list[str], timeout: float = 60) -> str:
    """Run `argv` with a pseudo-terminal as its stdout and stderr; everything it wrote."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(argv, cwd=cwd, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.2)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif child.poll() is not None:
                break
    finally:
        os.close(leader)
        child.wait(timeout=10)
    return b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
