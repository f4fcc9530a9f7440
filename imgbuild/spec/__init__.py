"""Spec: load, validate and expand a project's YAML input into frozen objects."""

from __future__ import annotations

from imgbuild.spec.expand import Asset, expand_project
from imgbuild.spec.load import load_project
from imgbuild.spec.model import Batch, Persona, Project, ProjectConfig, Shot, SourceRef, VariantTest

__all__ = [
    "Asset",
    "Batch",
    "Persona",
    "Project",
    "ProjectConfig",
    "Shot",
    "SourceRef",
    "VariantTest",
    "expand_project",
    "load_project",
]
