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

A fresh clone has no index, and its stamps would not match one. There the batch's lock file
answers, when it is **sealed**: the build that wrote it found every entry current for the
requests of the batch's inputs, and recorded their portable digest (`inputs_sha256`: the
manifest, persona, config, templates, evidence and reference hashes, the provider and imgbuild's
own code — imgbuild.resolve), per entry the sha256 of an asset.json that read as a valid record,
and `seal_sha256` over both and over the bytes of every entry, so a lock file edited by hand or
taken apart by a merge is not trusted. When the digest of the inputs now is the same and the
seal holds, the requests are the ones the entries were current for, without rendering one; an
entry then vouches, as a lock entry does, while its image files exist and (for check) its
asset.json still has the sealed bytes and the evidence it was made from is the evidence cited
now. Anything else hands the batch to the full assessment. The batch's index is written on the
way, so the next run stats instead.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

import msgspec

from imgbuild import cache
from imgbuild.records.lock import holds, lock_path, read_seal, sealed_entries
from imgbuild.resolve import Resolution, Spec, load_spec, resolve
from imgbuild.sealed import Vouched, vouch, vouched_entries

if TYPE_CHECKING:
    from imgbuild.records.seal import Sources
    from imgbuild.spec.model import Batch
    from imgbuild.state import AssetState, StateIndex

__all__ = ["BUILD", "CHECK", "Source", "check_source", "enter", "enter_checked", "source"]

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


def check_source(root: Path) -> Source | Vouched:
    """What `check` assesses: on a fresh clone (no cached spec) what the lock files vouch for
    without loading the project, when they vouch for all of it (imgbuild.sealed); else `source`."""
    started_ns = time.time_ns()
    root = root.resolve()
    key = cache.cache_key(root, None)
    spec = cache.load_spec(root, key, Spec)
    if spec is None:
        found = vouch(root)
        if found is not None:
            return found
    return source(root, CHECK, spec=spec, started_ns=started_ns)


def source(
    root: Path, purpose: str, *, provider: str | None = None, spec: Spec | None = None, started_ns: int | None = None
) -> Source:
    """Resolve only the batches the index does not vouch for, for `purpose` (BUILD or CHECK)
    (`spec`: the project's, when the caller has it)."""
    started_ns = started_ns or time.time_ns()
    root = root.resolve()
    key = cache.cache_key(root, provider)
    spec = spec or load_spec(root, provider, key)
    counts: dict[str, int] = {}
    dirs: set[str] = set()
    for batch in spec.project.batches:
        found = cache.batch_verdict(root, key, purpose, batch.id, spec.digests[batch.id], lock_path(batch.path))
        vouched: tuple[int, Iterable[tuple[str, cache.Stamp]]] | None = None
        if found is not None:
            vouched = found.images, found.stamps
        else:
            vouched = _sealed(root, key, spec, batch, purpose, started_ns)
        if vouched is not None:
            counts[batch.id] = vouched[0]
            if purpose == CHECK:  # their asset folders are declared: not orphans
                dirs.update(name.rsplit("/", 1)[0] for name, _ in vouched[1])
    others = [b.id for b in spec.project.batches if b.id not in counts]
    resolution = resolve(root, provider=provider, batches=others, spec=spec)
    return Source(resolution, counts, frozenset(dirs), started_ns, indexed=True)


def _sealed(
    root: Path, key: str, spec: Spec, batch: Batch, purpose: str, started_ns: int
) -> tuple[int, Iterable[tuple[str, cache.Stamp]]] | None:
    """What the batch's sealed lock file vouches for (see the module's docstring), stored as the
    batch's index: (images or assets, (asset.json, stamp) pairs for check); None when it does not
    vouch for every asset of the batch."""
    lock = lock_path(batch.path)
    seal = read_seal(lock)
    manifest = batch.path.relative_to(root).as_posix()
    if seal is None or (seal.batch, seal.manifest) != (batch.id, manifest) or not holds(seal, spec.inputs[batch.id]):
        return None
    if purpose == BUILD and not _same_sources(seal.sources, spec.sources.get(batch.id)):
        return None  # the same requests of other bytes (a comment): the build writes the sources anew
    entries = sealed_entries(seal)
    if entries is None:
        return None
    from imgbuild.records.seal import SealedEvidence
    from imgbuild.spec.model import cited_evidence

    persona = spec.project.personas.get(batch.persona)
    cited = cited_evidence(batch.source_basis, persona.evidence if persona is not None else ())
    evidence = tuple(SealedEvidence(ref.path, ref.anchor, ref.sha256) for ref in cited)
    found = vouched_entries(f"{root}/", entries, evidence, check=purpose == CHECK)
    if found is None:
        return None
    count, files, vouched = found
    records = cast(dict[str, cache.Stamp], vouched)  # stamped: every value is a stamp
    digest = spec.digests[batch.id]
    cache.store_verdict(root, key, purpose, batch.id, digest, lock, count, files, records, started_ns, known=records)
    return count, records.items()


def _same_sources(sealed: Sources | None, loaded: Sources | None) -> bool:
    """The sources a build would write: the loaded ones, but whether rendering warned, which only
    rendering (or the lock file) can tell."""
    if sealed is None or loaded is None:
        return sealed is loaded
    return msgspec.structs.replace(sealed, warned=False) == loaded


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
