"""Recording a review decision on one candidate, one image of an identity set (``K.I``) or a
whole identity set (``K``: every image of its newest call): the one path of `imgbuild approve` / `reject`
(imgbuild.commands.review) and of the review studio (imgbuild.studio), and its undo.

Everything is checked before anything is written; a refused decision changes nothing. The
writes of one decision go in this order, so a crash between two of them leaves asset.json, the
truth, complete and every other file either untouched or consistent with it:

1. (approve) the approved copy, ``images/approved/<candidate file name>`` (of each image of a set);
2. asset.json: the new review, and the approval set, replaced or cleared;
3. index.json: an ``approved`` / ``rejected`` event;
4. the asset's entry in the batch lock file (its ``approval`` and ``rejected`` fields).
"""

from __future__ import annotations

import getpass
import hashlib
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import Any

from imgbuild.records import (
    Approval,
    ApprovedImage,
    AssetRecord,
    AssetStore,
    BuildLocked,
    Candidate,
    Review,
    acquire_build_lock,
    lock_path,
    update_lock_entry,
    utc_now,
)
from imgbuild.requests import ImageRequest
from imgbuild.resolve import Resolution, resolve
from imgbuild.review import (
    APPROVE,
    REJECT,
    CandidateId,
    CheckResult,
    ReviewError,
    check_decision,
    checklist_items,
    find_images,
    parse_candidate_id,
    parse_checklist,
)
from imgbuild.state import StateIndex, lock_entry

__all__ = ["REVIEWER_ENV", "Decided", "decide", "reviewer", "undo"]

REVIEWER_ENV = "IMGBUILD_REVIEWER"


@dataclass(frozen=True)
class _Target:
    """The candidate a decision is about — one image, or every image of an identity set — read
    and checked, ready to be recorded."""

    request: ImageRequest
    record: AssetRecord
    cid: CandidateId
    images: tuple[Candidate, ...]
    data: tuple[bytes, ...] | None  # the images' bytes (approve only), verified against their sha256

    @property
    def entry(self) -> Candidate:
        """The image (the first of a set): what a reader of one approved image is given."""
        return self.images[0]

    @property
    def whole_set(self) -> bool:
        return self.cid.image is None and self.entry.image is not None


@dataclass(frozen=True)
class Decided:
    """A decision as recorded: what to tell the reviewer, and what undoing it restores."""

    asset_id: str
    asset_dir: str
    decision: str
    review: Review  # the entry appended to asset.json's reviews
    previous_approval: Approval | None  # the approval before the decision
    lines: tuple[str, ...]


def decide(
    root: Path,
    decision: str,
    asset: str,
    candidate: str,
    *,
    passed: Sequence[str],
    failed: Sequence[str],
    note: str | None,
    by: str | None,
    override: bool,
    resolution: Resolution | None = None,
) -> Decided:
    """Record one decision (the CLI's and the review studio's one path). Raises ReviewError,
    having written nothing, when the ids or the checklist do not allow it."""
    if decision not in (APPROVE, REJECT):
        raise AssertionError(f"unknown decision {decision!r}")
    note = note.strip() if note and note.strip() else None
    cid = parse_candidate_id(candidate)
    resolution = resolution or resolve(root)
    req = resolution.find(asset)
    store = AssetStore(resolution.root)
    with _no_build_running(resolution.root, decision), store.locked(req.asset_dir):
        # What is reviewed first, then how: a wrong id is reported before an incomplete checklist.
        target = _read_target(store, req, cid, verify=decision == APPROVE)
        checklist = parse_checklist(passed, failed)
        check_decision(decision, checklist, note=note, override=override)
        who = reviewer(resolution.root, by)
        if decision == APPROVE:
            lines, made = _approve(resolution, store, target, checklist, note=note, by=who, override=override)
        else:
            lines, made = _reject(resolution, store, target, checklist, note=note, by=who)
    return Decided(req.asset_id, req.asset_dir, decision, made, target.record.approval, tuple(lines))


