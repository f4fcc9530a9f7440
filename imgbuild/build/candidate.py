"""One candidate: make it, resume an interrupted call of it, finish it from a saved answer.

The records' write order (imgbuild.records.store) is what makes this safe to kill at any moment:
a rerun finds the pending call and finishes it from the furthest step on disk (saved answer or
recorded job), and only makes a new paid call when the old one left nothing to resume.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from imgbuild.build.images import EXTENSIONS, verify_image
from imgbuild.build.session import BuildSession
from imgbuild.errors import AssetFailed, BuildStop, NotStarted, describe
from imgbuild.models import Pricing, get_model
from imgbuild.providers import Call, ContentRejected, Job, Provider, ProviderError, Response
from imgbuild.providers.answers import BadAnswer
from imgbuild.providers.base import redact_body
from imgbuild.records import JobRef, KeptImage, PendingCall
from imgbuild.requests import ImageRequest

__all__ = ["CONTENT_FILTER_RETRIES", "KEEP_TRIES", "finish_pending", "make_candidate"]

KEEP_TRIES = 5  # builds that retry keeping a saved answer's images before giving it up
# Calls made again after a content-filter refusal (`providers.<name>.content_filter_retries`): the
# filter is not deterministic, and Ark does not bill filtered outputs. Bounded: it may be the prompt.
CONTENT_FILTER_RETRIES = 1
log = logging.getLogger("imgbuild")


def make_candidate(session: BuildSession, req: ImageRequest, candidate: int) -> None:
    """Make candidate `candidate` of `req` unless it exists; resume an interrupted call first.

    AssetFailed when it could not be made (its records say why); BuildStop stops the build."""
    try:
        _make(session, req, candidate)
    except BuildStop as exc:
        session.stop(exc)
        raise


def finish_pending(session: BuildSession, req: ImageRequest) -> int:
    """Finish the interrupted calls of `req` that need no new call: a recorded job or a saved
    answer (`imgbuild poll`). Returns how many were finished."""
    resumable = session.store.resumable(req.asset_dir, req.request_hash)
    for candidate in resumable:
        make_candidate(session, req, candidate)
    return len(resumable)


def _made(session: BuildSession, req: ImageRequest, candidate: int) -> bool:
    record = session.store.read_asset(req.asset_dir)
    return record is not None and candidate in session.store.made(record, req.asset_dir, req.request_hash)


def _make(session: BuildSession, req: ImageRequest, candidate: int) -> None:
    provider = session.provider()
    store, facts = session.store, req.facts
    with store.locked(req.asset_dir):
        if _made(session, req, candidate):
            return
        pending = next(
            (
                p
                for p in store.pending(req.asset_dir)
                if p.request_hash == req.request_hash and p.candidate == candidate
            ),
            None,
        )
        if pending is not None:
            call = Call(req, candidate, pending.run)
            try:
                response = _recover(session, provider, call, pending)
            except ProviderError as exc:
                store.fail(facts, call.run_id, candidate, str(exc))
                raise AssetFailed(f"{req.asset_id} candidate {candidate}: {exc}") from exc
            finally:
                store.append_exchanges(req.asset_dir, call.run_id, call.log)
            if response is not None:
                _finish(session, provider, call, response, started=time.monotonic())
                return
    attempts = 1 + int(session.settings.get("content_filter_retries", CONTENT_FILTER_RETRIES))
    for attempt in range(1, attempts + 1):
        # Uploads happen outside the asset lock: they may take a while and touch no asset record.
        run = store.new_run_id(req.asset_dir, f"{req.request_hash}:{candidate}")  # a new one per attempt
        call = Call(req, candidate, run, session.uploads.urls(provider, req))
        try:
            # Recorded once its turn came (a kill while waiting leaves nothing that looks sent).
            with session.schedule.slot(req.max_images):
                if session.stopped is not None:
                    raise NotStarted(f"not run: {session.stopped}")
                store.submit(
                    facts,
                    call.run_id,
                    candidate,
                    provider=session.provider_name,
                    provider_body=redact_body(provider.request_body(call)),
                )
                started = time.monotonic()
                try:
                    response = provider.generate(call, _job_recorder(session, req, call.run_id))
                except BuildStop as exc:  # before the slot frees: a thread waiting for it starts no call
                    session.stop(exc)
                    raise
        except (ProviderError, BuildStop) as exc:
            _count_unanswered(session, call)
            store.append_exchanges(req.asset_dir, call.run_id, call.log)
            filtered = isinstance(exc, ContentRejected)
            reason = f"{exc} (content filter, attempt {attempt} of {attempts})" if filtered else str(exc)
            store.fail(facts, call.run_id, candidate, reason)
            if isinstance(exc, BuildStop):
                raise
            if filtered and attempt < attempts:
                log.warning("%s candidate %d: %s; trying again", req.asset_id, candidate, reason)
                continue  # a new run: each attempt has its own records
            raise AssetFailed(f"{req.asset_id} candidate {candidate}: {reason}") from exc
        _count_unanswered(session, call)
        store.save_response(req.asset_dir, call.run_id, response.raw)  # the paid answer first
        session.schedule.let_calls_start()
        _finish(session, provider, call, response, started=started)
        return


def _job_recorder(session: BuildSession, req: ImageRequest, run: str) -> Callable[[Job], None]:
    """What a provider calls with its job id, before polling: the id goes on disk at once."""
    return lambda job: session.store.record_job(req.asset_dir, req.asset_id, run, _job(job))


def _job(job: Job) -> JobRef:
    return JobRef(job.provider, job.id, dict(job.urls))


def _recover(session: BuildSession, provider: Provider, call: Call, pending: PendingCall) -> Response | None:
    """The answer of an interrupted call, from disk or by resuming its job; None if lost."""
    store, req = session.store, call.request
    raw = store.saved_response(req.asset_dir, call.run_id)
    if raw is not None:
        return provider.parse(call, raw)
    if pending.job is not None:
        job = Job(pending.job.provider, pending.job.id, dict(pending.job.urls))
        response = provider.resume(call, job)
        store.save_response(req.asset_dir, call.run_id, response.raw)
        return response
    # A synchronous call that died in flight left nothing to resume.
    store.interrupted(req.facts, call.run_id, call.candidate)
    return None


def _count_unanswered(session: BuildSession, call: Call) -> None:
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
        session.count_possibly_billed(lost)


def _finish(session: BuildSession, provider: Provider, call: Call, response: Response, *, started: float) -> None:
    """Keep the images of a saved answer. If that fails (a download cut short, a broken image),
    the call stays pending: the next build retries from the saved answer, not a new paid call."""
    req, store = call.request, session.store
    try:
        try:
            kept = _keep(session, provider, call, response, started=started)
        finally:
            store.append_exchanges(req.asset_dir, call.run_id, call.log)
    except BuildStop:
        raise
    except BadAnswer as exc:  # the answer itself is wrong (a bomb, a bad shape): retrying cannot help
        store.fail(req.facts, call.run_id, call.candidate, str(exc))
        raise AssetFailed(f"{req.asset_id} candidate {call.candidate}: {exc}") from exc
    except (AssetFailed, OSError) as exc:
        facts, reason = req.facts, describe(exc)
        if store.keep_failed(facts, call.run_id, call.candidate, reason) >= KEEP_TRIES:
            # The saved answer itself is bad (an image that never verifies): stop retrying it.
            store.fail(
                facts, call.run_id, call.candidate, f"{reason} (gave up on the saved answer after {KEEP_TRIES} tries)"
            )
        raise AssetFailed(f"{req.asset_id} candidate {call.candidate}: {reason}") from exc
    if not kept:
        errors = "; ".join(str(o.error) for o in response.outputs if o.error)
        raise AssetFailed(f"{req.asset_id} candidate {call.candidate}: no image in the answer ({errors})")


def _keep(session: BuildSession, provider: Provider, call: Call, response: Response, *, started: float) -> int:
    """Verify and store the images of `response`, then record them. Returns how many."""
    req, store = call.request, session.store
    kept: list[KeptImage] = []
    errors: list[dict[str, object]] = []
    sets = req.max_images > 1  # an identity set: one candidate, several images
    for output in response.outputs:
        if output.error is not None:
            errors.append({"image": output.index + 1, "error": output.error})
            continue
        name = f"{call.run_id}-{output.index + 1}" if sets else call.run_id
        relative = f"images/candidates/{name}.{EXTENSIONS[req.output_format]}"
        target = f"{req.asset_dir}/{relative}"
        on_disk = store.exists(target)
        if on_disk:  # kept by an interrupted run: its remote URL may have expired
            data = store.read_bytes(target)
        else:
            data = provider.download(call, output) if output.data is None else output.data
        try:
            width, height = verify_image(data, req.output_format)
        except AssetFailed as exc:
            if output.data is not None and not isinstance(exc, BadAnswer):
                raise BadAnswer(f"the answer's inline image: {exc}") from exc  # retrying the same bytes cannot help
            raise
        if not on_disk:
            store.write_image(req.asset_dir, relative, data)
        remote = output.url if output.url and not output.url.startswith("preview:") else None
        image = output.index + 1 if sets else None
        kept.append(
            KeptImage(
                call.candidate, image, relative, hashlib.sha256(data).hexdigest(), len(data), width, height, remote
            )
        )
    store.complete(
        req.facts,
        call.run_id,
        call.candidate,
        kept,
        errors=errors,
        usage=response.usage,
        seconds=time.monotonic() - started,
    )
    if kept and provider.name != "preview":  # the spend the progress line shows, priced as plan prices
        width, height = (int(v) for v in req.size.split("x"))
        route = session.pricing or Pricing(req.provider)
        session.count_made(len(kept) * route.usd(get_model(req.model), width * height, len(req.references)))
    return len(kept)
