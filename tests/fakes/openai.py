"""A loopback stand-in for OpenAI's Images API (gpt-image-2), following its documented shapes.

``POST /v1/images/generations`` takes JSON; ``POST /v1/images/edits`` takes multipart/form-data
with one ``image[]`` part per input image (at most 16, each png/webp/jpeg under 50 MB). Both
answer ``{"created", "data": [{"b64_json"}], "usage", "size", "quality", "output_format"}``.
Like the real API it refuses a parameter it does not know (``unknown_parameter``), a bad size
(multiples of 16, edges 1024-3840, aspect within 3:1) and, for a prompt holding ``FORBIDDEN``,
answers ``moderation_blocked`` from its safety system. Every request is recorded.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from fakes.loopback import LoopbackJSON
from fakes.servers import _multipart, render_image

__all__ = ["KEY", "FakeOpenAI", "OpenAIRequest"]

KEY = "sk-fake-openai-key"
MODELS = frozenset({"gpt-image-2", "gpt-image-2-2026-04-21"})
FIELDS = frozenset({"model", "prompt", "size", "quality", "output_format", "n", "background", "moderation"})
_EDIT_FIELDS = FIELDS | {"input_fidelity", "image[]", "mask"}
MAX_IMAGES = 16
MAX_IMAGE_BYTES = 50 * 1024 * 1024


@dataclass(frozen=True)
class OpenAIRequest:
    """One request as received: path, headers, JSON fields (or multipart fields) and image parts."""

    path: str
    headers: dict[str, str]
    fields: dict[str, Any]
    images: tuple[tuple[str | None, str | None, bytes], ...] = ()  # (file name, content type, bytes)


class FakeOpenAI(LoopbackJSON):
    """The stand-in, as a context manager; ``base_url`` is what $IMGBUILD_OPENAI_BASE_URL takes."""

    prefix = "/v1"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[OpenAIRequest] = []
        self.billed = 0  # images generated (the API bills each one)
        self.out_of_quota = False  # answer every call as an account with no quota left does
        self.quota_refusals = 0
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        if headers.get("authorization") != f"Bearer {KEY}":
            return 401, _error("Incorrect API key provided.", "invalid_request_error", None, "invalid_api_key")
        if self.out_of_quota:  # a 429 that no wait cures, as the real API answers it
            with self._lock:
                self.quota_refusals += 1
            message = "You exceeded your current quota, please check your plan and billing details."
            return 429, _error(message, "insufficient_quota", None, "insufficient_quota")
        if path == "/v1/images/generations":
            try:
                fields = json.loads(body)
            except ValueError:
                return 400, _error("We could not parse the JSON body of your request.", "invalid_request_error")
            request = OpenAIRequest(path, headers, fields if isinstance(fields, dict) else {})
            allowed = FIELDS
        elif path == "/v1/images/edits":
            try:
                parts = _multipart(headers.get("content-type", ""), body)
            except ValueError:
                return 400, _error("The request must be multipart/form-data.", "invalid_request_error")
            fields = {name: data.decode() for name, filename, _, data in parts if filename is None}
            images = tuple((filename, kind, data) for name, filename, kind, data in parts if name == "image[]")
            request = OpenAIRequest(path, headers, fields, images)
            allowed = _EDIT_FIELDS
        else:
            return 404, _error(f"Invalid URL (POST {path})", "invalid_request_error")
        with self._lock:
            self.requests.append(request)
        return self._generate(request, allowed)

    def _generate(self, request: OpenAIRequest, allowed: frozenset[str]) -> tuple[int, dict[str, Any]]:
        fields = request.fields
        for name in fields:
            if name not in allowed:
                return 400, _error(f"Unknown parameter: '{name}'.", "invalid_request_error", name, "unknown_parameter")
        if fields.get("model") not in MODELS:
            return 400, _error(f"Invalid value for 'model': {fields.get('model')!r}.", "invalid_request_error", "model")
        prompt = fields.get("prompt")
        if not isinstance(prompt, str) or not prompt:
            return 400, _error("Missing required parameter: 'prompt'.", "invalid_request_error", "prompt")
        size = _size(str(fields.get("size", "auto")))
        if size is None:
            return 400, _error(f"Invalid size {fields.get('size')!r}.", "invalid_request_error", "size")
        quality = fields.get("quality", "auto")
        if quality not in ("low", "medium", "high", "auto"):
            return 400, _error(f"Invalid value for 'quality': {quality!r}.", "invalid_request_error", "quality")
        fmt = fields.get("output_format", "png")
        if fmt not in ("png", "jpeg", "webp"):
            return 400, _error(f"Invalid value for 'output_format': {fmt!r}.", "invalid_request_error", "output_format")
        if request.path.endswith("/edits"):
            if not request.images or len(request.images) > MAX_IMAGES:
                return 400, _error(f"Provide 1 to {MAX_IMAGES} images.", "invalid_request_error", "image")
            for _, kind, data in request.images:
                if kind not in ("image/png", "image/jpeg", "image/webp") or len(data) >= MAX_IMAGE_BYTES:
                    return 400, _error("Invalid image file or mode.", "invalid_request_error", "image")
        if "FORBIDDEN" in prompt:
            message = (
                "Your request was rejected by the safety system. Your request may contain content that is not allowed."
            )
            return 400, _error(message, "image_generation_user_error", None, "moderation_blocked")
        label = f"openai:{len(self.requests)}"
        image = render_image(label, *size, "png" if fmt == "png" else "jpeg")
        with self._lock:
            self.billed += 1
        return 200, {
            "created": int(time.time()),
            "data": [{"b64_json": base64.b64encode(image).decode()}],
            "usage": {"input_tokens": 50, "output_tokens": 1056, "total_tokens": 1106},
            "size": f"{size[0]}x{size[1]}",
            "quality": quality,
            "output_format": fmt,
        }


def _size(text: str) -> tuple[int, int] | None:
    if text == "auto":
        return 1024, 1024
    match = re.fullmatch(r"(\d+)x(\d+)", text)
    if not match:
        return None
    width, height = int(match[1]), int(match[2])
    if width % 16 or height % 16 or not (min(width, height) >= 1024 and max(width, height) <= 3840):
        return None
    if max(width, height) / min(width, height) > 3 or width * height > 8_294_400:
        return None
    return width, height


def _error(message: str, kind: str, param: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
