"""The export folder's manifest, ``imgbuild-export.json``: what `imgbuild export` handed to the
render stage, one entry per image (schema ``imgbuild.export/1``).

Written last, atomically, after every image it lists; the next export reads it to remove the
images it wrote before and no longer lists (an asset that lost its approval), and nothing else.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from imgbuild.records.atomic import atomic_write_json
from imgbuild.records.model import JSON, EvidenceRef

__all__ = ["EXPORT_MANIFEST", "EXPORT_SCHEMA", "ExportedImage", "previous_export_files", "write_export_manifest"]

EXPORT_SCHEMA = "imgbuild.export/1"
EXPORT_MANIFEST = "imgbuild-export.json"


@dataclass(frozen=True)
class ExportedImage:
    """One approved image as exported, with what it is, what made it and who approved it."""

    id: str
    batch: str
    shot: str
    variant_test: str | None
    file: str  # relative to the export folder: <batch>/<asset-id>.<ext>
    sha256: str  # of the exported file (the XMP packet included)
    source_file: str  # the approved copy, project-relative
    source_sha256: str  # of the approved copy: the bytes the provider sent
    attributes: Mapping[str, Any]
    prompt_hash: str
    request_hash: str
    model: str
    provider: str
    provider_model: str
    source_basis: tuple[EvidenceRef, ...]
    approval: Mapping[str, Any]  # candidate, by, at, override, note, checklist

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "batch": self.batch,
            "shot": self.shot,
            "variant_test": self.variant_test,
            "file": self.file,
            "sha256": self.sha256,
            "source": {"file": self.source_file, "sha256": self.source_sha256},
            "attributes": dict(self.attributes),
            "prompt_hash": self.prompt_hash,
            "request_hash": self.request_hash,
            "model": self.model,
            "provider": self.provider,
            "provider_model": self.provider_model,
            "source_basis": [ref.to_json() for ref in self.source_basis],
            "approval": dict(self.approval),
        }


def write_export_manifest(
    folder: Path, images: Sequence[ExportedImage], missing: Sequence[Mapping[str, str]], *, tool: str
) -> None:
    """The manifest, sorted by asset id: stable bytes for the same export."""
    atomic_write_json(
        folder / EXPORT_MANIFEST,
        {
            "schema": EXPORT_SCHEMA,
            "tool": tool,
            "assets": [image.to_json() for image in sorted(images, key=lambda i: i.id)],
            "missing": sorted(missing, key=lambda m: m["id"]),
        },
    )


def previous_export_files(folder: Path) -> list[str]:
    """The image files the previous export listed (relative, inside `folder`); none when there
    was none or its manifest cannot be read (then nothing is removed)."""
    try:
        data = json.loads((folder / EXPORT_MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    if not isinstance(data, dict) or data.get("schema") != EXPORT_SCHEMA or not isinstance(data.get("assets"), list):
        return []
    files = []
    for entry in data["assets"]:
        file = entry.get("file") if isinstance(entry, dict) else None
        if isinstance(file, str) and not PurePosixPath(file).is_absolute() and ".." not in PurePosixPath(file).parts:
            files.append(file)
    return files
