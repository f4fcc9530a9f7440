"""Thumbnails: one small JPEG per image, made once and cached under ``.imgbuild/thumbs/`` by content.

The review studio's grid and the static gallery show thumbnails instead of 2048-pixel originals,
so a page of a thousand candidates loads in a blink and every image on it is painted. A thumbnail
is named by the sha256 of the image it was made from and the size it was made at, so an image
made again gets a new one, the same image in two assets shares one, and a cache folder deleted
by hand is simply made again. Writes are atomic: a crash leaves no half-written thumbnail.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from imgbuild.records.atomic import atomic_write_bytes

__all__ = ["GRID_EDGE", "THUMBS_DIR", "Thumbnails"]

THUMBS_DIR = ".imgbuild/thumbs"  # project-relative
GRID_EDGE = 360  # the longest edge, in pixels: sharp on the grid's 180-pixel cells at 2x density
_FORMATS = ("PNG", "JPEG", "WEBP")  # what imgbuild keeps; Pillow tries no other decoder (docs/reliability.md)
_QUALITY = 82


@dataclass(frozen=True)
class Thumb:
    """A thumbnail on disk (project-relative) and its size in pixels."""

    file: str
    width: int
    height: int


class Thumbnails:
    """Makes and finds the thumbnails of one project's images."""

    def __init__(self, root: Path, edge: int = GRID_EDGE) -> None:
        self.root = root
        self.edge = edge
        self._temp = root / ".imgbuild" / "tmp"

    def relative(self, sha256: str) -> str:
        """Where the thumbnail of the image with this content hash lives (made or not)."""
        return f"{THUMBS_DIR}/{sha256[:2]}/{sha256}-{self.edge}.jpg"

    def exists(self, sha256: str) -> bool:
        return (self.root / self.relative(sha256)).is_file()

    def ensure(self, image: str, sha256: str | None = None, size: tuple[int, int] | None = None) -> Thumb | None:
        """The thumbnail of the project-relative `image`, made now if it is not cached.

        `sha256` and `size` are the image's recorded content hash and pixel size (the records
        have both for every candidate): with them a cached thumbnail is found without opening
        any image. Without them the file is hashed, and the cached thumbnail's header read.
        None when the image is missing or cannot be decoded."""
        source = self.root / image
        if sha256 is None:
            try:
                sha256 = hashlib.sha256(source.read_bytes()).hexdigest()
            except OSError:
                return None
        target = self.root / self.relative(sha256)
        if target.is_file():
            return self._scaled(sha256, size) if size and min(size) > 0 else self._sized(target, sha256)
        try:
            with Image.open(source, formats=_FORMATS) as opened:
                # A JPEG decodes at 1/2, 1/4 or 1/8 scale when asked: most of the work saved.
                opened.draft("RGB", (self.edge, self.edge))
                picture = ImageOps.exif_transpose(opened).convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError):
            return None
        picture.thumbnail((self.edge, self.edge), Image.Resampling.LANCZOS, reducing_gap=3.0)
        out = io.BytesIO()
        picture.save(out, "JPEG", quality=_QUALITY, optimize=True, progressive=True)
        atomic_write_bytes(target, out.getvalue(), temp_dir=self._temp)
        return Thumb(self.relative(sha256), picture.width, picture.height)

    def _scaled(self, sha256: str, size: tuple[int, int]) -> Thumb:
        """The cached thumbnail's size worked out from the original's (for the page's layout:
        within a pixel of what Pillow made, the aspect ratio exact)."""
        width, height = size
        scale = min(1.0, self.edge / max(width, height))
        return Thumb(self.relative(sha256), max(1, round(width * scale)), max(1, round(height * scale)))

    def _sized(self, path: Path, sha256: str) -> Thumb | None:
        try:
            with Image.open(path, formats=("JPEG",)) as cached:
                return Thumb(self.relative(sha256), cached.width, cached.height)
        except (OSError, ValueError):
            return None
