"""Warnings for people: ``warning: <file:line path>: <what>`` on stderr, under imgbuild and doit alike."""

from __future__ import annotations

import logging
import sys

__all__ = ["setup_logging"]


def setup_logging() -> None:
    """Give the "imgbuild" logger its stderr handler once (plain `doit` never configures logging)."""
    logger = logging.getLogger("imgbuild")
    if not any(getattr(h, "_imgbuild", False) for h in logger.handlers):
        handler = logging.StreamHandler(_StderrProxy())
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        handler._imgbuild = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs full URLs at INFO


class _StderrProxy:
    """Writes to whatever sys.stderr is at the time (tests and doit swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
