"""Review decisions: the checklist, candidate ids, and what an approval or a rejection records.

The gallery shows :data:`CHECKLIST`; what a decision means for an asset's state (approved, stale,
rejected, superseded) is decided in :mod:`imgbuild.state`. This module only turns arguments and
records into records; the code that has them written is :mod:`imgbuild.decisions`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from imgbuild.errors import UsageError
from imgbuild.records import AssetRecord, Candidate, CheckItem

__all__ = [
    "ALL_ITEMS",
    "APPROVE",
    "CHECKLIST",
    "DECISIONS",
    "REJECT",
    "CandidateId",
    "CheckResult",
    "ReviewError",
    "candidates_for",
    "check_decision",
    "checklist_items",
    "find_candidate",
    "find_images",
    "parse_candidate_id",
    "parse_checklist",
]

# The review checklist: item id → what a reviewer confirms when the item passes. Ids are the
# contract (asset.json, lock files, the gallery); the descriptions are for people.
CHECKLIST: Mapping[str, str] = {
    "realism": "reads as a real photo of a real person: face, skin, hands, light and text hold up at full size",
    "benchmark-fit": "fits the benchmark evidence the persona and shot are grounded in",
    "repeatability": "the look can be repeated across 10 videos: identity, wardrobe and set are reproducible",
    "copied-creator": "no risk of looking like a specific existing creator, copied",
    "ad-drift": "has not drifted into an ad: no product-shot staging, catalogue posing or stock-photo gloss",
}
ALL_ITEMS = "all"  # `--pass all`: every item not named by a --fail

APPROVE = "approve"
REJECT = "reject"
DECISIONS = (APPROVE, REJECT)

_CANDIDATE_ID = re.compile(r"([1-9][0-9]*)(?:\.([1-9][0-9]*))?")


class ReviewError(UsageError):
    """An approve / reject that cannot be done as asked (wrong id, incomplete checklist...).
    Nothing has been written when it is raised."""


@dataclass(frozen=True)
class CheckResult:
    """One checklist item as the reviewer stated it."""

    item: str
    passed: bool
    note: str | None

    def record(self) -> dict[str, Any]:
        return {"result": "pass" if self.passed else "fail", "note": self.note}


@dataclass(frozen=True)
class CandidateId:
    """`K` (candidate K) or `K.I` (image I of candidate K's sequential identity set)."""

    candidate: int
    image: int | None = None

    def __str__(self) -> str:
        return str(self.candidate) if self.image is None else f"{self.candidate}.{self.image}"

    def sort_key(self) -> tuple[int, int]:
        return (self.candidate, self.image or 0)


def parse_candidate_id(text: str) -> CandidateId:
    """``"2"`` → candidate 2; ``"2.3"`` → image 3 of candidate 2's set. Raises ReviewError."""
    match = _CANDIDATE_ID.fullmatch(text.strip())
    if match is None:
        raise ReviewError(
            f"candidate {text!r} is not a candidate number: give K (e.g. 2), or K.I for image I of a sequential set"
        )
    return CandidateId(int(match[1]), int(match[2]) if match[2] else None)


def parse_checklist(passed: Sequence[str], failed: Sequence[str]) -> dict[str, CheckResult]:
    """The checklist stated by ``--pass ITEM[=NOTE]`` and ``--fail ITEM[=NOTE]``, in checklist order.

    ``--pass all`` passes every item that no ``--fail`` names. Raises ReviewError on an unknown
    item, an item given twice, or an item both passed and failed."""
    stated: dict[str, CheckResult] = {}
    pass_all: str | None = None  # the note of `--pass all=NOTE`, if any, once seen
    pass_all_seen = False
    for ok, args in ((True, passed), (False, failed)):
        for arg in args:
            name, _, note_text = arg.partition("=")
            item, note = name.strip(), note_text.strip() or None
            if item == ALL_ITEMS and ok:
                pass_all_seen, pass_all = True, note
                continue
            if item not in CHECKLIST:
                raise ReviewError(_unknown_item(item, ok))
            if item in stated:
                twice = "both passed and failed" if stated[item].passed != ok else "given twice"
                raise ReviewError(f"checklist item {item} is {twice}: state each item once")
            stated[item] = CheckResult(item, ok, note)
    if pass_all_seen:
        for item in CHECKLIST:
            stated.setdefault(item, CheckResult(item, True, pass_all))
    return {item: stated[item] for item in CHECKLIST if item in stated}


def _unknown_item(item: str, ok: bool) -> str:
    close = difflib.get_close_matches(item, list(CHECKLIST), n=1)
    hint = f" — did you mean {close[0]}?" if close else ""
    valid = ", ".join(CHECKLIST) + (f", or {ALL_ITEMS}" if ok else "")
    return f"unknown checklist item {item!r}{hint} (the items: {valid})"


def check_decision(decision: str, checklist: Mapping[str, CheckResult], *, note: str | None, override: bool) -> None:
    """Refuse a decision the checklist does not support. Raises ReviewError.

    Approving needs every item stated, and a failed item needs ``--override`` and a note saying
    why; rejecting needs a reason (a failed item or a note)."""
    failed = [item for item, result in checklist.items() if not result.passed]
    if decision == REJECT:
        if not failed and note is None:
            raise ReviewError("reject needs a reason: at least one --fail ITEM[=NOTE], or a --note")
        return
    missing = [item for item in CHECKLIST if item not in checklist]
    if missing:
        raise ReviewError(
            f"approve needs every checklist item passed or failed; missing: {', '.join(missing)}"
            " (--pass ITEM, --fail ITEM=NOTE, or --pass all for every item not failed)"
        )
    if failed and not (override and note is not None):
        raise ReviewError(
            f"checklist item{'s' if len(failed) > 1 else ''} {', '.join(failed)} failed:"
            " approving anyway needs --override and a --note saying why"
        )
    if override and not failed:
        raise ReviewError("--override is for approving despite a failed checklist item, and every item passed")


def checklist_items(checklist: Mapping[str, CheckResult]) -> tuple[CheckItem, ...]:
    """The checklist as the records keep it."""
    return tuple(CheckItem(item, "pass" if r.passed else "fail", r.note) for item, r in checklist.items())


def candidates_for(record: AssetRecord, request_hash: str) -> dict[CandidateId, Candidate]:
    """Candidate id → the newest candidate image made for `request_hash` (files not checked).

    Images of a sequential identity set carry ``image`` (1-based) and get ids ``K.I``."""
    found: dict[CandidateId, Candidate] = {}
    for entry in record.candidates:
        if entry.request_hash == request_hash:
            found[CandidateId(entry.candidate, entry.image)] = entry  # newest last
    return dict(sorted(found.items(), key=lambda kv: kv[0].sort_key()))


def find_images(record: AssetRecord, asset_id: str, wanted: CandidateId) -> tuple[Candidate, ...]:
    """The images a decision on `wanted` is about: one image (``K``, or ``K.I`` of a set), or for
    ``K`` naming an identity set, every image of the set's newest call (the set as a whole).
    Raises ReviewError like find_candidate."""
    if wanted.image is None:
        newest = record.made_for(record.request_hash).get(wanted.candidate, ())
        if newest and newest[0].image is not None:
            return tuple(sorted(newest, key=lambda c: c.image or 0))
    return (find_candidate(record, asset_id, wanted),)


def find_candidate(record: AssetRecord, asset_id: str, wanted: CandidateId) -> Candidate:
    """The candidate `wanted` names among those of the record's current request.
    Raises ReviewError naming what exists when there is no such candidate."""
    current = candidates_for(record, record.request_hash)
    if not current:
        older = len(record.candidates)
        made = (
            f"; its {older} older candidate{'s were' if older != 1 else ' was'} made for earlier requests"
            if older
            else ""
        )
        raise ReviewError(f"asset {asset_id} has no candidates for its current request yet (run doit){made}")
    if wanted in current:
        return current[wanted]
    listed = ", ".join(str(c) for c in current)
    images = sorted(c.image for c in current if c.candidate == wanted.candidate and c.image is not None)
    if wanted.image is None and images:
        raise ReviewError(
            f"candidate {wanted} of asset {asset_id} is a sequential set of {len(images)} images:"
            f" pick one, {wanted}.{images[0]}..{wanted}.{images[-1]}"
        )
    if wanted.image is not None and CandidateId(wanted.candidate) in current:
        raise ReviewError(
            f"candidate {wanted.candidate} of asset {asset_id} is a single image, not a set: give {wanted.candidate}"
        )
    raise ReviewError(f"asset {asset_id} has no candidate {wanted} for its current request (candidates: {listed})")
