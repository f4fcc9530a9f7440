"""The failures of the records layer, each with the exit code it ends a command with.

They live here, not in :mod:`imgbuild.errors`, because ``records/`` imports nothing from the rest
of the package; :mod:`imgbuild.errors` draws them into the one exception tree.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "BrokenRecord",
    "BuildLocked",
    "RecordError",
    "RecordShapeError",
    "UnknownRecordVersion",
    "WriteOutsideProject",
]


class RecordError(Exception):
    """An expected failure reading or writing the records: a message, no traceback."""

    exit_code = 1


class RecordShapeError(ValueError):
    """Raised by ``from_json``: the data is not in the shape of its record (the path comes later)."""


class BrokenRecord(RecordError):
    """A record on disk cannot be read: not JSON, merge-conflict markers, the wrong shape.

    Exit 2, like any other bad input file: the user has to mend or restore it."""

    exit_code = 2

    def __init__(self, path: str, what: str, fix: str) -> None:
        super().__init__(f"{path}: {what} — {fix}")
        self.path = path
        self.what = what


class UnknownRecordVersion(BrokenRecord):
    """A record written by another (newer) imgbuild than this one can read."""


class BuildLocked(RecordError):
    """Another process holds this project's build lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another build is running in this project ({holder}); wait for it to finish")
        self.holder = holder


class WriteOutsideProject(RecordError):
    """A record or image would be written through a link to a place outside the project."""

    def __init__(self, path: Path, real: Path) -> None:
        self.path = path
        super().__init__(
            f"{path}: refused to write — a folder on its way is a link to {real}, outside the project "
            "(replace the link with a real folder)"
        )
