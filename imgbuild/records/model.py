"""The typed records: what imgbuild keeps on disk, as frozen dataclasses with ``from_json`` / ``to_json``.

Every on-disk format has one class here and one schema version. ``to_json(from_json(data))`` is
``data`` for every record imgbuild writes, so reading and writing a record back changes no byte
(tests/records/test_roundtrip.py). ``from_json`` checks the shape and raises RecordShapeError;
the store turns that into BrokenRecord naming the file.

Committed (the handoff, under ``<output>/<asset-id>/`` and beside the manifests):
    AssetRecord (asset.json), History (index.json), run and upload request / manifest files,
    LockFile (``<batch>.lock.json``).
Internal (``.imgbuild/``, never committed): PendingCalls (the calls in flight and their provider
jobs), the raw provider answers and HTTP exchanges, the upload cache.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import msgspec

from imgbuild.records.errors import RecordShapeError
from imgbuild.records.seal import LOCK_SCHEMA, Sources, seal_digest, sources_digest

__all__ = [
    "ASSET_SCHEMA",
    "CALLS_SCHEMA",
    "INDEX_SCHEMA",
    "LOCK_SCHEMA",
    "Approval",
    "ApprovedImage",
    "AssetRecord",
    "Candidate",
    "CheckItem",
    "EvidenceRef",
    "History",
    "HistoryEvent",
    "JobRef",
    "LockApproval",
    "LockEntry",
    "LockFile",
    "LockImage",
    "PendingCall",
    "PendingCalls",
    "RequestFacts",
    "Review",
    "schema_version",
]

ASSET_SCHEMA = "imgbuild.asset/2"
INDEX_SCHEMA = "imgbuild.index/1"
# 2: no remote (provider) URLs in lock files; a /1 file vouches for nothing and is rewritten.
CALLS_SCHEMA = "imgbuild.calls/1"

T = TypeVar("T")
JSON = dict[str, Any]


# -- checking shapes ------------------------------------------------------------------------------


def _inner_file(data: Mapping[str, Any], key: str = "file") -> str:
    """A file path a record holds, relative to its asset folder: a path that could leave it
    (absolute, ``..``, a drive, a backslash) makes the record broken, so nothing — approve, check,
    the gallery — ever reads or copies a file outside the asset by following a record."""
    value: str = _get(data, key, str)
    parts = value.split("/")
    if not value or value.startswith("/") or "\\" in value or ":" in value or ".." in parts or "" in parts:
        raise RecordShapeError(f"{key!r} is {value!r}, which leaves the asset folder")
    return value


def _get(data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], *, optional: bool = False) -> Any:
    try:
        value = data[key]
    except KeyError:
        if optional:
            return None
        raise RecordShapeError(f"missing {key!r}") from None
    if value.__class__ is kind:  # the common case: the no-op build reads every lock entry's fields
        return value
    if value is None and optional:
        return None
    if isinstance(value, bool) and kind in (int, (int, float)):
        raise RecordShapeError(f"{key!r} is {value!r}, not a number")
    if not isinstance(value, kind):
        raise RecordShapeError(f"{key!r} is {type(value).__name__}, not {_kind_name(kind)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {dict: "an object", list: "a list", str: "a string", int: "a number"}.get(k, k.__name__) for k in kinds
    )


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise RecordShapeError(f"{what} is {type(value).__name__}, not an object")
    return value


def _list(data: Mapping[str, Any], key: str, parse: Callable[[Mapping[str, Any]], T]) -> tuple[T, ...]:
    items = _get(data, key, list)
    out = []
    for i, item in enumerate(items):
        try:
            out.append(parse(_obj(item, f"{key}[{i}]")))
        except RecordShapeError as exc:
            raise RecordShapeError(f"{key}[{i}]: {exc}") from None
    return tuple(out)


def schema_version(data: Mapping[str, Any], name: str) -> int | None:
    """The version N of ``imgbuild.<name>/N`` in `data`'s "schema"; 0 when it has none (written
    before records were versioned); None when it names another kind of record."""
    schema = data.get("schema")
    if schema is None:
        return 0
    prefix = f"imgbuild.{name}/"
    if not isinstance(schema, str) or not schema.startswith(prefix) or not schema[len(prefix) :].isdigit():
        return None
    return int(schema[len(prefix) :])


# -- small parts ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvidenceRef:
    """An evidence file as a record states it: path, optional anchor, content hash."""

    path: str
    anchor: str | None
    sha256: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> EvidenceRef:
        return cls(_get(data, "path", str), _get(data, "anchor", str, optional=True), _get(data, "sha256", str))

    def to_json(self) -> JSON:
        return {"path": self.path, "anchor": self.anchor, "sha256": self.sha256}


@dataclass(frozen=True)
class CheckItem:
    """One item of the review checklist as a reviewer stated it."""

    item: str
    result: str  # "pass" | "fail"
    note: str | None


def _checklist(data: Mapping[str, Any]) -> tuple[CheckItem, ...]:
    raw = _get(data, "checklist", dict)
    out = []
    for item, entry in raw.items():
        entry = _obj(entry, f"checklist.{item}")
        out.append(CheckItem(item, _get(entry, "result", str), _get(entry, "note", str, optional=True)))
    return tuple(out)


def _checklist_json(items: Iterable[CheckItem]) -> JSON:
    return {i.item: {"result": i.result, "note": i.note} for i in items}


@dataclass(frozen=True)
class JobRef:
    """A provider's asynchronous job: enough to resume polling it without a new paid call."""

    provider: str
    id: str
    urls: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> JobRef:
        urls = _get(data, "urls", dict, optional=True) or {}
        return cls(_get(data, "provider", str), _get(data, "id", str), {str(k): str(v) for k, v in urls.items()})

    def to_json(self) -> JSON:
        return {"provider": self.provider, "id": self.id, "urls": dict(self.urls)}


