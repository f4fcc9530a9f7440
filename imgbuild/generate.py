"""Making candidates: the one place that calls a provider and records what happened.

For each paid call the order of writes is fixed, so that a crash at any moment loses nothing
that was paid for and a rerun resumes instead of paying again:

1. a *pending* entry in asset.json (and a ``submitted`` event in index.json), then
   ``runs/image/<run>/request.json`` (normalized record + exact provider body), before the call;
2. the provider's job id into that pending entry as soon as an asynchronous provider has one;
3. ``response.json``, the raw answer, as soon as it arrives;
4. the images, verified, under ``images/candidates/``;
5. ``manifest.json`` (files, hashes, URLs, timings, usage), the ``completed`` event, and last
   the candidate in asset.json — the write that marks it as made.

A rerun that finds a pending entry finishes it from the furthest step on disk (manifest, saved
response, or recorded job) and only makes a new call when the old one left nothing to resume.
"""

from __future__ import annotations

import fcntl
import hashlib
import io
import os
import threading
import time
from pathlib import Path
from typing import IO, Any

from imgbuild.errors import FatalError
from imgbuild.providers import Call, Job, Provider, ProviderError, Response, create_provider
from imgbuild.records.atomic import remove_stale_temp_files
from imgbuild.records.store import ASSET_SCHEMA, AssetStore, new_run_id, utc_now
from imgbuild.requests import ImageRequest

__all__ = ["MAX_IMAGE_BYTES", "BuildFailed", "Generator", "current_candidates", "new_asset_record"]

MAX_IMAGE_BYTES = 64 * 1024 * 1024
_EXTENSIONS = {"png": "png", "jpeg": "jpg"}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


class BuildFailed(FatalError):
    """A candidate could not be made; its asset's records say why."""


class BuildLocked(FatalError):
    """Another build holds this project's build lock."""


def new_asset_record(req: ImageRequest) -> dict[str, Any]:
    """A fresh asset.json for `req` with no candidates yet."""
    return {
        "schema": ASSET_SCHEMA,
        "asset_id": req.asset_id,
        "batch": req.batch,
        "shot": req.shot,
        "purpose": req.purpose,
        "persona": req.persona,
        "variant_test": req.variant_test,
        "request_hash": req.request_hash,
        "prompt_hash": req.prompt_hash,
        "request": req.record(),
        "candidates": [],
        "pending": [],
        "approval": None,
        "reviews": [],
    }


def current_candidates(
    record: dict[str, Any], request_hash: str, root: Path, asset_dir: str
) -> dict[int, dict[str, Any]]:
    """Candidate index → newest candidate made for `request_hash` whose file still exists."""
    found: dict[int, dict[str, Any]] = {}
    for cand in record.get("candidates", []):
        if cand.get("request_hash") == request_hash and os.path.exists(os.path.join(root, asset_dir, cand["file"])):
            found[cand["candidate"]] = cand
    return found


