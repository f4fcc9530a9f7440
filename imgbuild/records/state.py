"""Is an asset up to date, and if not, why? Decided from our own records, never from doit's database.

Up to date ⇔ the asset's records hold, for the current request hash, a completed candidate for every
candidate index, and those image files exist. The batch lock file answers that for most assets
without opening asset.json; an asset the lock cannot vouch for is looked up in its own records.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from imgbuild.edits import EditDecision
from imgbuild.generate import current_candidates
from imgbuild.records.atomic import atomic_write_json
from imgbuild.records.lock import LOCK_SCHEMA, LockFile, lock_path, read_lock
from imgbuild.records.store import AssetStore
from imgbuild.requests import HASHED_FIELDS, ImageRequest
from imgbuild.resolve import Resolution
from imgbuild.review import lock_review_fields

__all__ = [
    "ApprovalState",
    "AssetState",
    "Orphan",
    "StateIndex",
    "assess",
    "assess_approvals",
    "find_orphans",
    "lock_entry_current",
    "write_lock",
]


class StateIndex:
    """Per-process cache of the batch lock files, the fast index of the no-op path."""

    def __init__(self, resolution: Resolution) -> None:
        self.root = resolution.root
        self.root_str = str(resolution.root)
        self.store = AssetStore(self.root)
        self._locks: dict[str, LockFile] = {}
        self._trusted: dict[str, dict[str, Any] | None] = {}
        self._missing: set[str] = set()  # assets with a trusted entry but a deleted image
        self._requests = resolution.requests
        self._lock_updates: dict[str, dict[str, dict[str, Any]] | None] = {}
        for batch in resolution.project.batches:
            self._locks[batch.id] = read_lock(lock_path(batch.path))

    def lock(self, batch_id: str) -> LockFile:
        return self._locks[batch_id]

    def trusted_entry(self, req: ImageRequest) -> dict[str, Any] | None:
        """The lock entry of `req` if it describes the current request (checked once per asset)."""
        if req.asset_id not in self._trusted:
            entry = self._locks[req.batch].entry(req.asset_id)
            self._trusted[req.asset_id] = entry if entry is not None and lock_entry_current(entry, req) else None
        return self._trusted[req.asset_id]

    def unchanged_entry(self, req: ImageRequest) -> dict[str, Any] | None:
        """The lock entry of an asset that this build had nothing to do for, else None."""
        return None if req.asset_id in self._missing else self.trusted_entry(req)

    def lock_update(self, batch_id: str) -> dict[str, dict[str, Any]] | None:
        """The entries the batch's lock file should hold, or None when it holds them already.

        Asked once the batch's images are built (by the lock task's up-to-date check, then by its
        action), so it is worked out once per build."""
        if batch_id not in self._lock_updates:
            lock_file = self._locks[batch_id]
            entries = lock_entries(self, self._requests[batch_id])
            current = entries == lock_file.assets and lock_file.path.exists()
            self._lock_updates[batch_id] = None if current else entries
        return self._lock_updates[batch_id]

    def candidate_done(self, req: ImageRequest, candidate: int) -> bool:
        """True when candidate `candidate` of `req` exists (doit's `uptodate` for an image task)."""
        entry = self.trusted_entry(req)
        if entry is not None:
            found = None  # plain loop, str paths: this runs once per image task on every no-op build
            for image in entry["images"]:
                if image["candidate"] == candidate:
                    found = os.path.exists(os.path.join(self.root_str, image["file"]))
                    if not found:
                        self._missing.add(req.asset_id)
                        return False
            if found is not None:
                return found
        record = self.store.read_asset(req.asset_dir)
        return record is not None and candidate in current_candidates(
            record, req.request_hash, self.root, req.asset_dir
        )


def lock_entry_current(entry: dict[str, Any], req: ImageRequest) -> bool:
    """The lock entry describes `req` completely (its files still need a stat to be trusted)."""
    return (
        entry.get("status") == "complete"
        and entry.get("request_hash") == req.request_hash
        and entry.get("prompt_hash") == req.prompt_hash
        and entry.get("source_basis") == [s.record() for s in req.source_basis]
        and entry.get("variant_test") == req.variant_test
        and entry.get("asset_dir") == req.asset_dir
        and sorted({i["candidate"] for i in entry.get("images", [])}) == list(range(1, req.candidates + 1))
    )


@dataclass(frozen=True)
class AssetState:
    """What a build would do for one asset, and why."""

    request: ImageRequest
    status: str  # "current", "new", "changed", "missing-image", "incomplete"
    todo: tuple[int, ...]  # candidate indices to make
    reasons: tuple[str, ...]

    @property
    def stale(self) -> bool:
        return bool(self.todo)


@dataclass(frozen=True)
class Orphan:
    """An asset folder that no manifest declares any more."""

    asset_dir: str
    batch: str | None

    def reason(self) -> str:
        was = f" (was in batch {self.batch})" if self.batch else ""
        return f"no manifest declares this asset any more{was} — restore its values or remove the folder"


@dataclass(frozen=True)
class ApprovalState:
    """Where one asset stands in review, against its current request."""

    request: ImageRequest
    approval: dict[str, Any] | None  # as in the lock entry (see imgbuild.review.lock_review_fields)
    rejected: tuple[str, ...]  # candidates of the current request whose newest review is a rejection

    @property
    def status(self) -> str:
        """One of: approved (for the current request), stale (approved for another request),
        rejected (no approval, a current candidate rejected), unreviewed."""
        if self.approval is None:
            return "rejected" if self.rejected else "unreviewed"
        return "approved" if self.approval["request_hash"] == self.request.request_hash else "stale"


def assess_approvals(
    resolution: Resolution, index: StateIndex | None = None, requests: Iterable[ImageRequest] | None = None
) -> list[ApprovalState]:
    """The review state of every asset (or of `requests`), in manifest order: from the lock entry
    while it describes the current request (approve / reject keep it up to date), else from asset.json."""
    index = index or StateIndex(resolution)
    out = []
    for req in resolution.all_requests() if requests is None else requests:
        entry = index.trusted_entry(req)
        if entry is None or "approval" not in entry or "rejected" not in entry:
            entry = lock_review_fields(index.store.read_asset(req.asset_dir), req.request_hash, req.asset_dir)
        out.append(ApprovalState(req, entry["approval"], tuple(entry["rejected"])))
    return out


def assess(
    resolution: Resolution, index: StateIndex | None = None, requests: Iterable[ImageRequest] | None = None
) -> list[AssetState]:
    """The state of every asset of the project (or of `requests`), in manifest order."""
    index = index or StateIndex(resolution)
    states = [_assess_one(index, req) for req in (resolution.all_requests() if requests is None else requests)]
    if not resolution.decisions:
        return states
    return [_with_decision(state, resolution.decisions.get(state.request.asset_id)) for state in states]


def _with_decision(state: AssetState, decision: EditDecision | None) -> AssetState:
    """A stale approved asset also says whether it will be edited from its approval or regenerated."""
    if not state.stale or decision is None or decision.kind == "approved":
        return state
    return AssetState(state.request, state.status, state.todo, (*state.reasons, decision.describe()))


def _assess_one(index: StateIndex, req: ImageRequest) -> AssetState:
    root = index.root
    wanted = range(1, req.candidates + 1)
    entry = index.trusted_entry(req)
    if entry is not None:
        missing = [i for i in entry["images"] if not os.path.exists(os.path.join(index.root_str, i["file"]))]
        if not missing:
            return AssetState(req, "current", (), ())
    record = index.store.read_asset(req.asset_dir)
    if record is None:
        return AssetState(req, "new", tuple(wanted), ("new asset: never generated",))
    done = current_candidates(record, req.request_hash, root, req.asset_dir)
    todo = tuple(k for k in wanted if k not in done)
    if not todo:
        return AssetState(req, "current", (), ())
    made_for_hash = {
        c["candidate"]: c for c in record.get("candidates", []) if c.get("request_hash") == req.request_hash
    }
    if not made_for_hash:
        return AssetState(req, "changed", todo, tuple(describe_changes(record.get("request") or {}, req.record())))
    reasons = []
    for k in todo:
        if k in made_for_hash:
            reasons.append(f"image missing: {made_for_hash[k]['file']} (candidate {k})")
        else:
            reasons.append(f"candidate {k} of {req.candidates} not generated yet")
    status = "missing-image" if any(k in made_for_hash for k in todo) else "incomplete"
    return AssetState(req, status, todo, tuple(reasons))


def describe_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Name each field that differs between two request records, most telling first."""
    changes = []
    for group in ("fixed", "vary"):
        changes += _diff_map(f"{group}", old.get("attributes", {}).get(group, {}), new["attributes"][group])
    changes += _diff_map("persona.traits", (old.get("persona") or {}).get("traits", {}), new["persona"]["traits"])
    # An edit's model, mode and references follow from the edit rule, which says so itself.
    follow = ("model", "mode", "references") if new.get("edit") or old.get("edit") else ()
    for name in ("template", *HASHED_FIELDS):
        if name == "prompt" or name in follow or old.get(name) == new.get(name):
            continue
        changes.append(f"{name}: {_short(old.get(name))} → {_short(new.get(name))}")
    if old.get("prompt") != new.get("prompt"):
        changes.append("prompt changed" if changes else "prompt changed (template or inline prompt edited)")
    return changes or ["request changed"]


def _diff_map(label: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            out.append(f"{label}.{key}: {_short(old.get(key))} → {_short(new.get(key))}")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def find_orphans(resolution: Resolution) -> list[Orphan]:
    """Asset folders (holding an asset.json) under any output folder that no batch declares."""
    declared = {req.asset_dir for req in resolution.all_requests()}
    config = resolution.project.config
    folders = {config.assets_dir, *(b.output for b in resolution.project.batches)}
    store = AssetStore(resolution.root)
    orphans = []
    for folder in sorted(folders):
        base = resolution.root / folder
        if not base.is_dir():
            continue
        for child in sorted(os.listdir(base)):
            relative = (Path(folder) / child).as_posix()
            if relative in declared or not (base / child / "asset.json").is_file():
                continue
            record = store.read_asset(relative) or {}
            orphans.append(Orphan(relative, record.get("batch")))
    return orphans


def lock_entries(index: StateIndex, requests: Iterable[ImageRequest]) -> dict[str, dict[str, Any]]:
    """The lock entries of a batch's assets: trusted entries kept, the rest rebuilt from records."""
    out: dict[str, dict[str, Any]] = {}
    for req in requests:
        entry = index.unchanged_entry(req)
        if entry is not None:
            if "approval" not in entry or "rejected" not in entry:  # written before reviews were recorded
                review = lock_review_fields(index.store.read_asset(req.asset_dir), entry["request_hash"], req.asset_dir)
                entry = {**entry, **review}
            out[req.asset_id] = entry
            continue
        record = index.store.read_asset(req.asset_dir) or {}
        done = current_candidates(record, req.request_hash, index.root, req.asset_dir)
        complete = all(k in done for k in range(1, req.candidates + 1))
        images = [
            {
                "candidate": k,
                **({"image": image["image"]} if "image" in image else {}),
                "file": f"{req.asset_dir}/{image['file']}",
                "sha256": image["sha256"],
                "remote_url": image.get("remote_url"),
            }
            for k in sorted(done)
            if k <= req.candidates
            for image in done[k]
        ]
        out[req.asset_id] = {
            "id": req.asset_id,
            "asset_dir": req.asset_dir,
            "status": "complete" if complete else "incomplete",
            "request_hash": req.request_hash,
            "prompt_hash": req.prompt_hash,
            "source_basis": [s.record() for s in req.source_basis],
            "variant_test": req.variant_test,
            "images": images,
            "remote_urls": [i["remote_url"] for i in images if i["remote_url"]],
            "created": max((image["created"] for k in done for image in done[k]), default=None),
            # The review state, for the render stage: it takes approved, non-stale images only.
            **lock_review_fields(record, req.request_hash, req.asset_dir),
        }
    return out


def write_lock(index: StateIndex, resolution: Resolution, batch_id: str) -> bool:
    """Write the batch's lock file if its content changed. Returns True when it was written."""
    entries = index.lock_update(batch_id)
    if entries is None:
        return False
    batch = resolution.batch(batch_id)
    lock_file = index.lock(batch_id)
    assets = dict(sorted(entries.items()))
    data = {
        "schema": LOCK_SCHEMA,
        "batch": batch_id,
        "manifest": batch.path.relative_to(resolution.root).as_posix(),
        "assets": assets,
    }
    atomic_write_json(lock_file.path, data, temp_dir=resolution.root / ".imgbuild" / "tmp")
    lock_file.assets = assets
    index._lock_updates[batch_id] = None
    return True
