"""A fresh clone's `check` from its lock files alone: no manifest parsed, no prompt rendered.

A clone has no `.imgbuild/`, so `check` would load the whole project (YAML, schemas, templates,
expansion) to learn what the lock files already state. A sealed lock file also names the files its
batch was resolved from, each by sha256 (imgbuild.records.seal.Sources), and the seal covers them.
When every one of them still has those bytes, the project's files are the ones a load found valid
and warning-free, and the requests are the ones the entries were sealed for: this module answers
without loading the project, exactly where these all hold, and hands the check back otherwise:

* every ``*.yaml`` in the batches folder has a lock file sealed with sources, for that manifest,
  by this imgbuild (its code and Jinja's release: imgbuild.cache.made_by), under the same
  imgbuild.yaml (or none), for the provider a check picks now (``IMGBUILD_PROVIDER``, else
  imgbuild.yaml's), and every file it names has the bytes it names; and every lock file there
  has its manifest (a deleted batch's lock file says where its orphans are: imgbuild.orphans);
* every ``*.yaml`` in the personas folder is the persona of one of those batches (a persona no
  batch uses is validated by a load, and so is one cited only as evidence: it was hashed as a
  file, its own evidence was not), and neither folder holds a ``*.yml`` (a load warns of it);
* no asset id is in two lock files (what a load checks across batches: two branches may each add
  a batch, valid alone);
* every file and folder the sources name is named by a plain path (no ``..``:
  records.seal.is_plain) and reached without a symbolic link (a load follows links and refuses
  those that lead out of the project; here any link hands the check back); asset folders and
  their files are reached as a full assessment reaches them;
* rendering the batch did not warn (`Sources.warned`: a load would show the warning);
* every entry vouches as in imgbuild.noop (its images exist, its asset.json has the sealed bytes,
  it was made from the evidence cited now).

Nothing is written: the no-op index needs digests of the parsed spec, so a check on a clone takes
this way until a build or a full check has filled `.imgbuild/`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from imgbuild import cache
from imgbuild.project import CONFIG_FILE, PROVIDER_ENV
from imgbuild.records.lock import holds, read_seal, sealed_entries
from imgbuild.records.seal import is_plain, under

if TYPE_CHECKING:
    from imgbuild.records.seal import Seal, SealedEntry, SealedEvidence, Sources

__all__ = ["Vouched", "vouch", "vouched_entries"]


# Where a load would look for the manifests, read from imgbuild.yaml without parsing it: only a
# hint, confirmed by the lock files (each names the folders of the imgbuild.yaml it was sealed
# under, and that file's sha256). Anything this does not read plainly hands the check back.
_BATCHES_DIR = re.compile(rb"^batches_dir:[ \t]*([\w./-]+)[ \t]*(?:[ \t]#[^\n]*)?\r?$", re.MULTILINE)
_DEFAULT_BATCHES_DIR = "batches"
_MAX_CONFIG_BYTES = 1 << 26  # far over the load's cap: a file that large was never sealed


@dataclass(frozen=True)
class Vouched:
    """What the lock files vouch for: every asset of every batch."""

    counts: Mapping[str, int]  # batch id -> assets
    asset_dirs: frozenset[str]  # declared: not orphans
    folders: tuple[str, ...]  # where asset folders live (imgbuild.yaml's and each batch's output)

    @property
    def assets(self) -> int:
        return sum(self.counts.values())


def vouch(root: Path) -> Vouched | None:
    """What the lock files of the project at `root` (resolved) vouch for without loading it; None
    when any condition of the module's docstring does not hold. One lock file is held at a time:
    each batch is checked whole before the next is read."""
    files = _Files(root)
    usable, config, config_sha256 = files.config()
    hint = _batches_dir(config) if usable else None
    names = files.listing(hint) if hint is not None else None
    if hint is None or not names:
        return None
    manifests = [name for name in names if name.endswith(".yaml") and name != CONFIG_FILE]
    if not manifests or any(name.endswith(".yml") for name in names):
        return None
    if any(f"{name.removesuffix('.lock.json')}.yaml" not in names for name in names if name.endswith(".lock.json")):
        return None  # a deleted batch's lock file: its asset folders are orphans a load looks for
    from imgbuild.providers import provider_names

    now = _Now(
        made_by=cache.made_by(),
        config_sha256=config_sha256,
        batches_dir=hint,
        provider=os.environ.get(PROVIDER_ENV),
        providers=frozenset(provider_names()),
    )
    base = f"{root}/"
    first: Sources | None = None
    counts: dict[str, int] = {}
    seen: set[str] = set()  # asset ids
    dirs: set[str] = set()
    personas: set[str] = set()
    outputs: set[str] = set()
    for name in manifests:
        stem = name.removesuffix(".yaml")
        seal = read_seal(root / hint / f"{stem}.lock.json")
        sources = _trusted(seal, stem, under(hint, name), first, now, files)
        entries = sealed_entries(seal) if seal is not None and sources is not None else None
        if sources is None or entries is None or not seen.isdisjoint(entries):
            return None
        first = first or sources
        seen.update(entries)
        found = vouched_entries(base, entries, sources.evidence, check=True, stamped=False)
        if found is None:
            return None
        counts[stem] = found[0]
        dirs.update(record.rsplit("/", 1)[0] for record in found[2])
        personas.add(sources.persona)
        outputs.add(sources.output)
    assert first is not None
    folders = sorted({first.folders.get("assets_dir", ""), *outputs})
    if not all(files.plain(folder) for folder in (*folders, first.folders.get("templates_dir", ""))):
        return None
    if not _personas_covered(files, first.folders.get("personas_dir", ""), personas):
        return None
    return Vouched(counts, frozenset(dirs), tuple(folders))


class _Now(NamedTuple):
    """What the lock files' sources must agree with, as the check finds it."""

    made_by: str
    config_sha256: str | None
    batches_dir: str
    provider: str | None  # IMGBUILD_PROVIDER
    providers: frozenset[str]  # the providers this imgbuild knows


