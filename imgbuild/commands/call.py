"""`imgbuild call REQUEST.json`: make one candidate of a normalized request, recorded in the asset
folder the request names, exactly as a build records it (imgbuild/build/single.py)."""

from __future__ import annotations

from pathlib import Path

from imgbuild.build import Estimate, make_candidate
from imgbuild.build.single import load_request_file, next_candidate, report_made, request_session
from imgbuild.errors import EXIT_OK
from imgbuild.models import get_model

__all__ = ["call"]


def call(root: Path, path: Path, *, candidate: int | None = None) -> int:
    """`imgbuild call REQUEST.json`: make one candidate of the request, recorded in its asset
    folder as a build records it. 0 when made (or already made), 1 when it failed, 3 refused."""
    rf = load_request_file(root, path)
    req = rf.request
    session = request_session(root, rf.config, req.provider)
    try:
        which = next_candidate(rf, session, candidate)
        record = session.store.read_asset(req.asset_dir)
        made = session.store.made(record, req.asset_dir, req.request_hash) if record is not None else {}
        if which is None or which in made:
            shown = f"candidate {which}" if which is not None else f"all {req.candidates} candidates"
            print(f"imgbuild call: {req.asset_id}: {shown} already made for this request; no call")
            return EXIT_OK
        images = req.max_images
        session.estimate = Estimate(images, images * get_model(req.model).price_per_image)
        make_candidate(session, req, which)  # AssetFailed (exit 1) and BuildStop (3) go to the handler
        report_made("call", session, req, which)
    finally:
        session.close()
    return EXIT_OK
