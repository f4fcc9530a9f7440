"""A loopback stand-in for the Black Forest Labs API (FLUX.2), following its documented shapes.

``POST /v1/flux-2-pro`` (or ``flux-2-max``) with ``x-key`` answers ``{"id", "polling_url"}`` at
once; ``GET /v1/get_result?id=`` answers ``Pending`` until the job is done, then ``Ready`` with
``result.sample`` (a download URL, no key) and ``result.seed``. Unknown fields are a 422
``extra_forbidden``; width and height must be multiples of 16 in 256-2048 and at most 4 MP; at
most 8 input images (``input_image``, ``input_image_2`` ...), each plain base64. A prompt with
``FORBIDDEN`` ends ``Request Moderated``. While ``hold`` is set, jobs stay ``Pending`` (a build can
be killed with its jobs in flight); jobs live in the stand-in, whoever disconnects.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fakes.loopback import LoopbackJSON
from fakes.servers import render_image

__all__ = ["KEY", "FakeBfl"]

KEY = "bfl-fake-key"
MODELS = frozenset({"flux-2-pro", "flux-2-max"})
IMAGE_FIELDS = ("input_image", *(f"input_image_{i}" for i in range(2, 9)))
FIELDS = frozenset({"prompt", "width", "height", "seed", "output_format", "safety_tolerance", "prompt_upsampling"})


@dataclass
class _Job:
    id: str
    model: str
    body: dict[str, Any]
    polls: int = 0
    image: bytes = field(default=b"", repr=False)


class FakeBfl(LoopbackJSON):
    """The stand-in; ``base_url`` is what $IMGBUILD_BFL_BASE_URL takes."""

    prefix = "/v1"

    def __init__(self) -> None:
        super().__init__()
        self.creates: list[_Job] = []
        self.jobs: dict[str, _Job] = {}
        self.hold = False
        self.downloads = 0
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        parts = urlsplit(path)
        if parts.path.startswith("/files/"):
            job = self.jobs.get(parts.path.removeprefix("/files/").split(".")[0])
            if job is None or "x-key" in headers:  # a delivery URL: signed, never sent the key
                return 403, {"detail": "Forbidden"}
            with self._lock:
                self.downloads += 1
            return 200, job.image
        if headers.get("x-key") != KEY:
            return 403, {"detail": "Not authenticated - Invalid Authentication"}
        if method == "GET" and parts.path == "/v1/get_result":
            return self._poll(parse_qs(parts.query).get("id", [""])[0])
        model = parts.path.removeprefix("/v1/")
        if method != "POST" or model not in MODELS:
            return 404, {"detail": "Not Found"}
        return self._create(model, body)

    def _create(self, model: str, raw: bytes) -> tuple[int, Any]:
        try:
            body = json.loads(raw)
        except ValueError:
            return 422, {"detail": [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]}
        problems = []
        for name in body:
            if name not in FIELDS and name not in IMAGE_FIELDS:
                problems.append(
                    {"loc": ["body", name], "msg": "Extra inputs are not permitted", "type": "extra_forbidden"}
                )
        for name in ("width", "height"):
            value = body.get(name, 1024)
            if not isinstance(value, int) or value % 16 or not 256 <= value <= 2048:
                problems.append(
                    {"loc": ["body", name], "msg": "must be a multiple of 16 in 256-2048", "type": "value_error"}
                )
        if body.get("width", 1024) * body.get("height", 1024) > 4 * 1024 * 1024:
            problems.append({"loc": ["body", "width"], "msg": "at most 4 megapixels", "type": "value_error"})
        if body.get("output_format", "jpeg") not in ("jpeg", "png"):
            problems.append({"loc": ["body", "output_format"], "msg": "jpeg or png", "type": "enum"})
        for name in IMAGE_FIELDS:
            if name in body:
                try:
                    base64.b64decode(body[name], validate=True)
                except (binascii.Error, ValueError, TypeError):
                    problems.append({"loc": ["body", name], "msg": "not base64", "type": "value_error"})
        if problems:
            return 422, {"detail": problems}
        job = _Job(uuid.uuid4().hex, model, body)
        with self._lock:
            self.creates.append(job)
            self.jobs[job.id] = job
        return 200, {"id": job.id, "polling_url": f"{self.base_url}/get_result?id={job.id}"}

    def _poll(self, job_id: str) -> tuple[int, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            return 200, {"id": job_id, "status": "Task not found"}
        job.polls += 1
        if self.hold:
            return 200, {"id": job.id, "status": "Pending", "progress": 0.5}
        if "FORBIDDEN" in job.body["prompt"]:
            return 200, {"id": job.id, "status": "Request Moderated", "details": {"Moderation Reasons": ["Content"]}}
        fmt = job.body.get("output_format", "jpeg")
        if not job.image:
            job.image = render_image(f"bfl:{job.id}", job.body.get("width", 1024), job.body.get("height", 1024), fmt)
        sample = f"{self.url}/files/{job.id}.{'png' if fmt == 'png' else 'jpg'}"
        return 200, {"id": job.id, "status": "Ready", "result": {"sample": sample, "seed": job.body.get("seed")}}
