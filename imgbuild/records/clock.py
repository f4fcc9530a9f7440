"""The clock of the records: the times and run ids they state, and the reproducible mode.

With ``SOURCE_DATE_EPOCH`` set (the reproducible-builds convention,
https://reproducible-builds.org/specs/source-date-epoch/: whole seconds since 1970 UTC), every
time a record states is that moment, a duration is 0, and a run id is derived from what the run
is (its asset, request, candidate) instead of the clock and randomness. The same build then
writes the same bytes wherever and however it is split: that is how a sharded build is compared
with one unsharded build (docs/scale.md). Unset, records state the real clock.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

from imgbuild.records.errors import RecordError

__all__ = [
    "EPOCH_ENV",
    "BadSourceDateEpoch",
    "duration",
    "in_reproducible_order",
    "new_run_id",
    "source_date_epoch",
    "utc_now",
]

EPOCH_ENV = "SOURCE_DATE_EPOCH"
T = TypeVar("T")


class BadSourceDateEpoch(RecordError):
    """``SOURCE_DATE_EPOCH`` is set but not a whole number of seconds: the spec says to stop."""

    exit_code = 2

    def __init__(self, value: str) -> None:
        super().__init__(
            f"${EPOCH_ENV}={value!r} is not a time: expected whole seconds since 1970-01-01 UTC,"
            " e.g. $(git log -1 --format=%ct); unset it for the real clock"
        )


def source_date_epoch() -> int | None:
    """The reproducible moment, or None when the records state the real clock (the variable is
    unset or empty)."""
    value = os.environ.get(EPOCH_ENV, "")
    if not value:
        return None
    if not value.isascii() or not value.isdigit():
        raise BadSourceDateEpoch(value)
    return int(value)


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with milliseconds (``SOURCE_DATE_EPOCH``'s)."""
    epoch = source_date_epoch()
    moment = datetime.now(UTC) if epoch is None else datetime.fromtimestamp(epoch, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id(seed: str = "") -> str:
    """A sortable, unique run id: UTC time to the millisecond plus randomness. Under
    ``SOURCE_DATE_EPOCH`` the randomness is the sha256 of `seed` (the caller makes seeds unique:
    :meth:`AssetStore.new_run_id`)."""
    epoch = source_date_epoch()
    now = time.time() if epoch is None else float(epoch)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    tail = secrets.token_hex(3) if epoch is None else hashlib.sha256(seed.encode("utf-8")).hexdigest()[:6]
    return f"{stamp}{int(now * 1000) % 1000:03d}-{tail}"


def duration(seconds: float) -> float:
    """A measured duration as records state it: to the millisecond; 0 under ``SOURCE_DATE_EPOCH``."""
    return 0.0 if source_date_epoch() is not None else round(seconds, 3)


def in_reproducible_order(items: Sequence[T], candidate: Callable[[T], Any]) -> tuple[T, ...]:
    """`items` (an asset's events, oldest first) as index.json lists them.

    With the real clock, in the order they happened: their times say when. Under
    ``SOURCE_DATE_EPOCH`` every time is the same and the calls of one asset's candidates, run at
    once, finish in either order: the items are kept grouped by candidate number (a stable sort,
    so each candidate's own items stay oldest first; items of no candidate, such as uploads, come
    first)."""
    if source_date_epoch() is None:
        return tuple(items)

    def key(item: T) -> int:
        number = candidate(item)
        return number if isinstance(number, int) else 0

    return tuple(sorted(items, key=key))
