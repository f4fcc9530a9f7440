"""Image checks: an answer's image is kept only when it decodes whole, in the expected format,
under the size cap."""

from __future__ import annotations

import io

from imgbuild.errors import AssetFailed
from imgbuild.providers.base import MAX_IMAGE_BYTES

__all__ = ["EXTENSIONS", "as_jpeg", "verify_image"]

EXTENSIONS = {"png": "png", "jpeg": "jpg"}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


def verify_image(data: bytes, expected: str) -> tuple[int, int]:
    """Decode `data` fully to be sure it is a whole image of the expected type; its size."""
    from PIL import Image, UnidentifiedImageError  # only a build that makes images needs Pillow

    if len(data) > MAX_IMAGE_BYTES:
        raise AssetFailed(f"image of {len(data)} bytes is over the {MAX_IMAGE_BYTES}-byte cap")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.load()  # a truncated file fails here
            size = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise AssetFailed(f"downloaded file is not a whole image: {exc}") from exc
    if fmt != _PIL_FORMATS[expected]:
        raise AssetFailed(f"expected a {expected} image, got {fmt}")
    return size


def as_jpeg(data: bytes) -> bytes:
    """A large approved PNG (a 3K image can pass 10 MB) as a high-quality JPEG."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()
