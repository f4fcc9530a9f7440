"""The project's build lock, ``.imgbuild/build.lock``: one writer of the records at a time.

Builds hold it for their whole run; approve / reject for their few writes, so that no build
rewrites asset.json or a lock file under them.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from imgbuild.records.atomic import confined
from imgbuild.records.errors import BuildLocked

__all__ = ["BuildLocked", "acquire_build_lock"]


def acquire_build_lock(state_dir: Path, holder: str = "build") -> IO[str]:
    """Hold the project's build lock (released when the handle is closed); BuildLocked when held.

    WriteOutsideProject when the state folder is a link out of the project (state_dir's parent)."""
    confined(state_dir / "build.lock", state_dir.parent)
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "build.lock", "a+")  # noqa: SIM115 (held by the caller)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        current = handle.read().strip() or "another process"
        handle.close()
        raise BuildLocked(current) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}" + ("" if holder == "build" else f", imgbuild {holder}"))
    handle.flush()
    return handle
