"""BytePlus ModelArk / Volcengine Ark: Seedream's native, synchronous image API.

``POST {base}/images/generations`` answers with every image of the call (or per-image errors) in
one response; there is no job to resume. Reference images go inline as data URLs, so an "upload"
makes no network call. Facts: ../shared/reference/providers.md §1; docs/providers.md.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from imgbuild.models import get_model
from imgbuild.providers import register
from imgbuild.providers.answers import ARK_IMAGES, checked, checked_outputs, decode_base64
from imgbuild.providers.base import Call, ContentRejected, Job, Output, ProviderError, Response, Upload
from imgbuild.providers.http import HostedProvider, HttpApi, inline_upload, prompt_with_negative
from imgbuild.requests import Reference

__all__ = ["REGIONS", "ArkProvider"]

KEY_ENV = "ARK_API_KEY"
BASE_URL_ENV = "IMGBUILD_ARK_BASE_URL"
REGIONS = {
    "ap-southeast": "https://ark.ap-southeast.bytepluses.com/api/v3",
    "eu-west": "https://ark.eu-west.bytepluses.com/api/v3",
    "cn-beijing": "https://ark.cn-beijing.volces.com/api/v3",  # Volcengine: model ids carry "doubao-"
}


def _filtered(code: str) -> bool:
    """Whether an Ark error code is its content filter's (docs: *SensitiveContentDetected*, *RiskDetection)."""
    return "SensitiveContentDetected" in code or code.endswith("RiskDetection")


@register("ark")
class ArkProvider(HostedProvider):
    """Synchronous Seedream calls through Ark."""

    name = "ark"
    key_env = KEY_ENV
    base_url_env = BASE_URL_ENV
    auth_scheme = "Bearer"

    def __init__(self, project_root: Path, settings: Mapping[str, Any], api: HttpApi | None = None) -> None:
        self.region = settings.get("region", "ap-southeast")
        super().__init__(project_root, settings, api)

    def default_base_url(self) -> str:
        return REGIONS[self.region]

    def model_id(self, call: Call) -> str:
        """The region's id for the request's model (the record keeps the registry's BytePlus id)."""
        req = call.request
        return get_model(req.model).region_model("ark", self.region) or req.provider_model

    def request_body(self, call: Call) -> dict[str, Any]:
        """Only the fields the family takes (docs/models.md): Seedream 5.0 Pro, Flash and 5.5
        answer 400 to any sequential field, "disabled" included."""
        req = call.request
        model = get_model(req.model)
        takes = model.takes
        body: dict[str, Any] = {
            "model": self.model_id(call),
            "prompt": prompt_with_negative(req.prompt, req.negative_prompt),
            "size": req.size,
            "response_format": "url",
        }
        if "watermark" in takes:
            body["watermark"] = False  # Ark's default is a visible "AI generated" mark
        if call.reference_urls:
            body["image"] = list(call.reference_urls)
        if "sequential" in takes:
            body["sequential_image_generation"] = "auto" if model.sequential else "disabled"
            if model.sequential:
                body["sequential_image_generation_options"] = {"max_images": req.max_images}
        if "output_format" in takes:
            body["output_format"] = req.output_format
        mode = req.quality_settings.get("optimize_prompt", "standard")
        if "optimize_prompt" in takes and mode != "standard":  # "fast" exists on 4.0 only (its tiers say so)
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
        items = raw.get("data") or []
        codes = [str((item.get("error") or {}).get("code", "")) for item in items if isinstance(item, dict)]
        if items and len(codes) == len(items) and all(_filtered(code) for code in codes):
            # Every image of the call was filtered (not billed): a refusal, retried as one.
            first = items[0]["error"]
            raise ContentRejected(f"ark refused the content: {first.get('code')} {first.get('message')}")
        outputs = []
        for i, item in enumerate(items):
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
        return inline_upload(data)
