"""`imgbuild export [BATCH...] --to DIR`: hand the approved images to the render stage.

Every asset with a current approval (approved for the request its manifest makes now, the
approved file present and unchanged) is copied to ``DIR/<batch>/<asset-id>.<ext>`` with an XMP
packet that says it is AI-generated and by what (imgbuild.provenance); the copy in assets/ is
not touched. ``DIR/imgbuild-export.json`` lists each image with what made it and who approved
it. Assets without a current approval get nothing; they are listed, and the export exits 1
unless ``--allow-missing``. Names are stable, so a second export replaces the same files, and
an image exported before whose asset is no longer approved is removed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from imgbuild import __version__
from imgbuild.errors import EXIT_FAILED, EXIT_OK, UsageError
from imgbuild.provenance import (
    C2paSigner,
    Provenance,
    ProvenanceError,
    embed_xmp,
    sign_c2pa,
    try_c2pa_signer,
    xmp_packet,
)
from imgbuild.records import AssetStore, atomic_write_bytes
from imgbuild.records.export import EXPORT_MANIFEST, ExportedImage, previous_export_files, write_export_manifest
from imgbuild.requests import ImageRequest
from imgbuild.resolve import Resolution, resolve
from imgbuild.state import ReviewState, StateIndex, approval_problem, assess_reviews, lock_entry

__all__ = ["export"]

TOOL = f"imgbuild {__version__}"


def export(
    root: Path, batches: Sequence[str], *, to: Path, allow_missing: bool = False, signer: C2paSigner | None = None
) -> int:
    """Export the approved images of `batches` (default: all) to `to`, each also signed with C2PA
    Content Credentials when `signer` is given. 0 when every asset had a current approval (or
    `allow_missing`), 1 when some had none."""
    resolution = resolve(root)
    known = [b.id for b in resolution.project.batches]
    unknown = [b for b in batches if b not in known]
    if unknown:
        raise UsageError(f"no batch {', '.join(map(repr, unknown))} in this project (batches: {', '.join(known)})")
    if signer is not None:
        try:  # a key the library refuses would fail every image: say so before the folder changes
            try_c2pa_signer(signer, TOOL)
        except ProvenanceError as exc:
            raise UsageError(f"--c2pa-cert/--c2pa-key: {exc}") from None
    selected = [r for r in resolution.all_requests() if not batches or r.batch in batches]
    index = StateIndex(resolution, verify=True)
    store = AssetStore(resolution.root)
    to = _export_folder(resolution, to, selected)
    exported: list[ExportedImage] = []
    missing: list[dict[str, str]] = []
    for review in assess_reviews(resolution, index, selected):
        req = review.request
        problem = approval_problem(resolution.root, review)
        image = None
        if problem is None:
            try:
                image = _export_one(store, index, review, to, signer)
            except (_Unchanged, ProvenanceError) as exc:
                problem = ("not exported", str(exc))
        if image is None:
            assert problem is not None
            kind, reason = problem
            missing.append({"id": req.asset_id, "batch": req.batch, "kind": kind, "reason": reason})
            print(f"{kind}: {req.asset_dir}: {reason}")
        else:
            exported.append(image)
    kept = {image.file for image in exported}
    for old in previous_export_files(to):
        if old not in kept:
            (to / old).unlink(missing_ok=True)
    write_export_manifest(to, exported, missing, tool=TOOL)
    shown = _shown(to)
    images = "1 approved image" if len(exported) == 1 else f"{len(exported)} approved images"
    print(f"imgbuild export: {images} to {shown}/ (manifest {shown}/{EXPORT_MANIFEST})")
    if missing:
        allowed = " (--allow-missing)" if allow_missing else ""
        print(f"imgbuild export: {len(missing)} of {len(selected)} assets have no current approved image{allowed}")
    return EXIT_FAILED if missing and not allow_missing else EXIT_OK


def _export_folder(resolution: Resolution, to: Path, selected: Sequence[ImageRequest]) -> Path:
    """`to`, resolved and created, when nothing exported into it can land in an asset folder
    (assets/ holds the provider's bytes and the records; through a link counts); else UsageError."""
    given, to = to, to.resolve()
    config = resolution.project.config
    declared = (config.assets_dir, *(b.output for b in resolution.project.batches))
    folders = {(resolution.root / folder).resolve() for folder in declared}
    for target in (to, *sorted({(to / req.batch).resolve() for req in selected})):
        inside = next((f for f in sorted(folders) if target.is_relative_to(f)), None)
        if inside is not None:
            shown = inside.relative_to(resolution.root).as_posix() or "."
            raise UsageError(
                f"--to {given}: the export would write into {shown}/, which holds the asset records:"
                " export to a folder of its own, e.g. --to render"
            )
    if to.exists() and not to.is_dir():
        raise UsageError(f"--to {given}: a file, not a folder")
    try:
        to.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"--to {given}: cannot make the export folder ({exc.strerror or exc})") from None
    return to


class _Unchanged(Exception):
    """The approved file is not the one that was approved."""


def _export_one(
    store: AssetStore, index: StateIndex, review: ReviewState, to: Path, signer: C2paSigner | None
) -> ExportedImage:
    req, approval = review.request, review.approval
    assert approval is not None
    data = store.read_bytes(approval.file)
    digest = hashlib.sha256(data).hexdigest()
    if digest != approval.sha256:
        raise _Unchanged(
            f"{approval.file} is not the image that was approved (sha256 {digest[:12]}, approved"
            f" {approval.sha256[:12]}): restore it, or approve again"
        )
    record = index.record(req.asset_dir)
    assert record is not None and record.approval is not None  # a current approval comes from it
    decided = record.approval
    provenance = _provenance(req)
    copy = embed_xmp(data, xmp_packet(provenance))
    if signer is not None:
        copy = sign_c2pa(copy, "image/png" if copy.startswith(b"\x89PNG") else "image/jpeg", signer, provenance)
    relative = f"{req.batch}/{req.asset_id}{Path(approval.file).suffix}"
    atomic_write_bytes(to / relative, copy)
    entry = lock_entry(index, req)
    return ExportedImage(
        id=req.asset_id,
        batch=req.batch,
        shot=req.shot,
        variant_test=req.variant_test,
        file=relative,
        sha256=hashlib.sha256(copy).hexdigest(),
        source_file=approval.file,
        source_sha256=approval.sha256,
        attributes=entry.attributes or req.record()["attributes"],
        prompt_hash=req.prompt_hash,
        request_hash=req.request_hash,
        model=req.model,
        provider=req.provider,
        provider_model=req.provider_model,
        source_basis=entry.source_basis,
        approval={
            "candidate": decided.label,
            "by": decided.by,
            "at": decided.at,
            "override": decided.override,
            "note": decided.note,
            "checklist": {c.item: {"result": c.result, "note": c.note} for c in decided.checklist},
        },
    )


def _provenance(req: ImageRequest) -> Provenance:
    return Provenance(
        asset_id=req.asset_id,
        request_hash=req.request_hash,
        model=req.model,
        provider_model=req.provider_model,
        provider=req.provider,
        creator_tool=TOOL,
    )


def _shown(path: Path) -> str:
    try:
        return path.relative_to(Path.cwd()).as_posix() or "."
    except ValueError:
        return str(path)
