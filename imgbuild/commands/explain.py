"""`imgbuild explain <asset>`: why an asset is stale, and whether it would be edited or regenerated."""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.records.state import StateIndex, assess, assess_approvals
from imgbuild.resolve import resolve
from imgbuild.review import CandidateId

__all__ = ["explain"]


def explain(root: Path, asset_id: str) -> int:
    """Print what the records and the manifests say about one asset. 0 on a known asset."""
    resolution = resolve(root)
    req = resolution.find(asset_id)
    index = StateIndex(resolution)
    (state,) = assess(resolution, index, [req])
    (review,) = assess_approvals(resolution, index, [req])
    batch = resolution.batch(req.batch)
    print(f"asset: {req.asset_id}")
    print(
        f"  batch {req.batch} ({batch.file}), shot {req.shot}"
        + (f", variant test {req.variant_test}" if req.variant_test else "")
    )
    print(f"  records: {req.asset_dir}/")
    print(f"  request: {req.request_hash[:16]}  {req.model} ({req.mode}), {req.size}, {req.output_format}")
    for ref in req.references:
        print(f"  reference ({ref.role}): {ref.path}  sha256 {ref.sha256[:16]}")
    if state.stale:
        print(f"  status: {state.status}, candidates {', '.join(map(str, state.todo))} to generate")
        for reason in state.reasons:
            print(f"    {reason}")
    else:
        print(f"  status: current ({req.candidates} candidate{'s' if req.candidates != 1 else ''} made)")
    approval = review.approval
    decision = resolution.decisions.get(req.asset_id)
    if approval:
        stale = " — stale: made for an older request" if review.status == "stale" else ""
        label = CandidateId(approval["candidate"], approval.get("image"))
        print(f"  approval: candidate {label} by {approval.get('by')} at {approval.get('at')}{stale}")
    else:
        print("  approval: none")
    if decision is not None and decision.kind != "approved":
        print(f"  next build: {decision.describe()}")
    elif state.stale:
        print("  next build: generate from the manifest (no approved image to edit from)")
    return EXIT_OK
