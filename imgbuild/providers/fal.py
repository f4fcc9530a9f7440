"""fal.ai: the queue API — submit, record the request id and its URLs, poll, fetch the result.

The status and response URLs come back with the submit answer and are recorded as they are
(fal builds them from the app, not the full model path). Reference images go to fal storage
(initiate, then PUT to the signed URL). Facts: reference/providers.md §3.

fal's storage is public with no expiry by default, and persona references are faces. Every
submit and upload asks for a short life (`X-Fal-Object-Lifecycle-Preference`: a day, long
enough for `imgbuild poll` to resume a job and for a build to reuse an upload) and the submit
turns payload storage off (`X-Fal-Store-IO: 0`): outputs are downloaded at once anyway.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

from imgbuild.models import get_model
from imgbuild.providers import register
from imgbuild.providers.answers import FAL_RESULT, FAL_STATUS, FAL_SUBMITTED, FAL_UPLOAD, checked, checked_outputs
from imgbuild.providers.base import Call, ContentRejected, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import (
    HttpApi,
    PollingProvider,
    base_url,
    image_mime,
    prompt_with_negative,
)
from imgbuild.requests import Reference

__all__ = ["FalProvider"]

KEY_ENV = "FAL_KEY"
BASE_URL_ENV = "IMGBUILD_FAL_BASE_URL"
STORAGE_URL_ENV = "IMGBUILD_FAL_STORAGE_URL"
DEFAULT_BASE = "https://queue.fal.run"
DEFAULT_STORAGE = "https://rest.alpha.fal.ai"
POLL_LIMIT_SECONDS = 40 * 60
MEDIA_LIFETIME_SECONDS = 24 * 3600
LIFECYCLE_HEADER = "X-Fal-Object-Lifecycle-Preference"
# Sent with every submit and every storage upload (docs/decisions.md).
PRIVATE_HEADERS = {LIFECYCLE_HEADER: json.dumps({"expiration_duration_seconds": MEDIA_LIFETIME_SECONDS})}
SUBMIT_HEADERS = {**PRIVATE_HEADERS, "X-Fal-Store-IO": "0"}


@register("fal")
class FalProvider(PollingProvider):
    """Seedream on fal through the queue API."""

    name = "fal"
    key_env = KEY_ENV
    base_url_env = BASE_URL_ENV
    default_base = DEFAULT_BASE
    auth_scheme = "Key"
    urls: ClassVar[Mapping[str, str]] = {"base": "base_url", "storage": "storage_url"}

    def __init__(
        self,
        project_root: Path,
        settings: Mapping[str, Any],
        api: HttpApi | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.storage = base_url(STORAGE_URL_ENV, settings.get("storage_url"), DEFAULT_STORAGE)
        super().__init__(project_root, settings, api, sleep)

    def endpoint(self, call: Call) -> str:
        """The model id with its sub-path: ``.../text-to-image`` or ``.../edit``."""
        return f"{call.request.provider_model}/{'edit' if call.reference_urls else 'text-to-image'}"

    def request_body(self, call: Call) -> dict[str, Any]:
        req = call.request
        width, height = (int(n) for n in req.size.split("x"))
        model = get_model(req.model)
        body: dict[str, Any] = {
            "prompt": prompt_with_negative(req.prompt, req.negative_prompt),
            "image_size": {"width": width, "height": height},
            "num_images": 1,  # separate generations; an identity set is max_images of one generation
        }
        if "sequential" in model.takes:  # multi-image generation: the 5.0 Pro / Flash pages have none
            body["max_images"] = req.max_images if model.sequential else 1
        if call.reference_urls:
            body["image_urls"] = list(call.reference_urls)
        return body

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        url = f"{self.base}/{self.endpoint(call)}"
        submitted = checked(
            self.api.call_json(
                "POST", url, json_body=self.request_body(call), headers=SUBMIT_HEADERS, log=call.log, what="create"
            ),
            FAL_SUBMITTED,
            "fal's queue answer",
        )
        job = Job(
            "fal",
            submitted["request_id"],
            {k: submitted[f"{k}_url"] for k in ("status", "response", "cancel") if submitted.get(f"{k}_url")},
        )
        on_job(job)  # on disk before the first status call
        return self._wait(call, job, fresh=True)

    def resume(self, call: Call, job: Job) -> Response:
        return self._wait(call, job, fresh=False)

    def _wait(self, call: Call, job: Job, *, fresh: bool) -> Response:
        status_url = job.urls["status"]
        started = time.monotonic()
        delays = self.clock.delays()
        self._sleep(next(delays))  # a job just submitted is not done yet
        while True:
            state = checked(
                self.api.call_json("GET", status_url, log=call.log, what="poll"), FAL_STATUS, "fal's status"
            )
            if state.get("status") == "COMPLETED":
                break
            if time.monotonic() - started > POLL_LIMIT_SECONDS:
                self._cancel(call, job)
                raise ProviderError(f"fal request {job.id} did not finish in {POLL_LIMIT_SECONDS // 60} min; canceled")
            self._sleep(next(delays))
        if fresh:
            self.clock.finished(time.monotonic() - started)
        try:
            result = self.api.call_json("GET", job.urls["response"], log=call.log, what="result")
        except ContentRejected:
            raise
        except ProviderError as exc:
            raise ProviderError(f"fal request {job.id} failed: {exc}") from exc
        return self.parse(call, result)

    def _cancel(self, call: Call, job: Job) -> None:
        if "cancel" in job.urls:
            with contextlib.suppress(ProviderError):  # best effort
                self.api.call("PUT", job.urls["cancel"], log=call.log, what="cancel")

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        raw = checked(raw, FAL_RESULT, "fal's result")
        images = raw["images"]
        outputs = checked_outputs(
            [Output(index=i, url=image["url"]) for i, image in enumerate(images)],
            call.request.max_images,
            "fal's result",
        )
        usage: dict[str, Any] = {"generated_images": len(outputs)}
        if "seed" in raw:
            usage["seed"] = raw["seed"]
        return Response(raw=raw, outputs=outputs, usage=usage)

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        mime = image_mime(data)
        initiated = checked(
            self.api.call_json(
                "POST",
                f"{self.storage}/storage/upload/initiate?storage_type=fal-cdn-v3",
                json_body={"content_type": mime, "file_name": Path(reference.path).name},
                headers=PRIVATE_HEADERS,
                log=call.log,
                what="upload",
            ),
            FAL_UPLOAD,
            "fal's upload answer",
        )
        # The upload URL is pre-signed: no key goes with the bytes.
        self.api.call(
            "PUT",
            initiated["upload_url"],
            content=data,
            headers={"Content-Type": mime},
            auth=False,
            log=call.log,
            what="upload",
        )
        return Upload(
            url=initiated["file_url"],
            raw={"initiate": initiated, "stored_bytes": len(data)},
            expires=time.time() + MEDIA_LIFETIME_SECONDS,  # the upload cache stops reusing it in time
        )
