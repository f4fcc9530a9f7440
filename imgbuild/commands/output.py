"""What the commands print for scripts: ``--json`` documents, one JSON Schema each.

The schemas are in ``schemas/output/`` (``<command>.schema.json``); every document carries
``"version": 1`` and the ``"command"`` that made it, so a dashboard can tell them apart and
notice a change of shape. Rows that several commands share (an asset's state, an orphan) are
made here once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgbuild.orphans import Orphan
    from imgbuild.state import AssetState, ReviewState

__all__ = ["asset_row", "orphan_row", "print_json"]


def print_json(document: dict[str, Any]) -> None:
    """Print one JSON document (UTF-8 kept as is: asset ids and reasons are for people too)."""
    print(json.dumps(document, indent=2, ensure_ascii=False))


def asset_row(build: AssetState, review: ReviewState) -> dict[str, Any]:
    """One asset's build and review state (schemas/output/ls.schema.json, ``$defs/asset``)."""
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


def orphan_row(orphan: Orphan) -> dict[str, Any]:
    """An asset folder no manifest declares, in the shape of `asset_row`."""
    return {
        "id": orphan.asset_dir.rsplit("/", 1)[-1],
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
