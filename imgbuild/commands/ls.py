"""`imgbuild ls`: every asset with its state, one line each (or JSON), filtered by selection and state."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from imgbuild.commands.output import asset_row, orphan_row, print_json
from imgbuild.errors import EXIT_OK, UsageError
from imgbuild.orphans import find_orphans
from imgbuild.resolve import resolve
from imgbuild.state import StateIndex, assess, assess_reviews

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
        row = asset_row(build, review)
        if state is None or state in (row["state"], row["review"]):
            rows.append(row)
    if state in (None, "orphaned"):
        for orphan in find_orphans(resolution):
            name = orphan.asset_dir.rsplit("/", 1)[-1]
            if _selected(orphan.batch or "", name, selection, batches):
                rows.append(orphan_row(orphan))
    if as_json:
        print_json({"version": 1, "command": "ls", "assets": rows})
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
