"""The pace of a build's paid calls: the rate limit and the concurrency that backs off on 429s.

The first tests drive imgbuild.build.schedule.Schedule with real threads and the real clock; the
last ones build against the loopback fakes and read what the server received."""

from __future__ import annotations

import json
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import BATCH, run_cli, write_project

from imgbuild.build.schedule import Schedule

ARK = """\
provider: ark
providers:
  ark:
    concurrency: 4
    retries: {{attempts: 2, base_delay: 0.01, max_delay: 0.05}}
{extra}"""
IMAGES = 8  # BATCH: 4 assets × 2 candidates


def test_rate_limit_starts_calls_evenly_spaced_across_threads() -> None:
    schedule = Schedule(rate_limit=600)  # one start every 0.1 s
    starts: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(4):
            with schedule.slot(), lock:
                starts.append(time.monotonic())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    starts.sort()
    span = starts[-1] - starts[0]
    assert 15 * 0.1 * 0.98 <= span <= 15 * 0.1 + 0.5, starts
    # however late one start woke up, k later starts are at least (k - 1) spacings after it
    assert all(starts[j] - starts[i] >= (j - i - 1) * 0.1 for i in range(16) for j in range(i + 1, 16))


def test_a_call_of_several_images_takes_as_many_turns() -> None:
    schedule = Schedule(rate_limit=600)
    with schedule.slot(images=3):
        first = time.monotonic()
    with schedule.slot():
        second = time.monotonic()
    assert second - first >= 0.3 * 0.98


def test_a_429_halves_the_calls_in_flight_pauses_for_retry_after_and_grows_back() -> None:
    schedule = Schedule()
    with ExitStack() as held:
        for _ in range(8):
            held.enter_context(schedule.slot())
        assert schedule.limit is None and schedule.in_flight == 8
        schedule.throttled(retry_after=0.4)
        throttled_at = time.monotonic()
        assert schedule.limit == 4
        schedule.throttled(retry_after=None)  # the same round of calls: no second cut
        assert schedule.limit == 4 and schedule.throttles == 2

        got: list[float] = []
        waiter = threading.Thread(target=lambda: got.append(_slot_time(schedule)))
        waiter.start()
        time.sleep(0.1)
        assert got == []  # 8 in flight, 4 allowed
    waiter.join(timeout=5)
    assert got and got[0] - throttled_at >= 0.4 * 0.98  # the slots came free; Retry-After held it
    for _ in range(3):
        schedule.answered()
    assert schedule.limit == 7
    schedule.answered()  # back at the most calls ever in flight: the limit is lifted
    assert schedule.limit is None and schedule.lowest == 4


def test_one_cut_per_round_of_calls_so_random_429s_do_not_starve_the_build() -> None:
    schedule = Schedule()
    with ExitStack() as held:
        for _ in range(16):
            held.enter_context(schedule.slot())
        for _ in range(5):  # a burst of 429s, all answering the same 16 calls
            schedule.throttled(retry_after=None)
        assert schedule.limit == 8
    schedule.round_trip = 0.05  # calls take 50 ms now: the next round may cut again
    time.sleep(0.06)
    with ExitStack() as held:
        for _ in range(8):
            held.enter_context(schedule.slot())
        schedule.throttled(retry_after=None)
    assert schedule.limit == 4


def test_the_cap_holds_the_calls_in_flight_whatever_the_threads() -> None:
    schedule = Schedule(cap=3)
    most, lock = [0], threading.Lock()

    def worker() -> None:
        for _ in range(3):
            with schedule.slot():
                with lock:
                    most[0] = max(most[0], schedule.in_flight)
                time.sleep(0.02)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 3 and schedule.peak == 3


