"""BytePlus ModelArk / Volcengine Ark: Seedream's native, synchronous image API.

``POST {base}/images/generations`` answers with every image of the call (or per-image errors) in
one response; there is no job to resume. Reference images go inline as data URLs, so an "upload"
makes no network call. Facts: ../shared/reference/providers.md §1; docs/providers.md.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from imgbuild.models import get_model
from imgbuild.providers import register
from imgbuild.providers.answers import ARK_IMAGES, checked, checked_outputs, decode_base64
from imgbuild.providers.base import Call, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import HostedProvider, HttpApi, base_url, data_url, prompt_with_negative
from imgbuild.requests import Reference

__all__ = ["REGIONS", "ArkProvider"]

KEY_ENV = "ARK_API_KEY"
BASE_URL_ENV = "IMGBUILD_ARK_BASE_URL"
REGIONS = {
    "ap-southeast": "https://ark.ap-southeast.bytepluses.com/api/v3",
    "eu-west": "https://ark.eu-west.bytepluses.com/api/v3",
    "cn-beijing": "https://ark.cn-beijing.volces.com/api/v3",  # Volcengine: model ids carry "doubao-"
}


@register("ark")
class ArkProvider(HostedProvider):
    """Synchronous Seedream calls through Ark."""

    name = "ark"
    key_env = KEY_ENV
    auth_scheme = "Bearer"

    def __init__(self, project_root: Path, settings: Mapping[str, Any], api: HttpApi | None = None) -> None:
        self.region = settings.get("region", "ap-southeast")
        self.base = base_url(BASE_URL_ENV, settings.get("base_url"), REGIONS[self.region])
        super().__init__(settings, api)

    def model_id(self, call: Call) -> str:
        model = call.request.provider_model
        return f"doubao-{model}" if self.region == "cn-beijing" else model

    def request_body(self, call: Call) -> dict[str, Any]:
        req = call.request
        model = get_model(req.model)
        body: dict[str, Any] = {
            "model": self.model_id(call),
            "prompt": prompt_with_negative(req.prompt, req.negative_prompt),
            "size": req.size,
            "response_format": "url",
            "watermark": False,  # Ark's default is a visible "AI generated" mark
        }
        if call.reference_urls:
            body["image"] = list(call.reference_urls)
        if model.sequential:
            body["sequential_image_generation"] = "auto"
            body["sequential_image_generation_options"] = {"max_images": req.max_images}
        else:
            body["sequential_image_generation"] = "disabled"
        if model.family == "seedream-5.0-lite":  # 4.x always answers JPEG and takes no output_format
            body["output_format"] = req.output_format
        mode = req.quality_settings.get("optimize_prompt", "standard")
        if mode != "standard":  # "fast" prompt optimisation exists on 4.0 only; standard is the default
            body["optimize_prompt_options"] = {"mode": mode}
        return body

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        raw = self.api.call_json(
            "POST", f"{self.base}/images/generations", json_body=self.request_body(call), log=call.log, what="create"
        )
        return self.parse(call, raw)

    def resume(self, call: Call, job: Job) -> Response:
        raise ProviderError("ark calls are synchronous: there is no job to resume")

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        raw = checked(raw, ARK_IMAGES, "ark's answer")
        error = raw.get("error")
        if isinstance(error, dict) and not raw.get("data"):
            raise ProviderError(f"ark: {error.get('code')} {error.get('message')}")
        outputs = []
        for i, item in enumerate(raw.get("data") or []):
            if "error" in item:
                err = item["error"]
                outputs.append(Output(index=i, error=f"{err.get('code')}: {err.get('message')}"))
            elif item.get("b64_json"):
                outputs.append(Output(index=i, data=decode_base64(item["b64_json"], f"ark's data[{i}].b64_json")))
            else:
                outputs.append(Output(index=i, url=item["url"]))
        return Response(
            raw=raw,
            outputs=checked_outputs(outputs, call.request.max_images, "ark's answer"),
            usage=dict(raw.get("usage") or {}),
        )

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        # Ark reads data URLs (≤ 10 MB, checked before the build): nothing to send ahead.
        return Upload(
            url=data_url(data),
            raw={"inline": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()},
        )