# -- asset.json ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """One image made for one request: a whole candidate, or image `image` of an identity set."""

    candidate: int
    image: int | None
    file: str  # relative to the asset folder
    run: str
    request_hash: str
    prompt_hash: str | None
    sha256: str
    width: int
    height: int
    remote_url: str | None
    created: str
    variant_test: str | None
    evidence: tuple[EvidenceRef, ...] | None = None  # what it was made from; None: not recorded (older records)

    @property
    def label(self) -> str:
        """How the CLI names it: ``2``, or ``2.3`` for image 3 of candidate 2's identity set."""
        return str(self.candidate) if self.image is None else f"{self.candidate}.{self.image}"

    @property
    def key(self) -> tuple[str, int, int | None]:
        """What a review decision is about: this run's image, never a remade one of the same number."""
        return (self.run, self.candidate, self.image)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Candidate:
        evidence = data.get("evidence")
        return cls(
            candidate=_get(data, "candidate", int),
            image=_get(data, "image", int, optional=True),
            file=_inner_file(data),
            run=_get(data, "run", str),
            request_hash=_get(data, "request_hash", str),
            prompt_hash=_get(data, "prompt_hash", str, optional=True),
            sha256=_get(data, "sha256", str),
            width=_get(data, "width", int),
            height=_get(data, "height", int),
            remote_url=_get(data, "remote_url", str, optional=True),
            created=_get(data, "created", str),
            variant_test=_get(data, "variant_test", str, optional=True),
            evidence=None if evidence is None else _list(data, "evidence", EvidenceRef.from_json),
        )

    def to_json(self) -> JSON:
        out: JSON = {
            "candidate": self.candidate,
            "file": self.file,
            "run": self.run,
            "request_hash": self.request_hash,
            "prompt_hash": self.prompt_hash,
            "sha256": self.sha256,
            "width": self.width,
            "height": self.height,
            "remote_url": self.remote_url,
            "created": self.created,
            "variant_test": self.variant_test,
        }
        if self.image is not None:
            out["image"] = self.image
        if self.evidence is not None:
            out["evidence"] = [e.to_json() for e in self.evidence]
        return out


@dataclass(frozen=True)
class ApprovedImage:
    """One image of an identity set approved as a whole: its candidate file and its approved copy."""

    image: int
    source: str  # relative to the asset folder
    file: str  # relative to the asset folder
    sha256: str

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovedImage:
        return cls(
            _get(data, "image", int), _get(data, "source", str), _get(data, "file", str), _get(data, "sha256", str)
        )

    def to_json(self) -> JSON:
        return {"image": self.image, "source": self.source, "file": self.file, "sha256": self.sha256}


