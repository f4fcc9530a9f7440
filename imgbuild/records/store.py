"""The asset store: the one owner of ``<output>/<asset-id>/`` and of the calls in flight.

Committed, per asset (the handoff to review and render):
    asset.json, index.json, images/, runs/image/<run>/{request,manifest}.json,
    upload/<id>/{request,manifest}.json
Internal, under ``.imgbuild/`` (execution state, never committed):
    calls/<asset-dir>.json                    the calls in flight, with their provider jobs
    exchanges/<asset-dir>/<run>/response.json the provider's raw answer
    exchanges/<asset-dir>/<run>/http.json     every HTTP exchange (uploads: exchanges/<asset-dir>/upload/<id>/)

Each paid call goes through the named operations in this order, so that a crash at any moment
loses nothing that was paid for and a rerun resumes instead of paying again:

1. :meth:`submit` — the pending call, the asset's current request, a ``submitted`` event, then
   request.json, all before the call;
2. :meth:`record_job` — the provider's job id, as soon as an asynchronous provider has one;
3. :meth:`save_response` — the raw answer, as soon as it arrives;
4. the images (:meth:`write_image`), verified by the caller;
5. :meth:`complete` — manifest.json, the ``completed`` event, the candidates in asset.json (the
   write that marks them as made), and last the pending call removed.

:meth:`fail`, :meth:`keep_failed` and :meth:`interrupted` close a call the other ways;
:meth:`approve` and :meth:`reject` record review decisions. Every write is atomic, which is all a
kill needs. Against a power cut, what a paid call cannot be recovered without is also fsynced —
the pending call (with its job), the raw answer and the images; the rest of a call's records
(request.json, events, asset.json, manifest.json, http.json) are rebuilt by a rerun from those,
and cost no fsync (docs/records.md, "fsync").
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import threading
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

from imgbuild.records.atomic import atomic_write_bytes, atomic_write_json, json_bytes
from imgbuild.records.clock import duration, in_reproducible_order, new_run_id, source_date_epoch, utc_now
from imgbuild.records.errors import BrokenRecord, RecordError, RecordShapeError, UnknownRecordVersion
from imgbuild.records.model import (
    Approval,
    AssetRecord,
    Candidate,
    History,
    HistoryEvent,
    JobRef,
    PendingCall,
    PendingCalls,
    RequestFacts,
    Review,
    schema_version,
)

__all__ = ["AssetStore", "KeptImage", "new_run_id", "read_json_file", "read_record_bytes", "utc_now"]

STATE_DIR = ".imgbuild"
T = TypeVar("T")
# Records a build keeps in memory (AssetStore.keep_records): the assets with calls in flight hold
# three each; past this many (failed calls leave theirs behind) they are all read afresh.
_MOST_KEPT = 4096


def read_json_file(path: Path | str, shown: str) -> Any | None:
    """The JSON at `path`, None when there is no file; BrokenRecord (naming `shown`) when it is
    not JSON — merge-conflict markers included."""
    data = read_record_bytes(path, shown)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:
        conflict = data.startswith(b"<<<<<<<") or b"\n<<<<<<< " in data or b"\n>>>>>>> " in data
        what = "holds git merge-conflict markers" if conflict else f"is not valid JSON ({exc})"
        raise BrokenRecord(shown, what, _FIX) from None


def read_record_bytes(path: Path | str, shown: str) -> bytes | None:
    """The bytes of a record file, None when there is none. Anything but a regular file is a
    broken record, found without blocking: a FIFO or a device committed in its place must not
    hang `imgbuild check` in CI."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        raise BrokenRecord(shown, "is a folder, not a record file", "remove it") from None
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise BrokenRecord(shown, "is a folder, not a record file", "remove it")
        if not stat.S_ISREG(mode):
            raise BrokenRecord(shown, "is not a regular file (a FIFO, a device or a socket)", "remove it")
        return f.read()


_UNKNOWN = object()  # not kept in memory: read the file
_FIX = "restore it from git (`git checkout -- FILE`) or resolve the conflict, then run the command again"


@dataclass(frozen=True)
class KeptImage:
    """An image of a call's answer, written and verified, ready to be recorded."""

    candidate: int
    image: int | None  # its number in an identity set
    file: str  # relative to the asset folder
    sha256: str
    bytes: int
    width: int
    height: int
    remote_url: str | None


