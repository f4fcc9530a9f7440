"""doit's threads are not woken for nothing (imgbuild.tasks.QuietThreadRunner).

Once only tasks waiting for others remain (a batch's lock task waits for its images), doit's
own thread runner sends every idle thread a "hold on" job after each finished task — 1 + 2 +
... + T wake-ups over the last T tasks, 131,000 at 512 threads. A build, `imgbuild build` or
plain doit with imgbuild's tasks, wakes no thread for a hold, and still makes every image.
"""

from __future__ import annotations

import json
import queue
from pathlib import Path
from typing import Any

import pytest
from doit.runner import JobHold
from helpers import BATCH, run_cli, write_project


@pytest.fixture
def holds_taken(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every "hold on" job a doit thread took off its queue."""
    taken: list[Any] = []
    real = queue.Queue.get

    def get(self: queue.Queue[Any], block: bool = True, timeout: float | None = None) -> Any:
        item = real(self, block, timeout)
        if isinstance(item, JobHold):
            taken.append(item)
        return item

    monkeypatch.setattr(queue.Queue, "get", get)
    return taken


def test_a_build_wakes_no_thread_to_hold_on(tmp_path: Path, holds_taken: list[Any]) -> None:
    write_project(tmp_path, batches={"covers": BATCH.replace("candidates: 2", "candidates: 4")})
    assert run_cli(tmp_path, "build", "-j", "16") == 0
    assert holds_taken == []
    assert len(list(tmp_path.glob("assets/*/images/candidates/*"))) == 16
    lock = json.loads((tmp_path / "batches/covers.lock.json").read_text())
    assert len(lock["assets"]) == 4  # the task that waited for all the others ran


def test_the_build_switches_threads_less_often_and_puts_it_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While a build's tasks run, a thread waiting for the GIL asks for it every 20 ms, not 5
    (imgbuild.tasks.SWITCH_INTERVAL); once the build is over the interpreter is as it was, for a
    program that runs imgbuild in its own process."""
    import sys

    import imgbuild.build.candidate as candidate

    seen: list[float] = []
    real = candidate.make_candidate

    def make(*args: Any, **kwargs: Any) -> None:
        seen.append(sys.getswitchinterval())
        real(*args, **kwargs)

    monkeypatch.setattr(candidate, "make_candidate", make)
    write_project(tmp_path, batches={"covers": BATCH})
    before = sys.getswitchinterval()
    assert run_cli(tmp_path, "build", "-j", "4") == 0
    assert seen and set(seen) == {max(before, 0.02)}
    assert sys.getswitchinterval() == before
