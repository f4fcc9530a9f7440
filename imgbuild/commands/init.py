"""`imgbuild init`: scaffold a working project that builds as it is."""

from __future__ import annotations

from importlib import resources
from importlib.abc import Traversable
from pathlib import Path

from imgbuild.errors import EXIT_INVALID, EXIT_OK, FatalError
from imgbuild.records.atomic import atomic_write_bytes
from imgbuild.spec.schema import install_editor_schemas

__all__ = ["init"]

# Packaged names that cannot be shipped under their real name.
_RENAMES = {"gitignore": ".gitignore"}


class ProjectExists(FatalError):
    exit_code = EXIT_INVALID


def _scaffold() -> dict[str, bytes]:
    root = resources.files("imgbuild").joinpath("data/init")
    files: dict[str, bytes] = {}

    def walk(node: Traversable, prefix: str) -> None:
        for child in node.iterdir():
            name = _RENAMES.get(child.name, child.name)
            if child.is_dir():
                walk(child, f"{prefix}{name}/")
            elif not name.endswith((".pyc", ".pyo")):
                files[f"{prefix}{name}"] = child.read_bytes()

    walk(root, "")
    return files


def init(folder: Path) -> int:
    """Write the scaffold into `folder`; refuse (changing nothing) if any of its files exist."""
    files = _scaffold()
    clashes = sorted(name for name in files if (folder / name).exists())
    if clashes:
        raise ProjectExists(f"{folder} already has {', '.join(clashes)}; nothing was written")
    for name, data in sorted(files.items()):
        atomic_write_bytes(folder / name, data)
    install_editor_schemas(folder)
    print(f"created an imgbuild project in {folder}:")
    for name in sorted(files):
        print(f"  {name}")
    print("next: `imgbuild plan` to see what would be made, then `doit` to build it")
    return EXIT_OK
