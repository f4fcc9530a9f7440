"""The newer Seedream families built for real against the loopback stand-ins, which answer 400 to
any field the family does not take (as Ark does for 5.0 Pro, Flash and 5.5)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fakes.servers import FakeProviders
from helpers import hosted_model_project, model_batch, run_cli
from PIL import Image

from imgbuild.records import AssetStore

KEY_ENV = {"ark": "ARK_API_KEY", "replicate": "REPLICATE_API_TOKEN", "fal": "FAL_KEY"}
URL_ENV = {"ark": "IMGBUILD_ARK_BASE_URL", "replicate": "IMGBUILD_REPLICATE_BASE_URL", "fal": "IMGBUILD_FAL_BASE_URL"}

SHOTS = """\
  - id: text
    need: text to image
    template: cover.j2
  - id: edit
    need: an edit
    template: cover.j2
    references:
      - path: refs/face.png
"""


def family_project(
    root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, model: str, route: str, **kw: str
) -> Path:
    """`model` on `route` against the stand-ins: a text and an edit shot (or `shots`)."""
    env = {KEY_ENV[route]: fake.keys[route], URL_ENV[route]: fake.base_urls[route]}
    env["IMGBUILD_FAL_STORAGE_URL"] = fake.base_urls["fal_storage"]
    batch = model_batch(model, kw.pop("shots", SHOTS), quality="draft")
    return hosted_model_project(root, monkeypatch, route, batch, env=env, refs={"face.png": (64, 64)}, **kw)


NEWER = [
    ("image-seedream-v5-pro-text", "ark", "seedream-5-0-pro-260628"),
    ("image-seedream-v5-flash-text", "ark", "seedream-5-0-flash-260915"),
    ("image-seedream-v5.5-text", "ark", "seedream-5-5-261028"),
    ("image-seedream-v5-pro-text", "replicate", "bytedance/seedream-5-pro"),
    ("image-seedream-v5-pro-text", "fal", "fal-ai/bytedance/seedream/v5/pro"),
    ("image-seedream-v5-flash-text", "fal", "fal-ai/bytedance/seedream/v5/flash"),
]


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.mark.parametrize(("model", "route", "provider_model"), NEWER, ids=[f"{m}-{r}" for m, r, _ in NEWER])
def test_a_newer_family_builds_text_and_edit_on_its_route(
    model: str, route: str, provider_model: str, fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = family_project(tmp_path, fake, monkeypatch, model, route)
    assert run_cli(root, "build") == 0
    creates = fake.creates(route)
    assert len(creates) == 2
    for request in creates:
        sent = request.json["input"] if route == "replicate" else request.json
        assert not {"sequential_image_generation", "sequential_image_generation_options", "max_images"} & set(sent)
        if route == "ark":
            assert sent["model"] == provider_model
        else:
            assert provider_model in request.path
    images = sorted((root / "assets").glob("*/images/candidates/*"))
    assert len(images) == 2
    for path in images:
        with Image.open(path) as image:
            image.load()


def test_the_stand_in_refuses_a_disabled_sequential_field_as_ark_does(fake: FakeProviders) -> None:
    png = io.BytesIO()
    Image.new("RGB", (64, 64)).save(png, "PNG")
    body = {
        "model": "seedream-5-0-pro-260628",
        "prompt": "a lighthouse",
        "size": "2048x2048",
        "sequential_image_generation": "disabled",
        "image": ["data:image/png;base64," + base64.b64encode(png.getvalue()).decode()],
    }
    headers = {"Authorization": f"Bearer {fake.keys['ark']}"}
    with httpx.Client(timeout=5) as client:
        refused = client.post(f"{fake.base_urls['ark']}/images/generations", json=body, headers=headers)
        del body["sequential_image_generation"]
        accepted = client.post(f"{fake.base_urls['ark']}/images/generations", json=body, headers=headers)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "sequential_image_generation"
    assert accepted.status_code == 200


# -- content-filter refusals ---------------------------------------------------------------------------


def filter_project(root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, settings: str = "") -> Path:
    one = SHOTS.split("  - id: edit")[0]
    return family_project(root, fake, monkeypatch, "image-seedream-v5-pro-text", "ark", shots=one, settings=settings)


def events(root: Path) -> list[tuple[str, str]]:
    """(event, reason) of every image event of the asset, oldest first, as the records hold them."""
    history = AssetStore(root).read_history("assets/covers.text")
    assert history is not None
    return [(e.event, str(e.details.get("reason", ""))) for e in history.events if e.kind == "image"]


def test_a_filtered_output_is_tried_again_once_and_each_attempt_is_recorded(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = filter_project(tmp_path, fake, monkeypatch)
    fake.filtered = 1  # the first answer has its one image filtered; the second is fine
    assert run_cli(root, "build") == 0
    assert len(fake.creates("ark")) == 2
    assert fake.billed_images["ark"] == 1  # Ark bills only the image it delivered
    made = events(root)
    assert [e for e, _ in made] == ["submitted", "failed", "submitted", "completed"]
    assert "OutputImageSensitiveContentDetected" in made[1][1]
    assert made[1][1].endswith("(content filter, attempt 1 of 2)")
    assert len(list((root / "assets" / "covers.text" / "runs" / "image").iterdir())) == 2  # one run per attempt
    assert len(list((root / "assets" / "covers.text" / "images" / "candidates").iterdir())) == 1


def test_content_filter_retries_are_bounded_and_configurable(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = filter_project(tmp_path / "none", fake, monkeypatch, "    content_filter_retries: 0\n")
    fake.filtered = 5
    assert run_cli(root, "build") == 1
    assert len(fake.creates("ark")) == 1
    assert events(root)[-1][1].endswith("(content filter, attempt 1 of 1)")

    again = filter_project(tmp_path / "three", fake, monkeypatch, "    content_filter_retries: 3\n")
    fake.filtered = 10  # refused every time: four calls, then the asset fails
    assert run_cli(again, "build") == 1
    assert len(fake.creates("ark")) == 1 + 4
    assert [r for e, r in events(again) if e == "failed"][-1].endswith("(content filter, attempt 4 of 4)")
