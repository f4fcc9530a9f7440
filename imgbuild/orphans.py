"""Orphans: asset folders under an output folder that no manifest declares any more.

Found by listing the output folders (imgbuild.records.layout); only an orphan's own record is
read, so a check that the no-op index answers loads no record class unless there is one.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from imgbuild.records.layout import asset_dirs

if TYPE_CHECKING:
    from imgbuild.resolve import Resolution

__all__ = ["Orphan", "find_orphans", "orphans_in", "stale_locks"]


@dataclass(frozen=True)
class Orphan:
    """An asset folder that no manifest declares any more."""

    asset_dir: str
    batch: str | None
    approved: bool  # it holds approved images

    def reason(self) -> str:
        was = f" (was in batch {self.batch})" if self.batch else ""
        return f"no manifest declares this asset any more{was} — restore its values, or `imgbuild prune` it"


def find_orphans(resolution: Resolution, declared: Iterable[str] = ()) -> list[Orphan]:
    """Asset folders (holding an asset.json) under any output folder that no batch declares
    (`declared`: asset folders of batches the resolution leaves out, see imgbuild.noop)."""
    known = {req.asset_dir for req in resolution.all_requests()} | set(declared)
    folders = {resolution.project.config.assets_dir, *(b.output for b in resolution.project.batches)}
    return orphans_in(resolution.root, folders | _stale_outputs(resolution), known)


def stale_locks(resolution: Resolution) -> list[Path]:
    """The lock files of deleted batches: in the batches folder, with no manifest beside them."""
    from imgbuild.records.lock import lock_files, lock_path

    declared = {lock_path(b.path) for b in resolution.project.batches}
    folder = resolution.root / resolution.project.config.batches_dir
    return [
        lock
        for lock in lock_files(folder)
        if lock not in declared and not lock.with_name(lock.name.removesuffix(".lock.json") + ".yaml").exists()
    ]


def _stale_outputs(resolution: Resolution) -> set[str]:
    """The folders a deleted batch's lock file says its assets are in: a batch with an output of
    its own leaves its asset folders there, which no other manifest names (until `imgbuild prune`
    removes them, and the lock file with them)."""
    locks = stale_locks(resolution)
    if not locks:
        return set()
    from imgbuild.records.lock import read_lock
    from imgbuild.records.seal import is_plain

    folders: set[str] = set()
    for path in locks:
        lock = read_lock(path)
        for entry in (lock.entries if lock is not None else {}).values():
            folders.add(entry.asset_dir.rsplit("/", 1)[0] if "/" in entry.asset_dir else ".")
    # A lock file is data: only a folder inside the project, named plainly, is looked into.
    return {folder for folder in folders if is_plain(folder) and "\0" not in folder}


def orphans_in(root: Path, folders: Iterable[str], known: Collection[str]) -> list[Orphan]:
    """Asset folders (holding an asset.json) under any of `folders` that are not in `known`."""
    found = [asset_dir for folder in sorted(set(folders)) for asset_dir in asset_dirs(root, folder, skip=known)]
    if not found:
        return []
    from imgbuild.records import AssetStore, BrokenRecord

    store = AssetStore(root)
    orphans = []
    for asset_dir in found:
        try:
            record = store.read_asset(asset_dir)
        except BrokenRecord:
            record = None
        orphans.append(Orphan(asset_dir, record.batch if record else None, store.has_approved_images(asset_dir)))
    return orphans
