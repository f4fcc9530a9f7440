"""Image checks: an answer's image is kept only when it decodes whole, in the expected format,
under the size cap."""

from __future__ import annotations

import io
import warnings

from imgbuild.errors import AssetFailed
from imgbuild.providers.answers import BadAnswer
from imgbuild.providers.base import MAX_IMAGE_BYTES

__all__ = ["EXTENSIONS", "as_jpeg", "verify_image"]

EXTENSIONS = {"png": "png", "jpeg": "jpg"}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}
MAX_OUTPUT_PIXELS = 40_000_000  # Seedream's largest output is ~16.8 MP (4K); more is a bomb


def verify_image(data: bytes, expected: str) -> tuple[int, int]:
    """Decode `data` fully to be sure it is a whole image of the expected type; its size.

    Only the expected formats are tried. A decompression bomb is BadAnswer (fails its asset at
    once); a truncated or broken file is AssetFailed (the saved answer is tried again)."""
    from PIL import Image, UnidentifiedImageError  # only a build that makes images needs Pillow

    if len(data) > MAX_IMAGE_BYTES:
        raise AssetFailed(f"image of {len(data)} bytes is over the {MAX_IMAGE_BYTES}-byte cap")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(_PIL_FORMATS.values()))
        with image:
            fmt = image.format
            width, height = image.size
            if width * height > MAX_OUTPUT_PIXELS:  # refused from the header, before decoding
                raise BadAnswer(f"the image is {width}×{height} pixels, over the cap of {MAX_OUTPUT_PIXELS}")
            image.load()  # a truncated file fails here
            size = image.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadAnswer(f"the image is a decompression bomb: {exc}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
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
