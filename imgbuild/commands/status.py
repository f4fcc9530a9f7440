"""`imgbuild status`: a per-batch summary of what is built and what is stale."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.records.state import assess, find_orphans
from imgbuild.resolve import resolve

__all__ = ["status"]


def status(root: Path) -> int:
    """Print one line per batch and a line about orphans; always 0 on valid input."""
    resolution = resolve(root)
    states = assess(resolution)
    for batch in resolution.project.batches:
        counts = Counter(s.status for s in states if s.request.batch == batch.id)
        total = sum(counts.values())
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "current")
        print(f"{batch.id}: {counts.get('current', 0)}/{total} current" + (f" ({parts})" if parts else ""))
    orphans = find_orphans(resolution)
    if orphans:
        print(f"{len(orphans)} orphaned asset folders (see `imgbuild check`)")
    return EXIT_OK
