"""The state of every asset: requests × records → what is true now, and what a build would do.

The one place that decides it; plan, status, check, explain, ls, prune, the doit tasks, the
gallery and review all ask here. Decided from our own records, never from doit's database:

* **current** — the records hold, for the current request hash, every candidate with its files;
* **new** — never generated; **changed** — made for another request (the field that changed is
  named); **incomplete** / **missing-image** — some candidates not made yet, or their files gone;
* **interrupted** — a call of the current request was started and never closed (a kill, a stop):
  how many may have been billed, and whether a rerun resumes them without paying again;
* **broken** — asset.json or index.json cannot be read (path and what to do);
* apart from the build state: **outdated** records (the request is the same but asset.json still
  states other attribute values), **evidence drift** (the images were made from other evidence
  than the manifests cite now), and **orphans** (asset folders no manifest declares);
* the review state: **approved** (for the current request), **stale** (approved for another),
  **rejected**, **unreviewed**.

The batch lock file answers for most assets without opening asset.json: an entry is trusted only
while it describes the current request and its asset.json and image files exist.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from imgbuild.edits import EditDecision, approval_of
from imgbuild.models import Pricing, get_model
from imgbuild.records import (
    AssetRecord,
    AssetStore,
    BrokenRecord,
    Candidate,
    EvidenceRef,
    History,
    LockApproval,
    LockEntry,
    LockFile,
    LockImage,
    Review,
    lock_path,
    read_lock,
    write_lock,
)
from imgbuild.records.model import sealed_lock
from imgbuild.requests import HASHED_FIELDS, ImageRequest
from imgbuild.resolve import Resolution

__all__ = [
    "APPROVED",
    "REJECTED",
    "STALE",
    "SUPERSEDED",
    "UNREVIEWED",
    "AssetState",
    "CandidateReview",
    "EvidenceChange",
    "Interruption",
    "LockWriter",
    "ReviewState",
    "StateIndex",
    "approval_problem",
    "assess",
    "assess_reviews",
    "candidate_reviews",
    "changed_fields",
    "describe_changes",
    "estimate",
    "lock_entry",
    "review_of",
]

# Review states of one candidate image, as the gallery and the review studio show them.
APPROVED, STALE, REJECTED, UNREVIEWED, SUPERSEDED = "approved", "stale", "rejected", "unreviewed", "superseded"


@dataclass(frozen=True)
class Interruption:
    """A call of the current request that a build started and never closed."""

    candidate: int
    run: str
    possibly_billed: bool  # its request was recorded, so it may have reached the provider
    resumable: bool  # its job or answer is recorded: a rerun (or `imgbuild poll`) finishes it for free


@dataclass(frozen=True)
class EvidenceChange:
    """An evidence file whose content is not the one the asset's images were made from."""

    path: str
    made_from: str | None  # sha256, None: the file was not cited then
    now: str | None  # sha256, None: no longer cited

    def describe(self) -> str:
        if self.made_from is None:
            return f"{self.path} is cited now but was not when the images were made"
        if self.now is None:
            return f"{self.path} (made from {self.made_from[:12]}) is no longer cited"
        return f"{self.path} changed: images made from {self.made_from[:12]}, now {self.now[:12]}"


@dataclass(frozen=True)
class AssetState:
    """What is true of one asset now, and what a build would do for it."""

    request: ImageRequest
    status: str  # current, new, changed, incomplete, missing-image, interrupted, broken
    todo: tuple[int, ...]  # candidate indices a build would make
    reasons: tuple[str, ...]
    interruptions: tuple[Interruption, ...] = ()
    evidence: tuple[EvidenceChange, ...] = ()
    outdated: tuple[str, ...] = ()  # record fields that differ although the request is the same
    fields: tuple[str, ...] = ()  # "changed": the request fields that differ (see changed_fields)

    @property
    def stale(self) -> bool:
        return bool(self.todo) or self.status == "broken"

    @property
    def repeats(self) -> int:
        """Paid calls a rebuild would make again: interrupted calls that may have been billed and
        cannot be resumed."""
        return sum(1 for i in self.interruptions if i.possibly_billed and not i.resumable)

    @property
    def model(self) -> str:
        """The endpoint key a build really calls (an edit's or an identity set's, not the batch's)."""
        return self.request.model