@dataclass(frozen=True)
class Approval:
    """The asset's approved image, with the request it was approved for — or its approved
    identity set: then `image` is None, `images` lists every image of the set, and `source`,
    `file` and `sha256` are its first image's (what a reader of one image is given)."""

    candidate: int
    image: int | None
    run: str
    source: str  # the candidate file, relative to the asset folder
    file: str  # the approved copy, relative to the asset folder
    sha256: str
    request_hash: str
    prompt_hash: str | None
    request: Mapping[str, Any] | None  # the normalized request the candidate was made for
    by: str
    at: str
    checklist: tuple[CheckItem, ...]
    override: bool
    note: str | None
    images: tuple[ApprovedImage, ...] = ()  # a whole identity set; () for one image

    @property
    def label(self) -> str:
        return str(self.candidate) if self.image is None else f"{self.candidate}.{self.image}"

    @property
    def key(self) -> tuple[str, int, int | None]:
        return (self.run, self.candidate, self.image)

    def covers(self, cand: Candidate) -> bool:
        """Whether `cand` is approved by this: the image itself, or an image of the approved set."""
        if self.images:
            return (cand.run, cand.candidate) == (self.run, self.candidate) and any(
                i.image == cand.image for i in self.images
            )
        return cand.key == self.key

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Approval:
        return cls(
            **_decision(data),
            source=_get(data, "source", str),
            file=_inner_file(data),
            sha256=_get(data, "sha256", str),
            prompt_hash=_get(data, "prompt_hash", str, optional=True),
            request=_get(data, "request", dict, optional=True),
            images=_list(data, "images", ApprovedImage.from_json) if "images" in data else (),
        )

    def to_json(self) -> JSON:
        out: JSON = {
            **_decision_json(self),
            "source": self.source,
            "file": self.file,
            "sha256": self.sha256,
            "prompt_hash": self.prompt_hash,
            "request": dict(self.request) if self.request is not None else None,
        }
        if self.images:  # written only for a set: a one-image approval keeps its bytes
            out["images"] = [i.to_json() for i in self.images]
        return out


@dataclass(frozen=True)
class Review:
    """One approve or reject decision about one image, kept for good in asset.json's reviews."""

    decision: str  # "approve" | "reject"
    candidate: int
    image: int | None
    run: str
    request_hash: str
    by: str
    at: str
    checklist: tuple[CheckItem, ...]
    override: bool
    note: str | None

    @property
    def key(self) -> tuple[str, int, int | None]:
        return (self.run, self.candidate, self.image)

    def covers(self, cand: Candidate) -> bool:
        """Whether this decision is about `cand`: that image, or (no `image`) every image of its call."""
        return (cand.run, cand.candidate) == (self.run, self.candidate) and self.image in (None, cand.image)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Review:
        return cls(decision=_get(data, "decision", str), **_decision(data))

    def to_json(self) -> JSON:
        return {"decision": self.decision, **_decision_json(self)}


def _decision(data: Mapping[str, Any]) -> dict[str, Any]:
    """The fields an approval and a review share: which image, for which request, by whom, why."""
    return {
        "candidate": _get(data, "candidate", int),
        "image": _get(data, "image", int, optional=True),
        "run": _get(data, "run", str),
        "request_hash": _get(data, "request_hash", str),
        "by": _get(data, "by", str),
        "at": _get(data, "at", str),
        "checklist": _checklist(data),
        "override": bool(_get(data, "override", bool)),
        "note": _get(data, "note", str, optional=True),
    }


def _decision_json(decision: Approval | Review) -> JSON:
    return {
        "candidate": decision.candidate,
        "image": decision.image,
        "run": decision.run,
        "request_hash": decision.request_hash,
        "by": decision.by,
        "at": decision.at,
        "checklist": _checklist_json(decision.checklist),
        "override": decision.override,
        "note": decision.note,
    }


