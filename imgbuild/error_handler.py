"""One place that turns every failure into a message and an exit code.

Expected failures (FatalError and its kinds) print their message, no traceback. ^C exits 130.
A reader that goes away (`imgbuild ls | head`) ends the command quietly with 141, as for a shell tool.
Anything else is a bug: the traceback goes to ``.imgbuild/logs/crash.log`` and the screen gets a
short pointer to it (before the project is known, or outside one, the traceback goes to stderr).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imgbuild import __version__
from imgbuild.errors import EXIT_BROKEN_PIPE, EXIT_BUG, EXIT_INTERRUPTED, EXPECTED, InvalidInput, describe

__all__ = ["ExitCode", "error_handler", "write_crash_log"]


class ExitCode:
    """Mutable holder for the exit code chosen by the handler, and for where a crash log goes."""

    def __init__(self) -> None:
        self.value = 0
        # Set once the project is known: finding it may fail, and outside a project nothing
        # may be created, so until then a traceback goes to stderr.
        self.log_dir: Path | None = None


@contextmanager
def error_handler() -> Iterator[ExitCode]:
    """Run the body, turning a FatalError into its message and exit code, ^C into 130, a bug into 70."""
    code = ExitCode()
    try:
        yield code
        sys.stdout.flush()  # here, not at exit: a closed pipe must reach the handler below
    except BrokenPipeError:
        _silence_stdout()
        code.value = EXIT_BROKEN_PIPE
    except InvalidInput as exc:
        print(exc, file=sys.stderr)
        code.value = exc.exit_code
    except EXPECTED as exc:
        print(f"imgbuild: error: {describe(exc)}", file=sys.stderr)
        code.value = int(getattr(exc, "exit_code", 1))
    except KeyboardInterrupt:
        print("imgbuild: interrupted", file=sys.stderr)
        code.value = EXIT_INTERRUPTED
    except Exception as exc:
        import traceback  # only for a bug, as platform below: neither is needed to start

        where = write_crash_log(code.log_dir, "".join(traceback.format_exception(exc)))
        print(f"imgbuild: unexpected error: {type(exc).__name__}: {exc}", file=sys.stderr)
        print(f"imgbuild: this is a bug; the details are in {where}", file=sys.stderr)
        code.value = EXIT_BUG


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's own flush at exit does not raise again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def write_crash_log(log_dir: Path | None, details: str) -> str:
    """Write a bug's traceback (`details`) to `log_dir`/crash.log, else to stderr; where it went."""
    import platform

    text = (
        f"### imgbuild {__version__} crash\n\n"
        f"- python: {sys.version.split()[0]} ({platform.platform()})\n"
        f"- argv: {sys.argv!r}\n\n```\n{details}\n```\n"
    )
    if log_dir is not None:
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
            path = log_dir / "crash.log"
            path.write_text(text, encoding="utf-8")
            return str(path)
        except OSError:
            pass
    sys.stderr.write(text)
    return "the report above"
