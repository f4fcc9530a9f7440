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
from imgbuild.errors import EXIT_BUG, EXIT_INTERRUPTED, FatalError, InvalidInput

__all__ = ["ExitCode", "error_handler"]


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
    except FatalError as exc:
        print(f"imgbuild: error: {exc}", file=sys.stderr)
        code.value = exc.exit_code
    except KeyboardInterrupt:
        print("imgbuild: interrupted", file=sys.stderr)
        code.value = EXIT_INTERRUPTED
    except Exception as exc:
        log = _write_crash_log(log_dir, exc)
        print(f"imgbuild: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"imgbuild: this is a bug; the details are in {log}", file=sys.stderr)
        code.value = EXIT_BUG


def _write_crash_log(log_dir: Path, exc: Exception) -> Path:
    text = (
        f"### imgbuild {__version__} crash\n\n"
        f"- python: {sys.version.split()[0]} ({platform.platform()})\n"
        f"- argv: {sys.argv!r}\n\n```\n{''.join(traceback.format_exception(exc))}```\n"
    )
    try:
        log_dir.mkdir(parents=True, exist_ok=True)
        path = log_dir / "crash.log"
        path.write_text(text, encoding="utf-8")
        return path
    except OSError:
        sys.stderr.write(text)
        return Path("<stderr>")
