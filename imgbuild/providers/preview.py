"""The offline `preview` provider: deterministic labelled placeholders drawn with Pillow.

It is the default on a fresh machine, so every workflow runs without keys or network. The same
request and candidate always give the same bytes; the picture shows "PREVIEW", the asset id, the
candidate, the size and the start of the prompt, on a colour derived from the request hash.
"""

from __future__ import annotations

import hashlib
import io
import textwrap
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

from imgbuild.providers import register
from imgbuild.providers.base import Call, Job, Output, Response, Upload
from imgbuild.requests import Reference

__all__ = ["PreviewProvider", "render_placeholder"]


@register("preview")
class PreviewProvider:
    """Draws placeholders locally: the first implementation of the provider interface."""

    name = "preview"

    def __init__(self, project_root: Path, settings: Mapping[str, Any] | None = None) -> None:
        self.project_root = project_root

    def request_body(self, call: Call) -> dict[str, Any]:
        req = call.request
        return {
            "model": req.provider_model,
            "prompt": req.prompt,
            "negative_prompt": req.negative_prompt,
            "size": req.size,
            "output_format": req.output_format,
            "candidate": call.candidate,
            "max_images": req.max_images,
            "references": list(call.reference_urls),
        }

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        req = call.request
        urls = [
            f"preview://{req.asset_id}/{req.request_hash[:12]}/{call.candidate}/{i + 1}" for i in range(req.max_images)
        ]
        raw = {
            "model": req.provider_model,
            "data": [{"url": url, "size": req.size} for url in urls],
            "usage": {"generated_images": len(urls), "cost_usd": 0},
        }
        return self.parse(call, raw)

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        outputs = tuple(Output(index=i, url=item["url"]) for i, item in enumerate(raw["data"]))
        return Response(raw=raw, outputs=outputs, usage=dict(raw.get("usage", {})))

    def resume(self, call: Call, job: Job) -> Response:
        return self.generate(call, lambda _job: None)

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload:
        digest = hashlib.sha256(data).hexdigest()
        return Upload(url=f"preview://upload/{digest}", raw={"inline": False, "bytes": len(data), "sha256": digest})

    def download(self, call: Call, output: Output) -> bytes:
        req = call.request
        width, height = (int(n) for n in req.size.split("x"))
        which = f"candidate {call.candidate} of {req.candidates}"
        if req.max_images > 1:
            which += f", image {output.index + 1} of {req.max_images}"
        edit = ""
        if req.references:
            edit = "edit of " + ", ".join(f"{r.role} {r.sha256[:10]}" for r in req.references)
        return render_placeholder(
            width=width,
            height=height,
            fmt=req.output_format,
            seed=f"{req.request_hash}:{call.candidate}:{output.index}",
            lines=[
                "PREVIEW",
                req.asset_id,
                f"{which}  ·  {req.size}  ·  {req.model}",
                "variant test: " + req.variant_test if req.variant_test else "",
                edit,
                "",
                *textwrap.wrap(req.prompt, width=48)[:8],
            ],
        )

    def close(self) -> None:
        pass


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def render_placeholder(*, width: int, height: int, fmt: str, seed: str, lines: list[str]) -> bytes:
    """A flat-colour image with centred text, encoded as `fmt` ("png" or "jpeg")."""
    digest = hashlib.sha256(seed.encode()).digest()
    background = (40 + digest[0] % 90, 40 + digest[1] % 90, 60 + digest[2] % 100)
    image = Image.new("RGB", (width, height), background)
    draw = ImageDraw.Draw(image)
    size = max(12, width // 36)
    title = _font(size * 3)
    body = _font(size)
    y = height // 6
    for i, line in enumerate(lines):
        font = title if i == 0 else body
        left, top, right, bottom = draw.textbbox((0, 0), line, font=font)
        draw.text(((width - (right - left)) // 2, y), line, fill=(245, 245, 240), font=font)
        y += int(bottom - top) + size // 2 + (size if i == 0 else 0)
    draw.rectangle((0, 0, width - 1, height - 1), outline=(245, 245, 240), width=max(2, width // 300))
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG", compress_level=6)
    else:
        image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
