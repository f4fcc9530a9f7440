"""The seal of a lock file, as a fresh clone's check reads it (see imgbuild.noop, "sealed").

Kept apart from imgbuild.records.model: a check that finds every lock file sealed reads these few
small structs, and loading every record class for them would cost it more than the reading.
"""

from __future__ import annotations

import hashlib

import msgspec

__all__ = ["LOCK_SCHEMA", "Seal", "SealedEntry", "SealedEvidence", "SealedImage", "seal_digest"]

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


class Seal(msgspec.Struct, frozen=True):
    """A lock file read for its seal: its header, and its entries as the bytes of the file."""

    schema: str
    batch: str
    manifest: str
    assets: msgspec.Raw
    inputs_sha256: str | None = None
    seal_sha256: str | None = None


def seal_digest(inputs_sha256: str, assets_sha256: str) -> str:
    """The seal: sha256 of a batch's inputs digest and of the sha256 of the bytes of its lock
    file's entries (its "assets", as written). Any change to an entry, a field, a byte — a hand
    edit, a merge that took it apart — and the seal no longer holds."""
    return hashlib.sha256(f"{inputs_sha256}\n{assets_sha256}".encode("ascii")).hexdigest()
