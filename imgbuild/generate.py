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
import json
import os
import threading
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from imgbuild.errors import FatalError, ProviderRefused
from imgbuild.models import get_model
from imgbuild.providers import Call, Job, Provider, ProviderError, Response, Upload, create_provider
from imgbuild.providers.base import MAX_IMAGE_BYTES, redact_body
from imgbuild.records.atomic import atomic_write_json, remove_stale_temp_files
from imgbuild.records.store import ASSET_SCHEMA, AssetStore, new_run_id, utc_now
from imgbuild.requests import ImageRequest, Reference

__all__ = [
    "MAX_IMAGE_BYTES",
    "BudgetExceeded",
    "BuildFailed",
    "BuildLocked",
    "BuildStopped",
    "Estimate",
    "Generator",
    "acquire_build_lock",
    "current_candidates",
    "new_asset_record",
    "resumable_candidates",
]

KEEP_TRIES = 5  # builds that retry keeping a saved answer's images before giving it up
_EXTENSIONS = {"png": "png", "jpeg": "jpg"}
_PIL_FORMATS = {"png": "PNG", "jpeg": "JPEG"}


class BuildFailed(FatalError):
    """A candidate could not be made; its asset's records say why."""


class BuildLocked(FatalError):
    """Another build holds this project's build lock."""

    def __init__(self, holder: str) -> None:
        super().__init__(f"another build is running in this project ({holder}); wait for it to finish")
        self.holder = holder


class BuildStopped(FatalError):
    """The build was stopped by a refusal before this candidate was started."""


class BudgetExceeded(ProviderRefused):
    """The images this build would make cost more than the project's budget."""


@dataclass(frozen=True)
class Estimate:
    """What the stale images of a build would cost at list prices."""

    images: int
    cost: float


class UploadCache:
    """Reference images already uploaded to a provider, by content hash, until their URLs expire.

    Kept in .imgbuild/uploads.json (not committed: URLs are per account and expire)."""

    def __init__(self, path: Path, temp_dir: Path) -> None:
        self.path = path
        self.temp_dir = temp_dir
        self._lock = threading.Lock()
        self._uploading: dict[str, threading.Lock] = defaultdict(threading.Lock)

    @contextmanager
    def uploading(self, provider: str, sha256: str) -> Iterator[None]:
        """One upload of an image at a time: candidates made at once share it."""
        with self._lock:
            lock = self._uploading[f"{provider}:{sha256}"]
        with lock:
            yield

    def _read(self) -> dict[str, Any]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def get(self, provider: str, sha256: str) -> str | None:
        with self._lock:
            entry = self._read().get(f"{provider}:{sha256}")
        if not entry or (entry.get("expires") is not None and entry["expires"] < time.time() + 3600):
            return None  # an hour's margin: a call may queue a while before the provider reads it
        url = entry.get("url")
        return url if isinstance(url, str) else None

    def put(self, provider: str, sha256: str, upload: Upload) -> None:
        if upload.url.startswith("data:"):
            return  # inline: nothing to remember, and too big to keep
        with self._lock:
            data = self._read()
            data[f"{provider}:{sha256}"] = {"url": upload.url, "expires": upload.expires}
            atomic_write_json(self.path, data, temp_dir=self.temp_dir)


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
) -> dict[int, list[dict[str, Any]]]:
    """Candidate index → the images of its newest run for `request_hash`, when all their files exist.

    A candidate is one call: one image, or all the images of an identity set."""
    runs: dict[int, tuple[str, list[dict[str, Any]]]] = {}
    for cand in record.get("candidates", []):
        if cand.get("request_hash") != request_hash:
            continue
        newest = runs.get(cand["candidate"])
        if newest is None or newest[0] != cand["run"]:
            runs[cand["candidate"]] = (cand["run"], [cand])  # later entries are newer
        else:
            newest[1].append(cand)
    return {
        k: images
        for k, (_, images) in runs.items()
        if all(os.path.exists(os.path.join(root, asset_dir, image["file"])) for image in images)
    }


