"""The exceptions that carry an expected failure to the user, each with its exit code.

Exit codes (the contract with CI and scripts):
    0  ok
    1  stale or failed work (`check` found something, a build step failed)
    2  invalid input (manifests, personas, templates, config, command-line arguments), or no
       project at or above the folder (every command but `init` needs one)
    3  a provider refused (authentication, quota) — later issues
    70 a bug in imgbuild (the traceback is in .imgbuild/logs/crash.log)
    130 interrupted
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "EXIT_BUG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REFUSED",
    "FatalError",
    "InvalidInput",
    "NotAProject",
    "Problem",
    "ProviderRefused",
    "format_path",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_REFUSED = 3
EXIT_BUG = 70
EXIT_INTERRUPTED = 130


def format_path(path: Iterable[str | int]) -> str:
    """Render a path into a document the way a person reads it: ``shots[1].vary.lighting``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with one input file, located as precisely as we can."""

    file: str  # project-relative path, as the user would type it
    line: int | None
    path: str  # e.g. "shots[1].vary.lighting[0]"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class FatalError(Exception):
    """An expected failure: printed as a message (no traceback) and turned into an exit code."""

    exit_code = EXIT_FAILED


class InvalidInput(FatalError):
    """The project's input files are wrong. Holds every problem found, not just the first."""

    exit_code = EXIT_INVALID

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems), key=_problem_order)
        count = len(self.problems)
        lines = [str(p) for p in self.problems]
        summary = f"{count} problem{'s' if count != 1 else ''} in the project's input; nothing was generated"
        super().__init__("\n".join([*lines, summary]))


def _problem_order(problem: Problem) -> tuple[str, int, str, str]:
    return (problem.file, problem.line or 0, problem.path, problem.message)


class NotAProject(FatalError):
    """No imgbuild project at or above the folder: a command run in the wrong place (a CI job
    in the wrong folder) must fail, not pass on zero assets or leave state behind."""

    exit_code = EXIT_INVALID

    def __init__(self, start: Path) -> None:
        self.start = start
        super().__init__(
            f"no imgbuild project here: no imgbuild.yaml in {start} or any folder above it "
            "(run `imgbuild init` to make one, or `imgbuild -C DIR` to point at one)"
        )


class ProviderRefused(FatalError):
    """A provider refused to work for us (bad key, no quota): the whole build stops."""

    exit_code = EXIT_REFUSED
