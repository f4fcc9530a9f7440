"""Records: the committed, reviewable truth about every asset, run and batch (see docs/records.md)."""

from __future__ import annotations

from imgbuild.records.atomic import atomic_write_bytes, atomic_write_json
from imgbuild.records.lock import LockFile, read_lock
from imgbuild.records.store import AssetStore, utc_now

__all__ = ["AssetStore", "LockFile", "atomic_write_bytes", "atomic_write_json", "read_lock", "utc_now"]