class Generator:
    """Makes candidates for one project with one provider. Safe to share between doit's threads.

    A refusal (no key, a rejected key, an unreachable host, the budget) stops the whole build:
    the candidates not yet started are skipped, not attempted."""

    def __init__(self, root: Path, provider_name: str, settings: Mapping[str, Any] | None = None) -> None:
        self.root = root
        self.provider_name = provider_name
        self.settings = settings or {}
        self.store = AssetStore(root)
        self.uploads = UploadCache(root / ".imgbuild" / "uploads.json", self.store.temp_dir)
        self.refused: ProviderRefused | None = None
        self.budget: float | None = None
        self.estimate: Estimate | None = None
        self.possibly_billed = 0  # create calls that ended without an answer (see docs/records.md)
        self._provider: Provider | None = None
        self._setup_lock = threading.Lock()
        self._build_lock: IO[str] | None = None

    # -- set-up, once per build -------------------------------------------------------------
    def _ready(self) -> Provider:
        with self._setup_lock:
            if self.refused is not None:
                raise BuildStopped(f"not run: {self.refused}")
            try:
                self._hold_build_lock()
                if self._provider is None:
                    self._check_budget()
                    self._provider = create_provider(self.provider_name, self.root, self.settings)
            except ProviderRefused as exc:
                self.refused = exc
                raise
            return self._provider

    def hold_build_lock(self) -> None:
        """Take the project's build lock for the rest of this build (writing a lock file needs it
        too: approve / reject must not change records under the writer)."""
        with self._setup_lock:
            self._hold_build_lock()

    def _hold_build_lock(self) -> None:
        if self._build_lock is None:
            self._build_lock = acquire_build_lock(self.root / ".imgbuild")
            remove_stale_temp_files(self.store.temp_dir)

    def _check_budget(self) -> None:
        if self.budget is None or self.estimate is None or self.provider_name == "preview":
            return
        if self.estimate.cost > self.budget:
            raise BudgetExceeded(
                f"this build would make {self.estimate.images} images for about ${self.estimate.cost:.2f} "
                f"at list prices, over the budget of ${self.budget:.2f} in imgbuild.yaml; "
                "raise `budget:` (the estimate counts every stale image of the project, whatever is selected)"
            )

    def refuse(self, exc: ProviderRefused) -> None:
        """Stop the build: every later candidate is skipped."""
        with self._setup_lock:
            if self.refused is None:
                self.refused = exc

    def close(self) -> None:
        if self._provider is not None:
            self._provider.close()
        if self._build_lock is not None:
            self._build_lock.close()
            self._build_lock = None

    # -- one candidate ----------------------------------------------------------------------
    def make_candidate(self, req: ImageRequest, candidate: int) -> None:
        """Make candidate `candidate` of `req` unless it exists; resume an interrupted call first."""
        try:
            self._make_candidate(req, candidate)
        except ProviderRefused as exc:
            self.refuse(exc)
            raise

    def finish_pending(self, req: ImageRequest) -> int:
        """Finish the interrupted calls of `req` that need no new call: a recorded job or a saved
        answer (`imgbuild poll`). Returns how many were finished."""
        with self.store.locked(req.asset_dir):
            resumable = resumable_candidates(self.store, req)
        for candidate in resumable:
            self.make_candidate(req, candidate)
        return len(resumable)

    def _make_candidate(self, req: ImageRequest, candidate: int) -> None:
        provider = self._ready()
        store, asset_dir = self.store, req.asset_dir
        with store.locked(asset_dir):
            record = store.read_asset(asset_dir) or new_asset_record(req)
            if candidate in current_candidates(record, req.request_hash, self.root, asset_dir):
                return
            pending = _pending_for(record, req.request_hash, candidate)
            if pending is not None:
                call = Call(req, candidate, pending["run"])
                try:
                    response = self._recover(provider, call, pending, record)
                except ProviderRefused:
                    raise
                except ProviderError as exc:
                    self._fail(call, str(exc))
                    raise BuildFailed(f"{req.asset_id} candidate {candidate}: {exc}") from exc
                finally:
                    self._write_http_log(call)
                if response is not None:
                    self._finish(provider, call, response, started=time.monotonic())
                    return
        # Uploads happen outside the asset lock: they may take a while and touch no asset record.
        call = Call(req, candidate, new_run_id(), self._reference_urls(provider, req))
        with store.locked(asset_dir):
            record = store.read_asset(asset_dir) or new_asset_record(req)
            self._submit(provider, call, record)
        started = time.monotonic()
        try:
            response = provider.generate(call, lambda job: self._record_job(call, job))
        except (ProviderError, ProviderRefused) as exc:
            self._count_unanswered(call)
            self._write_http_log(call)
            self._fail(call, str(exc))
            if isinstance(exc, ProviderRefused):
                raise
            raise BuildFailed(f"{req.asset_id} candidate {candidate}: {exc}") from exc
        self._count_unanswered(call)
        store.write_json(store.run_path(asset_dir, call.run_id, "response.json"), response.raw)
        self._finish(provider, call, response, started=started)

    # -- reference images ---------------------------------------------------------------------
    def _reference_urls(self, provider: Provider, req: ImageRequest) -> tuple[str, ...]:
        """A provider-readable URL per reference image: reused while valid, else uploaded and recorded."""
        urls = []
        for ref in req.references:
            with self.uploads.uploading(self.provider_name, ref.sha256):
                url = self.uploads.get(self.provider_name, ref.sha256) or self._upload(provider, req, ref)
            urls.append(url)
        return tuple(urls)

    def _upload(self, provider: Provider, req: ImageRequest, ref: Reference) -> str:
        data = (self.root / ref.path).read_bytes()
        if hashlib.sha256(data).hexdigest() != ref.sha256:
            raise BuildFailed(f"{req.asset_id}: reference image {ref.path} changed since the plan; run again")
        limit = get_model(req.model).max_input_bytes
        transcoded = None
        if len(data) > limit:
            # A large approved PNG (a 3K image can pass 10 MB) goes as a high-quality JPEG instead.
            original = len(data)
            data = _as_jpeg(data)
            if len(data) > limit:
                raise BuildFailed(f"{req.asset_id}: reference image {ref.path} is over {limit} bytes even as JPEG")
            transcoded = {"from_bytes": original, "to_bytes": len(data), "format": "jpeg", "quality": 92}
        upload_id = new_run_id()
        call = Call(req, 0, upload_id)
        base = f"{req.asset_dir}/upload/{upload_id}"
        self.store.write_json(
            f"{base}/request.json",
            {
                "upload_id": upload_id,
                "provider": self.provider_name,
                "reference": ref.record(),
                "bytes": len(data),
                "transcoded": transcoded,
                "submitted": utc_now(),
            },
        )
        started = time.monotonic()
        try:
            upload = provider.upload(call, ref, data)
        finally:
            self._write_json_list(f"{base}/http.json", call.log)
        self.store.write_json(f"{base}/response.json", upload.raw)
        shown = upload.url if not upload.url.startswith("data:") else "(inline data URL)"
        self.store.write_json(
            f"{base}/manifest.json",
            {
                "upload_id": upload_id,
                "reference": ref.record(),
                "url": shown,
                "expires": upload.expires,
                "timings": {"seconds": round(time.monotonic() - started, 3)},
                "completed": utc_now(),
            },
        )
        with self.store.locked(req.asset_dir):
            self.store.append_history(
                req.asset_dir,
                req.asset_id,
                {"event": "uploaded", "kind": "upload", "run": upload_id, "reference": ref.record(), "url": shown},
            )
        self.uploads.put(self.provider_name, ref.sha256, upload)
        return upload.url

    # -- records of HTTP exchanges --------------------------------------------------------------
    def _write_http_log(self, call: Call) -> None:
        if call.log:
            path = self.store.run_path(call.request.asset_dir, call.run_id, "http.json")
            self._write_json_list(path, call.log)

    def _write_json_list(self, path: str, entries: list[dict[str, Any]]) -> None:
        if not entries:
            return
        earlier = self.store.read_json(path)  # a resumed call adds to what the first attempt wrote
        combined = (earlier if isinstance(earlier, list) else []) + entries
        self.store.write_json(path, combined)
        entries.clear()

    def _count_unanswered(self, call: Call) -> None:
        # A create that was sent but got no answer may have been made (and billed) all the same;
        # one that never connected was not sent at all.
        lost = sum(
            1
            for e in call.log
            if e.get("what") == "create"
            and e.get("response") is None
            and not str(e.get("error", "")).startswith(("ConnectError", "ConnectTimeout"))
        )
        if lost:
            with self._setup_lock:
                self.possibly_billed += lost

    def _finish(self, provider: Provider, call: Call, response: Response, *, started: float) -> None:
        """Keep the images of a saved answer. If that fails (a download cut short, a broken
        image), the call stays pending: the next build retries from response.json, not from a
        new paid call."""
        try:
            kept = self._keep_logged(provider, call, response, started=started)
        except ProviderRefused:
            raise
        except (BuildFailed, ProviderError, OSError) as exc:
            req = call.request
            if self._keep_failures(call) >= KEEP_TRIES:
                # The saved answer itself is bad (an image that never verifies): stop retrying it.
                self._fail(call, f"{exc} (gave up on the saved answer after {KEEP_TRIES} tries)")
                raise BuildFailed(f"{req.asset_id} candidate {call.candidate}: {exc}") from exc
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

    def _keep_failures(self, call: Call) -> int:
        """Count one more failure to keep the images of `call`'s saved answer; the total so far."""
        req = call.request
        with self.store.locked(req.asset_dir):
            record = self.store.read_asset(req.asset_dir) or new_asset_record(req)
            count = 0
            for pending in record["pending"]:
                if pending["run"] == call.run_id:
                    pending["keep_failures"] = count = pending.get("keep_failures", 0) + 1
            self.store.write_asset(req.asset_dir, record)
        return count

    def _keep_logged(self, provider: Provider, call: Call, response: Response, *, started: float) -> int:
        """_keep, then the call's HTTP exchanges (creation, polls, downloads) into http.json."""
        try:
            return self._keep(provider, call, response, started=started)
        finally:
            self._write_http_log(call)

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
                "provider_body": redact_body(provider.request_body(call)),
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
                errors.append({"image": output.index + 1, "error": output.error})
                continue
            sets = req.max_images > 1  # an identity set: one candidate, several images
            name = f"{call.run_id}-{output.index + 1}" if sets else call.run_id
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
                    "candidate": call.candidate,
                    "image": output.index + 1 if sets else None,
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
                    "event": "failed" if not files else "partial" if errors else "completed",
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
                        **({"image": f["image"]} if f["image"] is not None else {}),
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


