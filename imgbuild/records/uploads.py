"""The upload cache, ``.imgbuild/uploads.json``: reference images already uploaded to a provider,
by content hash, until their URLs expire. Internal: URLs are per account and expire."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from imgbuild.records.atomic import atomic_write_json

__all__ = ["UploadCache"]


class UploadCache:
    def __init__(self, path: Path, temp_dir: Path) -> None:
        self.path = path
        self.temp_dir = temp_dir
        self._lock = threading.Lock()
        self._uploading: dict[str, threading.Lock] = defaultdict(threading.Lock)

    @contextmanager
    def uploading(self, provider: str, sha256: str) -> Iterator[None]:
        """One upload of an image at a time: candidates made at once share it."""
        with self._lock:
            lock = self._uploading[f"{provider}:{sha256}"]
        with lock:
            yield

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, provider: str, sha256: str) -> str | None:
        with self._lock:
            entry = self._read().get(f"{provider}:{sha256}")
        if not isinstance(entry, dict):
            return None
        expires = entry.get("expires")
        if isinstance(expires, int | float) and expires < time.time() + 3600:
            return None  # an hour's margin: a call may queue a while before the provider reads it
        url = entry.get("url")
        return url if isinstance(url, str) else None

    def put(self, provider: str, sha256: str, url: str, expires: float | None) -> None:
        if url.startswith("data:"):
            return  # inline: nothing to remember, and too big to keep
        with self._lock:
            data = self._read()
            data[f"{provider}:{sha256}"] = {"url": url, "expires": expires}
            atomic_write_json(self.path, data, temp_dir=self.temp_dir)
