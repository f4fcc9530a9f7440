"""Gemini image models (Nano Banana 2 / Pro) through the native provider, against the loopback
stand-in: text and a several-reference edit in one synchronous call, the key in its own header
and in no file, blocked prompts and withheld images as content refusals (retried once)."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from fakes.gemini import KEY, FakeGemini
from helpers import hosted_model_project, model_batch, run_cli
from PIL import Image

from imgbuild.records import AssetStore

SHOTS = """\
  - id: text
    need: text to image
    template: cover.j2
  - id: edit
    need: an edit from three references
    template: cover.j2
    references:
      - path: refs/face.png
      - path: refs/side.png
      - path: refs/hands.png
"""
PROMPT = "Photo of Mia Tan, oval face, light freckles, wearing a cream sweater, in a home office, morning light."


def project(root: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeGemini, model: str, shots: str = SHOTS) -> Path:
    env = {"GEMINI_API_KEY": KEY, "IMGBUILD_GEMINI_BASE_URL": fake.base_url}
    batch = model_batch(model, shots, quality="high", aspect="9:16")
    return hosted_model_project(root, monkeypatch, "gemini", batch, env=env, refs=dict.fromkeys(REFS, (48, 64)))


REFS = ("face.png", "side.png", "hands.png")


@pytest.mark.parametrize(
    ("model", "provider_model"),
    [
        ("image-nano-banana-2-text", "gemini-3.1-flash-image"),
        ("image-nano-banana-pro-text", "gemini-3-pro-image-preview"),
    ],
)
def test_text_and_a_several_reference_edit_send_the_documented_body(
    model: str, provider_model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeGemini() as fake:
        root = project(tmp_path, monkeypatch, fake, model)
        assert run_cli(root, "build") == 0
    assert sorted(r.model for r in fake.requests) == [provider_model, provider_model]
    config = {"responseModalities": ["IMAGE"], "imageConfig": {"aspectRatio": "9:16", "imageSize": "2K"}}
    by_parts = {len(r.body["contents"][0]["parts"]): r for r in fake.requests}
    assert by_parts[1].body == {"contents": [{"role": "user", "parts": [{"text": PROMPT}]}], "generationConfig": config}
    edit = by_parts[4].body
    assert edit["generationConfig"] == config
    images = [base64.b64decode(p["inlineData"]["data"]) for p in edit["contents"][0]["parts"][1:]]
    assert images == [(root / "refs" / f"{n}.png").read_bytes() for n in ("face", "side", "hands")]
    assert all(r.headers["x-goog-api-key"] == KEY and "authorization" not in r.headers for r in fake.requests)
    for asset in ("covers.text", "covers.edit"):
        (kept,) = (root / "assets" / asset / "images" / "candidates").iterdir()
        with Image.open(kept) as image:
            assert image.format == "PNG" and image.height > image.width  # 9:16
    assert KEY.encode() not in b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize(
    ("word", "reason"), [("BLOCKED", "blockReason PROHIBITED_CONTENT"), ("WITHHELD", "IMAGE_SAFETY")]
)
def test_blocked_and_withheld_images_are_content_refusals(
    word: str, reason: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refused = f"  - id: refused\n    need: a refusal\n    prompt: {word} content for Mia\n"
    with FakeGemini() as fake:
        root = project(tmp_path, monkeypatch, fake, "image-nano-banana-2-text", refused)
        assert run_cli(root, "build") == 1
    assert len(fake.requests) == 2  # the call and one retry
    history = AssetStore(root).read_history("assets/covers.refused")
    assert history is not None
    reasons = [str(e.details.get("reason")) for e in history.events if e.event == "failed"]
    assert [reason in r for r in reasons] == [True, True]
    assert reasons[-1].endswith("(content filter, attempt 2 of 2)")
