"""`imgbuild merge`: the last step of a sharded build — write every batch's lock file.

A shard (``--shard i/n``, imgbuild/shard.py) writes only its own assets' folders, so n shard
branches merge with git without a conflict, and never a lock file, which holds a whole batch.
Once the shards' folders are in one tree (``git merge`` of the shard branches, or their artifacts
unpacked into one checkout), this writes the lock files from the records with the code an
unsharded build's lock task runs: no call, no network, the same bytes as one unsharded build.
"""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_FAILED, EXIT_INVALID, EXIT_OK
from imgbuild.records import AssetStore, acquire_build_lock, lock_path
from imgbuild.resolve import resolve
from imgbuild.state import LockWriter, StateIndex, assess

__all__ = ["merge"]


def merge(root: Path) -> int:
    """Write the lock files; 0 when every asset of every batch is made for its current request,
    1 (listing the others: a shard failed or did not run) when not, 2 when a record is broken."""
    # The approvals the edit rule makes requests from are the ones the lock files will state: a
    # lock file taken whole from one side of a git merge may lack the other side's.
    resolution = resolve(root, approvals_from_records=True)
    store = AssetStore(resolution.root)
    with acquire_build_lock(store.state_dir, "merge"):  # approve / reject must not write under it
        locks = LockWriter(StateIndex(resolution), fresh=True)  # from asset.json, whatever the lock says
        for batch_id in resolution.requests:
            path = lock_path(resolution.batch(batch_id).path).relative_to(resolution.root).as_posix()
            print(f"{'wrote' if locks.write(batch_id) else 'unchanged'}: {path}")
    states = assess(resolution, StateIndex(resolution, verify=True))
    stale = [s for s in states if s.stale]
    for state in stale:
        reasons = "; ".join(state.reasons)  # a broken one names its file itself
        print(
            f"{state.status}: {reasons}"
            if state.status == "broken"
            else f"{state.status}: {state.request.asset_dir}: {reasons}"
        )
    if stale:
        print(
            f"imgbuild merge: {len(stale)} of {len(states)} assets are not made for their current request"
            " (a shard failed or did not run): run that shard again, then merge"
        )
        return EXIT_INVALID if any(s.status == "broken" for s in stale) else EXIT_FAILED
    print(f"imgbuild merge: all {len(states)} assets are current; the lock files state them")
    return EXIT_OK
