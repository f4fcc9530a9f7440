"""Where in the input files an asset's state comes from: the manifest line to point a person at.

`imgbuild check --format github` annotates these lines on a pull request, and `check --json`
carries them for other tools. A changed request points at the line that sets the field that
changed (a shot's own value before its variant test's before the batch's), a template edit at
the template, a persona trait at the persona file; anything else at the shot.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from imgbuild.orphans import Orphan
    from imgbuild.requests import ImageRequest
    from imgbuild.resolve import Resolution
    from imgbuild.spec.model import Batch
    from imgbuild.state import AssetState, EvidenceChange

__all__ = ["Location", "locate_evidence", "locate_orphan", "locate_request", "locate_state"]


@dataclass(frozen=True)
class Location:
    """A project-relative file and a 1-based line (None: the file as a whole)."""

    file: str
    line: int | None = None


def locate_state(resolution: Resolution, state: AssetState) -> Location:
    """The input line that made `state` stale (or that declares its asset)."""
    req = state.request
    for field in state.fields:
        found = _locate_field(resolution, req, field)
        if found is not None:
            return found
    if state.status == "incomplete":
        return _batch_location(resolution, req, "candidates")
    return locate_request(resolution, req)


def locate_request(resolution: Resolution, req: ImageRequest) -> Location:
    """The manifest line that declares `req`'s asset: its variant test, else its shot."""
    batch = resolution.batch(req.batch)
    return Location(_relative(resolution, batch.path), _shot_line(batch, req))


def locate_evidence(change: EvidenceChange) -> Location:
    """The evidence file itself."""
    return Location(change.path)


def locate_orphan(orphan: Orphan) -> Location:
    """An orphan has no manifest line: its records are what is left."""
    return Location(f"{orphan.asset_dir}/asset.json")


def _locate_field(resolution: Resolution, req: ImageRequest, field: str) -> Location | None:
    group, _, key = field.partition(".")
    if field.startswith("persona.traits."):
        persona = resolution.project.personas.get(req.persona)
        if persona is None:
            return None
        config = resolution.project.config
        path = resolution.root / config.personas_dir / f"{persona.id}.yaml"
        trait = field.removeprefix("persona.traits.")
        return Location(_relative(resolution, path), persona.lines.get(("traits", trait)) or 1)
    if field == "prompt" and req.template != "inline":
        config = resolution.project.config
        return Location(_relative(resolution, resolution.root / config.templates_dir / req.template))
    if group in ("fixed", "vary") and key:
        return _batch_location(resolution, req, group, key)
    name = {"prompt": "prompt", "negative_prompt": "negative", "size": "aspect_ratio"}.get(field, field)
    return _batch_location(resolution, req, name)


def _batch_location(resolution: Resolution, req: ImageRequest, *key: str) -> Location:
    """The most specific line that sets `key` for `req`: its shot, its variant test, its batch."""
    batch = resolution.batch(req.batch)
    candidates: list[tuple[str | int, ...]] = []
    shot = _index(batch.shots, req.shot)
    if shot is not None:
        candidates.append(("shots", shot, *key))
    variant = _index(batch.variant_tests, req.variant_test)
    if variant is not None:
        candidates.append(("variant_tests", variant, *key))
    if key[0] == "vary" and len(key) == 2 and req.vary.get(key[1]) in batch.vary.get(key[1], ()):
        candidates.append(("vary", key[1], batch.vary[key[1]].index(req.vary[key[1]])))
    candidates.append(key)
    for path in candidates:
        line = batch.lines.get(path)
        if line is not None:
            return Location(_relative(resolution, batch.path), line)
    return Location(_relative(resolution, batch.path), _shot_line(batch, req))


def _shot_line(batch: Batch, req: ImageRequest) -> int | None:
    variant = _index(batch.variant_tests, req.variant_test)
    if variant is not None:
        return batch.line("variant_tests", variant)
    shot = _index(batch.shots, req.shot)
    return batch.line("shots", shot) if shot is not None else None


def _index(items: tuple[object, ...], wanted: str | None) -> int | None:
    if wanted is None:
        return None
    for item in items:
        if getattr(item, "id", None) == wanted:
            index = getattr(item, "index", None)
            return index if isinstance(index, int) else None
    return None


def _relative(resolution: Resolution, path: Path) -> str:
    try:
        return path.resolve().relative_to(resolution.root.resolve()).as_posix()
    except ValueError:
        return str(path)
