"""`imgbuild check`: for CI. Does every asset match its manifest? No network, no local database.

With ``--approved`` it also gates the render stage: every asset needs an approved image given
for its current request.
"""

from __future__ import annotations

import os
from pathlib import Path

from imgbuild.errors import EXIT_FAILED, EXIT_OK
from imgbuild.records.state import ApprovalState, StateIndex, assess, assess_approvals, find_orphans
from imgbuild.resolve import resolve
from imgbuild.review import CandidateId

__all__ = ["check"]


def check(root: Path, *, approved: bool = False) -> int:
    """Print one line per stale, missing or orphaned asset (and, with `approved`, per asset
    without a current approved image); 0 when there is none, else 1."""
    resolution = resolve(root)
    index = StateIndex(resolution)
    states = assess(resolution, index)
    orphans = find_orphans(resolution)
    problems = 0
    for state in states:
        if not state.stale:
            continue
        problems += 1
        print(f"{state.status}: {state.request.asset_dir}: {'; '.join(state.reasons)}")
    for orphan in orphans:
        problems += 1
        print(f"orphaned: {orphan.asset_dir}: {orphan.reason()}")
    unapproved = 0
    if approved:
        for line in _approval_problems(resolution.root, assess_approvals(resolution, index)):
            unapproved += 1
            print(line)
    if problems:
        print(f"imgbuild check: {problems} of {len(states)} assets need attention (run `imgbuild plan`, then `doit`)")
    if unapproved:
        print(
            f"imgbuild check: {unapproved} of {len(states)} assets have no current approved image"
            " (run `imgbuild approve <asset> <candidate>`)"
        )
    if problems or unapproved:
        return EXIT_FAILED
    also = " and have a current approved image" if approved else ""
    print(f"imgbuild check: all {len(states)} assets match their manifests{also}")
    return EXIT_OK


def _approval_problems(root: Path, approvals: list[ApprovalState]) -> list[str]:
    lines = []
    for state in approvals:
        req, approval = state.request, state.approval
        if approval is None:
            lines.append(
                f"unapproved: {req.asset_dir}: no approved image (run imgbuild approve {req.asset_id} <candidate>)"
            )
        elif state.status == "stale":
            label = CandidateId(approval["candidate"], approval.get("image"))
            lines.append(f"stale approval: {req.asset_dir}: approved candidate {label} was made for an older request")
        elif not os.path.exists(os.path.join(root, approval["file"])):
            # The render stage would find nothing: committed approved images must stay in the tree.
            lines.append(
                f"unapproved: {req.asset_dir}: the approved image {approval['file']} is missing"
                f" (restore it, or run imgbuild approve {req.asset_id} <candidate> again)"
            )
    return lines