@dataclass(frozen=True)
class ReviewState:
    """Where one asset stands in review, against its current request."""

    request: ImageRequest
    approval: LockApproval | None
    rejected: tuple[str, ...]  # candidates of the current request whose newest review is a rejection

    @property
    def status(self) -> str:
        """approved (for the current request), stale (for another), rejected, unreviewed."""
        if self.approval is None:
            return REJECTED if self.rejected else UNREVIEWED
        return APPROVED if self.approval.request_hash == self.request.request_hash else STALE


@dataclass(frozen=True)
class CandidateReview:
    """One candidate image with its review state and the newest decision about it."""

    candidate: Candidate
    state: str  # APPROVED, STALE, REJECTED, UNREVIEWED, SUPERSEDED
    review: Review | None


# -- review rules (the only copy) -------------------------------------------------------------------


def candidate_reviews(record: AssetRecord, request_hash: str) -> list[CandidateReview]:
    """Every candidate image of `record` with its review state against `request_hash`.

    A decision is about one image of one run, so it never sticks to a candidate made again under
    the same number; an image approved once whose approval went elsewhere is "superseded"."""
    approval = record.approval
    out = []
    for cand in record.candidates:
        review = record.newest_review(cand)
        if approval is not None and approval.covers(cand):
            state = APPROVED if approval.request_hash == request_hash else STALE
        else:
            state = {"reject": REJECTED, "approve": SUPERSEDED}.get(review.decision if review else "", UNREVIEWED)
        out.append(CandidateReview(cand, state, review))
    return out


def review_of(
    record: AssetRecord | None, request_hash: str, asset_dir: str
) -> tuple[LockApproval | None, tuple[str, ...]]:
    """(the approval as the render stage reads it, ids of rejected current candidates)."""
    if record is None:
        return None, ()
    approval = LockApproval.of(record.approval, asset_dir, request_hash) if record.approval else None
    current = record.made_for(request_hash)
    rejected = tuple(
        c.candidate.label
        for c in sorted(
            candidate_reviews(record, request_hash), key=lambda c: (c.candidate.candidate, c.candidate.image or 0)
        )
        if c.state == REJECTED and c.candidate in current.get(c.candidate.candidate, ())
    )
    return approval, rejected


# -- the index ----------------------------------------------------------------------------------------


