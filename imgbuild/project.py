"""Where a project is: the folder holding imgbuild.yaml (cheap to import: no YAML, no Jinja).

A folder without imgbuild.yaml may point at its project from pyproject.toml, so that a repository
whose project lives in a subfolder works from its root too::

    [tool.imgbuild]
    project = "batches"    # relative to the folder of pyproject.toml
"""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import InvalidInput, NotAProject, Problem

__all__ = ["CONFIG_FILE", "PROVIDER_ENV", "PYPROJECT_FILE", "STATE_DIR", "find_project_root"]

CONFIG_FILE = "imgbuild.yaml"
PROVIDER_ENV = "IMGBUILD_PROVIDER"  # picks the provider over imgbuild.yaml's
PYPROJECT_FILE = "pyproject.toml"
STATE_DIR = ".imgbuild"


def find_project_root(start: Path) -> Path:
    """The project of `start`: the nearest folder at or above it holding imgbuild.yaml, or the
    folder a pyproject.toml on the way names in ``[tool.imgbuild] project``.

    Raises NotAProject when there is neither (nothing may then be written to `start`), and
    InvalidInput when a pyproject.toml cannot be read or points at a folder without imgbuild.yaml."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
        pointed = _pointed_project(folder / PYPROJECT_FILE)
        if pointed is not None:
            return pointed
    raise NotAProject(start)


def _pointed_project(pyproject: Path) -> Path | None:
    """The project folder `pyproject` names in ``[tool.imgbuild] project``; None without one."""
    if not pyproject.is_file():
        return None
    # Imported here: most runs find imgbuild.yaml first and never parse TOML.
    import tomllib

    try:
        with pyproject.open("rb") as file:
            data = tomllib.load(file)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        # Not skipped: this file may be the one meant to point at the project.
        raise InvalidInput([Problem(str(pyproject), None, "", f"cannot be read: {exc}")]) from None
    tool = data.get("tool")
    table = tool.get("imgbuild") if isinstance(tool, dict) else None
    if not isinstance(table, dict) or "project" not in table:
        return None
    where = "tool.imgbuild.project"
    value = table["project"]
    if not isinstance(value, str):
        raise InvalidInput([Problem(str(pyproject), None, where, f"must be a folder name, not {value!r}")])
    project = (pyproject.parent / value).resolve()
    if not (project / CONFIG_FILE).is_file():
        message = f"{value!r} names no imgbuild project: there is no {project / CONFIG_FILE}"
        raise InvalidInput([Problem(str(pyproject), None, where, message)])
    return project
