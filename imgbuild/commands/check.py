"""`imgbuild check`: for CI. Does every asset match its manifest? No network, no local database."""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_FAILED, EXIT_OK
from imgbuild.records.state import assess, find_orphans
from imgbuild.resolve import resolve

__all__ = ["check"]


def check(root: Path) -> int:
    """Print one line per stale, missing or orphaned asset; 0 when there is none, else 1."""
    resolution = resolve(root)
    states = assess(resolution)
    orphans = find_orphans(resolution)
    problems = 0
    for state in states:
        if not state.stale:
            continue
        problems += 1
        print(f"{state.status}: {state.request.asset_dir}: {'; '.join(state.reasons)}")
    for orphan in orphans:
        problems += 1
        print(f"orphaned: {orphan.asset_dir}: {orphan.reason()}")
    if problems:
        print(f"imgbuild check: {problems} of {len(states)} assets need attention (run `imgbuild plan`, then `doit`)")
        return EXIT_FAILED
    print(f"imgbuild check: all {len(states)} assets match their manifests")
    return EXIT_OK
