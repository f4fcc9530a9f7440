"""Black Forest Labs: FLUX.2 through the BFL API — submit, record the job, poll, download.

``POST {base}/{model}`` (``/v1/flux-2-pro``) answers at once with an ``id`` and a ``polling_url``;
both are recorded before the first poll, so a killed build resumes the job instead of paying
again. ``GET polling_url`` reports ``Pending`` ... ``Ready`` with ``result.sample``, a URL valid for
about ten minutes: the image is downloaded at once. Reference images go inline as base64
(``input_image``, ``input_image_2`` ... ``input_image_8``). The key travels as ``x-key``.
Facts: docs/models.md.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import Any

import httpx

from imgbuild.providers import register
from imgbuild.providers.base import Call, ContentRejected, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import (
    PollingProvider,
    data_url_parts,
    inline_upload,
    prompt_with_negative,
    same_site,
)
from imgbuild.requests import Reference

__all__ = ["BflProvider"]

KEY_ENV = "BFL_API_KEY"  # BFL's documented variable
BASE_URL_ENV = "IMGBUILD_BFL_BASE_URL"
DEFAULT_BASE = "https://api.bfl.ai/v1"
POLL_LIMIT_SECONDS = 20 * 60
_MODERATED = frozenset({"Request Moderated", "Content Moderated"})
_FAILED = frozenset({"Error", "Failed", "Task not found"})


def seed_of(request_hash: str, candidate: int) -> int:
    """A seed from the request and the candidate: the same request remakes the same candidates,
    and each candidate of a request differs. Not part of the request hash."""
    return int(hashlib.sha256(f"{request_hash}:{candidate}".encode()).hexdigest()[:8], 16) & 0x7FFFFFFF


@register("bfl")
class BflProvider(PollingProvider):
    """FLUX.2 text-to-image and multi-reference edits on BFL's asynchronous API."""

    name = "bfl"
    key_env = KEY_ENV
    base_url_env = BASE_URL_ENV
    default_base = DEFAULT_BASE
    auth_scheme = ""  # the key alone, in its own header
    auth_header = "x-key"

    def request_body(self, call: Call) -> dict[str, Any]:
        """The body as recorded: each input image is its data URL (the record keeps its size and
        hash); the wire carries the base64 after the comma, as BFL takes it."""
        req = call.request
        width, height = (int(n) for n in req.size.split("x"))
        body: dict[str, Any] = {
            "prompt": prompt_with_negative(req.prompt, req.negative_prompt),
            "width": width,
            "height": height,
            "seed": seed_of(req.request_hash, call.candidate),
            "output_format": req.output_format,
        }
        for i, url in enumerate(call.reference_urls, start=1):
            body["input_image" if i == 1 else f"input_image_{i}"] = url
        return body

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        body = {
            k: data_url_parts(v)[1] if k.startswith("input_image") else v for k, v in self.request_body(call).items()
        }
        url = f"{self.base}/{call.request.provider_model}"
        submitted = self.api.call_json("POST", url, json_body=body, log=call.log, what="create")
        if not submitted.get("id") or not isinstance(submitted.get("polling_url"), str):
            raise ProviderError("bfl answered without an id and a polling_url")
        job = Job("bfl", str(submitted["id"]), {"polling": str(submitted["polling_url"])})
        on_job(job)  # on disk before the first poll
        return self._wait(call, job, fresh=True)

    def resume(self, call: Call, job: Job) -> Response:
        return self._wait(call, job, fresh=False)

    def _wait(self, call: Call, job: Job, *, fresh: bool) -> Response:
        started = time.monotonic()
        delays = self.clock.delays()
        while True:
            self._sleep(next(delays))
            state = self.api.call_json("GET", self.polling_url(job), log=call.log, what="poll")
            status = state.get("status")
            if status == "Ready" or status in _MODERATED or status in _FAILED:
                break
            if time.monotonic() - started > POLL_LIMIT_SECONDS:
                raise ProviderError(f"bfl job {job.id} did not finish in {POLL_LIMIT_SECONDS // 60} min")
        if fresh and status == "Ready":
            self.clock.finished(time.monotonic() - started)
        return self.parse(call, state)

    def polling_url(self, job: Job) -> str:
        """Where to poll `job` with the key: BFL's ``polling_url`` when it is on the API's own
        site (a global request is answered from a regional host, ``api.us1.bfl.ai``); anywhere
        else, the API's own ``get_result`` — the key goes to no host the answer names."""
        if same_site(job.urls["polling"], [self.base]):
            return job.urls["polling"]
        return str(httpx.URL(f"{self.base}/get_result", params={"id": job.id}))

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        status = raw.get("status")
        if status in _MODERATED:
            raise ContentRejected(f"bfl refused the content: {status}")
        if status != "Ready":
            raise ProviderError(f"bfl job {raw.get('id')} ended {status}: {raw.get('details') or raw.get('error')}")
        sample = (raw.get("result") or {}).get("sample")
        if not isinstance(sample, str):
            raise ProviderError(f"bfl job {raw.get('id')} is Ready without result.sample")
        usage: dict[str, Any] = {"generated_images": 1}
        if "seed" in raw["result"]:
            usage["seed"] = raw["result"]["seed"]
        return Response(raw=raw, outputs=(Output(index=0, url=sample),), usage=usage)

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        # Input images go inline with the request: nothing to send ahead.
        return inline_upload(data)
