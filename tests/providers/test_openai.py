"""OpenAI gpt-image-2 through the native provider, against the loopback stand-in: a text call as
JSON, an edit as a multipart upload with one `image[]` part per reference, the safety system's
refusal retried once and recorded, the key in no file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from fakes.openai import KEY, FakeOpenAI
from helpers import hosted_model_project, model_batch, run_cli
from PIL import Image

from imgbuild.records import AssetStore

SHOTS = """\
  - id: text
    need: text to image
    template: cover.j2
  - id: edit
    need: an edit from two references
    template: cover.j2
    references:
      - path: refs/face.png
      - path: refs/side.jpg
"""
BATCH = model_batch("image-gpt-image-2-text", SHOTS, aspect="2:3")
REFUSED = """\
  - id: refused
    need: a prompt the safety system refuses
    prompt: FORBIDDEN content for Mia
"""
PROMPT = "Photo of Mia Tan, oval face, light freckles, wearing a cream sweater, in a home office, morning light."


def project(root: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeOpenAI, batch: str = BATCH) -> Path:
    env = {"OPENAI_API_KEY": KEY, "IMGBUILD_OPENAI_BASE_URL": fake.base_url}
    return hosted_model_project(
        root, monkeypatch, "openai", batch, env=env, refs={"face.png": (64, 96), "side.jpg": (96, 64)}
    )


def test_text_and_multipart_edit_send_the_documented_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as fake:
        root = project(tmp_path, monkeypatch, fake)
        assert run_cli(root, "build") == 0
    by_path = {r.path: r for r in fake.requests}
    assert sorted(by_path) == ["/v1/images/edits", "/v1/images/generations"]
    fields = {
        "model": "gpt-image-2",
        "prompt": PROMPT,
        "size": "1024x1536",
        "quality": "medium",
        "output_format": "png",
    }
    text = by_path["/v1/images/generations"]
    assert text.fields == fields
    assert text.headers["content-type"] == "application/json"
    assert text.headers["authorization"] == f"Bearer {KEY}"
    edit = by_path["/v1/images/edits"]
    assert edit.fields == fields  # the same fields, as form fields
    assert edit.headers["content-type"].startswith("multipart/form-data; boundary=")
    assert [(name, kind, data) for name, kind, data in edit.images] == [
        ("reference-1.png", "image/png", (root / "refs" / "face.png").read_bytes()),
        ("reference-2.jpg", "image/jpeg", (root / "refs" / "side.jpg").read_bytes()),
    ]
    # the images came back inline and were kept as the PNGs asked for
    for asset in ("covers.text", "covers.edit"):
        (kept,) = (root / "assets" / asset / "images" / "candidates").iterdir()
        with Image.open(io.BytesIO(kept.read_bytes())) as image:
            assert image.format == "PNG"
    # the recorded body shows each image[] part by size and hash, never its bytes
    (run,) = (root / "assets" / "covers.edit" / "runs" / "image").iterdir()
    (http,) = (root / ".imgbuild" / "exchanges" / "assets" / "covers.edit").glob("*/http.json")
    (create,) = [e for e in json.loads(http.read_text()) if e["what"] == "create"]
    sent = create["request"]["body"]["multipart"]  # what went on the wire: the fields, and the parts by hash
    assert {k: v for k, v in sent.items() if k != "image[]"} == fields
    assert [p.split(",")[0] for p in sent["image[]"]] == [f"<{len(i[2])} bytes" for i in edit.images]
    recorded = json.loads((run / "request.json").read_text())["provider_body"]
    assert [part.split(",")[1].split(" ")[0] for part in recorded["image[]"]] == [
        "<" + str(len(edit.images[0][2])),
        "<" + str(len(edit.images[1][2])),
    ]
    assert KEY.encode() not in b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_a_safety_refusal_is_retried_once_then_the_asset_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAI() as fake:
        root = project(tmp_path, monkeypatch, fake, BATCH.split("  - id: edit")[0] + REFUSED)
        assert run_cli(root, "build") == 1
    refused = [r for r in fake.requests if "FORBIDDEN" in r.fields["prompt"]]
    assert len(refused) == 2  # the first call and one retry
    history = AssetStore(root).read_history("assets/covers.refused")
    assert history is not None
    reasons = [str(e.details.get("reason")) for e in history.events if e.event == "failed"]
    assert len(reasons) == 2
    assert all("moderation_blocked" in r or "safety system" in r for r in reasons)
    assert reasons[-1].endswith("(content filter, attempt 2 of 2)")
    assert fake.billed == 1  # only the text shot made an image


def test_an_account_out_of_quota_stops_the_build_without_retrying(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeOpenAI() as fake:
        root = project(tmp_path, monkeypatch, fake)
        fake.out_of_quota = True  # OpenAI's 429 insufficient_quota: no backoff cures it
        assert run_cli(root, "build") == 3
    captured = capsys.readouterr()
    assert "openai: the account has no credit or quota left (HTTP 429" in captured.out + captured.err
    assert fake.quota_refusals == 1  # one refused call: not retried, and the other asset not tried