class StateIndex:
    """Per-process view of a project's records: the lock files, read once, and asset records.

    With `verify` (the commands that report state: check, status, explain, ls, plan) a lock entry
    vouches for an asset only while its asset.json also reads: a lock file is derived, and must
    not hide an asset.json broken by a merge. A build keeps the fast path (no asset.json opened)."""

    def __init__(self, resolution: Resolution, *, verify: bool = False) -> None:
        self.resolution = resolution
        self.verify = verify
        self.root = resolution.root
        self.root_str = str(resolution.root)
        self.store = AssetStore(self.root)
        # The batches resolved (a no-op build resolves only those that may be stale).
        self._locks: dict[str, LockFile | None] = {
            b.id: read_lock(lock_path(b.path)) for b in resolution.project.batches if b.id in resolution.requests
        }
        self._vouched: dict[str, bool] = {}
        self._files: dict[str, tuple[str, ...]] = {}  # asset id -> the files its vouching entry names
        self._records: dict[str, AssetRecord | None] = {}

    def lock(self, batch_id: str) -> LockFile | None:
        return self._locks[batch_id]

    def set_lock(self, batch_id: str, lock: LockFile) -> None:
        """The batch's lock file as just written (its entries vouch anew)."""
        self._locks[batch_id] = lock
        self._vouched = {k: v for k, v in self._vouched.items() if k not in lock.ids()}

    def record(self, asset_dir: str) -> AssetRecord | None:
        """asset.json of `asset_dir` (read once per process; BrokenRecord when unreadable)."""
        if asset_dir not in self._records:
            self._records[asset_dir] = self.store.read_asset(asset_dir)
        return self._records[asset_dir]

    def forget(self, asset_dir: str) -> None:
        """Read asset.json again next time (a build has written it since)."""
        self._records.pop(asset_dir, None)

    def vouched(self, req: ImageRequest) -> bool:
        """The lock entry of `req` describes the current request and its asset.json and image files
        exist (checked once per asset; the no-op build asks this of every asset)."""
        asset_id = req.asset_id
        known = self._vouched.get(asset_id)
        if known is None:
            known = self._vouched[asset_id] = self._vouches(req)
        return known

    def _vouches(self, req: ImageRequest) -> bool:
        lock = self._locks[req.batch]
        files = _current_files(lock, req) if lock is not None else None
        if files is None:
            return False
        root = self.root_str  # plain str paths: this runs once per asset on every no-op build
        if not os.path.exists(f"{root}/{req.asset_dir}/asset.json"):
            return False  # a lock file never vouches for an asset whose records are gone
        if self.verify:
            try:
                self.record(req.asset_dir)
            except BrokenRecord:
                return False  # assessed from asset.json: reported as broken
        if not all(os.path.exists(f"{root}/{file}") for file in files):
            return False
        self._files[req.asset_id] = (f"{req.asset_dir}/asset.json", *files)
        return True

    def vouched_files(self, req: ImageRequest) -> tuple[str, ...] | None:
        """The project-relative files whose existence `vouched(req)` rests on (None: it does not
        vouch): what the no-op index of a batch stats next time instead of asking again."""
        return self._files.get(req.asset_id) if self.vouched(req) else None

    def trusted_entry(self, req: ImageRequest) -> LockEntry | None:
        """The lock entry of `req` when it vouches for the asset (see `vouched`), parsed."""
        if not self.vouched(req):
            return None
        lock = self._locks[req.batch]
        return lock.entry(req.asset_id) if lock is not None else None

    def candidate_done(self, req: ImageRequest, candidate: int) -> bool:
        """Candidate `candidate` of `req` exists (doit's `uptodate` for an image task)."""
        if self.vouched(req):
            return True
        try:
            record = self.record(req.asset_dir)
        except BrokenRecord:
            return False  # the task reports it
        return record is not None and candidate in self._made(record, req)

    def _made(self, record: AssetRecord, req: ImageRequest) -> dict[int, tuple[Candidate, ...]]:
        """Candidate index → its images, for the current request and its candidate count."""
        made = self.store.made(record, req.asset_dir, req.request_hash)
        return {k: images for k, images in made.items() if k <= req.candidates}


def _current_files(lock: LockFile, req: ImageRequest) -> list[str] | None:
    """The image files of `req`'s entry when it describes a complete asset made for `req`."""
    return lock.current_files(
        req.asset_id,
        request_hash=req.request_hash,
        prompt_hash=req.prompt_hash,
        variant_test=req.variant_test,
        asset_dir=req.asset_dir,
        model=req.model,
        fixed=req.fixed,
        vary=req.vary,
        candidates=req.candidates,
    )


# -- assessing ----------------------------------------------------------------------------------------


def assess(
    resolution: Resolution, index: StateIndex | None = None, requests: Iterable[ImageRequest] | None = None
) -> list[AssetState]:
    """The state of every asset of the project (or of `requests`), in manifest order."""
    index = index or StateIndex(resolution)
    out = []
    for req in resolution.all_requests() if requests is None else requests:
        state = _assess_one(index, req)
        decision = resolution.decisions.get(req.asset_id)
        if state.todo and decision is not None and decision.kind != "approved":
            state = _with_reason(state, decision)
        out.append(state)
    return out


def _with_reason(state: AssetState, decision: EditDecision) -> AssetState:
    """A stale approved asset also says whether it will be edited from its approval or regenerated."""
    return replace(state, reasons=(*state.reasons, decision.describe()))


