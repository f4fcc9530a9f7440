"""`imgbuild explain <asset>`: why an asset is stale, and whether it would be edited or regenerated."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from imgbuild.commands.output import asset_row, print_json
from imgbuild.errors import EXIT_INVALID, EXIT_OK
from imgbuild.locate import locate_state
from imgbuild.resolve import Resolution, resolve
from imgbuild.state import STALE, AssetState, ReviewState, StateIndex, assess, assess_reviews

__all__ = ["explain"]


def explain(root: Path, asset_id: str, *, as_json: bool = False) -> int:
    """Print what the records and the manifests say about one asset (or one JSON document:
    schemas/output/explain.schema.json). 0 on a known asset, 2 when its records cannot be read."""
    resolution = resolve(root)
    req = resolution.find(asset_id)
    index = StateIndex(resolution, verify=True)
    (state,) = assess(resolution, index, [req])
    (review,) = assess_reviews(resolution, index, [req])
    if as_json:
        print_json(_document(resolution, state, review))
        return EXIT_INVALID if state.status == "broken" else EXIT_OK
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
    if approval:
        stale = " — stale: made for an older request" if review.status == STALE else ""
        whole = f" (the whole set of {len(approval.images)} images)" if approval.images else ""
        print(f"  approval: candidate {approval.label}{whole} by {approval.by} at {approval.at}{stale}")
    else:
        print("  approval: none")
    next_build = _next_build(resolution, state)
    if next_build is not None:
        print(f"  next build: {next_build}")
    return EXIT_OK


def _next_build(resolution: Resolution, state: AssetState) -> str | None:
    decision = resolution.decisions.get(state.request.asset_id)
    if decision is not None and decision.kind != "approved":
        return decision.describe()
    if state.stale:
        return "generate from the manifest (no approved image to edit from)"
    return None


def _document(resolution: Resolution, state: AssetState, review: ReviewState) -> dict[str, Any]:
    req, approval = state.request, review.approval
    where = locate_state(resolution, state)
    return {
        "version": 1,
        "command": "explain",
        **asset_row(state, review),
        "batch_file": resolution.batch(req.batch).path.relative_to(resolution.root).as_posix(),
        "shot": req.shot,
        "variant_test": req.variant_test,
        "request_hash": req.request_hash,
        "prompt_hash": req.prompt_hash,
        "mode": req.mode,
        "size": req.size,
        "output_format": req.output_format,
        "references": [ref.record() for ref in req.references],
        "fields": list(state.fields),
        "where": {"file": where.file, "line": where.line},
        "interruptions": [
            {"run": i.run, "candidate": i.candidate, "possibly_billed": i.possibly_billed, "resumable": i.resumable}
            for i in state.interruptions
        ],
        "outdated": list(state.outdated),
        "evidence": [{"path": c.path, "made_from": c.made_from, "now": c.now} for c in state.evidence],
        "approval": None
        if approval is None
        else {
            "candidate": approval.label,
            "file": approval.file,
            "sha256": approval.sha256,
            "by": approval.by,
            "at": approval.at,
            "stale": review.status == STALE,
        },
        "next_build": _next_build(resolution, state),
    }
