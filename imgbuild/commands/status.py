"""`imgbuild status`: a per-batch summary of what is built, what is stale and what is approved."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from imgbuild.commands.output import print_json
from imgbuild.errors import EXIT_INVALID, EXIT_OK
from imgbuild.orphans import find_orphans
from imgbuild.resolve import resolve
from imgbuild.state import STALE, StateIndex, assess, assess_reviews

__all__ = ["status"]


def status(root: Path, *, as_json: bool = False) -> int:
    """Print one line per batch and a line about orphans (or one JSON document:
    schemas/output/status.schema.json); 0 on valid input, 2 when a record cannot be read (named
    with what to do).

    ``covers: 3/4 current (1 changed), 2 approved (1 stale), 1 rejected, 1 unreviewed`` — an
    approval is stale when it was given for another request than the current one."""
    resolution = resolve(root)
    index = StateIndex(resolution, verify=True)
    states = assess(resolution, index)
    reviews = assess_reviews(resolution, index)
    batches: list[dict[str, Any]] = []
    for batch in resolution.project.batches:
        mine = [s for s in states if s.request.batch == batch.id]
        review = Counter(r.status for r in reviews if r.request.batch == batch.id)
        batches.append(
            {
                "id": batch.id,
                "assets": len(mine),
                "states": dict(sorted(Counter(s.status for s in mine).items())),
                "reviews": dict(sorted(review.items())),
                "possibly_billed": sum(sum(1 for i in s.interruptions if i.possibly_billed) for s in mine),
                "models": sorted({s.model for s in mine}),
            }
        )
    orphans = find_orphans(resolution)
    broken = [s for s in states if s.status == "broken"]
    code = EXIT_INVALID if broken else EXIT_OK
    if as_json:
        print_json(
            {
                "version": 1,
                "command": "status",
                "exit_code": code,
                "batches": batches,
                "orphans": len(orphans),
                "broken": [{"id": s.request.asset_id, "reasons": list(s.reasons)} for s in broken],
            }
        )
        return code
    for row in batches:
        counts, review = row["states"], Counter(row["reviews"])
        parts = ", ".join(f"{n} {kind}" for kind, n in counts.items() if kind != "current")
        line = f"{row['id']}: {counts.get('current', 0)}/{row['assets']} current" + (f" ({parts})" if parts else "")
        if row["possibly_billed"]:
            line += f", {row['possibly_billed']} interrupted calls possibly billed"
        approved = review["approved"] + review[STALE]
        line += f", {approved} approved" + (f" ({review[STALE]} stale)" if review[STALE] else "")
        line += "".join(f", {review[kind]} {kind}" for kind in ("rejected", "unreviewed") if review[kind])
        line += f"; {', '.join(row['models'])}" if row["models"] else ""
        print(line)
    if orphans:
        print(f"{len(orphans)} orphaned asset folders (`imgbuild ls --state orphaned`, `imgbuild prune`)")
    for state in broken:
        print(f"broken: {'; '.join(state.reasons)}")
    return code