def _assess_one(index: StateIndex, req: ImageRequest) -> AssetState:
    wanted = tuple(range(1, req.candidates + 1))
    entry = index.trusted_entry(req)
    if entry is not None:
        return AssetState(req, "current", (), (), evidence=_drift(entry.source_basis, req), outdated=())
    try:
        record = index.record(req.asset_dir)
        history = index.store.read_history(req.asset_dir) if record is not None else None
    except BrokenRecord as exc:
        return AssetState(req, "broken", wanted, (str(exc),))
    if record is None:
        return AssetState(req, "new", wanted, ("new asset: never generated",))
    done = index._made(record, req)
    todo = tuple(k for k in wanted if k not in done)
    interruptions = _interruptions(index, req, record, history, todo)
    made_now = [i for k in sorted(done) for i in done[k]]
    evidence = _drift(_made_from(record, made_now), req) if made_now else ()
    outdated = tuple(_outdated(record, req)) if not todo else ()
    if not todo:
        return AssetState(req, "current", (), (), evidence=evidence, outdated=outdated)
    made_for_hash = record.made_for(req.request_hash)
    if interruptions:
        billed = sum(1 for i in interruptions if i.possibly_billed)
        resumable = sum(1 for i in interruptions if i.resumable)
        reasons = [
            f"interrupted: {_count(len(interruptions), 'call')} of the current request never finished"
            f" ({billed} possibly billed"
            + (f", {resumable} resumable without a new call: run `imgbuild poll` or doit" if resumable else "")
            + ")"
        ]
        return AssetState(req, "interrupted", todo, tuple(reasons), interruptions, evidence)
    if not made_for_hash:
        changes = changed_fields(record.request, req.record())
        return AssetState(
            req, "changed", todo, tuple(t for _, t in changes), (), evidence, fields=tuple(f for f, _ in changes)
        )
    reasons = []
    for k in todo:
        if k in made_for_hash:
            reasons.append(f"image missing: {made_for_hash[k][0].file} (candidate {k})")
        else:
            reasons.append(f"candidate {k} of {req.candidates} not generated yet")
    status = "missing-image" if any(k in made_for_hash for k in todo) else "incomplete"
    return AssetState(req, status, todo, tuple(reasons), (), evidence)


def _interruptions(
    index: StateIndex, req: ImageRequest, record: AssetRecord, history: History | None, todo: Sequence[int]
) -> tuple[Interruption, ...]:
    """Calls of the current request that were started and never closed, for candidates to make.

    The calls in flight (.imgbuild/) say it on the machine that ran the build; the committed
    history says it anywhere (a fresh clone): a ``submitted`` event with no closing event."""
    if not todo:
        return ()
    store = index.store
    found: dict[str, Interruption] = {}
    for call in store.pending(req.asset_dir):
        if call.request_hash == req.request_hash and call.candidate in todo:
            resumable = call.job is not None or store.saved_response(req.asset_dir, call.run) is not None
            sent = store.exists(store.run_path(req.asset_dir, call.run, "request.json"))
            found[call.run] = Interruption(call.candidate, call.run, sent or call.job is not None, resumable)
    if history is not None:
        closed = {e.run for e in history.events if e.event in ("completed", "partial", "failed", "interrupted")}
        made = {c.run for c in record.candidates}
        for event in history.events:
            if (
                event.event == "submitted"
                and event.run not in closed
                and event.run not in made
                and event.run not in found
                and event.details.get("request_hash") == req.request_hash
                and event.details.get("candidate") in todo
            ):
                found[event.run] = Interruption(int(event.details["candidate"]), event.run, True, False)
    return tuple(sorted(found.values(), key=lambda i: (i.candidate, i.run)))


def _made_from(record: AssetRecord, images: Sequence[Candidate]) -> tuple[EvidenceRef, ...]:
    """The evidence the images were made from: as each candidate recorded it, else (older
    records) as the request of asset.json states it."""
    for image in images:
        if image.evidence is not None:
            return image.evidence
    refs = [*record.request.get("source_basis", []), *(record.request.get("persona") or {}).get("evidence", [])]
    seen: dict[tuple[str, Any], EvidenceRef] = {}
    for ref in refs:
        if isinstance(ref, Mapping) and isinstance(ref.get("path"), str) and isinstance(ref.get("sha256"), str):
            seen.setdefault(
                (ref["path"], ref.get("anchor")), EvidenceRef(ref["path"], ref.get("anchor"), ref["sha256"])
            )
    return tuple(seen.values())


