"""Where asset records are, without reading one: the asset folders under an output folder.

Kept apart from the store so that listing them (every `imgbuild check` looks for orphans) does
not load the record classes.
"""

from __future__ import annotations

import os
from collections.abc import Container
from pathlib import Path

__all__ = ["asset_dirs"]


def asset_dirs(root: Path, folder: str, *, skip: Container[str] = ()) -> list[str]:
    """The asset folders under output folder `folder` (those holding an asset.json), sorted and
    project-relative, leaving out those in `skip` unlooked at (no stat for a folder known to be
    declared)."""
    base = root / folder
    if not base.is_dir():
        return []
    names = [f"{folder}/{child}" if folder not in ("", ".") else child for child in sorted(os.listdir(base))]
    prefix = str(root)
    return [name for name in names if name not in skip and os.path.isfile(f"{prefix}/{name}/asset.json")]