def undo(root: Path, done: Decided, *, resolution: Resolution | None = None) -> str:
    """Take back `done`: asset.json's approval and reviews as they were before it, an ``undone``
    event in index.json, the lock entry rewritten. Refused (ReviewError, nothing written) when
    the asset has had another decision since."""
    resolution = resolution or resolve(root)
    req = resolution.find(done.asset_id)
    store = AssetStore(resolution.root)
    with _no_build_running(resolution.root, "undo"), store.locked(req.asset_dir):
        record = store.read_asset(req.asset_dir)
        if record is None or not record.reviews or record.reviews[-1] != done.review:
            raise ReviewError(
                f"asset {req.asset_id} has had another decision since this one; nothing was undone"
                " (its reviews in asset.json show them all)"
            )
        store.undo_decision(req.asset_dir, record, done.previous_approval)
        _update_lock(resolution, store, req)
    label = CandidateId(done.review.candidate, done.review.image)
    return f"undid the {done.decision} of {req.asset_id} candidate {label}"


def reviewer(root: Path, by: str | None) -> str:
    """Who decides: `by`, else $IMGBUILD_REVIEWER, else git's user.name in the project, else the login."""
    for name in (by, os.environ.get(REVIEWER_ENV)):
        if name and name.strip():
            return name.strip()
    try:
        git = subprocess.run(
            ["git", "config", "user.name"], cwd=root, capture_output=True, text=True, timeout=10, check=False
        )
        if git.returncode == 0 and git.stdout.strip():
            return git.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass  # no git, or not configured: fall back to the login name
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


# -- finding and checking the target ------------------------------------------------------------


def _read_target(store: AssetStore, req: ImageRequest, cid: CandidateId, *, verify: bool) -> _Target:
    record = store.read_asset(req.asset_dir)
    if record is None or not record.candidates:
        raise ReviewError(f"asset {req.asset_id} has no candidates yet (run doit to build it)")
    images = find_images(record, req.asset_id, cid)
    data = []
    for entry in images:
        relative = f"{req.asset_dir}/{entry.file}"
        try:
            data.append(store.read_bytes(relative))
        except FileNotFoundError:
            raise ReviewError(
                f"candidate {cid} of asset {req.asset_id}: its image {relative} is missing (run doit to make it again)"
            ) from None
        if verify and hashlib.sha256(data[-1]).hexdigest() != entry.sha256:
            raise ReviewError(
                f"candidate {cid} of asset {req.asset_id}: {relative} has changed since it was generated"
                " (its sha256 is not the one in asset.json); only the generated image can be approved"
            )
    return _Target(req, record, cid, images, tuple(data) if verify else None)


@contextmanager
def _no_build_running(root: Path, decision: str) -> Iterator[None]:
    """Hold the project's build lock: a running build rewrites asset.json and the lock file, and
    would drop a decision recorded in between. Another decision (the CLI's, the studio's) holds
    it for milliseconds: wait for that one, up to a few seconds, instead of refusing."""
    deadline = time.monotonic() + _DECISION_WAIT
    while True:
        try:
            handle = acquire_build_lock(root / ".imgbuild", decision)
            break
        except BuildLocked as exc:
            if _DECISION_HOLDER.search(exc.holder) and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            raise ReviewError(
                f"a build is running in this project ({exc.holder}); {decision} when it has finished"
            ) from None
    with handle:
        yield


_DECISION_WAIT = 5.0  # seconds
# The holder a decision writes into the lock ("pid N, imgbuild approve"), or none yet: the holder
# writes its name just after taking the lock, so for an instant there is nothing to read.
_DECISION_HOLDER = re.compile(rf"imgbuild (?:{APPROVE}|{REJECT}|undo)$|^another process$")


# -- the two decisions --------------------------------------------------------------------------


def _review_record(
    decision: str, target: _Target, checklist: dict[str, CheckResult], *, note: str | None, by: str, at: str,
    override: bool,
) -> Review:  # fmt: skip
    return Review(
        decision=decision,
        candidate=target.cid.candidate,
        image=target.cid.image,
        run=target.entry.run,
        request_hash=target.entry.request_hash,
        by=by,
        at=at,
        checklist=checklist_items(checklist),
        override=override,
        note=note,
    )