def _drift(made_from: Sequence[EvidenceRef], req: ImageRequest) -> tuple[EvidenceChange, ...]:
    now = req.evidence()
    if tuple(made_from) == now:
        return ()
    before = {r.path: r.sha256 for r in made_from}
    after = {r.path: r.sha256 for r in now}
    return tuple(
        EvidenceChange(path, before.get(path), after.get(path))
        for path in sorted(set(before) | set(after))
        if before.get(path) != after.get(path)
    )


def _outdated(record: AssetRecord, req: ImageRequest) -> list[str]:
    """What asset.json states differently from the manifest although the request is the same."""
    old = record.request.get("attributes") or {}
    new = req.record()["attributes"]
    out = []
    for group in ("fixed", "vary"):
        out += _diff_map(group, old.get(group) or {}, new[group])
    facts = req.facts
    for name in ("asset_id", "batch", "shot", "purpose", "persona", "variant_test"):
        was, now = getattr(record, name), getattr(facts, name)
        if was != now:  # a renamed shot or batch whose folders were moved: same request, other id
            out.append(f"{name}: {_short(was)} → {_short(now)}")
    return out


def describe_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Name each field that differs between two request records, most telling first."""
    return [text for _, text in changed_fields(old, new)]


def changed_fields(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(field, description) of each field that differs between two request records, most telling
    first; the field is a dotted path (``fixed.wardrobe``, ``persona.traits.face``, ``prompt``)."""
    changes = []
    for group in ("fixed", "vary"):
        changes += _diff_fields(group, (old.get("attributes") or {}).get(group, {}), new["attributes"][group])
    changes += _diff_fields("persona.traits", (old.get("persona") or {}).get("traits", {}), new["persona"]["traits"])
    # An edit's model, mode and references follow from the edit rule, which says so itself.
    follow = ("model", "mode", "references") if new.get("edit") or old.get("edit") else ()
    for name in ("template", *HASHED_FIELDS):
        if name == "prompt" or name in follow or old.get(name) == new.get(name):
            continue
        changes.append((name, f"{name}: {_short(old.get(name))} → {_short(new.get(name))}"))
    if old.get("prompt") != new.get("prompt"):
        changes.append(("prompt", "prompt changed" if changes else "prompt changed (template or inline prompt edited)"))
    return changes or [("request", "request changed")]