def _trusted(
    seal: Seal | None, stem: str, manifest: str, first: Sources | None, now: _Now, files: _Files
) -> Sources | None:
    """The sources of a manifest's sealed lock file, when they vouch for it now: written for it,
    by this imgbuild, under this imgbuild.yaml (the same folders and provider as the lock files
    before it), for the provider a check picks, every file with its bytes, and the seal holding."""
    sources = seal.sources if seal is not None else None
    if seal is None or sources is None or sources.warned or seal.inputs_sha256 is None:
        return None
    if (seal.batch, seal.manifest) != (stem, manifest) or manifest not in sources.files:
        return None
    if sources.made_by != now.made_by or sources.config_sha256 != now.config_sha256:
        return None
    if first is None:
        if sources.folders.get("batches_dir") != now.batches_dir or sources.provider not in now.providers:
            return None
    elif (sources.folders, sources.config_provider) != (first.folders, first.config_provider):
        return None
    if sources.provider != (now.provider or sources.config_provider):
        return None
    if not all(files.sha256(path) == sha256 for path, sha256 in sources.files.items()):
        return None
    return sources if holds(seal, seal.inputs_sha256) else None


def _batches_dir(config: bytes) -> str | None:
    found = _BATCHES_DIR.findall(config)
    if not found:
        return _DEFAULT_BATCHES_DIR if b"batches_dir" not in config else None
    # Lexically, as the loader takes it (imgbuild.spec.load.read_config).
    return os.path.normpath(found[0].decode("ascii")) if len(found) == 1 else None


def _personas_covered(files: _Files, folder: str, personas: set[str]) -> bool:
    """Every persona file is the persona of some sealed batch (so it is valid: one cited only as
    a batch's evidence was hashed as a file, its own evidence was not)."""
    names = files.listing(folder)
    if names is None:
        return False
    for name in names:
        if name.endswith(".yml"):
            return False
        if name.endswith(".yaml") and under(folder, name) not in personas:
            return False
    return True


class _Files:
    """The project's files as a load would read them, looked at plainly: by project-relative
    paths that are normal (no ``..``, not absolute) and reached without a symbolic link."""

    def __init__(self, root: Path) -> None:
        self.base = f"{root}/"
        self._hashes: dict[str, str | None] = {}

    def plain(self, relative: str) -> bool:
        if not is_plain(relative):
            return False
        if relative == ".":
            return True
        path = self.base + relative
        try:
            return os.path.realpath(path) == path
        except ValueError:  # a NUL byte
            return False

    def sha256(self, relative: str) -> str | None:
        """sha256 of a plain regular file; None for anything else."""
        if relative not in self._hashes:
            found = cache.stamped_sha256(self.base + relative) if self.plain(relative) else None
            self._hashes[relative] = found[1] if found is not None else None
        return self._hashes[relative]

    def listing(self, relative: str) -> list[str] | None:
        """The names in a plain folder, sorted; None when it is not one."""
        if not self.plain(relative):
            return None
        try:
            return sorted(os.listdir(self.base + relative))
        except (OSError, ValueError):
            return None

    def config(self) -> tuple[bool, bytes, str | None]:
        """(usable, bytes, sha256) of imgbuild.yaml: (True, b"", None) when there is none; not
        usable when it is there but not a plain regular file (a load tells what it makes of it)."""
        import hashlib
        import stat

        path = self.base + CONFIG_FILE
        odd = (False, b"", None)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return True, b"", None
        except OSError:
            return odd
        if not stat.S_ISREG(info.st_mode):
            return odd
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            return odd
        try:
            with os.fdopen(fd, "rb") as file:
                data = file.read(_MAX_CONFIG_BYTES + 1)  # to its end: the load parses it whole
        except OSError:
            return odd
        if len(data) > _MAX_CONFIG_BYTES:
            return odd
        return True, data, hashlib.sha256(data).hexdigest()


def vouched_entries(
    base: str,
    entries: Mapping[str, SealedEntry],
    evidence: tuple[SealedEvidence, ...],
    *,
    check: bool,
    stamped: bool = True,
) -> tuple[int, list[str], dict[str, cache.Stamp | None]] | None:
    """What the entries of a sealed lock file vouch for, as a lock entry does, for a build or for
    a `check`: (images, or assets for check; the files they name; for check each asset.json with
    its stamp, as hashed, unless not `stamped`), or None when one does not: not complete, an image
    or asset.json gone, and for check an asset.json that is not the sealed bytes or evidence other
    than `evidence` (what the manifests cite now)."""
    files: list[str] = []
    records: dict[str, cache.Stamp | None] = {}  # asset.json -> its stamp, as hashed
    digest = cache.stamped_sha256 if stamped else cache.content_sha256
    images = 0
    for entry in entries.values():
        names = [image.file for image in entry.images]
        if entry.status != "complete" or not cache.all_present(base, names):
            return None
        files += names
        record = f"{entry.asset_dir}/asset.json"
        if not check:
            if not cache.all_present(base, (record,)):
                return None
            images += len({image.candidate for image in entry.images})
            files.append(record)
            continue
        if entry.source_basis != evidence or entry.record_sha256 is None:
            return None  # drift is reported by the full assessment, with its place
        found = digest(base + record)  # None for a name no file can have, too
        if found is None or found[1] != entry.record_sha256:
            return None
        records[record] = found[0]
    return (len(entries) if check else images), files, records
