"""The no-op index in use: which batches a build or a check need not look at again.

A build or a check that finds a batch wholly in order records so in the index (imgbuild.cache:
one small file per batch and purpose). The next run checks, per batch, the key, the batch's digest,
the lock file's stamp and the files the record names (a stat each), and hands on only the batches
that may have changed: those are resolved and assessed as always, the others are counted. The
decision rests on the same evidence as the full assessment, so the answer is the same:

* **build** (``current``): what vouches for an image in a build: the lock entry describes the
  current request (the lock file and the digest are unchanged) and asset.json and every image
  file the entry names exist;
* **check** (``checked``): that, and every asset.json is unchanged (same stamp): what `check`
  reads of it (broken, outdated, evidence) cannot have changed either.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from imgbuild import cache
from imgbuild.records import lock_path
from imgbuild.resolve import Resolution, load_spec, resolve
from imgbuild.state import AssetState, StateIndex

__all__ = ["BUILD", "CHECK", "Source", "enter", "enter_checked", "source"]

BUILD, CHECK = "current", "checked"


@dataclass(frozen=True)
class Source:
    """The resolution of the batches that may need work, and what the index vouched for."""

    resolution: Resolution
    counts: Mapping[str, int] = field(default_factory=dict)  # batch id -> images (build) / assets (check)
    asset_dirs: frozenset[str] = frozenset()  # of the vouched batches (check: they are not orphans)
    started_ns: int = 0
    indexed: bool = False  # made by `source`: the whole project, each batch resolved or vouched for

    @property
    def vouched(self) -> int:
        return sum(self.counts.values())


def source(root: Path, purpose: str, *, provider: str | None = None) -> Source:
    """Resolve only the batches the index does not vouch for, for `purpose` (BUILD or CHECK)."""
    started_ns = time.time_ns()
    root = root.resolve()
    key = cache.cache_key(root, provider)
    spec = load_spec(root, provider, key)
    counts: dict[str, int] = {}
    dirs: set[str] = set()
    for batch in spec.project.batches:
        found = cache.batch_verdict(root, key, purpose, batch.id, spec.digests[batch.id], lock_path(batch.path))
        if found is not None:
            counts[batch.id] = found.images
            if purpose == CHECK:  # their asset folders are declared: not orphans
                dirs.update(name.rsplit("/", 1)[0] for name, _ in found.stamps)
    others = [b.id for b in spec.project.batches if b.id not in counts]
    resolution = resolve(root, provider=provider, batches=others, spec=spec)
    return Source(resolution, counts, frozenset(dirs), started_ns, indexed=True)


def enter(resolution: Resolution, index: StateIndex, batch_id: str, started_ns: int) -> bool:
    """Record that every image of the batch is current (a build found it so). True when stored."""
    files: list[str] = []
    images = 0
    for req in resolution.requests[batch_id]:
        found = index.vouched_files(req)
        if found is None:
            return False
        files += found
        images += req.candidates
    return _store(resolution, BUILD, batch_id, images, files, [], started_ns)


def enter_checked(resolution: Resolution, index: StateIndex, states: Iterable[AssetState], started_ns: int) -> None:
    """Record each batch whose every asset `check` found in order: current, its records as the
    manifests say, made from the evidence cited now."""
    by_batch: dict[str, list[AssetState]] = {}
    for state in states:
        by_batch.setdefault(state.request.batch, []).append(state)
    for batch_id, found in by_batch.items():
        if len(found) != len(resolution.requests.get(batch_id, ())):
            continue
        if any(s.stale or s.outdated or s.evidence for s in found):
            continue
        files: list[str] = []
        records: list[str] = []
        for state in found:
            vouched = index.vouched_files(state.request)
            if vouched is None:
                break
            records.append(vouched[0])  # asset.json: stamped, not only present
            files += vouched[1:]
        else:
            _store(resolution, CHECK, batch_id, len(found), files, records, started_ns)


def _store(
    resolution: Resolution,
    purpose: str,
    batch_id: str,
    count: int,
    files: list[str],
    records: list[str],
    started_ns: int,
) -> bool:
    if not resolution.key:
        return False
    lock = lock_path(resolution.batch(batch_id).path)
    digest = resolution.digests[batch_id]
    return cache.store_verdict(
        resolution.root, resolution.key, purpose, batch_id, digest, lock, count, files, records, started_ns
    )
