"""The one way an input file of the project is read: confined, regular, bounded.

Every file the project's inputs name — manifests, personas, evidence, references, the templates
a template includes — is read through :func:`read_input`. It refuses, as an input error:

* a path whose *real* path (after every link) is outside the project folder, so a committed
  symlink cannot make a CI build read ``~/.ssh`` or ``/proc/self/environ``;
* anything that is not a regular file once opened (a FIFO would hang the build, a device never
  ends): the file is opened non-blocking and checked with ``fstat`` on the open descriptor;
* a file over its size cap, checked while streaming, so a huge or growing file costs no memory.

References are decoded here too (:func:`check_reference`), with an explicit list of formats and
Pillow's pixel cap, so a non-image or a decompression bomb fails before any paid call.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jinja2

__all__ = [
    "MAX_EVIDENCE_BYTES",
    "MAX_INPUT_BYTES",
    "MAX_REFERENCE_BYTES",
    "MAX_REFERENCE_PIXELS",
    "REFERENCE_FORMATS",
    "ConfinedTemplateLoader",
    "InputFile",
    "UnsafeInput",
    "check_reference",
    "read_input",
]

MAX_INPUT_BYTES = 4 * 1024 * 1024  # a text imgbuild parses: a manifest, persona or template
MAX_REFERENCE_BYTES = 64 * 1024 * 1024  # providers take far less; the per-model limit is checked later
MAX_EVIDENCE_BYTES = 256 * 1024 * 1024  # evidence is only hashed (streamed): photos and PDFs fit
MAX_REFERENCE_PIXELS = 64_000_000  # a 8000 × 8000 image: larger is a bomb, not a reference
REFERENCE_FORMATS = ("PNG", "JPEG", "WEBP")  # what the providers read; Pillow tries no other
_CHUNK = 1024 * 1024


class UnsafeInput(Exception):
    """An input file that may not be read; the message says why in the user's terms."""


@dataclass(frozen=True)
class InputFile:
    """A file read whole (under its cap), with its sha256."""

    path: Path  # the real path
    data: bytes
    sha256: str


def read_input(
    root: Path, path: Path, *, max_bytes: int = MAX_INPUT_BYTES, keep: bool = True, shown: str | None = None
) -> InputFile:
    """Read `path` (absolute, or relative to `root`) if it is a regular file inside `root`.

    With ``keep=False`` only the hash is computed (the bytes are streamed, not kept).
    Raises UnsafeInput, FileNotFoundError, IsADirectoryError."""
    name = shown or str(path)
    root = root.resolve()
    real = (root / path).resolve()
    if not real.is_relative_to(root):
        link = "a link to a place" if (root / path).absolute() != real else "a path"
        raise UnsafeInput(f"{name!r} is {link} outside the project folder ({real}) — copy the file in instead")
    if real.is_dir():
        raise IsADirectoryError(name)
    # O_NONBLOCK: opening a FIFO with no writer must not hang; O_NOFOLLOW: the real path has no link left.
    fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb", buffering=0) as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise UnsafeInput(f"{name!r} is not a regular file ({_kind(info.st_mode)}) — inputs must be plain files")
        if info.st_size > max_bytes:
            raise UnsafeInput(f"{name!r} is {info.st_size} bytes, over the {max_bytes}-byte cap for this input")
        digest = hashlib.sha256()
        chunks: list[bytes] = []
        size = 0
        while chunk := file.read(_CHUNK):
            size += len(chunk)
            if size > max_bytes:  # grew while being read
                raise UnsafeInput(f"{name!r} is over the {max_bytes}-byte cap for this input")
            digest.update(chunk)
            if keep:
                chunks.append(chunk)
    return InputFile(real, b"".join(chunks), digest.hexdigest())


def _kind(mode: int) -> str:
    kinds: list[tuple[Callable[[int], bool], str]] = [
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ]
    return next((label for test, label in kinds if test(mode)), "not a plain file")


def check_reference(data: bytes, shown: str) -> tuple[str, int, int]:
    """Decode a reference image whole: (format, width, height). Raises UnsafeInput.

    Only the formats providers read are tried, and an image over MAX_REFERENCE_PIXELS is
    refused from its header, before its pixels are decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=REFERENCE_FORMATS)
        with image:
            width, height = image.size
            if width * height > MAX_REFERENCE_PIXELS:
                raise UnsafeInput(
                    f"reference image {shown!r} is {width}×{height} pixels, over the cap of "
                    f"{MAX_REFERENCE_PIXELS} (a decompression bomb or far larger than any provider takes)"
                )
            image.load()
            return str(image.format), width, height
    except UnidentifiedImageError as exc:
        raise UnsafeInput(f"reference image {shown!r} is not a {', '.join(REFERENCE_FORMATS)} image") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise UnsafeInput(f"reference image {shown!r} is a decompression bomb ({exc})") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnsafeInput(f"reference image {shown!r} does not decode whole ({exc})") from exc


class ConfinedTemplateLoader(jinja2.BaseLoader):
    """Templates from one folder through :func:`read_input`: a template that includes, imports or
    extends a link out of the project, a FIFO or a huge file gets an input error, not its bytes.
    A template that is not UTF-8 is an input error too (TemplateSyntaxError with its line)."""

    def __init__(self, root: Path, folder: Path) -> None:
        self.root = root.resolve()
        self.folder = folder.resolve() if folder.exists() else folder.absolute()

    def get_source(self, environment: jinja2.Environment, template: str) -> tuple[str, str, Callable[[], bool]]:
        pieces = jinja2.loaders.split_template_path(template)  # refuses '..' and absolute names
        path = self.folder.joinpath(*pieces)
        if not (path.exists() or path.is_symlink()):
            raise jinja2.TemplateNotFound(template)
        try:
            found = read_input(self.root, path, shown=template)
        except (UnsafeInput, OSError) as exc:
            raise jinja2.TemplateSyntaxError(_os_reason(exc), 1, template, str(path)) from exc
        try:
            source = found.data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = found.data[: exc.start].count(b"\n") + 1
            raise jinja2.TemplateSyntaxError(
                f"not UTF-8 text ({exc.reason}) — save the file as UTF-8", line, template, str(path)
            ) from exc
        return source, str(path), lambda: True


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return f"cannot read the template: {exc.strerror or exc}"
    return str(exc)
