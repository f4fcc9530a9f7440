"""`imgbuild prune`: remove what no manifest declares any more — orphaned asset folders and the
lock files of deleted batches. A dry run unless ``--yes``; an orphan holding approved images is
kept unless ``--approved`` says to remove those too."""

from __future__ import annotations

import shutil
from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.records import lock_path
from imgbuild.resolve import resolve
from imgbuild.state import find_orphans

__all__ = ["prune"]


def prune(root: Path, *, yes: bool = False, approved: bool = False) -> int:
    resolution = resolve(root)
    config = resolution.project.config
    verb = "removed" if yes else "would remove"
    kept = removed = 0
    for orphan in find_orphans(resolution):
        if orphan.approved and not approved:
            kept += 1
            print(f"kept {orphan.asset_dir}: it holds approved images (add --approved to remove those too)")
            continue
        removed += 1
        print(f"{verb} {orphan.asset_dir}/" + (" (with its approved images)" if orphan.approved else ""))
        if yes:
            shutil.rmtree(resolution.root / orphan.asset_dir)
    declared = {lock_path(b.path) for b in resolution.project.batches}
    batches_dir = resolution.root / config.batches_dir
    for lock in sorted(batches_dir.glob("*.lock.json")) if batches_dir.is_dir() else ():
        if lock not in declared and not lock.with_name(lock.name.removesuffix(".lock.json") + ".yaml").exists():
            removed += 1
            print(f"{verb} {lock.relative_to(resolution.root).as_posix()} (its batch manifest is gone)")
            if yes:
                lock.unlink()
    if not removed and not kept:
        print("imgbuild prune: nothing to remove")
    elif not yes and removed:
        print(f"imgbuild prune: a dry run; `imgbuild prune --yes` removes these {removed}")
    return EXIT_OK
