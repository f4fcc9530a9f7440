"""The validated input model: frozen dataclasses built from the YAML files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Batch", "Persona", "Project", "ProjectConfig", "Shot", "SourceRef", "VariantTest"]

Attributes = Mapping[str, str]
VaryAttributes = Mapping[str, tuple[str, ...]]


@dataclass(frozen=True)
class ProjectConfig:
    """imgbuild.yaml, with defaults filled in. Paths are project-relative POSIX strings."""

    root: Path
    file: str | None
    provider: str
    assets_dir: str
    batches_dir: str
    personas_dir: str
    templates_dir: str
    concurrency: int
    budget: float | None
    max_assets_per_batch: int
    providers: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def state_dir(self) -> Path:
        """Internal, gitignored execution state (doit database, temp files, logs, locks)."""
        return self.root / ".imgbuild"


@dataclass(frozen=True)
class SourceRef:
    """An evidence file, pinned by the hash of its content when the project was loaded."""

    path: str
    anchor: str | None
    note: str | None
    sha256: str

    def record(self) -> dict[str, str | None]:
        """The JSON form used in request records and lock files."""
        return {"path": self.path, "anchor": self.anchor, "sha256": self.sha256}


def cited_evidence(source_basis: Iterable[SourceRef], persona_evidence: Iterable[SourceRef]) -> tuple[SourceRef, ...]:
    """The evidence a batch's requests rest on: its source basis, then its persona's (each file
    and anchor once, the first kept)."""
    seen: dict[tuple[str, str | None], SourceRef] = {}
    for ref in (*source_basis, *persona_evidence):
        seen.setdefault((ref.path, ref.anchor), ref)
    return tuple(seen.values())


@dataclass(frozen=True)
class Persona:
    """A persona lock: the identity and the attribute values its evidence supports."""

    id: str
    file: str
    name: str
    traits: Attributes
    evidence: tuple[SourceRef, ...]
    allowed: VaryAttributes
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Shot:
    """One image need within a batch, with its own prompt and optional attribute overrides."""

    id: str
    index: int
    need: str
    template: str | None  # file name under templates/, or None for an inline prompt
    prompt: str | None
    negative: str | None
    candidates: int
    editable: tuple[str, ...]
    fixed: Attributes
    vary: VaryAttributes
    max_images: int = 1  # > 1: one sequential call per candidate makes an identity set
    references: tuple[SourceRef, ...] = ()  # reference images: the shot edits from them


@dataclass(frozen=True)
class VariantTest:
    """Values the evidence does not back, tried on purpose and marked everywhere."""

    id: str
    index: int
    reason: str
    shots: tuple[str, ...] | None
    fixed: Attributes
    vary: VaryAttributes


@dataclass(frozen=True)
class Batch:
    """One batch manifest."""

    id: str
    file: str  # as shown in messages
    path: Path  # absolute path of the manifest
    purpose: str
    persona: str
    source_basis: tuple[SourceRef, ...]
    output: str
    model: str
    quality: str
    quality_reason: str | None
    aspect_ratio: str
    output_format: str
    max_assets: int | None
    fixed: Attributes
    vary: VaryAttributes
    shots: tuple[Shot, ...]
    variant_tests: tuple[VariantTest, ...]
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict, compare=False, repr=False)
    models: tuple[str, ...] = ()  # set when `model` is a list: each shot is built on each of them

    @property
    def model_keys(self) -> tuple[str, ...]:
        """The endpoint keys the batch is built on: its list of models, or its one model."""
        return self.models or (self.model,)

    def line(self, *path: str | int) -> int | None:
        """The manifest line of the value at `path` (or of its nearest located parent)."""
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


@dataclass(frozen=True)
class Project:
    """Everything the input files say, validated."""

    config: ProjectConfig
    personas: Mapping[str, Persona]
    batches: tuple[Batch, ...]
    # project-relative path -> sha256 of each YAML file (imgbuild.yaml, personas, manifests) as it
    # was parsed: what a lock file's sources name (imgbuild.records.seal.Sources)
    read: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def root(self) -> Path:
        return self.config.root
