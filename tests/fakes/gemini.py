"""A loopback stand-in for the Gemini API's image generation, following its documented shapes.

``POST /v1beta/models/{model}:generateContent`` with ``x-goog-api-key``; the body's one user turn
holds a text part and any ``inlineData`` image parts; ``generationConfig`` must ask for the
``IMAGE`` modality and may give ``imageConfig.aspectRatio`` / ``imageSize``. The answer holds one
candidate whose parts carry the image inline (PNG). A prompt with ``BLOCKED`` is refused in
``promptFeedback``; one with ``WITHHELD`` finishes with ``IMAGE_SAFETY`` and no image. An unknown
field anywhere in ``generationConfig`` is a 400 ``INVALID_ARGUMENT``, as the real API answers.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass
from typing import Any

from fakes.loopback import LoopbackJSON
from fakes.servers import render_image

__all__ = ["KEY", "FakeGemini", "GeminiRequest"]

KEY = "AIza-fake-gemini-key"
MODELS = frozenset({"gemini-3.1-flash-image", "gemini-3-pro-image-preview"})
MAX_REFERENCES = 14
ASPECTS = frozenset({"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"})
# the long edge per size tier (the short one follows the aspect)
EDGES = {"1K": 1024, "2K": 2048, "4K": 4096}


@dataclass(frozen=True)
class GeminiRequest:
    model: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeGemini(LoopbackJSON):
    """The stand-in; ``base_url`` is what $IMGBUILD_GEMINI_BASE_URL takes."""

    prefix = "/v1beta"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[GeminiRequest] = []
        self._lock = threading.Lock()

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        match = re.fullmatch(r"/v1beta/models/([^/:]+):generateContent", path)
        if method != "POST" or not match:
            return 404, _error(404, "NOT_FOUND", f"{path} not found")
        if headers.get("x-goog-api-key") != KEY:
            return 400, _error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.")
        model = match[1]
        if model not in MODELS:
            return 404, _error(404, "NOT_FOUND", f"models/{model} is not found for API version v1beta")
        try:
            request = json.loads(body)
        except ValueError:
            return 400, _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        with self._lock:
            self.requests.append(GeminiRequest(model, headers, request))
        problem = _problem(request)
        if problem:
            return 400, _error(400, "INVALID_ARGUMENT", problem)
        prompt = request["contents"][0]["parts"][0]["text"]
        if "BLOCKED" in prompt:
            return 200, {"promptFeedback": {"blockReason": "PROHIBITED_CONTENT"}, "usageMetadata": {}}
        if "WITHHELD" in prompt:
            return 200, {"candidates": [{"content": {"parts": []}, "finishReason": "IMAGE_SAFETY"}]}
        config = request["generationConfig"].get("imageConfig") or {}
        width, height = _size(config.get("aspectRatio", "1:1"), config.get("imageSize", "1K"))
        image = render_image(f"gemini:{len(self.requests)}", width, height, "png")
        return 200, {
            "candidates": [
                {
                    "content": {
                        "role": "model",
                        "parts": [{"inlineData": {"mimeType": "image/png", "data": base64.b64encode(image).decode()}}],
                    },
                    "finishReason": "STOP",
                }
            ],
            "usageMetadata": {"promptTokenCount": 20, "candidatesTokenCount": 1290, "totalTokenCount": 1310},
            "modelVersion": model,
        }


def _problem(request: Any) -> str | None:
    if not isinstance(request, dict) or set(request) - {"contents", "generationConfig"}:
        return "Invalid JSON payload received. Unknown name at the top level."
    contents = request.get("contents")
    if not isinstance(contents, list) or len(contents) != 1 or not isinstance(contents[0], dict):
        return "contents must hold one user turn"
    parts = contents[0].get("parts")
    if not isinstance(parts, list) or not parts or not isinstance(parts[0].get("text"), str):
        return "the first part must be the text prompt"
    images = parts[1:]
    if len(images) > MAX_REFERENCES:
        return f"at most {MAX_REFERENCES} images"
    for part in images:
        inline = part.get("inlineData") if isinstance(part, dict) else None
        if not isinstance(inline, dict) or inline.get("mimeType") not in ("image/png", "image/jpeg", "image/webp"):
            return "image parts need inlineData with an image mimeType"
        try:
            base64.b64decode(inline.get("data", ""), validate=True)
        except ValueError:
            return "inlineData.data is not base64"
    config = request.get("generationConfig")
    if not isinstance(config, dict) or set(config) - {"responseModalities", "imageConfig"}:
        return 'Invalid JSON payload received. Unknown name in "generation_config".'
    if "IMAGE" not in (config.get("responseModalities") or []):
        return "responseModalities must include IMAGE for an image model"
    image_config = config.get("imageConfig") or {}
    if set(image_config) - {"aspectRatio", "imageSize"}:
        return 'Invalid JSON payload received. Unknown name in "image_config".'
    if image_config.get("aspectRatio", "1:1") not in ASPECTS or image_config.get("imageSize", "1K") not in EDGES:
        return "unsupported aspectRatio or imageSize"
    return None


def _size(aspect: str, tier: str) -> tuple[int, int]:
    w, h = (int(n) for n in aspect.split(":"))
    edge = EDGES[tier]
    return (edge, round(edge * h / w)) if w >= h else (round(edge * w / h), edge)


def _error(code: int, status: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status}}
