"""Batch lock files: ``<batches>/<batch>.lock.json``, the fast index of a batch's assets.

The no-op path reads one lock file per batch instead of every asset.json. A lock entry is trusted
only while it matches the current request and its image files exist; anything else falls back to
the asset's own records. An entry states what was *made* (request, evidence, images), taken from
the asset records, never from the manifest, and the asset's review state for the render stage.
"""

from __future__ import annotations

import os
from pathlib import Path

from imgbuild.records.atomic import atomic_write_json
from imgbuild.records.errors import BrokenRecord
from imgbuild.records.model import LOCK_SCHEMA, LockEntry, LockFile, schema_version
from imgbuild.records.store import read_json_file

__all__ = ["LOCK_SCHEMA", "lock_files", "lock_path", "read_lock", "remove_lock", "update_lock_entry", "write_lock"]


def lock_path(manifest: Path) -> Path:
    """``covers.yaml`` → ``covers.lock.json`` beside it."""
    return manifest.with_name(f"{manifest.stem}.lock.json")


def lock_files(folder: Path) -> list[Path]:
    """Every lock file in a batches folder, sorted."""
    return sorted(folder.glob("*.lock.json")) if folder.is_dir() else []


def remove_lock(path: Path) -> None:
    """Remove the lock file of a deleted batch (`imgbuild prune --yes`)."""
    _read.pop(path, None)
    path.unlink()


_read: dict[Path, tuple[tuple[int, int, int], LockFile | None]] = {}


def read_lock(path: Path, shown: str | None = None) -> LockFile | None:
    """The lock file at `path`, None when there is none.

    A lock file is derived (a build rewrites it from the records), so one that cannot be read —
    broken JSON, another schema, a wrong shape — is None too: it vouches for nothing and the next
    build writes it anew. A file read before and unchanged since (same inode, size and mtime: lock
    files are replaced by rename) is not parsed again."""
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    key = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
    known = _read.get(path)
    if known is not None and known[0] == key:
        return known[1]
    lock = _parse(path, shown or path.name)
    _read[path] = (key, lock)
    return lock


def _parse(path: Path, shown: str) -> LockFile | None:
    try:
        data = read_json_file(path, shown)
    except BrokenRecord:
        return None
    if not isinstance(data, dict) or schema_version(data, "lock") != int(LOCK_SCHEMA.rsplit("/", 1)[1]):
        return None
    try:
        return LockFile.from_json(data)
    except ValueError:
        return None


def write_lock(path: Path, lock: LockFile, temp_dir: Path) -> None:
    atomic_write_json(path, lock.to_json(), temp_dir=temp_dir)


def update_lock_entry(path: Path, entry: LockEntry, temp_dir: Path) -> bool:
    """Replace one asset's entry in an existing lock file. False when the file has no entry for
    it (the next build writes it)."""
    _read.pop(path, None)
    lock = read_lock(path)
    if lock is None or entry.id not in lock:
        return False
    write_lock(path, LockFile(lock.batch, lock.manifest, {**lock.entries, entry.id: entry}), temp_dir)
    return True