class Generator:
    """Makes candidates for one project with one provider. Safe to share between doit's threads."""

    def __init__(self, root: Path, provider_name: str) -> None:
        self.root = root
        self.provider_name = provider_name
        self.store = AssetStore(root)
        self._provider: Provider | None = None
        self._setup_lock = threading.Lock()
        self._build_lock: IO[str] | None = None

    # -- set-up, once per build -------------------------------------------------------------
    def _ready(self) -> Provider:
        with self._setup_lock:
            if self._build_lock is None:
                self._build_lock = _acquire_build_lock(self.root / ".imgbuild")
                remove_stale_temp_files(self.store.temp_dir)
            if self._provider is None:
                self._provider = create_provider(self.provider_name, self.root)
            return self._provider

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
        if self._build_lock is not None:
            self._build_lock.close()
            self._build_lock = None

    # -- one candidate ----------------------------------------------------------------------
    def make_candidate(self, req: ImageRequest, candidate: int) -> None:
        """Make candidate `candidate` of `req` unless it exists; resume an interrupted call first."""
        provider = self._ready()
        store, asset_dir = self.store, req.asset_dir
        with store.locked(asset_dir):
            record = store.read_asset(asset_dir) or new_asset_record(req)
            if candidate in current_candidates(record, req.request_hash, self.root, asset_dir):
                return
            pending = _pending_for(record, req.request_hash, candidate)
            if pending is not None:
                call = Call(req, candidate, pending["run"])
                response = self._recover(provider, call, pending, record)
                if response is not None:
                    self._finish(provider, call, response, started=time.monotonic())
                    return
            call = Call(req, candidate, new_run_id())
            self._submit(provider, call, record)
        started = time.monotonic()
        try:
            response = provider.generate(call, lambda job: self._record_job(call, job))
        except ProviderError as exc:
            self._fail(call, str(exc))
            raise BuildFailed(f"{req.asset_id} candidate {candidate}: {exc}") from exc
        store.write_json(store.run_path(asset_dir, call.run_id, "response.json"), response.raw)
        self._finish(provider, call, response, started=started)

    def _finish(self, provider: Provider, call: Call, response: Response, *, started: float) -> None:
        """Keep the images of a saved answer. If that fails (a download cut short, a broken
        image), the call stays pending: the next build retries from response.json, not from a
        new paid call."""
        try:
            kept = self._keep(provider, call, response, started=started)
        except (BuildFailed, ProviderError, OSError) as exc:
            req = call.request
            self.store.append_history(
                req.asset_dir,
                req.asset_id,
                {
                    "event": "keep-failed",
                    "kind": "image",
                    "run": call.run_id,
                    "candidate": call.candidate,
                    "reason": str(exc),
                    "note": "the answer is saved; the next build retries from it",
                },
            )
            raise BuildFailed(f"{req.asset_id} candidate {call.candidate}: {exc}") from exc
        if not kept:
            errors = "; ".join(str(o.error) for o in response.outputs if o.error)
            raise BuildFailed(f"{call.request.asset_id} candidate {call.candidate}: no image in the answer ({errors})")

    def _submit(self, provider: Provider, call: Call, record: dict[str, Any]) -> None:
        # The pending entry goes first: every run folder on disk is then known to asset.json,
        # and a kill between the two writes leaves a pending entry that the rerun closes.
        req, store = call.request, self.store
        record.update(
            request_hash=req.request_hash,
            prompt_hash=req.prompt_hash,
            request=req.record(),
            variant_test=req.variant_test,
            purpose=req.purpose,
            persona=req.persona,
        )
        record["pending"].append(
            {
                "run": call.run_id,
                "candidate": call.candidate,
                "request_hash": req.request_hash,
                "state": "submitted",
                "job": None,
                "submitted": utc_now(),
            }
        )
        store.write_asset(req.asset_dir, record)
        store.append_history(
            req.asset_dir,
            req.asset_id,
            {
                "event": "submitted",
                "kind": "image",
                "run": call.run_id,
                "candidate": call.candidate,
                "request_hash": req.request_hash,
                "provider": self.provider_name,
            },
        )
        store.write_json(
            store.run_path(req.asset_dir, call.run_id, "request.json"),
            {
                "run_id": call.run_id,
                "kind": "image",
                "candidate": call.candidate,
                "provider": self.provider_name,
                "request": req.record(),
                "provider_body": provider.request_body(call),
                "submitted": utc_now(),
            },
        )

    def _record_job(self, call: Call, job: Job) -> None:
        req, store = call.request, self.store
        with store.locked(req.asset_dir):
            record = store.read_asset(req.asset_dir) or new_asset_record(req)
            for pending in record["pending"]:
                if pending["run"] == call.run_id:
                    pending["job"] = job.record()
            store.write_asset(req.asset_dir, record)

    def _recover(
        self, provider: Provider, call: Call, pending: dict[str, Any], record: dict[str, Any]
    ) -> Response | None:
        """The answer of an interrupted call, from disk or by resuming its job; None if lost."""
        store, asset_dir = self.store, call.request.asset_dir
        raw = store.read_json(store.run_path(asset_dir, call.run_id, "response.json"))
        if isinstance(raw, dict):
            return provider.parse(call, raw)
        job = pending.get("job")
        if job:
            response = provider.resume(call, Job(job["provider"], job["id"], dict(job.get("urls", {}))))
            store.write_json(store.run_path(asset_dir, call.run_id, "response.json"), response.raw)
            return response
        # A synchronous call that died in flight left nothing to resume.
        sent = store.exists(store.run_path(asset_dir, call.run_id, "request.json"))
        record["pending"] = [p for p in record["pending"] if p["run"] != call.run_id]
        store.write_asset(asset_dir, record)
        store.append_history(
            asset_dir,
            call.request.asset_id,
            {
                "event": "interrupted",
                "kind": "image",
                "run": call.run_id,
                "candidate": call.candidate,
                "possibly_billed": sent,
                "note": "the build stopped during this call and no answer was saved"
                if sent
                else "the build stopped before this call was made",
            },
        )
        return None

    def _keep(self, provider: Provider, call: Call, response: Response, *, started: float) -> int:
        """Verify and store the images of `response`, then record them. Returns how many."""
        req, store = call.request, self.store
        files: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        for output in response.outputs:
            if output.error is not None:
                errors.append({"index": output.index, "error": output.error})
                continue
            name = call.run_id if len(response.outputs) == 1 else f"{call.run_id}-{output.index + 1}"
            relative = f"images/candidates/{name}.{_EXTENSIONS[req.output_format]}"
            target = f"{req.asset_dir}/{relative}"
            if store.exists(target):  # kept by an interrupted run: its remote URL may have expired
                data = store.path(target).read_bytes()
            else:
                data = provider.download(call, output) if output.data is None else output.data
            width, height = _verify_image(data, req.output_format)
            if not store.exists(target):
                store.write_bytes(target, data)
            files.append(
                {
                    "candidate": call.candidate + output.index,
                    "file": relative,
                    "sha256": hashlib.sha256(data).hexdigest(),
                    "bytes": len(data),
                    "width": width,
                    "height": height,
                    "remote_url": output.url if output.url and not output.url.startswith("preview:") else None,
                }
            )
        manifest_path = store.run_path(req.asset_dir, call.run_id, "manifest.json")
        manifest = store.read_json(manifest_path)  # present when replaying after a crash
        if not isinstance(manifest, dict):
            manifest = {
                "run_id": call.run_id,
                "files": files,
                "errors": errors,
                "usage": response.usage,
                "timings": {"seconds": round(time.monotonic() - started, 3)},
                "completed": utc_now(),
            }
            store.write_json(manifest_path, manifest)
        with store.locked(req.asset_dir):
            record = store.read_asset(req.asset_dir) or new_asset_record(req)
            # History first: replaying this step after a crash does not repeat the event, while
            # asset.json, written last, is what marks the candidate as made.
            store.append_history(
                req.asset_dir,
                req.asset_id,
                {
                    "event": "completed" if not errors else "partial",
                    "kind": "image",
                    "run": call.run_id,
                    "candidate": call.candidate,
                    "request_hash": req.request_hash,
                    "files": [f["file"] for f in files],
                    "errors": errors,
                },
            )
            record["pending"] = [p for p in record["pending"] if p["run"] != call.run_id]
            created = manifest["completed"]
            for f in files:
                record["candidates"].append(
                    {
                        "candidate": f["candidate"],
                        "file": f["file"],
                        "run": call.run_id,
                        "request_hash": req.request_hash,
                        "prompt_hash": req.prompt_hash,
                        "sha256": f["sha256"],
                        "width": f["width"],
                        "height": f["height"],
                        "remote_url": f["remote_url"],
                        "created": created,
                        "variant_test": req.variant_test,
                    }
                )
            store.write_asset(req.asset_dir, record)
        return len(files)

    def _fail(self, call: Call, reason: str) -> None:
        req, store = call.request, self.store
        with store.locked(req.asset_dir):
            record = store.read_asset(req.asset_dir) or new_asset_record(req)
            record["pending"] = [p for p in record["pending"] if p["run"] != call.run_id]
            store.write_asset(req.asset_dir, record)
            store.append_history(
                req.asset_dir,
                req.asset_id,
                {
                    "event": "failed",
                    "kind": "image",
                    "run": call.run_id,
                    "candidate": call.candidate,
                    "request_hash": req.request_hash,
                    "reason": reason,
                },
            )


def _pending_for(record: dict[str, Any], request_hash: str, candidate: int) -> dict[str, Any] | None:
    for pending in record.get("pending", []):
        if pending["request_hash"] == request_hash and pending["candidate"] == candidate:
            return dict(pending)
    return None


def _verify_image(data: bytes, expected: str) -> tuple[int, int]:
    """Decode `data` fully to be sure it is a whole image of the expected type."""
    from PIL import Image, UnidentifiedImageError  # only a build that makes images needs Pillow

    if len(data) > MAX_IMAGE_BYTES:
        raise BuildFailed(f"image of {len(data)} bytes is over the {MAX_IMAGE_BYTES}-byte cap")
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = image.format
            image.load()  # a truncated file fails here
            size = image.size
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise BuildFailed(f"downloaded file is not a whole image: {exc}") from exc
    if fmt != _PIL_FORMATS[expected]:
        raise BuildFailed(f"expected a {expected} image, got {fmt}")
    return size


def _acquire_build_lock(state_dir: Path) -> IO[str]:
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "build.lock", "a+")  # noqa: SIM115 (held for the whole build)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise BuildLocked(f"another build is running in this project ({holder}); wait for it to finish") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}")
    handle.flush()
    return handle
