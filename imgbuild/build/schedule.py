"""When the next paid call of a build may start: the provider's rate limit and an adaptive concurrency.

A build keeps up to `concurrency` calls in flight (`cap`; for a hosted provider doit runs twice as
many threads, so that the next calls start while the answered ones are recorded: decision 65).
Three things hold a call back before it is recorded and sent:

* **the cap**: `concurrency` calls in flight (`-n` / `-j` / `concurrency`), whatever the threads;
* **the rate limit** (`providers.<name>.rate_limit`, images per minute): calls start evenly
  spaced, a call of k images taking k slots of 60 / rate seconds. A start that wakes up late does
  not push the later ones back, so the build keeps the rate, not a little under it; an idle build
  saves up no burst.
* **the concurrency limit**, AIMD: none at first (the cap holds); a 429 from the provider
  halves the calls in flight, at most once per round of calls (the time a call holds its slot,
  a moving average: the 429s of one round all answer the same crowd), and, when the answer
  says ``Retry-After``, holds every new start until then;
  each answered call gives one slot back, until the limit reaches the most calls ever in flight,
  where it is lifted again. So a provider that throttles at random settles at about the
  concurrency it answers, instead of halving on every 429 down to one call. A call
  already in flight is never recalled: a throttled call keeps its place and is retried by the
  HTTP layer (the same run, so it is never paid twice), after its own backoff and a fresh turn
  of the rate limit.

Waiting calls queue in order and only the first of them watches the clock, so a release wakes one
thread, not every waiting one (at 256 threads that difference is CPU per image).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager

__all__ = ["Schedule"]


class Schedule:
    """The pace of one build's paid calls; safe to share between doit's threads."""

    def __init__(
        self, rate_limit: float | None = None, *, cap: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate_limit = rate_limit
        self.cap = cap  # the most calls in flight, whatever the threads (None: the threads are the cap)
        self.limit: float | None = None  # the adaptive concurrency after a 429; None: the cap
        self.in_flight = 0
        self.peak = 0  # the most calls in flight so far
        self.throttles = 0  # 429s seen
        self.lowest: int | None = None  # the lowest the limit went (for the summary and the tests)
        self._clock = clock
        self._lock = threading.Lock()
        self._queue: deque[threading.Event] = deque()
        self._head_wake = threading.Event()  # the first waiter's alarm: a slot freed, a pause ended
        self._starts_done = threading.Condition(self._lock)  # no waiting call can start right now
        self._next_start = float("-inf")  # the rate limit's next free start
        self._paused_until = float("-inf")  # Retry-After of the last 429
        self._last_cut = float("-inf")
        self.round_trip = 1.0  # seconds a call holds its slot (a moving average)
        self._local = threading.local()  # per thread: when its call got its slot, how many images

    # -- a call's turn ---------------------------------------------------------------------------
    @contextmanager
    def slot(self, images: int = 1) -> Iterator[None]:
        """Hold one of the calls in flight for the block, starting it when the rate limit and
        the concurrency allow (in the order the calls asked)."""
        self._acquire(images)
        try:
            yield
        finally:
            with self._lock:
                self.in_flight -= 1
                self.round_trip += (self._clock() - self._local.started - self.round_trip) / 8
                self._head_wake.set()

    def _acquire(self, images: int) -> None:
        turn = threading.Event()
        with self._lock:
            self._queue.append(turn)
            if len(self._queue) == 1:
                turn.set()
        try:
            turn.wait()  # first in the queue now
            while True:
                with self._lock:
                    now = self._clock()
                    wait = self._wait(now)
                    if wait == 0.0:
                        self._take_rate(now, images)
                        self.in_flight += 1
                        self.peak = max(self.peak, self.in_flight)
                        self._local.started, self._local.images = now, images
                        self._leave_queue(turn)
                        if not self._startable(now):
                            self._starts_done.notify_all()
                        return
                    self._head_wake.clear()
                self._head_wake.wait(wait)
        except BaseException:  # Ctrl-C while waiting (a one-thread build): let the next one go
            with self._lock:
                self._leave_queue(turn)
            raise

    def _leave_queue(self, turn: threading.Event) -> None:
        self._queue.remove(turn)
        if self._queue:
            self._queue[0].set()

    def _startable(self, now: float) -> bool:
        """A call is waiting for its turn and could start now."""
        return bool(self._queue) and self._wait(now) == 0.0

    def let_calls_start(self, most: float = 1.0) -> None:
        """Before recording an answered call: wait (up to `most` seconds) while calls that wait
        for their turn could start now. The answers of a round come back together; starting
        the next calls before recording the answered ones keeps the provider busy (decision 65)."""
        with self._lock:
            deadline = self._clock() + most
            while self._startable(now := self._clock()) and now < deadline:
                self._starts_done.wait(deadline - now)

    def _wait(self, now: float) -> float | None:
        """Seconds until the first waiter may start; None: until a call ends."""
        if now < self._paused_until:
            return self._paused_until - now
        if self.cap is not None and self.in_flight >= self.cap:
            return None
        if self.limit is not None and self.in_flight >= int(self.limit):
            return None
        if self.rate_limit is not None and now < self._next_start:
            return self._next_start - now
        return 0.0

    def _take_rate(self, now: float, images: int) -> None:
        if self.rate_limit is not None:
            spacing = images * 60.0 / self.rate_limit
            # late by less than one spacing: keep to the grid; idle longer: start afresh from now
            grid = self._next_start if now - self._next_start < spacing else now
            self._next_start = grid + spacing

    def retry_turn(self) -> None:
        """Before a throttled call is sent again: wait out a Retry-After and take a turn of the
        rate limit (the retry is one more request to the provider). The call keeps its slot."""
        while True:
            with self._lock:
                now = self._clock()
                images = getattr(self._local, "images", 1)
                wait = max(self._paused_until - now, 0.0)
                if not wait and self.rate_limit is not None:
                    wait = max(self._next_start - now, 0.0)
                if not wait:
                    self._take_rate(now, images)
                    return
            time.sleep(wait)

    # -- what the provider said -------------------------------------------------------------------
    def throttled(self, retry_after: float | None) -> None:
        """The provider answered a create call with 429: back off."""
        with self._lock:
            now = self._clock()
            self.throttles += 1
            if now - self._last_cut >= self.round_trip:
                now_in_flight = float(self.in_flight if self.limit is None else min(self.limit, self.in_flight))
                self.limit = max(1.0, now_in_flight / 2)
                self.lowest = int(self.limit) if self.lowest is None else min(self.lowest, int(self.limit))
                self._last_cut = now
            if retry_after:
                self._paused_until = max(self._paused_until, now + retry_after)
            self._head_wake.set()

    def answered(self) -> None:
        """The provider answered a create call: give one slot back."""
        with self._lock:
            if self.limit is not None:
                self.limit += 1.0
                if self.limit >= self.peak:
                    self.limit = None
                self._head_wake.set()
