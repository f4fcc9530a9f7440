"""Where a project is: the folder holding imgbuild.yaml (cheap to import: no YAML, no Jinja)."""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import NotAProject

__all__ = ["CONFIG_FILE", "STATE_DIR", "find_project_root"]

CONFIG_FILE = "imgbuild.yaml"
STATE_DIR = ".imgbuild"


def find_project_root(start: Path) -> Path:
    """The nearest folder at or above `start` holding imgbuild.yaml.

    Raises NotAProject when there is none (nothing may then be written to `start`)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise NotAProject(start)
