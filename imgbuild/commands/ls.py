"""`imgbuild ls`: every asset with its state, one line each (or JSON), filtered by selection and state."""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgbuild.errors import EXIT_OK, UsageError
from imgbuild.resolve import resolve
from imgbuild.state import AssetState, ReviewState, StateIndex, assess, assess_reviews, find_orphans

__all__ = ["STATES", "ls"]

# What --state selects: build states, then review states, then orphans.
STATES = ("current", "changed", "interrupted", "broken", "orphaned", "approved", "stale", "rejected", "unreviewed")


def ls(root: Path, selection: Sequence[str] = (), *, state: str | None = None, as_json: bool = False) -> int:
    """List the selected assets (batch ids, or globs over asset ids such as ``'covers.*park*'`` or
    ``'covers:*park*'``) with their build and review state."""
    if state is not None and state not in STATES:
        raise UsageError(f"unknown state {state!r} (states: {', '.join(STATES)})")
    resolution = resolve(root)
    batches = {b.id for b in resolution.project.batches}
    requests = [r for r in resolution.all_requests() if _selected(r.batch, r.asset_id, selection, batches)]
    index = StateIndex(resolution, verify=True)
    rows: list[dict[str, Any]] = []
    for build, review in zip(
        assess(resolution, index, requests), assess_reviews(resolution, index, requests), strict=True
    ):
        row = _row(build, review)
        if state is None or state in (row["state"], row["review"]):
            rows.append(row)
    if state in (None, "orphaned"):
        for orphan in find_orphans(resolution):
            name = orphan.asset_dir.rsplit("/", 1)[-1]
            if _selected(orphan.batch or "", name, selection, batches):
                rows.append(
                    {
                        "id": name,
                        "batch": orphan.batch,
                        "asset_dir": orphan.asset_dir,
                        "state": "orphaned",
                        "status": "orphaned",
                        "review": "approved" if orphan.approved else None,
                        "model": None,
                        "todo": [],
                        "reasons": [orphan.reason()],
                        "possibly_billed": 0,
                    }
                )
    if as_json:
        print(json.dumps({"assets": rows}, indent=2, ensure_ascii=False))
        return EXIT_OK
    for row in rows:
        detail = f"  {'; '.join(row['reasons'])}" if row["reasons"] else ""
        print(f"{row['id']}  {row['state']}  {row['review'] or '-'}  {row['model'] or '-'}{detail}")
    if not rows:
        print("imgbuild ls: no asset matches" + (f" --state {state}" if state else ""))
    return EXIT_OK


def _selected(batch: str, asset_id: str, selection: Sequence[str], batches: set[str]) -> bool:
    if not selection:
        return True
    for pattern in selection:
        if pattern in batches:
            if batch == pattern:
                return True
            continue
        glob = pattern.replace(":", ".", 1) if ":" in pattern else pattern
        if fnmatch.fnmatchcase(asset_id, glob):
            return True
    return False


def _row(build: AssetState, review: ReviewState) -> dict[str, Any]:
    kind = build.status
    if kind in ("new", "changed", "incomplete", "missing-image"):
        kind = "changed"
    req = build.request
    return {
        "id": req.asset_id,
        "batch": req.batch,
        "asset_dir": req.asset_dir,
        "state": kind,
        "status": build.status,
        "review": review.status,
        "model": build.model,
        "todo": list(build.todo),
        "reasons": list(build.reasons) + [f"outdated record: {o}" for o in build.outdated]
        + [f"evidence: {c.describe()}" for c in build.evidence],
        "possibly_billed": sum(1 for i in build.interruptions if i.possibly_billed),
    }  # fmt: skip
