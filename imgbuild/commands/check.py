"""`imgbuild check`: for CI. Does every asset match its manifest? No network, no local database.

With ``--approved`` it also gates the render stage: every asset needs an approved image given
for its current request. With ``--strict`` evidence that changed since the images were made
fails too.
"""

from __future__ import annotations

import os
from pathlib import Path

from imgbuild import noop
from imgbuild.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from imgbuild.resolve import resolve
from imgbuild.state import STALE, ReviewState, StateIndex, assess, assess_reviews, find_orphans

__all__ = ["check"]


def check(root: Path, *, approved: bool = False, strict: bool = False) -> int:
    """Print one line per asset that needs attention; 0 when none, 1 when some, 2 when a record
    cannot be read."""
    # The batches the no-op index vouches for are counted, not resolved (--approved reads reviews,
    # which the index does not cover).
    source = noop.Source(resolve(root)) if approved else noop.source(root, noop.CHECK)
    resolution = source.resolution
    index = StateIndex(resolution, verify=True)
    states = assess(resolution, index)
    orphans = find_orphans(resolution, source.asset_dirs)
    if not approved:
        noop.enter_checked(resolution, index, states, source.started_ns)
    attention = broken = drifted = 0
    for state in states:
        where = state.request.asset_dir
        if state.status == "broken":
            broken += 1
            print(f"broken: {'; '.join(state.reasons)}")
        elif state.stale:
            attention += 1
            print(f"{state.status}: {where}: {'; '.join(state.reasons)}")
        elif state.outdated:
            attention += 1
            print(
                f"outdated: {where}: {'; '.join(state.outdated)} (the request is the same: no call is needed;"
                " the next build updates the records)"
            )
        if state.evidence:
            drifted += 1
            print(f"evidence: {where}: {'; '.join(c.describe() for c in state.evidence)}")
    for orphan in orphans:
        print(f"orphaned: {orphan.asset_dir}: {orphan.reason()}")
    unapproved = 0
    if approved:
        for line in _approval_problems(resolution.root, assess_reviews(resolution, index)):
            unapproved += 1
            print(line)
    total = len(states) + source.vouched
    if attention or broken:
        print(
            f"imgbuild check: {attention + broken} of {total} assets need attention (run `imgbuild plan`, then `doit`)"
        )
    if orphans:
        print(f"imgbuild check: {len(orphans)} orphaned asset folders (`imgbuild prune` lists what it would remove)")
    if drifted:
        fails = " (fails under --strict)" if not strict else ""
        print(f"imgbuild check: {drifted} of {total} assets were made from evidence that has changed since{fails}")
    if unapproved:
        print(
            f"imgbuild check: {unapproved} of {total} assets have no current approved image"
            " (run `imgbuild approve <asset> <candidate>`)"
        )
    if broken:
        return EXIT_INVALID
    if attention or orphans or unapproved or (strict and drifted):
        return EXIT_FAILED
    also = " and have a current approved image" if approved else ""
    print(f"imgbuild check: all {total} assets match their manifests{also}")
    return EXIT_OK


def _approval_problems(root: Path, reviews: list[ReviewState]) -> list[str]:
    lines = []
    for state in reviews:
        req, approval = state.request, state.approval
        if approval is None:
            lines.append(
                f"unapproved: {req.asset_dir}: no approved image (run imgbuild approve {req.asset_id} <candidate>)"
            )
        elif state.status == STALE:
            lines.append(
                f"stale approval: {req.asset_dir}: approved candidate {approval.label} was made for an older request"
            )
        elif not os.path.exists(os.path.join(root, approval.file)):
            # The render stage would find nothing: committed approved images must stay in the tree.
            lines.append(
                f"unapproved: {req.asset_dir}: the approved image {approval.file} is missing"
                f" (restore it, or run imgbuild approve {req.asset_id} <candidate> again)"
            )
    return lines
