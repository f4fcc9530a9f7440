"""Batch lock files: ``<batches>/<batch>.lock.json``, the fast index of a batch's assets.

The no-op path reads one lock file per batch instead of every asset.json. A lock entry is trusted
only while it matches the current request and its image files exist; anything else falls back to
the asset's own records. An entry states what was *made* (request, evidence, images), taken from
the asset records, never from the manifest, and the asset's review state for the render stage.

The record classes are imported where a lock file is read or written: a no-op build that the
no-op index answers needs only `lock_path` of this module.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgbuild.records.model import LockEntry, LockFile
    from imgbuild.records.seal import Seal, SealedEntry

__all__ = [
    "holds",
    "lock_files",
    "lock_path",
    "read_lock",
    "read_seal",
    "remove_lock",
    "sealed_entries",
    "update_lock_entry",
    "write_lock",
]


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
    import json

    from imgbuild.records.errors import BrokenRecord
    from imgbuild.records.model import LOCK_SCHEMA, LockFile, schema_version
    from imgbuild.records.store import read_record_bytes

    try:
        raw = read_record_bytes(path, shown)
        data = json.loads(raw) if raw is not None else None
    except (BrokenRecord, ValueError):
        return None
    if raw is None or not isinstance(data, dict) or schema_version(data, "lock") != int(LOCK_SCHEMA.rsplit("/", 1)[1]):
        return None
    try:
        return LockFile.from_json(data, assets_sha256=_assets_sha256(raw) if data.get("seal_sha256") else None)
    except ValueError:
        return None


def write_lock(path: Path, lock: LockFile, temp_dir: Path) -> LockFile:
    """Write the lock file; sealed (its `seal_sha256` set, see records.seal.seal_digest) when it
    states the inputs its entries are current for. Returns it as written."""
    from imgbuild.records.atomic import atomic_write_bytes, json_bytes
    from imgbuild.records.model import LockFile
    from imgbuild.records.seal import seal_digest, sources_digest

    document = lock.to_json()
    document["seal_sha256"] = None
    data = json_bytes(document)
    assets = None
    if lock.inputs_sha256 is not None:
        # The entries' bytes do not move when the seal is filled in: "assets" sorts first.
        assets = _assets_sha256(data)
        if assets is not None:
            document["seal_sha256"] = seal_digest(lock.inputs_sha256, assets, sources_digest(lock.sources))
            data = json_bytes(document)
    atomic_write_bytes(path, data, temp_dir=temp_dir)
    return LockFile(
        lock.batch,
        lock.manifest,
        lock.entries,
        inputs_sha256=lock.inputs_sha256,
        seal_sha256=document["seal_sha256"],
        assets_sha256=assets,
        sources=lock.sources,
    )


def _assets_sha256(data: bytes) -> str | None:
    """sha256 of the bytes of a lock file's "assets" value; None when it has none."""
    try:
        found = _seal_decoder().decode(data)
    except ValueError:  # msgspec.DecodeError and ValidationError are ValueErrors
        return None
    return hashlib.sha256(found.assets).hexdigest()


def update_lock_entry(path: Path, entry: LockEntry, temp_dir: Path) -> bool:
    """Replace one asset's entry in an existing lock file. False when the file has no entry for
    it (the next build writes it)."""
    _read.pop(path, None)
    lock = read_lock(path)
    if lock is None or entry.id not in lock:
        return False
    write_lock(path, _reseal(lock, {**lock.entries, entry.id: entry}), temp_dir)
    return True


def _reseal(lock: LockFile, entries: dict[str, LockEntry]) -> LockFile:
    """The lock file with one entry replaced (a review decision), sealed again when its seal held
    and the decision leaves the request the entry was made for as it was. A decision changes what
    the entry states of its asset.json and its approval, which the edit rule makes the request from
    (imgbuild.edits): an approval kept, or one given for the entry's own request, leaves the request
    as it is; one taken away may turn an edit back into its base request, which only a build (or
    the full assessment) can tell."""
    from imgbuild.records.model import sealed_lock

    inputs = lock.inputs_sha256 if lock.sealed(lock.inputs_sha256, lock.sources) else None
    old = lock.entries
    for asset_id, new in entries.items():
        was = old.get(asset_id)
        if was is None or new == was:
            continue
        same = (was.request_hash, was.status) == (new.request_hash, new.status)
        approval = new.approval
        if not same or (approval != was.approval and (approval is None or approval.request_hash != new.request_hash)):
            inputs = None
    return sealed_lock(lock.batch, lock.manifest, entries, inputs, lock.sources)


# -- the seal: what a fresh clone's check reads of a lock file ----------------------------------------


@functools.cache
def _seal_decoder() -> Any:
    import msgspec

    from imgbuild.records.seal import Seal

    return msgspec.json.Decoder(Seal)


@functools.cache
def _entries_decoder() -> Any:
    import msgspec

    from imgbuild.records.seal import SealedEntry

    return msgspec.json.Decoder(dict[str, SealedEntry])


_MAX_SEAL_BYTES = 1 << 30  # a 100,000-asset batch's lock file is about 120 MB


def read_seal(path: Path) -> Seal | None:
    """The lock file at `path` decoded into the few fields of its seal, or None when there is no
    sealed lock file there (missing, unreadable, another schema or shape, or no inputs digest).

    Decoded straight into small typed structs (msgspec), one batch at a time, so 100,000 entries
    are never held as dictionaries. Never raises and never blocks: a link, a FIFO, a file over
    1 GiB or anything out of shape is None, and the full assessment (which reports it) runs."""
    import msgspec

    from imgbuild.records.seal import LOCK_SCHEMA

    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as file:
            info = os.fstat(file.fileno())
            if not stat.S_ISREG(info.st_mode) or info.st_size > _MAX_SEAL_BYTES:
                return None
            data = file.read()
        seal: Seal = _seal_decoder().decode(data)
    except (OSError, msgspec.DecodeError, ValueError):
        return None
    if seal.schema != LOCK_SCHEMA or seal.seal_sha256 is None:
        return None
    return seal


def holds(seal: Seal, inputs_sha256: str) -> bool:
    """The seal was made under these inputs, for exactly these entries, byte for byte, and for
    the sources it names."""
    from imgbuild.records.seal import seal_digest, sources_digest

    if seal.inputs_sha256 != inputs_sha256:
        return False
    assets = hashlib.sha256(seal.assets).hexdigest()
    return seal.seal_sha256 == seal_digest(inputs_sha256, assets, sources_digest(seal.sources))


def sealed_entries(seal: Seal) -> dict[str, SealedEntry] | None:
    """The entries of a sealed lock file, each with only what it vouches with; None when one is
    out of that shape."""
    try:
        entries: dict[str, SealedEntry] = _entries_decoder().decode(seal.assets)
    except ValueError:
        return None
    return entries
