"""Batch lock files: ``<batches>/<batch>.lock.json``, the fast index of a batch's assets.

The no-op path reads one lock file per batch instead of every asset.json. A lock entry is trusted
only while it matches the current request (hash, prompt hash, candidates) and its image files exist;
anything else falls back to the asset's own records.

Each entry also carries the asset's review state for the render stage downstream: ``approval``
(null, or the approved image with its request and a ``stale`` flag) and ``rejected`` (candidate ids
of the current request whose newest review is a rejection); see :func:`imgbuild.review.lock_review_fields`.
A build keeps an entry that still matches its request as it is, so `imgbuild approve` / `reject`
write their decision into the entry themselves.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["LOCK_SCHEMA", "LockFile", "lock_path", "read_lock"]

LOCK_SCHEMA = "imgbuild.lock/1"


@dataclass
class LockFile:
    """A parsed lock file (empty when the batch has none yet)."""

    path: Path
    assets: dict[str, dict[str, Any]] = field(default_factory=dict)

    def entry(self, asset_id: str) -> dict[str, Any] | None:
        return self.assets.get(asset_id)


def lock_path(manifest: Path) -> Path:
    """``covers.yaml`` → ``covers.lock.json`` beside it."""
    return manifest.with_name(f"{manifest.stem}.lock.json")


_read: dict[Path, tuple[tuple[int, int, int], LockFile]] = {}


def read_lock(path: Path) -> LockFile:
    """The lock file at `path`; an unreadable or foreign file counts as no lock (it is rewritten).

    A file read before and unchanged since (same inode, size and mtime: lock files are replaced
    by rename) is not parsed again: the edit rule and the up-to-date checks read the same one."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return LockFile(path)
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    known = _read.get(path)
    if known is not None and known[0] == key:
        return known[1]
    lock = _parse(path)
    _read[path] = (key, lock)
    return lock


def _parse(path: Path) -> LockFile:
    try:
        with open(path, "rb") as f:
            data = json.load(f)
    except (FileNotFoundError, ValueError):
        return LockFile(path)
    if not isinstance(data, dict) or data.get("schema") != LOCK_SCHEMA or not isinstance(data.get("assets"), dict):
        return LockFile(path)
    return LockFile(path, data["assets"])
