"""A build killed at any moment and rerun finishes with no truncated or orphaned file and no
candidate made twice (real subprocesses, real SIGKILL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from helpers import BATCH, run_doit, write_project
from PIL import Image

# Larger placeholders (max tier, PNG) so that a kill lands in the middle of real work.
SLOW_BATCH = (
    BATCH.replace("quality: draft\nquality_reason: tests only need small placeholders\n", "quality: max\n")
    .replace("output_format: jpeg", "output_format: png")
    .replace('aspect_ratio: "1:1"', 'aspect_ratio: "9:16"')
    .replace("candidates: 2", "candidates: 3")
)


def start_build(root: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "doit", "-n", "2"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def count_images(root: Path) -> int:
    return sum(1 for _ in root.glob("assets/*/images/candidates/*"))


def test_killed_builds_resume_without_loss_or_duplicates(tmp_path: Path) -> None:
    write_project(tmp_path, batches={"covers": SLOW_BATCH})
    made_after_kill = []
    for pause in (0.0, 0.01, 0.03, 0.05, 0.08):
        # Kill right after new work shows up on disk, at a different moment each time.
        before = count_images(tmp_path)
        proc = start_build(tmp_path)
        deadline = time.monotonic() + 60
        while count_images(tmp_path) == before and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(pause)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        made_after_kill.append(count_images(tmp_path))
    assert 0 < made_after_kill[0] < made_after_kill[-1] < 12, made_after_kill  # the kills hit mid-build

    final = run_doit(tmp_path)
    assert final.returncode == 0, final.stderr + final.stdout

    # no temp file survives anywhere (the next build removes those of killed processes)
    leftovers = [p for p in tmp_path.rglob("*.tmp")]
    assert leftovers == []

    assets = sorted((tmp_path / "assets").iterdir())
    assert len(assets) == 4
    for asset in assets:
        record = json.loads((asset / "asset.json").read_text())  # every JSON file parses
        history = json.loads((asset / "index.json").read_text())["history"]
        assert not (tmp_path / ".imgbuild/calls" / f"assets/{asset.name}.json").exists()  # no call left in flight
        current = [c for c in record["candidates"] if c["request_hash"] == record["request_hash"]]
        # exactly one candidate per index: nothing made twice
        assert sorted(c["candidate"] for c in current) == [1, 2, 3]
        assert len(record["candidates"]) == 3
        files = sorted(p.name for p in (asset / "images/candidates").iterdir())
        assert files == sorted(Path(c["file"]).name for c in record["candidates"])  # no orphaned image
        for cand in record["candidates"]:
            with Image.open(asset / cand["file"]) as image:
                image.load()  # no truncated image
                assert image.size == (2304, 4096)
        completed = Counter(e["candidate"] for e in history if e["event"] == "completed")
        assert completed == Counter({1: 1, 2: 1, 3: 1})
        # every run folder is either a completed run or an interrupted call the history explains
        interrupted = {e["run"] for e in history if e["event"] == "interrupted"}
        for run in (asset / "runs/image").iterdir():
            for name in ("request.json", "response.json", "manifest.json"):
                if (run / name).exists():
                    json.loads((run / name).read_text())
            if not (run / "manifest.json").exists():
                assert run.name in interrupted
    lock = json.loads((tmp_path / "batches/covers.lock.json").read_text())
    assert {e["status"] for e in lock["assets"].values()} == {"complete"}

    again = run_doit(tmp_path)
    assert "all 12 images up to date" in again.stdout


def test_second_build_waits_for_none_and_refuses(tmp_path: Path) -> None:
    """Two builds at once in one project would pay twice: the second one refuses."""
    write_project(tmp_path, batches={"covers": SLOW_BATCH})
    first = start_build(tmp_path)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / ".imgbuild/build.lock").exists() or not any((tmp_path / "assets").glob("*")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        second = run_doit(tmp_path)
        assert second.returncode != 0
        assert "another build is running in this project (pid" in second.stdout + second.stderr
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert os.path.exists(tmp_path / ".imgbuild/build.lock")
