"""Reference images that travel as bare base64 (Gemini's ``inlineData``, BFL's ``input_image``)
are recorded as their size and hash, as data URLs are: a run's records stay small and do not
copy a private reference into .imgbuild/ once per attempt."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from fakes import bfl, gemini
from helpers import hosted_model_project, model_batch, run_cli

SHOTS = """\
  - id: edit
    need: an edit from two references
    template: cover.j2
    references:
      - path: refs/face.png
      - path: refs/side.png
"""


@pytest.mark.parametrize(
    ("provider", "fake_class", "key", "model"),
    [
        ("gemini", gemini.FakeGemini, gemini.KEY, "image-nano-banana-2-text"),
        ("bfl", bfl.FakeBfl, bfl.KEY, "image-flux-2-pro-text"),
    ],
)
def test_bare_base64_references_are_recorded_as_size_and_hash(
    provider: str, fake_class: type, key: str, model: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with fake_class() as fake:
        env = {f"{provider.upper()}_API_KEY": key, f"IMGBUILD_{provider.upper()}_BASE_URL": fake.base_url}
        root = hosted_model_project(
            tmp_path,
            monkeypatch,
            provider,
            model_batch(model, SHOTS, aspect="3:2"),
            env=env,
            refs={"face.png": (64, 48), "side.png": (48, 64)},
        )
        assert run_cli(root, "build") == 0
    refs = [(root / "refs" / name).read_bytes() for name in ("face.png", "side.png")]
    records = [p for p in (root / ".imgbuild").rglob("*.json") if p.is_file()]
    written = b"".join(p.read_bytes() for p in records)
    for data in refs:
        assert base64.b64encode(data) not in written
    (http,) = [p for p in records if p.name == "http.json"]
    (create,) = [e for e in json.loads(http.read_text()) if e["what"] == "create"]
    sent = json.dumps(create["request"]["body"])
    assert all(f"{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}" in sent for data in refs)