@dataclass(frozen=True)
class RequestFacts:
    """What the records keep of an asset's current request (made by the build from its request)."""

    asset_id: str
    asset_dir: str
    batch: str
    shot: str
    purpose: str
    persona: str
    variant_test: str | None
    request_hash: str
    prompt_hash: str
    request: Mapping[str, Any]  # the normalized request record (imgbuild.requests)
    evidence: tuple[EvidenceRef, ...]


@dataclass(frozen=True)
class AssetRecord:
    """asset.json: the asset now — its current request, every candidate, its approval and reviews."""

    asset_id: str
    batch: str
    shot: str
    purpose: str
    persona: str
    variant_test: str | None
    request_hash: str
    prompt_hash: str
    request: Mapping[str, Any]
    candidates: tuple[Candidate, ...] = ()
    approval: Approval | None = None
    reviews: tuple[Review, ...] = ()
    # Calls in flight that a version-1 asset.json held in its "pending" list: the store moves
    # them to .imgbuild/calls/ when it writes this record (version 2 has no such list).
    moved_calls: tuple[PendingCall, ...] = field(default=(), compare=False, repr=False)

    @classmethod
    def new(cls, facts: RequestFacts) -> AssetRecord:
        return cls(
            facts.asset_id,
            facts.batch,
            facts.shot,
            facts.purpose,
            facts.persona,
            facts.variant_test,
            facts.request_hash,
            facts.prompt_hash,
            facts.request,
        )

    def for_request(self, facts: RequestFacts) -> AssetRecord:
        """This record, now describing `facts` as its current request (candidates kept)."""
        return replace(
            self,
            asset_id=facts.asset_id,
            batch=facts.batch,
            shot=facts.shot,
            request_hash=facts.request_hash,
            prompt_hash=facts.prompt_hash,
            request=facts.request,
            variant_test=facts.variant_test,
            purpose=facts.purpose,
            persona=facts.persona,
        )

    def made_for(self, request_hash: str) -> dict[int, tuple[Candidate, ...]]:
        """Candidate index → the images of its newest run for `request_hash` (files not checked).

        A candidate is one call: one image, or all the images of an identity set."""
        runs: dict[int, tuple[str, list[Candidate]]] = {}
        for cand in self.candidates:
            if cand.request_hash != request_hash:
                continue
            newest = runs.get(cand.candidate)
            if newest is None or newest[0] != cand.run:
                runs[cand.candidate] = (cand.run, [cand])  # later entries are newer
            else:
                newest[1].append(cand)
        return {k: tuple(images) for k, (_, images) in sorted(runs.items())}

    def newest_review(self, cand: Candidate) -> Review | None:
        """The newest decision about `cand`: about that image, or about its whole identity set."""
        return next((review for review in reversed(self.reviews) if review.covers(cand)), None)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AssetRecord:
        approval = _get(data, "approval", dict, optional=True)
        return cls(
            asset_id=_get(data, "asset_id", str),
            batch=_get(data, "batch", str),
            shot=_get(data, "shot", str),
            purpose=_get(data, "purpose", str),
            persona=_get(data, "persona", str),
            variant_test=_get(data, "variant_test", str, optional=True),
            request_hash=_get(data, "request_hash", str),
            prompt_hash=_get(data, "prompt_hash", str),
            request=_get(data, "request", dict),
            candidates=_list(data, "candidates", Candidate.from_json),
            approval=None if approval is None else Approval.from_json(approval),
            reviews=_list(data, "reviews", Review.from_json),
            moved_calls=_list(data, "pending", PendingCall.from_json) if schema_version(data, "asset") == 1 else (),
        )

    def to_json(self) -> JSON:
        return {
            "schema": ASSET_SCHEMA,
            "asset_id": self.asset_id,
            "batch": self.batch,
            "shot": self.shot,
            "purpose": self.purpose,
            "persona": self.persona,
            "variant_test": self.variant_test,
            "request_hash": self.request_hash,
            "prompt_hash": self.prompt_hash,
            "request": dict(self.request),
            "candidates": [c.to_json() for c in self.candidates],
            "approval": self.approval.to_json() if self.approval is not None else None,
            "reviews": [r.to_json() for r in self.reviews],
        }


