"""OpenAI Images: ``gpt-image-2`` through ``/images/generations`` and ``/images/edits``.

Both answer synchronously with the image inline (``b64_json``): there is no job to resume and
nothing to download. An edit is a multipart upload: every reference image is an ``image[]``
part of the call itself, so an "upload" makes no network call. Facts: docs/models.md.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

from imgbuild.providers import register
from imgbuild.providers.answers import checked_outputs, decode_base64
from imgbuild.providers.base import Call, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import (
    SynchronousProvider,
    data_url_parts,
    inline_upload,
    prompt_with_negative,
)
from imgbuild.requests import Reference

__all__ = ["OpenAIProvider"]

KEY_ENV = "OPENAI_API_KEY"  # the OpenAI SDK's own variable
BASE_URL_ENV = "IMGBUILD_OPENAI_BASE_URL"
DEFAULT_BASE = "https://api.openai.com/v1"
_EXTENSIONS = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}


@register("openai")
class OpenAIProvider(SynchronousProvider):
    """gpt-image-2: a text call is JSON, an edit is multipart with one ``image[]`` part per reference."""

    name = "openai"
    key_env = KEY_ENV
    base_url_env = BASE_URL_ENV
    default_base = DEFAULT_BASE
    auth_scheme = "Bearer"

    def request_body(self, call: Call) -> dict[str, Any]:
        """The fields of the call; an edit's ``image[]`` parts are the reference data URLs (the
        record shows their size and hash)."""
        req = call.request
        body: dict[str, Any] = {
            "model": req.provider_model,
            "prompt": prompt_with_negative(req.prompt, req.negative_prompt),
            "size": req.size,
            "quality": req.quality_settings.get("quality", "auto"),
            "output_format": req.output_format,
        }
        if call.reference_urls:
            body["image[]"] = list(call.reference_urls)
        return body

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        body = self.request_body(call)
        images = body.pop("image[]", None)
        if images is None:
            raw = self.api.call_json(
                "POST", f"{self.base}/images/generations", json_body=body, log=call.log, what="create"
            )
        else:
            parts = [("image[]", _file_part(i, url)) for i, url in enumerate(images, start=1)]
            raw = self.api.call_json(
                "POST",
                f"{self.base}/images/edits",
                files=parts,
                data={k: str(v) for k, v in body.items()},
                log=call.log,
                what="create",
            )
        return self.parse(call, raw)

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        items = raw.get("data")
        if not isinstance(items, list) or not items:
            raise ProviderError("openai answered without images (no `data`)")
        outputs = []
        for i, item in enumerate(items):
            encoded = item.get("b64_json") if isinstance(item, dict) else None
            if not isinstance(encoded, str):
                outputs.append(Output(index=i, error="no b64_json in the answer"))
                continue
            outputs.append(Output(index=i, data=decode_base64(encoded, f"openai's data[{i}].b64_json")))
        usage = {"generated_images": sum(1 for o in outputs if o.data is not None), **dict(raw.get("usage") or {})}
        # the saved answer keeps every image inline: response.json is the record of the pixels too
        return Response(raw=raw, outputs=checked_outputs(outputs, 1, "openai's answer"), usage=usage)

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        # The bytes go as a part of the edit itself: nothing to send ahead.
        return inline_upload(data)


def _file_part(index: int, url: str) -> tuple[str, bytes, str]:
    """An ``image[]`` part from a reference's data URL: (file name, bytes, MIME type)."""
    mime, encoded = data_url_parts(url)
    return f"reference-{index}.{_EXTENSIONS.get(mime, 'png')}", base64.b64decode(encoded), mime
