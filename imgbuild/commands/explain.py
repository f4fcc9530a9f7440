"""`imgbuild explain <asset>`: why an asset is stale, and whether it would be edited or regenerated."""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_INVALID, EXIT_OK
from imgbuild.resolve import resolve
from imgbuild.state import STALE, StateIndex, assess, assess_reviews

__all__ = ["explain"]


def explain(root: Path, asset_id: str) -> int:
    """Print what the records and the manifests say about one asset. 0 on a known asset, 2 when
    its records cannot be read."""
    resolution = resolve(root)
    req = resolution.find(asset_id)
    index = StateIndex(resolution, verify=True)
    (state,) = assess(resolution, index, [req])
    (review,) = assess_reviews(resolution, index, [req])
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
    if state.status == "broken":
        print(f"  status: broken: {'; '.join(state.reasons)}")
        return EXIT_INVALID
    if state.stale:
        print(f"  status: {state.status}, candidates {', '.join(map(str, state.todo))} to generate")
        for reason in state.reasons:
            print(f"    {reason}")
        for i in state.interruptions:
            how = "resumable without a new call" if i.resumable else "a rebuild makes it again"
            billed = "possibly billed" if i.possibly_billed else "not sent"
            print(f"    call {i.run} (candidate {i.candidate}): {billed}; {how}")
    else:
        print(f"  status: current ({req.candidates} candidate{'s' if req.candidates != 1 else ''} made)")
    for line in state.outdated:
        print(f"  outdated record: {line} (no call needed; the next build updates asset.json)")
    for change in state.evidence:
        print(f"  evidence: {change.describe()}")
    approval = review.approval
    decision = resolution.decisions.get(req.asset_id)
    if approval:
        stale = " — stale: made for an older request" if review.status == STALE else ""
        whole = f" (the whole set of {len(approval.images)} images)" if approval.images else ""
        print(f"  approval: candidate {approval.label}{whole} by {approval.by} at {approval.at}{stale}")
    else:
        print("  approval: none")
    if decision is not None and decision.kind != "approved":
        print(f"  next build: {decision.describe()}")
    elif state.stale:
        print("  next build: generate from the manifest (no approved image to edit from)")
    return EXIT_OK
