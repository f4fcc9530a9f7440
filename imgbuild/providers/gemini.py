"""Google's Gemini image models (Nano Banana 2 / Pro) through the native Gemini API.

``POST {base}/models/{model}:generateContent`` with the prompt and every reference image as parts
of one user turn, ``responseModalities: ["IMAGE"]`` and an ``imageConfig`` (aspect ratio, size
tier). The answer is synchronous and carries the image inline: no job, nothing to download.
A blocked prompt or an image withheld for safety is a content refusal. Facts: docs/models.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from imgbuild.models import get_model
from imgbuild.providers import register
from imgbuild.providers.answers import checked_outputs, decode_base64
from imgbuild.providers.base import Call, ContentRejected, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import (
    SynchronousProvider,
    data_url_parts,
    inline_upload,
    prompt_with_negative,
)
from imgbuild.requests import Reference

__all__ = ["GeminiProvider"]

KEY_ENV = "GEMINI_API_KEY"  # the google-genai SDK's variable
BASE_URL_ENV = "IMGBUILD_GEMINI_BASE_URL"
DEFAULT_BASE = "https://generativelanguage.googleapis.com/v1beta"
# finishReason / blockReason values that mean the safety system withheld the image
_REFUSALS = frozenset({"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST", "SPII"})


@register("gemini")
class GeminiProvider(SynchronousProvider):
    """Gemini image generation and editing in one synchronous call."""

    name = "gemini"
    key_env = KEY_ENV
    base_url_env = BASE_URL_ENV
    default_base = DEFAULT_BASE
    auth_scheme = ""  # the key alone, in its own header
    auth_header = "x-goog-api-key"

    def request_body(self, call: Call) -> dict[str, Any]:
        req = call.request
        parts: list[dict[str, Any]] = [{"text": prompt_with_negative(req.prompt, req.negative_prompt)}]
        for url in call.reference_urls:
            mime, encoded = data_url_parts(url)
            parts.append({"inlineData": {"mimeType": mime, "data": encoded}})
        size_tier = get_model(req.model).tiers[req.quality].size_tier
        return {
            "contents": [{"role": "user", "parts": parts}],
            "generationConfig": {
                "responseModalities": ["IMAGE"],
                "imageConfig": {"aspectRatio": req.aspect_ratio, "imageSize": size_tier},
            },
        }

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        url = f"{self.base}/models/{call.request.provider_model}:generateContent"
        raw = self.api.call_json("POST", url, json_body=self.request_body(call), log=call.log, what="create")
        return self.parse(call, raw)

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        blocked = (raw.get("promptFeedback") or {}).get("blockReason")
        if blocked:
            raise ContentRejected(f"gemini refused the prompt: blockReason {blocked}")
        outputs: list[Output] = []
        reasons = []
        for candidate in raw.get("candidates") or []:
            reasons.append(str(candidate.get("finishReason", "")))
            for part in (candidate.get("content") or {}).get("parts") or []:
                inline = part.get("inlineData") or part.get("inline_data")
                if isinstance(inline, dict) and isinstance(inline.get("data"), str):
                    data = decode_base64(inline["data"], "gemini's inlineData")
                    outputs.append(Output(index=len(outputs), data=data))
        if not outputs:
            if any(reason in _REFUSALS for reason in reasons):
                raise ContentRejected(f"gemini withheld the image: finishReason {', '.join(reasons)}")
            raise ProviderError(f"gemini answered without an image (finishReason {', '.join(reasons) or 'none'})")
        usage = {"generated_images": len(outputs), **dict(raw.get("usageMetadata") or {})}
        return Response(raw=raw, outputs=checked_outputs(outputs, 1, "gemini's answer"), usage=usage)

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        # References go inline as parts of the call: nothing to send ahead.
        return inline_upload(data)
