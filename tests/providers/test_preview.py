"""The preview provider: deterministic, offline, the requested size and format."""

from __future__ import annotations

import io
from pathlib import Path

from helpers import write_project
from PIL import Image

from imgbuild.providers import Call, create_provider
from imgbuild.resolve import resolve


def test_placeholders_are_deterministic_and_sized(tmp_path: Path) -> None:
    write_project(tmp_path)
    req = resolve(tmp_path).requests["covers"][0]
    provider = create_provider("preview", tmp_path)
    call = Call(req, 1, "run-a")
    response = provider.generate(call, lambda job: None)
    assert len(response.outputs) == 1
    first = provider.download(call, response.outputs[0])
    again = provider.download(Call(req, 1, "run-b"), response.outputs[0])
    other = provider.download(
        Call(req, 2, "run-c"), provider.generate(Call(req, 2, "run-c"), lambda j: None).outputs[0]
    )
    assert first == again  # same request and candidate: same bytes
    assert first != other
    with Image.open(io.BytesIO(first)) as image:
        assert image.format == "JPEG"
        assert image.size == (2048, 2048)
    assert provider.parse(call, response.raw) == response
    body = provider.request_body(call)
    assert body["prompt"] == req.prompt and body["size"] == "2048x2048"
