"""`imgbuild prune`: remove what no manifest declares any more — orphaned asset folders and the
lock files of deleted batches. A dry run unless ``--yes``; an orphan holding approved images is
kept unless ``--approved`` says to remove those too."""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_OK, UsageError
from imgbuild.orphans import find_orphans, stale_locks
from imgbuild.records import AssetStore, BuildLocked, acquire_build_lock, remove_lock
from imgbuild.resolve import resolve

__all__ = ["prune"]


def prune(root: Path, *, yes: bool = False, approved: bool = False) -> int:
    """List (and with `yes` remove) orphaned asset folders and the lock files of deleted batches."""
    resolution = resolve(root)
    store = AssetStore(resolution.root)
    verb = "removed" if yes else "would remove"
    orphans = find_orphans(resolution)
    locks = stale_locks(resolution)
    try:  # a running build writes these folders: remove nothing under it
        held = acquire_build_lock(store.state_dir, "prune") if yes and (orphans or locks) else None
    except BuildLocked as exc:
        raise UsageError(f"a build is running in this project ({exc.holder}); prune when it has finished") from None
    kept = removed = 0
    try:
        for orphan in orphans:
            if orphan.approved and not approved:
                kept += 1
                print(f"kept {orphan.asset_dir}: it holds approved images (add --approved to remove those too)")
                continue
            removed += 1
            print(f"{verb} {orphan.asset_dir}/" + (" (with its approved images)" if orphan.approved else ""))
            if yes:
                store.remove_asset(orphan.asset_dir)
        for lock in locks:
            removed += 1
            print(f"{verb} {lock.relative_to(resolution.root).as_posix()} (its batch manifest is gone)")
            if yes:
                remove_lock(lock)
    finally:
        if held is not None:
            held.close()
    if not removed and not kept:
        print("imgbuild prune: nothing to remove")
    elif not yes and removed:
        print(f"imgbuild prune: a dry run; `imgbuild prune --yes` removes these {removed}")
    return EXIT_OK
