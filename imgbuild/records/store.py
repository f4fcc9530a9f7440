"""The asset store: ``<output>/<asset-id>/`` with asset.json, index.json, images/ and runs/.

asset.json is the asset's current state (its request, its candidates, its approval); index.json
is the append-only history of every run. Both are rewritten whole and atomically. A run's own
files (request.json, response.json, manifest.json) are written once each, in that order.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from imgbuild.records.atomic import atomic_write_bytes, atomic_write_json

__all__ = ["ASSET_SCHEMA", "AssetStore", "new_run_id", "utc_now"]

ASSET_SCHEMA = "imgbuild.asset/1"


def utc_now() -> str:
    """The current time as an ISO 8601 UTC string with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_run_id() -> str:
    """A sortable, unique run id: UTC time to the millisecond plus randomness."""
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}{int(now * 1000) % 1000:03d}-{secrets.token_hex(3)}"


class AssetStore:
    """Reads and writes the records of the assets of one project."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.temp_dir = root / ".imgbuild" / "tmp"
        self._locks: dict[str, threading.RLock] = defaultdict(threading.RLock)
        self._locks_guard = threading.Lock()

    @contextmanager
    def locked(self, asset_dir: str) -> Iterator[None]:
        """Serialize read-modify-write of one asset's records between threads of this build."""
        with self._locks_guard:
            lock = self._locks[asset_dir]
        with lock:
            yield

    def path(self, relative: str) -> Path:
        return self.root / relative

    def read_json(self, relative: str) -> Any | None:
        try:
            with open(self.root / relative, "rb") as f:
                return json.load(f)
        except FileNotFoundError:
            return None

    def write_json(self, relative: str, data: Any) -> None:
        atomic_write_json(self.root / relative, data, temp_dir=self.temp_dir)

    def write_bytes(self, relative: str, data: bytes) -> None:
        atomic_write_bytes(self.root / relative, data, temp_dir=self.temp_dir)

    def exists(self, relative: str) -> bool:
        return os.path.exists(self.root / relative)

    def read_asset(self, asset_dir: str) -> dict[str, Any] | None:
        data = self.read_json(f"{asset_dir}/asset.json")
        return data if isinstance(data, dict) else None

    def write_asset(self, asset_dir: str, record: dict[str, Any]) -> None:
        self.write_json(f"{asset_dir}/asset.json", record)

    def append_history(self, asset_dir: str, asset_id: str, event: dict[str, Any]) -> None:
        """Add an event to index.json (newest last). An event already recorded for the same run
        is not added again, so a step replayed after a crash leaves one entry."""
        index = self.read_json(f"{asset_dir}/index.json") or {"asset_id": asset_id, "history": []}
        key = (event.get("event"), event.get("run"))
        if any((old.get("event"), old.get("run")) == key for old in index["history"]):
            return
        index["history"].append({"time": utc_now(), **event})
        self.write_json(f"{asset_dir}/index.json", index)

    def run_path(self, asset_dir: str, run_id: str, name: str) -> str:
        return f"{asset_dir}/runs/image/{run_id}/{name}"
