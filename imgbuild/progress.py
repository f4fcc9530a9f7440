"""Progress of a long build: one live line in a terminal, plain periodic lines everywhere else.

What it shows: images done of the total (made, up to date or failed), calls in flight, images per
minute (over the last minute), the time left at that pace, failures so far and the list-price
spend of the images made so far::

    [ 312/1000] 256 in flight · 498 images/min · ETA 1m23s · 0 failed · $9.36 so far

In a terminal the line is redrawn in place by rich (``rich.live.Live``, four times a second) and a
failed image is printed above it as it happens. When the output is not a terminal (CI logs, a
pipe) the same line is printed when the first image is done, then every `interval` seconds
(``$IMGBUILD_PROGRESS_INTERVAL``, default 10) while anything changed, and when the last is done:
a log of a long build stays a few lines a minute, whatever the number of images.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TextIO

__all__ = ["BuildProgress", "progress_interval"]

INTERVAL_ENV = "IMGBUILD_PROGRESS_INTERVAL"
DEFAULT_INTERVAL = 10.0
WINDOW = 60.0  # seconds of finished images behind "images per minute"


def progress_interval() -> float:
    """Seconds between plain progress lines: $IMGBUILD_PROGRESS_INTERVAL, else 10."""
    try:
        value = float(os.environ.get(INTERVAL_ENV, DEFAULT_INTERVAL))
    except ValueError:
        return DEFAULT_INTERVAL
    return value if value > 0 else DEFAULT_INTERVAL


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class BuildProgress:
    """Counts a build's images as they finish and shows them (safe to call from any thread).

    `in_flight` and `spent` are read when a line is drawn: the calls holding a slot of the build's
    schedule, and the list price of the images made so far."""

    def __init__(
        self,
        out: TextIO,
        *,
        in_flight: Callable[[], int],
        spent: Callable[[], float],
        terminal: bool | None = None,
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out = out
        self.in_flight = in_flight
        self.spent = spent
        self.terminal = terminal  # None: decided when the build starts (rich is imported then)
        self.interval = progress_interval() if interval is None else interval
        self.clock = clock
        self.total = 0
        self.done = 0
        self.failed = 0
        self._finished: deque[float] = deque()  # when images were made, the last WINDOW seconds
        self._made = 0
        self._started = clock()
        self._lock = threading.Lock()
        self._printed_at: float | None = None
        self._printed: tuple[int, int] | None = None  # (done, in flight) of the last plain line
        self.started = False
        self._live: Any = None
        self._ticker: threading.Thread | None = None
        self._closed = threading.Event()

    # -- what happened -----------------------------------------------------------------------------
    def start(self, total: int) -> None:
        """The first call of the build begins (a build with nothing to make shows nothing):
        `total` images are selected."""
        with self._lock:
            if self.started:
                return
            self.started = True
            self.total, self._started = total, self.clock()
        if self.terminal is None:
            self.terminal = _is_terminal(self.out)
        if self.terminal:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self.out, force_terminal=True, highlight=False, soft_wrap=True)
            self._live = Live(
                get_renderable=self._renderable,
                console=console,
                refresh_per_second=4,
                redirect_stdout=False,
                redirect_stderr=False,
                transient=False,
            )
            self._live.start()
        else:
            self._ticker = threading.Thread(target=self._tick, name="imgbuild-progress", daemon=True)
            self._ticker.start()

    def made(self) -> None:
        """One image was made (a paid call answered and its images kept)."""
        with self._lock:
            self.done += 1
            self._made += 1
            self._finished.append(self.clock())
        self._changed()

    def up_to_date(self) -> None:
        with self._lock:
            self.done += 1
        self._changed(quiet=True)

    def failed_image(self, what: str) -> None:
        """One image failed: say so at once (`what` names it), then count it."""
        with self._lock:
            self.done += 1
            self.failed += 1
            line = f"[{self.done:>{len(str(self.total))}}/{self.total}] {what} FAILED"
        if self._live is not None:
            self._live.console.print(line, markup=False)
        else:
            self._write(line)
        self._changed()

    def close(self) -> None:
        """The build ended: the last state stays on screen (a terminal) or is printed (a log)."""
        self._closed.set()
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None
        elif self.started:
            self._print_status(force=True)

    # -- the line ------------------------------------------------------------------------------------
    def line(self) -> str:
        """The progress line as it reads now."""
        with self._lock:
            now = self.clock()
            while self._finished and self._finished[0] < now - WINDOW:
                self._finished.popleft()
            elapsed = now - self._started
            span = min(WINDOW, elapsed)
            per_minute = len(self._finished) / span * 60 if span > 1.0 else 0.0
            left = self.total - self.done
            if left == 0:
                eta = "done"
            elif per_minute > 0:
                eta = f"ETA {_duration(left / per_minute * 60)}"
            else:
                eta = "ETA --"
            width = len(str(self.total))
            return (
                f"[{self.done:>{width}}/{self.total}] {self.in_flight()} in flight · {per_minute:.0f} images/min"
                f" · {eta} · {self.failed} failed · ${self.spent():.2f} so far"
            )

    def _renderable(self) -> Any:
        from rich.text import Text

        return Text(self.line(), no_wrap=True, overflow="ellipsis")

    def _changed(self, *, quiet: bool = False) -> None:
        if self._live is not None:
            return  # redrawn by rich's own refresh thread
        with self._lock:
            first = self._printed_at is None and not quiet
            last = self.done == self.total and self.total > 0
        if first or last:
            self._print_status(force=True)

    def _tick(self) -> None:
        while not self._closed.wait(self.interval):
            try:
                self._print_status(force=False)
            except OSError:  # the output went away (`imgbuild build | head`): the build says so itself
                return

    def _print_status(self, *, force: bool) -> None:
        """Print the line if anything changed since the last one (and, unless forced, if it is due)."""
        line, in_flight = self.line(), self.in_flight()
        with self._lock:
            now = self.clock()
            due = self._printed_at is None or now - self._printed_at >= self.interval * 0.9
            state = (self.done, in_flight)
            if state == self._printed or not (force or due):
                return
            self._printed, self._printed_at = state, now
        self._write(line)

    def _write(self, line: str) -> None:
        with self._lock:
            self.out.write(line + "\n")
            self.out.flush()


def _is_terminal(out: TextIO) -> bool:
    """Whether `out` is a terminal (rich's rules: FORCE_TERMINAL, TTY_COMPATIBLE, NO_COLOR aside)."""
    from rich.console import Console

    return bool(Console(file=out).is_terminal)
