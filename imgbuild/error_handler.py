"""One place that turns every failure into a message and an exit code.

Expected failures (FatalError and its kinds) print their message, no traceback. ^C exits 130.
Anything else is a bug: the traceback goes to ``.imgbuild/logs/crash.log`` and the screen gets a
short pointer to it.
"""

from __future__ import annotations

import platform
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imgbuild import __version__
from imgbuild.errors import EXIT_BUG, EXIT_INTERRUPTED, EXPECTED, InvalidInput

__all__ = ["ExitCode", "error_handler", "write_crash_log"]


class ExitCode:
    """Mutable holder for the exit code chosen by the handler."""

    def __init__(self) -> None:
        self.value = 0


@contextmanager
def error_handler(log_dir: Path) -> Iterator[ExitCode]:
    code = ExitCode()
    try:
        yield code
    except InvalidInput as exc:
        print(exc, file=sys.stderr)
        code.value = exc.exit_code
    except EXPECTED as exc:
        print(f"imgbuild: error: {exc}", file=sys.stderr)
        code.value = int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        print("imgbuild: interrupted", file=sys.stderr)
        code.value = EXIT_INTERRUPTED
    except Exception as exc:
        log = write_crash_log(log_dir, "".join(traceback.format_exception(exc)))
        print(f"imgbuild: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"imgbuild: this is a bug; the details are in {log}", file=sys.stderr)
        code.value = EXIT_BUG


def write_crash_log(log_dir: Path, details: str) -> Path:
    """Write a bug's traceback (`details`) to ``crash.log`` in `log_dir`; where it went."""
    text = (
        f"### imgbuild {__version__} crash\n\n"
        f"- python: {sys.version.split()[0]} ({platform.platform()})\n"
        f"- argv: {sys.argv!r}\n\n```\n{details}\n```\n"
    )
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / "crash.log"
        path.write_text(text, encoding="utf-8")
        return path
    except OSError:
        sys.stderr.write(text)
        return Path("<stderr>")
