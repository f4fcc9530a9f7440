"""Helpers of the hostile corpus that tests import (fixtures are in conftest.py)."""

from __future__ import annotations

import struct
import time
import zlib
from pathlib import Path

import pytest
from helpers import run_cli


def run_command(root: Path, capsys: pytest.CaptureFixture[str], *args: str, seconds: float = 30.0) -> tuple[int, str]:
    """`imgbuild ARGS` in `root`, in time and with no trace of a bug; (exit code, all it printed)."""
    started = time.monotonic()
    code = run_cli(root, *args)
    assert time.monotonic() - started < seconds
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "unexpected error" not in text and "this is a bug" not in text, text
    return code, text


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims `width`×`height` pixels in a few bytes: a decompression bomb's header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