# -- index.json ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HistoryEvent:
    """One event of an asset's history: submitted, completed, partial, failed, keep-failed,
    interrupted, uploaded, approved, rejected, undone. `details` holds the event's own fields."""

    time: str
    event: str
    kind: str  # "image" | "upload" | "review"
    run: str
    details: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HistoryEvent:
        rest = {k: v for k, v in data.items() if k not in ("time", "event", "kind", "run")}
        return cls(
            _get(data, "time", str), _get(data, "event", str), _get(data, "kind", str), _get(data, "run", str), rest
        )

    def to_json(self) -> JSON:
        return {"time": self.time, "event": self.event, "kind": self.kind, "run": self.run, **self.details}


@dataclass(frozen=True)
class History:
    """index.json: every run, upload and review of an asset, newest last."""

    asset_id: str
    events: tuple[HistoryEvent, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> History:
        return cls(_get(data, "asset_id", str), _list(data, "history", HistoryEvent.from_json))

    def to_json(self) -> JSON:
        return {"schema": INDEX_SCHEMA, "asset_id": self.asset_id, "history": [e.to_json() for e in self.events]}

    def has(self, event: str, run: str) -> bool:
        return any(e.event == event and e.run == run for e in self.events)


# -- .imgbuild/calls/<asset-dir>.json ----------------------------------------------------------------


@dataclass(frozen=True)
class PendingCall:
    """A paid call in flight: recorded before it is made, removed once its outcome is recorded."""

    run: str
    candidate: int
    request_hash: str
    state: str  # "submitted"
    job: JobRef | None
    submitted: str
    keep_failures: int = 0  # builds that failed to keep the images of its saved answer

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingCall:
        job = _get(data, "job", dict, optional=True)
        return cls(
            run=_get(data, "run", str),
            candidate=_get(data, "candidate", int),
            request_hash=_get(data, "request_hash", str),
            state=_get(data, "state", str),
            job=None if job is None else JobRef.from_json(job),
            submitted=_get(data, "submitted", str),
            keep_failures=_get(data, "keep_failures", int, optional=True) or 0,
        )

    def to_json(self) -> JSON:
        return {
            "run": self.run,
            "candidate": self.candidate,
            "request_hash": self.request_hash,
            "state": self.state,
            "job": self.job.to_json() if self.job is not None else None,
            "submitted": self.submitted,
            "keep_failures": self.keep_failures,
        }


@dataclass(frozen=True)
class PendingCalls:
    """The calls of one asset in flight (internal execution state, under .imgbuild/calls/)."""

    asset_id: str
    calls: tuple[PendingCall, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PendingCalls:
        return cls(_get(data, "asset_id", str), _list(data, "pending", PendingCall.from_json))

    def to_json(self) -> JSON:
        return {"schema": CALLS_SCHEMA, "asset_id": self.asset_id, "pending": [c.to_json() for c in self.calls]}


# -- <batch>.lock.json -------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockImage:
    candidate: int
    image: int | None
    file: str  # project-relative
    sha256: str
    # No provider URL: lock files are what a repository shares, and fal's URLs are public
    # links to persona images (docs/records.md, "Lock files keep no provider URL").

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockImage:
        return cls(
            _get(data, "candidate", int),
            _get(data, "image", int, optional=True),
            _get(data, "file", str),
            _get(data, "sha256", str),
        )

    def to_json(self) -> JSON:
        out: JSON = {
            "candidate": self.candidate,
            "file": self.file,
            "sha256": self.sha256,
        }
        if self.image is not None:
            out["image"] = self.image
        return out


@dataclass(frozen=True)
class LockApproval:
    """The approval as the render stage reads it: the approved file, and whether it is stale."""

    candidate: int
    image: int | None
    file: str  # project-relative
    sha256: str
    request_hash: str
    stale: bool
    by: str
    at: str
    override: bool
    request: Mapping[str, Any] | None
    images: tuple[LockImage, ...] = ()  # every approved copy of an identity set approved as a whole

    @property
    def label(self) -> str:
        return str(self.candidate) if self.image is None else f"{self.candidate}.{self.image}"

    @classmethod
    def of(cls, approval: Approval, asset_dir: str, request_hash: str) -> LockApproval:
        copies = (LockImage(approval.candidate, i.image, f"{asset_dir}/{i.file}", i.sha256) for i in approval.images)
        return cls(
            approval.candidate,
            approval.image,
            f"{asset_dir}/{approval.file}",
            approval.sha256,
            approval.request_hash,
            approval.request_hash != request_hash,
            approval.by,
            approval.at,
            approval.override,
            approval.request,
            tuple(copies),
        )

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockApproval:
        return cls(
            candidate=_get(data, "candidate", int),
            image=_get(data, "image", int, optional=True),
            file=_inner_file(data),
            sha256=_get(data, "sha256", str),
            request_hash=_get(data, "request_hash", str),
            stale=bool(_get(data, "stale", bool)),
            by=_get(data, "by", str),
            at=_get(data, "at", str),
            override=bool(_get(data, "override", bool)),
            request=_get(data, "request", dict, optional=True),
            images=_list(data, "images", LockImage.from_json) if "images" in data else (),
        )

    def to_json(self) -> JSON:
        out: JSON = {
            "candidate": self.candidate,
            "image": self.image,
            "file": self.file,
            "sha256": self.sha256,
            "request_hash": self.request_hash,
            "stale": self.stale,
            "by": self.by,
            "at": self.at,
            "override": self.override,
            "request": dict(self.request) if self.request is not None else None,
        }
        if self.images:
            out["images"] = [i.to_json() for i in self.images]
        return out


@dataclass(frozen=True)
class LockEntry:
    """One asset in its batch's lock file: what was made (from the records, never from the
    manifest), where it is, and its review state."""

    id: str
    asset_dir: str
    status: str  # "complete" | "incomplete"
    request_hash: str
    prompt_hash: str
    model: str | None  # the endpoint key really called (an edit's, a set's)
    source_basis: tuple[EvidenceRef, ...]  # the evidence the images were made from
    attributes: Mapping[str, Any] | None  # {"fixed": {...}, "vary": {...}} the images were made with
    variant_test: str | None
    images: tuple[LockImage, ...]
    created: str | None
    approval: LockApproval | None
    rejected: tuple[str, ...]
    # sha256 of the asset.json this entry was made or kept from, taken from bytes that read as a
    # valid record (None: not known). A fresh clone's check trusts the entry's view of the
    # asset.json that still has these bytes instead of parsing it (imgbuild.noop, "sealed").
    record_sha256: str | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> LockEntry:
        approval = _get(data, "approval", dict, optional=True)
        rejected = _get(data, "rejected", list)
        if not all(isinstance(r, str) for r in rejected):
            raise RecordShapeError("'rejected' holds a value that is not a candidate id")
        return cls(
            id=_get(data, "id", str),
            asset_dir=_get(data, "asset_dir", str),
            status=_get(data, "status", str),
            request_hash=_get(data, "request_hash", str),
            prompt_hash=_get(data, "prompt_hash", str),
            model=_get(data, "model", str, optional=True),
            source_basis=_list(data, "source_basis", EvidenceRef.from_json),
            attributes=_get(data, "attributes", dict, optional=True),
            variant_test=_get(data, "variant_test", str, optional=True),
            images=_list(data, "images", LockImage.from_json),
            created=_get(data, "created", str, optional=True),
            approval=None if approval is None else LockApproval.from_json(approval),
            rejected=tuple(rejected),
            record_sha256=_get(data, "record_sha256", str, optional=True),
        )

    def to_json(self) -> JSON:
        return {
            "id": self.id,
            "asset_dir": self.asset_dir,
            "status": self.status,
            "request_hash": self.request_hash,
            "prompt_hash": self.prompt_hash,
            "model": self.model,
            "source_basis": [s.to_json() for s in self.source_basis],
            "attributes": dict(self.attributes) if self.attributes is not None else None,
            "variant_test": self.variant_test,
            "images": [i.to_json() for i in self.images],
            "created": self.created,
            "approval": self.approval.to_json() if self.approval is not None else None,
            "rejected": list(self.rejected),
            "record_sha256": self.record_sha256,
        }


class LockFile:
    """``<batch>.lock.json``: the batch's assets, by id (sorted when written).

    Read from disk, an entry is parsed into its LockEntry when first asked for: the no-op build
    asks every entry only whether it describes the current request (:meth:`current_files`), which
    reads a few fields of its JSON, and parsing 10,000 entries it never looks into again was a
    third of its time. An entry out of shape is no entry (it vouches for nothing; a build rewrites
    it). The parsed entries are LockEntry records like any other; this container only caches them.
    """

    __slots__ = ("_entries", "_raw", "assets_sha256", "batch", "inputs_sha256", "manifest", "seal_sha256", "sources")

    def __init__(
        self,
        batch: str,
        manifest: str,
        entries: Mapping[str, LockEntry] | None = None,
        *,
        raw: Mapping[str, Any] | None = None,
        inputs_sha256: str | None = None,
        seal_sha256: str | None = None,
        assets_sha256: str | None = None,
        sources: Sources | None = None,
    ) -> None:
        self.batch = batch
        self.manifest = manifest  # project-relative path of the batch manifest
        # Set when every entry was written current for the requests of the batch's inputs: their
        # portable digest (imgbuild.resolve), and the `seal_digest` of it and of the bytes of the
        # entries as written (imgbuild.records.lock.write_lock). None otherwise (imgbuild.noop).
        self.inputs_sha256 = inputs_sha256
        # With the inputs digest, when the build had them: the files the batch was resolved from,
        # by content, so a fresh clone's check can compare them without parsing (imgbuild.sealed).
        self.sources = sources if inputs_sha256 is not None else None
        self.seal_sha256 = seal_sha256
        # sha256 of the bytes of its "assets" as read from the file (None: made in this process).
        self.assets_sha256 = assets_sha256
        self._entries: dict[str, LockEntry | None] = dict(entries or {})
        self._raw: Mapping[str, Any] = raw or {}  # asset id → entry JSON not parsed yet

    def __contains__(self, asset_id: str) -> bool:
        return asset_id in self._entries or asset_id in self._raw

    def ids(self) -> set[str]:
        return {*self._entries, *self._raw}

    def entry(self, asset_id: str) -> LockEntry | None:
        """The entry of `asset_id`: None when there is none or it is out of shape."""
        if asset_id in self._entries:
            return self._entries[asset_id]
        data = self._raw.get(asset_id)
        if data is None:
            return None
        try:
            entry: LockEntry | None = LockEntry.from_json(_obj(data, f"assets.{asset_id}"))
        except RecordShapeError:
            entry = None
        self._entries[asset_id] = entry
        return entry

    @property
    def entries(self) -> dict[str, LockEntry]:
        """Every entry in shape, by asset id."""
        out = {}
        for asset_id in sorted(self.ids()):
            entry = self.entry(asset_id)
            if entry is not None:
                out[asset_id] = entry
        return out

    def has_approval(self, asset_id: str) -> bool:
        """The entry records an approval (the edit rule asks this of every asset)."""
        data = self._raw.get(asset_id)
        if data is None and asset_id in self._entries:
            entry = self._entries[asset_id]
            return entry is not None and entry.approval is not None
        return isinstance(data, dict) and data.get("approval") is not None

    def sealable(self) -> bool:
        """Every entry states the digest of its asset.json: it can be sealed (when current)."""
        for asset_id in self.ids():
            data = self._raw.get(asset_id)
            if data is None:
                entry = self._entries.get(asset_id)
                if entry is None or entry.record_sha256 is None:
                    return False
            elif type(data) is not dict or type(data.get("record_sha256")) is not str:
                return False
        return True

    def sealed(self, inputs_sha256: str | None, sources: Sources | None = None) -> bool:
        """Read from a file whose seal holds for these inputs and sources: a build need not write
        it again."""
        if inputs_sha256 is None or self.inputs_sha256 != inputs_sha256 or self.sources != sources:
            return False
        if self.seal_sha256 is None or self.assets_sha256 is None:
            return False
        return self.seal_sha256 == seal_digest(inputs_sha256, self.assets_sha256, sources_digest(sources))

    def current_files(
        self,
        asset_id: str,
        *,
        request_hash: str,
        prompt_hash: str,
        variant_test: str | None,
        asset_dir: str,
        model: str,
        fixed: Mapping[str, str],
        vary: Mapping[str, str],
        candidates: int,
    ) -> list[str] | None:
        """The image files of the entry of `asset_id` when it describes a complete asset made for
        this request (its files still need a stat), else None. Reads the fields it compares from the
        entry's JSON, with their types, and the containers of the others, without parsing it."""
        data: Any = self._raw.get(asset_id)
        if data is None and asset_id in self._entries:  # made in this process, not read from disk
            entry = self._entries[asset_id]
            data = entry.to_json() if entry is not None else None
        if type(data) is not dict:
            return None
        attrs = data.get("attributes")
        if not (
            data.get("status") == "complete"
            and data.get("request_hash") == request_hash
            and data.get("prompt_hash") == prompt_hash
            and data.get("variant_test") == variant_test
            and data.get("asset_dir") == asset_dir
            and data.get("model") == model
            and type(attrs) is dict
            and len(attrs) == 2
            and fixed == attrs.get("fixed")
            and vary == attrs.get("vary")
            and type(data.get("source_basis")) is list
            and type(data.get("rejected")) is list
            and type(data.get("approval")) in (dict, type(None))
            and type(data.get("images")) is list
        ):
            return None
        files, made = [], set()
        for image in data["images"]:
            if type(image) is not dict or type(image.get("file")) is not str or type(image.get("candidate")) is not int:
                return None
            files.append(image["file"])
            made.add(image["candidate"])
        return files if made == set(range(1, candidates + 1)) else None

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LockFile):
            return NotImplemented
        # The seal is of the bytes written (imgbuild.records.lock), not a part of what it says.
        mine = (self.batch, self.manifest, self.inputs_sha256, self.sources, self.entries)
        return mine == (other.batch, other.manifest, other.inputs_sha256, other.sources, other.entries)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"LockFile({self.batch!r}, {self.manifest!r}, {len(self.ids())} assets)"

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, assets_sha256: str | None = None) -> LockFile:
        return cls(
            _get(data, "batch", str),
            _get(data, "manifest", str),
            raw=_get(data, "assets", dict),
            inputs_sha256=_get(data, "inputs_sha256", str, optional=True),
            seal_sha256=_get(data, "seal_sha256", str, optional=True),
            assets_sha256=assets_sha256,
            sources=_sources(data.get("sources")),
        )

    def to_json(self) -> JSON:
        entries = self.entries
        return {
            "schema": LOCK_SCHEMA,
            "batch": self.batch,
            "manifest": self.manifest,
            "inputs_sha256": self.inputs_sha256,
            "seal_sha256": self.seal_sha256,
            "sources": _sources_json(self.sources),
            "assets": {k: entries[k].to_json() for k in sorted(entries)},
        }


