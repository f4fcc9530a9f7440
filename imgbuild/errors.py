"""The one exception tree: what stops the build, what fails one asset, what is bad input.

Every expected failure is one of these; the error handler (and, under plain doit, the progress
reporter) prints its message without a traceback and ends with its ``exit_code``. Anything else is
a bug: exit 70, the traceback in ``.imgbuild/logs/crash.log``. Classified by type, never by text::

    Exception
    ├── FatalError                 1  an expected failure (the base)
    │   ├── InvalidInput           2  the project's input files: every problem at once, file:line
    │   ├── UsageError             2  the command line names what does not exist (asset, batch,
    │   │                             candidate, checklist item), or no project is here
    │   ├── BuildStop              3  stops the whole build at once; nothing made is lost
    │   │   ├── AnotherBuildRunning 1  another build holds the build lock (one line, no call)
    │   │   └── ProviderRefused    3  no key, a refused key, unreachable host, unknown model,
    │   │       └── BudgetExceeded    the budget
    │   ├── AssetFailed            1  fails one asset, the build goes on (its records say why):
    │   │   └── ProviderError         a content filter, a bad answer, a failed download
    │   └── NotStarted             1  a candidate skipped because the build was stopping
    ├── OSError                    1  a full disk, a read-only folder, a permission: "path: cause"
    └── records.RecordError        1  (imgbuild.records: it imports nothing from here)
        ├── BrokenRecord           2  a record that cannot be read: path and what to do
        │   └── UnknownRecordVersion  written by a newer imgbuild
        ├── BadSourceDateEpoch     2  $SOURCE_DATE_EPOCH set but not whole seconds (records/clock.py)
        ├── BuildLocked            1  another build holds the project's build lock
        └── WriteOutsideProject    1  a write would go through a link out of the project

Exit codes (the contract with CI and scripts): 0 ok, 1 stale or failed work, 2 invalid input,
3 refused, 70 a bug, 130 interrupted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from imgbuild.records.errors import BrokenRecord, BuildLocked, RecordError

__all__ = [
    "EXIT_BROKEN_PIPE",
    "EXIT_BUG",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_INVALID",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXPECTED",
    "AnotherBuildRunning",
    "AssetFailed",
    "BrokenRecord",
    "BudgetExceeded",
    "BuildLocked",
    "BuildStop",
    "FatalError",
    "InvalidInput",
    "NotAProject",
    "NotStarted",
    "Problem",
    "ProviderRefused",
    "RecordError",
    "UsageError",
    "describe",
    "format_path",
]

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_REFUSED = 3
EXIT_BUG = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE: the reader of our output went away, as a shell tool reports it


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


class UsageError(FatalError):
    """The command line names something that does not exist; nothing was written."""

    exit_code = EXIT_INVALID


class NotAProject(UsageError):
    """No imgbuild project at or above the folder: a command run in the wrong place (a CI job
    in the wrong folder) must fail, not pass on zero assets or leave state behind."""

    exit_code = EXIT_INVALID

    def __init__(self, start: Path) -> None:
        self.start = start
        super().__init__(
            f"no imgbuild project here: no imgbuild.yaml in {start} or any folder above it "
            "(run `imgbuild init` to make one, or `imgbuild -C DIR` to point at one)"
        )


class BuildStop(FatalError):
    """Stops the whole build: the candidates not yet started are skipped, not attempted."""

    exit_code = EXIT_REFUSED


class AnotherBuildRunning(BuildStop):
    """Another build holds the project's build lock: this one stops before its first call."""

    exit_code = EXIT_FAILED


class ProviderRefused(BuildStop):
    """A provider refused to work for us (no key, bad key, no quota, unreachable): the build stops."""


class BudgetExceeded(ProviderRefused):
    """The images this build would make cost more than the project's budget."""


class AssetFailed(FatalError):
    """One candidate could not be made; the build goes on with the others. Its records say why."""


class NotStarted(FatalError):
    """A candidate not started because the build was stopping (a refusal or an interrupt)."""


# What a command or a doit action turns into a message and an exit code, never a traceback.
# OSError is here: a full disk, a read-only folder or a permission refused is the machine's
# state, not a bug — it is reported as "path: cause" (see `describe`), exit 1.
EXPECTED: tuple[type[Exception], ...] = (FatalError, RecordError, OSError)


def describe(exc: BaseException) -> str:
    """An expected failure in words: its message, or for an OS error ``path: cause``."""
    if isinstance(exc, OSError) and not isinstance(exc, FatalError | RecordError):
        cause = exc.strerror or type(exc).__name__
        paths = [str(p) for p in (exc.filename, exc.filename2) if p is not None]
        where = " → ".join(paths)
        return f"{where}: {cause.lower()}" if where else f"{cause} ({exc})"
    return str(exc)