def test_recording_an_answer_waits_for_the_calls_that_can_start_first() -> None:
    schedule = Schedule(cap=1)
    waiter = threading.Thread(target=_hold_slot, args=(schedule, 0.3))
    with schedule.slot():
        waiter.start()
        while not schedule._queue:  # the next call is waiting for its turn
            time.sleep(0.01)
    schedule.let_calls_start()  # this thread's call answered; it records after the next one started
    assert schedule.in_flight == 1
    waiter.join()
    # Nothing can start (the rate limit holds the next one 1 s): recording goes on at once.
    limited = Schedule(rate_limit=60, cap=4)
    with limited.slot():
        waiter = threading.Thread(target=_hold_slot, args=(limited, 0.0))
        waiter.start()
        while not limited._queue:
            time.sleep(0.01)
    began = time.monotonic()
    limited.let_calls_start()
    assert time.monotonic() - began < 0.3 and limited.in_flight == 0
    waiter.join()


def _hold_slot(schedule: Schedule, seconds: float) -> None:
    with schedule.slot():
        time.sleep(seconds)


def test_a_hosted_build_runs_more_threads_but_never_more_calls_than_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Twice the threads (decision 65), so recording an answered call overlaps the next calls;
    # the provider still sees at most `-j` creates at once, as the user asked.
    latency = 0.3
    with FakeProviders(latency=latency) as fake:
        root = ark_project(tmp_path, fake, monkeypatch)
        assert run_cli(root, "build", "-j", "3") == 0
        starts = sorted(r.received for r in fake.creates("ark"))
    assert len(starts) == IMAGES
    overlapping = max(sum(1 for s in starts if t <= s < t + latency * 0.9) for t in starts)
    assert overlapping == 3, starts


def _slot_time(schedule: Schedule) -> float:
    with schedule.slot():
        return time.monotonic()


def test_rate_limit_holds_across_a_hosted_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProviders() as fake:
        root = ark_project(tmp_path, fake, monkeypatch, "    rate_limit: 240\n")  # 0.25 s apart
        assert run_cli(root, "build") == 0
        starts = sorted(r.received for r in fake.creates("ark"))
    assert len(starts) == IMAGES
    # Seen at the server, after each request's own trip (one spacing of slack for that): without
    # the limit these 8 calls, 4 at a time, answered at once, would all arrive within 0.1 s.
    assert starts[-1] - starts[0] >= (IMAGES - 2) * 0.25
    assert starts[-1] - starts[0] <= (IMAGES - 1) * 0.25 + 1.5  # kept to the rate, not far under it


def test_429s_lose_no_image_and_bill_none_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A third of the calls answered 429, more than `retries.attempts` (2) in a row for some: a
    # 429 was neither made nor billed, so it does not use up a call's tries.
    with FakeProviders(fault_rate=1 / 3, faults=("429",), seed=3) as fake:
        root = ark_project(tmp_path, fake, monkeypatch)
        assert run_cli(root, "build") == 0
        throttled = [r for r in fake.calls("ark", "create") if r.fault == "429"]
        billed = fake.billed["ark"]
    out = capsys.readouterr().out
    assert len(throttled) >= 3
    assert billed == IMAGES  # one accepted call per image: none twice
    assert f"{IMAGES} generated, 0 up to date, 0 failed, 0 not started" in out
    assert f"the provider answered 429 (too many requests) to {len(throttled)} calls" in out
    runs = sorted((root / ".imgbuild" / "exchanges" / "assets").glob("*/*/http.json"))
    assert len(runs) == IMAGES  # each image one run, its 429s retried inside it
    statuses = [[e["response"]["status"] for e in json.loads(p.read_text()) if e["what"] == "create"] for p in runs]
    assert sum(s.count(429) for s in statuses) == len(throttled)
    assert all(s[-1] == 200 and set(s[:-1]) <= {429} for s in statuses), statuses
    for asset in (root / "assets").iterdir():
        events = [e["event"] for e in json.loads((asset / "index.json").read_text())["history"]]
        assert sorted(events) == ["completed", "completed", "submitted", "submitted"], events


def ark_project(root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, extra: str = "") -> Path:
    write_project(root, batches={"covers": BATCH}, config=ARK.format(extra=extra))
    monkeypatch.setenv("ARK_API_KEY", fake.keys["ark"])
    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", fake.base_urls["ark"])
    return root
