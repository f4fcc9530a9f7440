"""`imgbuild upload IMAGE`: a project image on the provider's media storage, its URL printed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from imgbuild.build.single import UPLOADS_FOLDER, request_session
from imgbuild.errors import EXIT_OK, InvalidInput, Problem, UsageError
from imgbuild.models import DEFAULT_MODEL, get_model
from imgbuild.project import PROVIDER_ENV
from imgbuild.providers.http import image_mime
from imgbuild.requests import Reference, request_from_record
from imgbuild.spec.load import read_config

__all__ = ["upload"]


def upload(root: Path, image: Path, *, provider: str | None = None, model: str = DEFAULT_MODEL) -> int:
    """`imgbuild upload IMAGE`: upload a project image to the provider's media storage, print the
    URL, record it under ``<assets>/uploads/upload/<id>/`` and in the upload cache (so a build
    whose edit references the same image reuses it)."""
    root = root.resolve()
    problems: list[Problem] = []
    config = read_config(root, problems)
    if problems:
        raise InvalidInput(problems)
    chosen = provider or os.environ.get(PROVIDER_ENV) or config.provider
    path = image.resolve()
    if not path.is_relative_to(root) or not path.is_file():
        raise UsageError(f"{image}: not an image file in the project (uploads are recorded by project path)")
    relative = path.relative_to(root).as_posix()
    data = path.read_bytes()
    if image_mime(data) == "application/octet-stream":
        raise UsageError(f"{relative}: not a PNG, JPEG or WebP image")
    limit = get_model(model).max_input_bytes  # what a build refuses as a reference image, refused here too
    if limit is not None and len(data) > limit:  # None: the model states no limit
        raise UsageError(f"{relative}: {len(data)} bytes; a reference image of {model} is at most {limit}")
    ref = Reference(relative, hashlib.sha256(data).hexdigest(), "reference")
    record = {
        "asset_id": UPLOADS_FOLDER,
        "asset_dir": f"{config.assets_dir}/{UPLOADS_FOLDER}",
        "prompt": f"upload of {relative}",
        "model": model,
        "provider": chosen,
        "aspect_ratio": "1:1",
        "size": "2048x2048",
        "output_format": "png",
    }
    req, found = request_from_record(record)
    if req is None:
        raise UsageError("; ".join(message for _, message in found))
    session = request_session(root, config, chosen)
    try:
        url = session.uploads.url(session.provider(), req, ref, fresh=True)
    finally:
        session.close()
    print(url)
    return EXIT_OK
