"""`imgbuild status`: a per-batch summary of what is built, what is stale and what is approved."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imgbuild.errors import EXIT_INVALID, EXIT_OK
from imgbuild.resolve import resolve
from imgbuild.state import STALE, StateIndex, assess, assess_reviews, find_orphans

__all__ = ["status"]


def status(root: Path) -> int:
    """Print one line per batch and a line about orphans; 0 on valid input, 2 when a record
    cannot be read (named with what to do).

    ``covers: 3/4 current (1 changed), 2 approved (1 stale), 1 rejected, 1 unreviewed`` — an
    approval is stale when it was given for another request than the current one."""
    resolution = resolve(root)
    index = StateIndex(resolution, verify=True)
    states = assess(resolution, index)
    reviews = assess_reviews(resolution, index)
    for batch in resolution.project.batches:
        mine = [s for s in states if s.request.batch == batch.id]
        counts = Counter(s.status for s in mine)
        review = Counter(r.status for r in reviews if r.request.batch == batch.id)
        parts = ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()) if kind != "current")
        line = f"{batch.id}: {counts.get('current', 0)}/{len(mine)} current" + (f" ({parts})" if parts else "")
        billed = sum(sum(1 for i in s.interruptions if i.possibly_billed) for s in mine)
        if billed:
            line += f", {billed} interrupted calls possibly billed"
        approved = review["approved"] + review[STALE]
        line += f", {approved} approved" + (f" ({review[STALE]} stale)" if review[STALE] else "")
        line += "".join(f", {review[kind]} {kind}" for kind in ("rejected", "unreviewed") if review[kind])
        models = sorted({s.model for s in mine})
        line += f"; {', '.join(models)}" if models else ""
        print(line)
    orphans = find_orphans(resolution)
    if orphans:
        print(f"{len(orphans)} orphaned asset folders (`imgbuild ls --state orphaned`, `imgbuild prune`)")
    broken = [s for s in states if s.status == "broken"]
    for state in broken:
        print(f"broken: {'; '.join(state.reasons)}")
    return EXIT_INVALID if broken else EXIT_OK
