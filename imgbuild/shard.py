"""Shards: one project's assets split over n machines by a stable hash of their ids.

``--shard i/n`` on ``build``, ``plan`` and ``check`` (``IMGBUILD_SHARD=i/n`` for plain doit; the
option wins) keeps the assets of shard ``i`` (counted from 1, as in pytest-shard's and Playwright's
``i/n``) and drops the rest at one point, :func:`select_shard`, applied to the resolved project. An asset
belongs to shard ``int(sha256(asset id)[:8]) % n + 1``: the same on every machine and every Python
(``hash()`` is salted per process), and an asset keeps its shard when other assets come and go.

A shard build writes only the folders of its own assets, never a lock file (a lock file holds a
whole batch, so n shards writing it would conflict); ``imgbuild merge`` writes the lock files once
the shards are combined (docs/scale.md).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from imgbuild.errors import UsageError

if TYPE_CHECKING:
    from imgbuild.orphans import Orphan
    from imgbuild.resolve import Resolution

__all__ = [
    "SHARD_ENV",
    "Shard",
    "chosen_shard",
    "parse_shard",
    "project_estimate",
    "select_orphans",
    "select_shard",
    "shard_line",
    "shard_of",
]

SHARD_ENV = "IMGBUILD_SHARD"
_FORM = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (1 ≤ index ≤ count)."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, asset_id: str) -> bool:
        """Whether the asset `asset_id` is built, planned and checked by this shard."""
        return shard_of(asset_id, self.count) == self.index


def shard_of(asset_id: str, count: int) -> int:
    """The shard (1..count) of an asset: its id's sha256, first 8 bytes big-endian, modulo count."""
    digest = hashlib.sha256(asset_id.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(text: str, source: str = "--shard") -> Shard:
    """``"2/3"`` → Shard(2, 3); UsageError (exit 2) naming `source` for anything else."""
    match = _FORM.fullmatch(text)
    if match is not None:
        index, count = int(match[1]), int(match[2])
        if 1 <= index <= count:
            return Shard(index, count)
    raise UsageError(
        f"{source}: {text!r} is not a shard; expected I/N with 1 <= I <= N, e.g. 2/3 (shard 2 of 3, counted from 1)"
    )


def chosen_shard(option: str | None = None) -> Shard | None:
    """The shard of this run: `option` (from ``--shard``), else ``$IMGBUILD_SHARD``, else None
    (every asset). An empty variable counts as unset, as CI templates often leave it."""
    if option is not None:
        return parse_shard(option)
    value = os.environ.get(SHARD_ENV, "")
    return parse_shard(value, f"${SHARD_ENV}") if value.strip() else None


def select_shard(resolution: Resolution, shard: Shard | None) -> Resolution:
    """The project with only the assets of `shard` (every batch stays, perhaps empty); the
    whole project when `shard` is None. The one point where a shard chooses its assets."""
    if shard is None:
        return resolution
    requests = {batch: tuple(_owned(shard, reqs, lambda r: r.asset_id)) for batch, reqs in resolution.requests.items()}
    decisions = {asset: d for asset, d in resolution.decisions.items() if shard.owns(asset)}
    return replace(resolution, requests=requests, decisions=decisions)


def shard_line(shard: Shard, whole: Resolution, mine: Resolution) -> str:
    """``shard 2/3: 14 of 40 assets (...)``: the first line of a sharded plan or check."""
    return (
        f"shard {shard}: {len(mine.all_requests())} of {len(whole.all_requests())} assets"
        " (split by a hash of the asset id; the other shards have the rest)"
    )


def select_orphans(orphans: Iterable[Orphan], shard: Shard | None) -> list[Orphan]:
    """The orphaned folders this shard reports (found against the whole project, so that the
    assets of other shards are not orphans), split by folder name: each is reported once."""
    return list(orphans) if shard is None else list(_owned(shard, orphans, lambda o: o.asset_dir.rsplit("/", 1)[-1]))


def _owned(shard: Shard, items: Iterable[T], key: Callable[[T], str]) -> Iterable[T]:
    return (item for item in items if shard.owns(key(item)))


def project_estimate(resolution: Resolution) -> tuple[int, float]:
    """(images, cost at list prices) of every stale image of the whole `resolution`: what the
    budget of a sharded build is checked against, since every shard spends from one budget."""
    from imgbuild.state import StateIndex, assess, estimate

    images, cost, _ = estimate((s.request, s.todo) for s in assess(resolution, StateIndex(resolution)))
    return images, cost