def _diff_map(label: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    return [text for _, text in _diff_fields(label, old, new)]


def _diff_fields(label: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [
        (f"{label}.{key}", f"{label}.{key}: {_short(old.get(key))} → {_short(new.get(key))}")
        for key in sorted(set(old) | set(new))
        if old.get(key) != new.get(key)
    ]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def assess_reviews(
    resolution: Resolution, index: StateIndex | None = None, requests: Iterable[ImageRequest] | None = None
) -> list[ReviewState]:
    """The review state of every asset (or of `requests`), in manifest order: from the lock entry
    while it describes the current request (approve / reject keep it up to date), else asset.json."""
    index = index or StateIndex(resolution)
    out = []
    for req in resolution.all_requests() if requests is None else requests:
        entry = index.trusted_entry(req)
        if entry is not None:
            out.append(ReviewState(req, entry.approval, entry.rejected))
            continue
        try:
            record = index.record(req.asset_dir)
        except BrokenRecord:
            record = None
        approval, rejected = review_of(record, req.request_hash, req.asset_dir)
        out.append(ReviewState(req, approval, rejected))
    return out


def approval_problem(root: str | os.PathLike[str], state: ReviewState) -> tuple[str, str] | None:
    """(kind, reason) when the asset has no current approved image the render stage can take."""
    req, approval = state.request, state.approval
    if approval is None:
        return "unapproved", f"no approved image (run imgbuild approve {req.asset_id} <candidate>)"
    if state.status == STALE:
        return "stale approval", f"approved candidate {approval.label} was made for an older request"
    if not os.path.exists(os.path.join(root, approval.file)):
        # The render stage would find nothing: committed approved images must stay in the tree.
        return "unapproved", (
            f"the approved image {approval.file} is missing"
            f" (restore it, or run imgbuild approve {req.asset_id} <candidate> again)"
        )
    return None


def estimate(
    work: Iterable[tuple[ImageRequest, Sequence[int]]], pricing: Pricing | None = None
) -> tuple[int, float, dict[str, tuple[int, int]]]:
    """(images, USD cost at list prices, model → (calls, images)) of making candidates `todo` of
    each request: the one cost rule of plan, the budget check and the summary. An identity set
    counts at its `max_images`; the model is the endpoint key really called; the price is the
    route's (`pricing`, by default each request's provider) for the image's size."""
    images, cost = 0, 0.0
    by_model: dict[str, tuple[int, int]] = {}
    for req, todo in work:
        if not todo:
            continue
        n = len(todo) * req.max_images
        calls, made = by_model.get(req.model, (0, 0))
        by_model[req.model] = (calls + len(todo), made + n)
        images += n
        width, height = (int(v) for v in req.size.split("x"))
        route = pricing or Pricing(req.provider)
        cost += n * route.usd(get_model(req.model), width * height, len(req.references))
    return images, cost, by_model


# -- lock files ---------------------------------------------------------------------------------------


class LockWriter:
    """Works out and writes a batch's lock file once its images are built (once per build)."""

    def __init__(self, index: StateIndex, *, fresh: bool = False) -> None:
        # `fresh` (imgbuild merge): every entry is made from asset.json, none kept because it
        # vouches; a lock file taken whole from one side of a git merge must not hide the
        # other side's approvals, which only asset.json then holds.
        self.index = index
        self.fresh = fresh
        self._updates: dict[str, LockFile | None] = {}
        self._outdated: dict[str, list[ImageRequest]] = {}

    def update(self, batch_id: str) -> LockFile | None:
        """The lock file the batch should have, or None when it has it already."""
        if batch_id not in self._updates:
            self._updates[batch_id] = self._work_out(batch_id)
        return self._updates[batch_id]

    def _work_out(self, batch_id: str) -> LockFile | None:
        index = self.index
        resolution = index.resolution
        requests = resolution.requests[batch_id]
        manifest = resolution.batch(batch_id).path.relative_to(resolution.root).as_posix()
        lock = index.lock(batch_id)
        inputs = resolution.inputs.get(batch_id)
        sources = resolution.sources.get(batch_id)
        if (
            not self.fresh
            and lock is not None
            and (lock.batch, lock.manifest) == (batch_id, manifest)
            and lock.ids() == {req.asset_id for req in requests}
            and all(index.vouched(req) for req in requests)
            and lock.sealed(inputs, sources)
        ):
            return None  # the no-op build: every entry vouches for its asset, nothing to work out
        outdated = self._outdated[batch_id] = []
        for req in requests:
            if not index.vouched(req):
                index.forget(req.asset_dir)  # read before the build made its images
                if _outdated_record(index, req):
                    outdated.append(req)
        entries = {req.asset_id: lock_entry(index, req, fresh=self.fresh) for req in requests}
        # Sealed (the inputs digest recorded) only when every entry is current for its request:
        # then a clone with the same inputs knows every request without rendering one.
        wanted = LockFile(batch_id, manifest, entries)
        if (
            inputs is not None
            and all(_current_files(wanted, req) is not None for req in requests)
            and self._approved_as_requested(lock, entries, requests)
        ):
            wanted = sealed_lock(batch_id, manifest, entries, inputs, sources)
        # An outdated asset.json (same request, other attribute values) is rewritten by write(),
        # and so is the lock entry made from it: not current even when the lock file matches. So
        # is a lock file of the same entries whose seal does not hold (its bytes edited, say).
        seal_holds = wanted.inputs_sha256 is None or (
            lock is not None and lock.sealed(wanted.inputs_sha256, wanted.sources)
        )
        return None if lock == wanted and seal_holds and not outdated else wanted

    def _approved_as_requested(
        self, lock: LockFile | None, entries: Mapping[str, LockEntry], requests: Sequence[ImageRequest]
    ) -> bool:
        """Every entry states the approval its request was made from. The edit rule read it from
        the lock entry the build started with (else, and under `fresh`, from asset.json, which
        an entry rebuilt from the records states too), and an entry rebuilt from asset.json
        states asset.json's: after a git merge the two may differ, and a seal over such an entry
        would vouch for a request the approval it states does not make (the next build, making
        the request from that approval, seals it)."""
        if self.fresh or lock is None:
            return True
        store = self.index.store
        return all(
            _edit_basis(entries[req.asset_id].approval) == _edit_basis(approval_of(store, req, lock))
            for req in requests
            if req.asset_id in lock
        )

    def write(self, batch_id: str) -> bool:
        """Write the batch's lock file if its content changed (first bringing outdated asset
        records up to date: no call is needed for those). Returns True when it was written."""
        index = self.index
        self.update(batch_id)
        refreshed = [req for req in self._outdated.get(batch_id, ()) if index.store.refresh_request(req.facts)]
        for req in refreshed:
            index.forget(req.asset_dir)
        if refreshed:
            del self._updates[batch_id]
        lock = self.update(batch_id)
        if lock is None:
            return False
        batch = index.resolution.batch(batch_id)
        index.set_lock(batch_id, write_lock(lock_path(batch.path), lock, index.store.temp_dir))
        self._updates[batch_id] = None
        return True


def _edit_basis(approval: LockApproval | None) -> tuple[Any, ...] | None:
    """What the edit rule makes a request from, of an approval (imgbuild.edits.decide)."""
    if approval is None:
        return None
    return (approval.candidate, approval.image, approval.file, approval.sha256, approval.request_hash, approval.request)


def _outdated_record(index: StateIndex, req: ImageRequest) -> bool:
    """asset.json states other facts than `req` although it may hold its images (see write)."""
    try:
        record = index.record(req.asset_dir)
    except BrokenRecord:
        return False
    if record is None or record.request_hash != req.request_hash:
        return False  # not made for this request yet: the build's calls record it
    return record.for_request(req.facts) != record


def lock_entry(index: StateIndex, req: ImageRequest, *, fresh: bool = False) -> LockEntry:
    """The lock entry of one asset: a trusted entry kept (unless `fresh`: a review decision was
    just recorded), else rebuilt from its records."""
    entry = None if fresh else index.trusted_entry(req)
    if entry is not None:
        # asset.json may have been rewritten since (its sha256 then differs): sealed anew
        sealed = index.store.record_sha256(req.asset_dir, known=entry.record_sha256)
        return entry if sealed == entry.record_sha256 else replace(entry, record_sha256=sealed)
    try:
        record = index.record(req.asset_dir)
    except BrokenRecord:
        record = None
    done = index._made(record, req) if record is not None else {}
    made = [i for k in sorted(done) for i in done[k]]
    images = tuple(LockImage(i.candidate, i.image, f"{req.asset_dir}/{i.file}", i.sha256) for i in made)
    approval, rejected = review_of(record, req.request_hash, req.asset_dir)
    complete = all(k in done for k in range(1, req.candidates + 1))
    return LockEntry(
        id=req.asset_id,
        asset_dir=req.asset_dir,
        status="complete" if complete else "incomplete",
        request_hash=req.request_hash,
        prompt_hash=req.prompt_hash,
        model=req.model,
        # What the images were made from, never what the manifests cite now.
        source_basis=_made_from(record, made) if record is not None and made else req.evidence(),
        attributes=_attributes(record) if record is not None else req.record()["attributes"],
        variant_test=req.variant_test,
        images=images,
        created=max((i.created for i in made), default=None),
        approval=approval,
        rejected=rejected,
        record_sha256=index.store.record_sha256(req.asset_dir) if record is not None else None,
    )


def _attributes(record: AssetRecord) -> dict[str, Any]:
    attrs = record.request.get("attributes") or {}
    return {"fixed": dict(attrs.get("fixed") or {}), "vary": dict(attrs.get("vary") or {})}