class AssetStore:
    """Reads and writes the records of the assets of one project. Safe to share between threads:
    read-modify-write of one asset is serialized by :meth:`locked`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_dir = root / STATE_DIR
        self.temp_dir = self.state_dir / "tmp"
        # The paths a build writes ten of per image, as strings: pathlib objects made and hashed
        # for each cost more than the writes' own Python (records/atomic.py).
        self._base = os.fspath(root)
        self._state = os.fspath(self.state_dir)
        self._locks: dict[str, threading.RLock] = defaultdict(threading.RLock)
        self._locks_guard = threading.Lock()
        self._migrated: set[str] = set()  # asset folders whose asset.json holds no moved calls
        self._sound: dict[str, str] = {}  # asset folder -> sha256 of an asset.json that read as valid
        # asset.json, index.json and the calls file as this store last wrote or read them
        # (parsed, bytes not read back yet, or None: no file); None: every read goes to disk.
        self._kept: dict[str, Any] | None = None

    def keep_records(self) -> None:
        """From now on, keep the records this store writes and reads in memory instead of reading
        them back from disk (a build read each one back 15 times per image). Only while this
        process holds the build lock: no other process writes them then (approve, reject,
        merge and prune take the lock too), and this store writes through to disk as before."""
        if self._kept is None:
            self._kept = {}

    @contextmanager
    def locked(self, asset_dir: str) -> Iterator[None]:
        """Serialize read-modify-write of one asset's records between threads of this process."""
        with self._locks_guard:
            lock = self._locks[asset_dir]
        with lock:
            yield

    # -- paths -----------------------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        return self.root / relative

    def exists(self, relative: str) -> bool:
        return os.path.exists(os.path.join(self.root, relative))

    def made(self, record: AssetRecord, asset_dir: str, request_hash: str) -> dict[int, tuple[Candidate, ...]]:
        """Candidate index → the images of its newest run for `request_hash`, when all their files
        exist: what "made" means, for the build and for the state alike."""
        base = os.path.join(self.root, asset_dir)
        return {
            k: images
            for k, images in record.made_for(request_hash).items()
            if all(os.path.exists(os.path.join(base, i.file)) for i in images)
        }

    def new_run_id(self, asset_dir: str, seed: str) -> str:
        """The id of a new run (a call or an upload) of `asset_dir`. Under ``SOURCE_DATE_EPOCH``
        it is derived from `seed` (what the run is) and the first number that gives an id this
        asset has not used, so a rerun after a failure gets a new one (records/clock.py)."""
        if source_date_epoch() is None:
            return new_run_id()
        history = self.read_history(asset_dir)
        used = {e.run for e in history.events} if history is not None else set()
        n = 0
        while True:
            run = new_run_id(f"{asset_dir}\n{seed}\n{n}")
            if run not in used and not any(
                self.exists(f"{asset_dir}/{where}/{run}") for where in ("runs/image", "upload")
            ):
                return run
            n += 1

    def run_path(self, asset_dir: str, run_id: str, name: str) -> str:
        """A committed file of a run: request.json or manifest.json."""
        return f"{asset_dir}/runs/image/{run_id}/{name}"

    def run_request(self, asset_dir: str, run_id: str) -> dict[str, Any] | None:
        """The normalized request a run was made for, from its request.json (None if unreadable)."""
        try:
            sent = read_json_file(self.root / self.run_path(asset_dir, run_id, "request.json"), "request.json")
        except BrokenRecord:
            return None
        request = sent.get("request") if isinstance(sent, dict) else None
        return request if isinstance(request, dict) else None

    def exchange_path(self, asset_dir: str, run_id: str, name: str, *, kind: str = "image") -> Path:
        """An internal file of a call: the raw answer (response.json) or the HTTP log (http.json)."""
        return Path(self._exchange_file(asset_dir, run_id, name, kind=kind))

    def _exchange_file(self, asset_dir: str, run_id: str, name: str, *, kind: str = "image") -> str:
        folder = run_id if kind == "image" else f"upload/{run_id}"
        return f"{self._state}/exchanges/{asset_dir}/{folder}/{name}"

    def _calls_path(self, asset_dir: str) -> str:
        return f"{self._state}/calls/{asset_dir}.json"

    def _file(self, asset_dir: str, name: str) -> str:
        """A file of the asset folder (asset.json, index.json, a run's or an image's path)."""
        return f"{self._base}/{asset_dir}/{name}"

    # -- low-level IO ----------------------------------------------------------------------------
    def _write_json(self, path: Path | str, data: Any, *, durable: bool = True) -> None:
        atomic_write_json(path, data, temp_dir=self.temp_dir, durable=durable)

    def write_image(self, asset_dir: str, relative: str, data: bytes) -> None:
        atomic_write_bytes(self._file(asset_dir, relative), data, temp_dir=self.temp_dir)

    def read_bytes(self, relative: str) -> bytes:
        return (self.root / relative).read_bytes()

    def _write_record(self, path: str, data: Any, *, durable: bool = True) -> None:
        """Write asset.json, index.json or a calls file (kept in memory by a build)."""
        encoded = json_bytes(data)
        atomic_write_bytes(path, encoded, temp_dir=self.temp_dir, durable=durable)
        self._keep(path, encoded)

    def _keep(self, path: str, value: Any) -> None:
        if self._kept is not None:
            if len(self._kept) >= _MOST_KEPT:
                self._kept.clear()
            self._kept[path] = value

    def _forget(self, asset_dir: str) -> None:
        """The asset has no call in flight: its records need not stay in memory."""
        if self._kept is not None:
            for path in (self._file(asset_dir, "asset.json"), self._file(asset_dir, "index.json")):
                self._kept.pop(path, None)
            self._kept.pop(self._calls_path(asset_dir), None)

    def _read(self, path: str, shown: str, name: str, current: int, parse: Any) -> Any | None:
        kept: Any = self._kept.get(path, _UNKNOWN) if self._kept is not None else _UNKNOWN
        if isinstance(kept, bytes):  # written by this store: its bytes are what the file holds
            data = json.loads(kept)
        elif kept is _UNKNOWN:
            data = read_json_file(path, shown)
        else:
            return kept
        record = None if data is None else self._parse(data, shown, name, current, parse)
        self._keep(path, record)
        return record

    @staticmethod
    def _parse(data: Any, shown: str, name: str, current: int, parse: Any) -> Any:
        if not isinstance(data, dict):
            raise BrokenRecord(shown, f"is {type(data).__name__}, not a record object", _FIX)
        version = schema_version(data, name)
        if version is None or version > current:
            raise UnknownRecordVersion(
                shown,
                f"is a record of schema {data.get('schema')!r}, which this imgbuild does not read",
                "upgrade imgbuild (python3 -m pip install -U imgbuild) or restore the file from git",
            )
        try:
            return parse(data)
        except RecordShapeError as exc:
            raise BrokenRecord(shown, f"is not a valid {name} record ({exc})", _FIX) from None

    # -- asset.json --------------------------------------------------------------------------------
    def read_asset(self, asset_dir: str) -> AssetRecord | None:
        """asset.json of `asset_dir`; None when there is none. BrokenRecord when it is unreadable.

        Version 1 reads as version 2; the calls in flight it held come along (`moved_calls`) and
        move to .imgbuild/calls/ with the next write of the asset's records."""
        record: AssetRecord | None = self._read(
            self._file(asset_dir, "asset.json"), f"{asset_dir}/asset.json", "asset", 2, AssetRecord.from_json
        )
        if record is not None and not record.moved_calls:
            self._migrated.add(asset_dir)
        return record

    def record_sha256(self, asset_dir: str, known: str | None = None) -> str | None:
        """sha256 of the asset's asset.json when its bytes read as a valid record; None when there
        is none or it is broken. Bytes whose sha256 is `known` (taken, like this, from bytes that
        read) are not parsed again: what a lock entry seals (state.lock_entry)."""
        try:
            data = read_record_bytes(self._file(asset_dir, "asset.json"), f"{asset_dir}/asset.json")
        except (OSError, BrokenRecord):
            return None
        if data is None:
            return None
        digest = hashlib.sha256(data).hexdigest()
        if digest == known or self._sound.get(asset_dir) == digest:
            return digest
        try:
            self._parse(json.loads(data), f"{asset_dir}/asset.json", "asset", 2, AssetRecord.from_json)
        except (ValueError, RecordError):
            return None
        self._sound[asset_dir] = digest
        return digest

    def _write_asset(self, asset_dir: str, record: AssetRecord, *, durable: bool = True) -> None:
        if record.moved_calls:  # a version-1 record: its calls in flight move first, then the record
            own = self._own_pending(asset_dir)
            known = {c.run for c in own}
            calls = [*own, *(c for c in record.moved_calls if c.run not in known)]
            self._write_record(self._calls_path(asset_dir), PendingCalls(record.asset_id, tuple(calls)).to_json())
            record = replace(record, moved_calls=())
        self._write_record(self._file(asset_dir, "asset.json"), record.to_json(), durable=durable)
        self._migrated.add(asset_dir)

    def _retire_moved_calls(self, asset_dir: str) -> None:
        """After the calls file of a version-1 asset was written (it holds the moved calls now),
        drop the old list from asset.json, so that a closed call does not come back from it."""
        if asset_dir in self._migrated:
            return
        record = self.read_asset(asset_dir)
        if record is not None and record.moved_calls:
            self._write_record(self._file(asset_dir, "asset.json"), replace(record, moved_calls=()).to_json())
        self._migrated.add(asset_dir)

    # -- index.json --------------------------------------------------------------------------------
    def read_history(self, asset_dir: str) -> History | None:
        return self._read(self._file(asset_dir, "index.json"), f"{asset_dir}/index.json", "index", 1, History.from_json)

    def _append(
        self, asset_dir: str, asset_id: str, event: str, kind: str, run: str, *, durable: bool = True, **details: Any
    ) -> None:
        """Add an event to index.json (newest last). An event already recorded for the same run is
        not added again, so a step replayed after a crash leaves one entry."""
        history = self.read_history(asset_dir) or History(asset_id)
        if history.has(event, run):
            return
        entry = HistoryEvent(utc_now(), event, kind, run, details)
        events = in_reproducible_order((*history.events, entry), lambda e: e.details.get("candidate"))
        self._write_record(
            self._file(asset_dir, "index.json"), replace(history, events=events).to_json(), durable=durable
        )

    # -- calls in flight ---------------------------------------------------------------------------
    def pending(self, asset_dir: str) -> tuple[PendingCall, ...]:
        """The calls of `asset_dir` in flight (recorded before they were made, not yet closed)."""
        own = self._own_pending(asset_dir)
        record = self.read_asset(asset_dir)
        if record is None:
            return own
        known = {c.run for c in own}
        # A kill between marking a call's candidates made and dropping the call leaves it here.
        made = {c.run for c in record.candidates}
        return tuple(c for c in (*own, *(c for c in record.moved_calls if c.run not in known)) if c.run not in made)

    def drop_closed_calls(self) -> int:
        """Rewrite every calls file without the calls asset.json already shows made (a kill
        between the two writes of `complete` leaves them behind). Needs the build lock. Returns
        how many files changed."""
        folder = self.state_dir / "calls"
        changed = 0
        for path in sorted(folder.rglob("*.json")) if folder.is_dir() else ():
            asset_dir = path.relative_to(folder).as_posix()[: -len(".json")]
            try:
                own = self._own_pending(asset_dir)
                still = self.pending(asset_dir)
            except RecordError:
                continue  # a broken record is reported where it is read, not here
            if {c.run for c in own} - {c.run for c in still}:
                record = self.read_asset(asset_dir)
                self._write_pending(asset_dir, record.asset_id if record else asset_dir, still)
                changed += 1
        return changed

    def _own_pending(self, asset_dir: str) -> tuple[PendingCall, ...]:
        calls = self._read(
            self._calls_path(asset_dir), f".imgbuild/calls/{asset_dir}.json", "calls", 1, PendingCalls.from_json
        )
        return calls.calls if calls is not None else ()

    def _write_pending(
        self, asset_dir: str, asset_id: str, calls: Sequence[PendingCall], *, durable: bool = True
    ) -> None:
        path = self._calls_path(asset_dir)
        if calls:
            self._write_record(path, PendingCalls(asset_id, tuple(calls)).to_json(), durable=durable)
        else:
            with suppress(FileNotFoundError):
                os.unlink(path)
        self._retire_moved_calls(asset_dir)
        if not calls:
            self._forget(asset_dir)

    def _drop_pending(self, asset_dir: str, asset_id: str, run: str, *, durable: bool = True) -> None:
        calls = [c for c in self.pending(asset_dir) if c.run != run]
        self._write_pending(asset_dir, asset_id, calls, durable=durable)

    def saved_response(self, asset_dir: str, run: str) -> dict[str, Any] | None:
        """The raw answer saved for `run`, if any arrived (an unreadable one counts as none)."""
        try:
            data = read_json_file(self.exchange_path(asset_dir, run, "response.json"), "response.json")
        except BrokenRecord:
            return None
        return data if isinstance(data, dict) else None

    def resumable(self, asset_dir: str, request_hash: str) -> list[int]:
        """Candidates of `request_hash` whose call can be finished without a new paid call: its job
        is recorded, or its answer saved."""
        return [
            c.candidate
            for c in self.pending(asset_dir)
            if c.request_hash == request_hash
            and (c.job is not None or self.exchange_path(asset_dir, c.run, "response.json").exists())
        ]

    # -- the operations of a call ------------------------------------------------------------------
    def submit(
        self, facts: RequestFacts, run: str, candidate: int, *, provider: str, provider_body: Mapping[str, Any]
    ) -> None:
        """Record a call before it is made: pending call, current request, event, request.json."""
        asset_dir = facts.asset_dir
        with self.locked(asset_dir):
            record = self.read_asset(asset_dir)
            # The pending call goes first: every run folder is then known, and a kill between
            # these writes leaves a pending call that the rerun closes.
            # Only the pending call is made durable before the call (see docs/records.md, "fsync").
            call = PendingCall(run, candidate, facts.request_hash, "submitted", None, utc_now())
            self._write_pending(asset_dir, facts.asset_id, [*self.pending(asset_dir), call])
            fresh = AssetRecord.new(facts) if record is None else record.for_request(facts)
            if fresh != record or fresh.moved_calls:
                self._write_asset(asset_dir, fresh, durable=False)
            self._append(
                asset_dir,
                facts.asset_id,
                "submitted",
                "image",
                run,
                durable=False,
                candidate=candidate,
                request_hash=facts.request_hash,
                provider=provider,
            )
            self._write_json(
                f"{self._base}/{self.run_path(asset_dir, run, 'request.json')}",
                {
                    "run_id": run,
                    "kind": "image",
                    "candidate": candidate,
                    "provider": provider,
                    "request": dict(facts.request),
                    "provider_body": dict(provider_body),
                    "submitted": call.submitted,
                },
                durable=False,
            )

    def record_job(self, asset_dir: str, asset_id: str, run: str, job: JobRef) -> None:
        """The provider's job id of a call, before polling: a rerun resumes it."""
        with self.locked(asset_dir):
            calls = [replace(c, job=job) if c.run == run else c for c in self.pending(asset_dir)]
            self._write_pending(asset_dir, asset_id, calls)

    def save_response(self, asset_dir: str, run: str, raw: Mapping[str, Any]) -> None:
        self._write_json(self._exchange_file(asset_dir, run, "response.json"), dict(raw))

    def append_exchanges(self, asset_dir: str, run: str, entries: list[dict[str, Any]], *, kind: str = "image") -> None:
        """Add a call's HTTP exchanges to its http.json (a resumed call adds to the first attempt's)."""
        if not entries:
            return
        path = self._exchange_file(asset_dir, run, "http.json", kind=kind)
        try:
            earlier = read_json_file(path, "http.json")
        except BrokenRecord:
            earlier = None
        self._write_json(path, (earlier if isinstance(earlier, list) else []) + entries, durable=False)
        entries.clear()

    def complete(
        self,
        facts: RequestFacts,
        run: str,
        candidate: int,
        kept: Sequence[KeptImage],
        *,
        errors: Sequence[Mapping[str, Any]],
        usage: Mapping[str, Any],
        seconds: float,
    ) -> None:
        """Record the outcome of an answered call: manifest, event, candidates, pending removed."""
        asset_dir = facts.asset_dir
        shown = self.run_path(asset_dir, run, "manifest.json")
        manifest_path = f"{self._base}/{shown}"
        manifest = read_json_file(manifest_path, shown)
        if not isinstance(manifest, dict):  # present when replaying after a crash
            manifest = {
                "run_id": run,
                "files": [
                    {
                        "candidate": k.candidate,
                        "image": k.image,
                        "file": k.file,
                        "sha256": k.sha256,
                        "bytes": k.bytes,
                        "width": k.width,
                        "height": k.height,
                        "remote_url": k.remote_url,
                    }
                    for k in kept
                ],
                "errors": [dict(e) for e in errors],
                "usage": dict(usage),
                "timings": {"seconds": duration(seconds)},
                "completed": utc_now(),
            }
            self._write_json(manifest_path, manifest, durable=False)
        with self.locked(asset_dir):
            record = self.read_asset(asset_dir)
            record = AssetRecord.new(facts) if record is None else record
            # History first: replaying this step after a crash does not repeat the event, while
            # asset.json, written next, is what marks the candidate as made.
            event = "failed" if not kept else "partial" if errors else "completed"
            self._append(
                asset_dir,
                facts.asset_id,
                event,
                "image",
                run,
                durable=False,
                candidate=candidate,
                request_hash=facts.request_hash,
                files=[k.file for k in kept],
                errors=[dict(e) for e in errors],
            )
            made = [
                Candidate(
                    candidate=k.candidate,
                    image=k.image,
                    file=k.file,
                    run=run,
                    request_hash=facts.request_hash,
                    prompt_hash=facts.prompt_hash,
                    sha256=k.sha256,
                    width=k.width,
                    height=k.height,
                    remote_url=k.remote_url,
                    created=str(manifest["completed"]),
                    variant_test=facts.variant_test,
                    evidence=facts.evidence,
                )
                for k in kept
                if all(c.run != run or c.file != k.file for c in record.candidates)
            ]
            if made:
                # By candidate number, each one's runs oldest first: calls of one asset finish in
                # either order, and the order they finished in is no fact worth a diff.
                candidates = tuple(sorted((*record.candidates, *made), key=lambda c: c.candidate))
                self._write_asset(asset_dir, replace(record, candidates=candidates), durable=False)
            self._drop_pending(asset_dir, facts.asset_id, run, durable=False)

    def fail(self, facts: RequestFacts, run: str, candidate: int, reason: str) -> None:
        """Close a call that failed: nothing to keep, nothing to resume."""
        with self.locked(facts.asset_dir):
            self._drop_pending(facts.asset_dir, facts.asset_id, run)
            self._append(
                facts.asset_dir,
                facts.asset_id,
                "failed",
                "image",
                run,
                candidate=candidate,
                request_hash=facts.request_hash,
                reason=reason,
            )

    def keep_failed(self, facts: RequestFacts, run: str, candidate: int, reason: str) -> int:
        """Count a failure to keep the images of `run`'s saved answer (it stays pending, so the
        next build retries from it). Returns the failures so far."""
        with self.locked(facts.asset_dir):
            count = 0
            calls = []
            for call in self.pending(facts.asset_dir):
                if call.run == run:
                    count = call.keep_failures + 1
                    call = replace(call, keep_failures=count)
                calls.append(call)
            self._write_pending(facts.asset_dir, facts.asset_id, calls)
            self._append(
                facts.asset_dir,
                facts.asset_id,
                "keep-failed",
                "image",
                run,
                candidate=candidate,
                reason=reason,
                note="the answer is saved; the next build retries from it",
            )
        return count

    def interrupted(self, facts: RequestFacts, run: str, candidate: int) -> bool:
        """Close a call a stopped build left without an answer or a job. Returns whether it may
        have been billed (its request was recorded, so it may have been sent)."""
        asset_dir = facts.asset_dir
        sent = self.exists(self.run_path(asset_dir, run, "request.json"))
        with self.locked(asset_dir):
            self._drop_pending(asset_dir, facts.asset_id, run)
            self._append(
                asset_dir,
                facts.asset_id,
                "interrupted",
                "image",
                run,
                candidate=candidate,
                possibly_billed=sent,
                note="the build stopped during this call and no answer was saved"
                if sent
                else "the build stopped before this call was made",
            )
        return sent

    # -- uploads -----------------------------------------------------------------------------------
    def record_upload(
        self,
        asset_dir: str,
        asset_id: str,
        upload_id: str,
        *,
        raw: Mapping[str, Any],
        manifest: Mapping[str, Any],
        exchanges: list[dict[str, Any]],
        shown_url: str,
        reference: Mapping[str, Any],
    ) -> None:
        """Record one reference image made reachable for a provider (after the upload succeeded)."""
        base = self.root / asset_dir / "upload" / upload_id
        self.append_exchanges(asset_dir, upload_id, exchanges, kind="upload")
        self._write_json(self.exchange_path(asset_dir, upload_id, "response.json", kind="upload"), dict(raw))
        self._write_json(base / "manifest.json", dict(manifest))
        with self.locked(asset_dir):
            self._append(asset_dir, asset_id, "uploaded", "upload", upload_id, reference=dict(reference), url=shown_url)

    def start_upload(self, asset_dir: str, upload_id: str, request: Mapping[str, Any]) -> None:
        """request.json of an upload, before it is sent."""
        self._write_json(self.root / asset_dir / "upload" / upload_id / "request.json", dict(request))

    # -- asset folders -------------------------------------------------------------------------------
    def has_approved_images(self, asset_dir: str) -> bool:
        folder = self.root / asset_dir / "images" / "approved"
        return folder.is_dir() and any(folder.iterdir())

    def remove_asset(self, asset_dir: str) -> None:
        """Remove an asset folder and its internal state (`imgbuild prune --yes`, under the build lock)."""
        self._forget(asset_dir)
        shutil.rmtree(self.root / asset_dir)
        shutil.rmtree(self.state_dir / "exchanges" / asset_dir, ignore_errors=True)
        with suppress(FileNotFoundError):
            os.unlink(self._calls_path(asset_dir))

    # -- review decisions ----------------------------------------------------------------------------
    def approve(
        self,
        asset_dir: str,
        record: AssetRecord,
        review: Review,
        *,
        approved_copies: Sequence[tuple[str, bytes]] = (),
    ) -> AssetRecord:
        """Record an approval: the approved copies not there yet (one image's, or every image of
        a set approved as a whole), then asset.json, then the event. `record` already holds the
        new approval; the review is appended here."""
        for relative, data in approved_copies:
            atomic_write_bytes(self.root / asset_dir / relative, data, temp_dir=self.temp_dir)
        return self._decide(asset_dir, record, review, "approved")

    def reject(self, asset_dir: str, record: AssetRecord, review: Review) -> AssetRecord:
        """Record a rejection (`record` has its approval cleared if it was the rejected image)."""
        return self._decide(asset_dir, record, review, "rejected")

    def _decide(self, asset_dir: str, record: AssetRecord, review: Review, event: str) -> AssetRecord:
        record = replace(record, reviews=(*record.reviews, review))
        self._write_asset(asset_dir, record)
        self._append_review(asset_dir, record.asset_id, event, review, override=review.override)
        return record

    def _append_review(self, asset_dir: str, asset_id: str, event: str, review: Review, **details: Any) -> None:
        """The index.json event of a decision (or of its undoing) about `review`'s image."""
        self._append(
            asset_dir,
            asset_id,
            event,
            "review",
            # A review is no run: a fresh id keeps every decision in the history.
            self.new_run_id(asset_dir, f"{event}:{review.run}:{review.candidate}:{review.image}"),
            candidate=review.candidate,
            image=review.image,
            candidate_run=review.run,
            request_hash=review.request_hash,
            by=review.by,
            **details,
        )

    def undo_decision(self, asset_dir: str, record: AssetRecord, approval: Approval | None) -> AssetRecord:
        """Take back the newest review of `record` (the caller has checked it is the one meant):
        asset.json without it and with `approval` restored, and an ``undone`` event in index.json,
        so the history still shows that it was made. An approved copy stays, as after a reject."""
        review = record.reviews[-1]
        record = replace(record, reviews=record.reviews[:-1], approval=approval)
        self._write_asset(asset_dir, record)
        self._append_review(
            asset_dir, record.asset_id, "undone", review, decision=review.decision, decided_at=review.at
        )
        return record

    def refresh_request(self, facts: RequestFacts) -> bool:
        """Bring asset.json's current request up to date without a call (the request hash is the
        same, the record's other facts — attributes, evidence — changed). Returns True if written."""
        with self.locked(facts.asset_dir):
            record = self.read_asset(facts.asset_dir)
            if record is None:
                return False
            fresh = record.for_request(facts)
            if fresh == record:
                return False
            self._write_asset(facts.asset_dir, fresh)
            return True