def resumable_candidates(store: AssetStore, req: ImageRequest) -> list[int]:
    """The candidates of `req` whose interrupted call can be finished without a new call: the
    provider's job is recorded, or its answer is saved."""
    record = store.read_asset(req.asset_dir) or {}
    return [
        p["candidate"]
        for p in record.get("pending", [])
        if p["request_hash"] == req.request_hash
        and (p.get("job") or store.exists(store.run_path(req.asset_dir, p["run"], "response.json")))
    ]


def _pending_for(record: dict[str, Any], request_hash: str, candidate: int) -> dict[str, Any] | None:
    for pending in record.get("pending", []):
        if pending["request_hash"] == request_hash and pending["candidate"] == candidate:
            return dict(pending)
    return None


def _as_jpeg(data: bytes) -> bytes:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


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


def acquire_build_lock(state_dir: Path, holder: str = "build") -> IO[str]:
    """Hold the project's build lock (released when the handle is closed); BuildLocked when held.

    Builds hold it for their whole run; approve / reject for their few writes, so that no build
    rewrites asset.json or a lock file under them."""
    state_dir.mkdir(parents=True, exist_ok=True)
    handle = open(state_dir / "build.lock", "a+")  # noqa: SIM115 (held by the caller)
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        current = handle.read().strip() or "another process"
        handle.close()
        raise BuildLocked(current) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()}" + ("" if holder == "build" else f", imgbuild {holder}"))
    handle.flush()
    return handle