def _sources(data: Any) -> Sources | None:
    """A lock file's sources; None when it has none or they are out of shape (then its seal does
    not hold, and the next build writes them anew)."""
    if data is None:
        return None
    try:
        found: Sources = msgspec.convert(data, Sources)
    except msgspec.ValidationError:
        return None
    return found


def _sources_json(sources: Sources | None) -> JSON | None:
    if sources is None:
        return None
    found: JSON = msgspec.to_builtins(sources)
    return found


# -- the seal of a lock file ------------------------------------------------------------------------


# SealedImage, SealedEvidence, SealedEntry, Seal and seal_digest: imgbuild.records.seal


def sealed_lock(
    batch: str,
    manifest: str,
    entries: Mapping[str, LockEntry],
    inputs_sha256: str | None,
    sources: Sources | None = None,
) -> LockFile:
    """The lock file of these entries, to be sealed under the inputs (and sources) when given and
    every entry's asset.json was sealed; the caller knows every entry is current for those
    inputs. The seal itself is of the bytes written (imgbuild.records.lock.write_lock)."""
    lock = LockFile(batch, manifest, entries)
    if inputs_sha256 is None or not lock.sealable():
        return lock
    return LockFile(batch, manifest, entries, inputs_sha256=inputs_sha256, sources=sources)
