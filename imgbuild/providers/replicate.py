"""Replicate: predictions created, recorded, then polled — never created twice.

A batch build creates each prediction *without* ``Prefer: wait``: the id comes back at once and
is written to the asset's records before the first poll, so a build killed while waiting resumes
the same prediction (with ``Prefer: wait`` a kill during the wait loses the id, and the rerun
pays again). Reference images go through the Files API. Facts: reference/providers.md §2.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from imgbuild.models import get_model
from imgbuild.providers import register
from imgbuild.providers.answers import REPLICATE_FILE, REPLICATE_PREDICTION, BadAnswer, checked, checked_outputs
from imgbuild.providers.base import Call, ContentRejected, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import (
    PollingProvider,
    image_mime,
    prompt_with_negative,
)
from imgbuild.requests import Reference

__all__ = ["ReplicateProvider"]

KEY_ENV = "REPLICATE_API_TOKEN"
BASE_URL_ENV = "IMGBUILD_REPLICATE_BASE_URL"
DEFAULT_BASE = "https://api.replicate.com/v1"
_TERMINAL = {"succeeded", "failed", "canceled", "aborted"}
POLL_LIMIT_SECONDS = 40 * 60  # Replicate stops a prediction after 30 min of running


@register("replicate")
class ReplicateProvider(PollingProvider):
    """Seedream on Replicate through its official-model predictions API."""

    name = "replicate"
    key_env = KEY_ENV
    base_url_env = BASE_URL_ENV
    default_base = DEFAULT_BASE
    auth_scheme = "Bearer"

    def request_body(self, call: Call) -> dict[str, Any]:
        req = call.request
        model = get_model(req.model)
        inputs: dict[str, Any] = {
            "prompt": prompt_with_negative(req.prompt, req.negative_prompt),
            "size": model.tiers[req.quality].size_tier,
            "aspect_ratio": req.aspect_ratio,
        }
        if "sequential" in model.takes:  # bytedance/seedream-5-pro has neither field
            inputs["sequential_image_generation"] = "auto" if model.sequential else "disabled"
            inputs["max_images"] = req.max_images
        if call.reference_urls:
            inputs["image_input"] = list(call.reference_urls)
        if "output_format" in model.takes:
            inputs["output_format"] = req.output_format
        return {"input": inputs}

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        url = f"{self.base}/models/{call.request.provider_model}/predictions"
        created = checked(
            self.api.call_json("POST", url, json_body=self.request_body(call), log=call.log, what="create"),
            REPLICATE_PREDICTION,
            "replicate's prediction",
        )
        job = Job("replicate", created["id"], {k: v for k, v in (created.get("urls") or {}).items() if k in _URL_KEYS})
        on_job(job)  # on disk before the first poll
        return self._wait(call, job, created)

    def resume(self, call: Call, job: Job) -> Response:
        return self._wait(call, job, None)

    def _wait(self, call: Call, job: Job, prediction: dict[str, Any] | None) -> Response:
        get_url = job.urls.get("get") or f"{self.base}/predictions/{job.id}"
        started = time.monotonic()
        delays = self.clock.delays()
        fresh = prediction is not None  # created by this build: its duration teaches the clock
        while prediction is None or prediction.get("status") not in _TERMINAL:
            if time.monotonic() - started > POLL_LIMIT_SECONDS:
                self.cancel(call, job)
                raise ProviderError(f"prediction {job.id} did not finish in {POLL_LIMIT_SECONDS // 60} min; canceled")
            if prediction is not None:
                self._sleep(next(delays))
            prediction = checked(
                self.api.call_json("GET", get_url, log=call.log, what="poll"), REPLICATE_PREDICTION, "replicate's poll"
            )
        if fresh:
            self.clock.finished(time.monotonic() - started)
        return self.parse(call, prediction)

    def cancel(self, call: Call, job: Job) -> None:
        url = job.urls.get("cancel") or f"{self.base}/predictions/{job.id}/cancel"
        with contextlib.suppress(ProviderError):  # best effort: the prediction times out on its own
            self.api.call("POST", url, log=call.log, what="cancel")

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        raw = checked(raw, REPLICATE_PREDICTION, "replicate's prediction")
        status = raw.get("status")
        if status != "succeeded":
            error = str(raw.get("error") or f"prediction {status}")
            if "sensitive" in error.lower() or "nsfw" in error.lower() or "(E005)" in error:
                raise ContentRejected(f"replicate refused the content: {error}")
            raise ProviderError(f"replicate prediction {raw.get('id')} {status}: {error}")
        output = raw.get("output")
        urls = [output] if isinstance(output, str) else list(output or [])
        metrics = raw.get("metrics") or {}
        usage = {
            "generated_images": len(urls),
            **{k: metrics[k] for k in ("predict_time", "image_count") if k in metrics},
        }
        outputs = [Output(index=i, url=u) for i, u in enumerate(urls)]
        return Response(
            raw=raw, outputs=checked_outputs(outputs, call.request.max_images, "replicate's prediction"), usage=usage
        )

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        mime = image_mime(data)
        name = Path(reference.path).name
        answer = checked(
            self.api.call_json(
                "POST",
                f"{self.base}/files",
                files={"content": (name, data, mime)},
                data={"type": mime},
                log=call.log,
                what="upload",
            ),
            REPLICATE_FILE,
            "replicate's file upload answer",
        )
        expires = answer.get("expires_at")
        return Upload(
            url=answer["urls"]["get"],
            raw=answer,
            expires=_timestamp(expires) if expires else None,
        )


_URL_KEYS = ("get", "cancel")


def _timestamp(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise BadAnswer(f"replicate's file upload answer: expires_at {text!r} is not a date-time") from exc
