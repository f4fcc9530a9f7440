"""The seal of a lock file, as a fresh clone's check reads it (see imgbuild.noop, "sealed").

Kept apart from imgbuild.records.model: a check that finds every lock file sealed reads these few
small structs, and loading every record class for them would cost it more than the reading.
"""

from __future__ import annotations

import hashlib
import os

import msgspec

__all__ = [
    "LOCK_SCHEMA",
    "Seal",
    "SealedEntry",
    "SealedEvidence",
    "SealedImage",
    "Sources",
    "is_plain",
    "seal_digest",
    "sources_digest",
    "under",
]

LOCK_SCHEMA = "imgbuild.lock/2"


class SealedImage(msgspec.Struct, frozen=True):
    candidate: int
    file: str  # project-relative


class SealedEvidence(msgspec.Struct, frozen=True):
    path: str
    anchor: str | None
    sha256: str


class SealedEntry(msgspec.Struct, frozen=True):
    """What a sealed lock entry vouches with, decoded straight from the file (the other fields of
    the entry are skipped: the seal covers them, byte for byte)."""

    asset_dir: str
    status: str
    images: tuple[SealedImage, ...]
    source_basis: tuple[SealedEvidence, ...]
    record_sha256: str | None = None


class Sources(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The files a batch was resolved from, as bytes: what lets a fresh clone's check trust a
    sealed lock file without parsing a manifest (imgbuild.sealed).

    The inputs digest is of what the files *say* (a reordered manifest keeps it); this is of the
    files themselves, so it can be compared by hashing them. Written only when loading the project
    warned of nothing and no template name is computed at render time; a check trusts them only
    when rendering the batch did not warn either (imgbuild.resolve, imgbuild.sealed)."""

    made_by: str  # imgbuild's code and Jinja's release (imgbuild.cache.made_by)
    provider: str  # the provider the requests are for
    config_provider: str  # imgbuild.yaml's (or the default): with IMGBUILD_PROVIDER, what a check picks
    config_sha256: str | None  # imgbuild.yaml's; None: the project has none
    # assets_dir, batches_dir, personas_dir and templates_dir, as imgbuild.yaml gives them
    folders: dict[str, str]
    output: str  # the batch's output folder, as its manifest gives it
    persona: str  # the batch's persona file (also one of the files)
    # project-relative path -> sha256: the manifest, its persona, the templates its shots load,
    # the evidence and the reference images they cite
    files: dict[str, str]
    evidence: tuple[SealedEvidence, ...]  # what the manifests cite now, as a sealed entry states it
    # Rendering the batch warned (an attribute no prompt uses): a check must render it to say so.
    # Named rather than left out, so that a clone's first build knows these are the sources it
    # would write, and does not render the batch again to find out.
    warned: bool = False


def is_plain(relative: str) -> bool:
    """A path a lock file's sources may name: relative, normal (no ``.`` or ``..`` part, no
    doubled or trailing ``/``) and inside the project, so the path hashed is the path a load
    reads, whatever links or missing folders a ``..`` would have crossed. "." is the project."""
    if not relative or os.path.isabs(relative) or relative != os.path.normpath(relative):
        return False
    return relative != ".." and not relative.startswith("../")


def under(folder: str, name: str) -> str:
    """`name` in a folder named by a plain path ("." is the project)."""
    return name if folder == "." else f"{folder}/{name}"


class Seal(msgspec.Struct, frozen=True):
    """A lock file read for its seal: its header, and its entries as the bytes of the file."""

    schema: str
    batch: str
    manifest: str
    assets: msgspec.Raw
    inputs_sha256: str | None = None
    seal_sha256: str | None = None
    sources: Sources | None = None


def sources_digest(sources: Sources | None) -> str | None:
    """sha256 of the sources, in a canonical encoding (fields in order, mappings by key)."""
    if sources is None:
        return None
    return hashlib.sha256(msgspec.json.encode(sources, order="deterministic")).hexdigest()


def seal_digest(inputs_sha256: str, assets_sha256: str, sources_sha256: str | None = None) -> str:
    """The seal: sha256 of a batch's inputs digest, of the sha256 of the bytes of its lock file's
    entries (its "assets", as written) and of its sources' digest when it has them. Any change to
    an entry, a field, a byte — a hand edit, a merge that took it apart — and the seal no longer
    holds."""
    text = f"{inputs_sha256}\n{assets_sha256}"
    if sources_sha256 is not None:
        text += f"\n{sources_sha256}"
    return hashlib.sha256(text.encode("ascii")).hexdigest()
