"""`imgbuild status`: a per-batch summary of what is built, what is stale and what is approved."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.records.state import StateIndex, assess, assess_approvals, find_orphans
from imgbuild.resolve import resolve

__all__ = ["status"]


def status(root: Path) -> int:
    """Print one line per batch and a line about orphans; always 0 on valid input.

    ``covers: 3/4 current (1 changed), 2 approved (1 stale), 1 rejected, 1 unreviewed`` — an
    approval is stale when it was given for another request than the current one."""
    resolution = resolve(root)
    index = StateIndex(resolution)
    states = assess(resolution, index)
    approvals = assess_approvals(resolution, index)
    for batch in resolution.project.batches:
        counts = Counter(s.status for s in states if s.request.batch == batch.id)
        reviews = Counter(a.status for a in approvals if a.request.batch == batch.id)
        total = sum(counts.values())
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "current")
        line = f"{batch.id}: {counts.get('current', 0)}/{total} current" + (f" ({parts})" if parts else "")
        approved = reviews["approved"] + reviews["stale"]
        line += f", {approved} approved" + (f" ({reviews['stale']} stale)" if reviews["stale"] else "")
        line += "".join(f", {reviews[kind]} {kind}" for kind in ("rejected", "unreviewed") if reviews[kind])
        print(line)
    orphans = find_orphans(resolution)
    if orphans:
        print(f"{len(orphans)} orphaned asset folders (see `imgbuild check`)")
    return EXIT_OK