def _approve(
    resolution: Resolution,
    store: AssetStore,
    target: _Target,
    checklist: dict[str, CheckResult],
    *,
    note: str | None,
    by: str,
    override: bool,
) -> tuple[list[str], Review]:
    req, record, entry, cid = target.request, target.record, target.entry, target.cid
    assert target.data is not None
    copies = []  # (approved copy relative to the asset folder, bytes, already there)
    for image, data in zip(target.images, target.data, strict=True):
        approved = f"images/approved/{PurePosixPath(image.file).name}"
        approved_path = f"{req.asset_dir}/{approved}"
        existing = store.read_bytes(approved_path) if store.exists(approved_path) else None
        if existing is not None and existing != data:
            raise ReviewError(f"{approved_path} exists with other content; an approved image is never overwritten")
        copies.append((approved, data, existing is not None))
    at = utc_now()
    previous = record.approval
    approval = Approval(
        candidate=cid.candidate,
        image=cid.image,
        run=entry.run,
        source=entry.file,
        file=copies[0][0],
        sha256=entry.sha256,
        request_hash=entry.request_hash,
        prompt_hash=entry.prompt_hash or record.prompt_hash,
        request=_request_of(store, req.asset_dir, record, entry),
        by=by,
        at=at,
        checklist=checklist_items(checklist),
        override=override,
        note=note,
        images=tuple(
            ApprovedImage(image.image or 0, image.file, file, image.sha256)
            for image, (file, _, _) in zip(target.images, copies, strict=True)
        )
        if target.whole_set
        else (),
    )
    review_entry = _review_record(APPROVE, target, checklist, note=note, by=by, at=at, override=override)
    record = store.approve(
        req.asset_dir,
        replace(record, approval=approval),
        review_entry,
        approved_copies=[(file, data) for file, data, there in copies if not there],
    )
    lock_line = _update_lock(resolution, store, req)

    failed = [item for item, result in checklist.items() if not result.passed]
    what = f"candidate {cid}" + (f": the whole set of {len(copies)} images" if target.whole_set else "")
    lines = [f"approved {req.asset_id} {what} (by {by})"]
    lines.append("  checklist: " + ", ".join(_said(result) for result in checklist.values()))
    if failed:
        lines.append(f"  override: {', '.join(failed)} failed — {note}")
    elif note:
        lines.append(f"  note: {note}")
    for file, _, _ in copies:
        lines.append(f"  approved image: {req.asset_dir}/{file}")
    if previous and (previous.key != approval.key or previous.images != approval.images):
        lines.append(f"  replaces the approval of candidate {previous.label} (kept in the asset's reviews)")
    if entry.request_hash != req.request_hash:
        lines.append(
            "  note: the manifest has changed since this candidate was made; the approval shows as stale"
            " until a candidate of the new request is approved (run doit to make them)"
        )
    lines.append(lock_line)
    return lines, review_entry


def _reject(
    resolution: Resolution,
    store: AssetStore,
    target: _Target,
    checklist: dict[str, CheckResult],
    *,
    note: str | None,
    by: str,
) -> tuple[list[str], Review]:
    req, record, cid = target.request, target.record, target.cid
    at = utc_now()
    was_approved = record.approval is not None and any(record.approval.covers(image) for image in target.images)
    if was_approved:
        record = replace(record, approval=None)  # the old approval stays readable in reviews
    review_entry = _review_record(REJECT, target, checklist, note=note, by=by, at=at, override=False)
    store.reject(req.asset_dir, record, review_entry)
    lock_line = _update_lock(resolution, store, req)

    what = f"candidate {cid}" + (f": the whole set of {len(target.images)} images" if target.whole_set else "")
    lines = [f"rejected {req.asset_id} {what} (by {by})"]
    if checklist:
        lines.append("  checklist: " + ", ".join(_said(result) for result in checklist.values()))
    if note:
        lines.append(f"  note: {note}")
    if was_approved:
        lines.append(
            f"  candidate {cid} was the approved image: {req.asset_id} has no approval now"
            f" (its copy stays in images/approved/)"
        )
    lines.append(lock_line)
    return lines, review_entry


def _said(result: CheckResult) -> str:
    text = f"{result.item} {'pass' if result.passed else 'FAIL'}"
    return f"{text} ({result.note})" if result.note else text


def _request_of(store: AssetStore, asset_dir: str, record: AssetRecord, entry: Candidate) -> Any:
    """The normalized request the candidate was made for: its run's request.json, else asset.json's."""
    sent = store.run_request(asset_dir, entry.run)
    if sent is not None:
        return sent
    return record.request if record.request_hash == entry.request_hash else None


def _update_lock(resolution: Resolution, store: AssetStore, req: ImageRequest) -> str:
    """Write the decision into the asset's lock entry. A build keeps an entry that still matches
    the request as it is, so it would not pick the decision up by itself."""
    path = lock_path(resolution.batch(req.batch).path)
    shown = path.relative_to(resolution.root).as_posix()
    entry = lock_entry(StateIndex(resolution), req, fresh=True)
    if not update_lock_entry(path, entry, store.temp_dir):
        return f"  {shown} has no entry for this asset yet; the next build writes it"
    return f"  {shown} updated"
