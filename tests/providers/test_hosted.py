"""The hosted providers against loopback servers that answer as Ark, Replicate and fal do.

Every build here is a real `imgbuild build` (in-process) or a real `doit` (subprocess) talking HTTP
to tests/fakes/servers.py on 127.0.0.1. The API key of each test is searched for in every file
the project holds afterwards.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import PERSONA, run_cli, snapshot, write_project
from PIL import Image

KEY_ENV = {"ark": "ARK_API_KEY", "replicate": "REPLICATE_API_TOKEN", "fal": "FAL_KEY"}
URL_ENV = {"ark": "IMGBUILD_ARK_BASE_URL", "replicate": "IMGBUILD_REPLICATE_BASE_URL", "fal": "IMGBUILD_FAL_BASE_URL"}
PROVIDERS = ("ark", "replicate", "fal")

# Fast retries: the servers answer 429 with Retry-After: 0, and the other faults need no long wait.
CONFIG = """\
providers:
  {provider}:
    concurrency: {concurrency}
    retries: {{attempts: 12, base_delay: 0.01, max_delay: 0.05}}
"""

MODES_BATCH = """\
purpose: one batch per mode for provider tests
persona: mia
source_basis:
  - path: evidence/mia.md
output: assets
quality: draft
quality_reason: tests only
aspect_ratio: "1:1"
output_format: png
fixed:
  wardrobe: cream sweater
  environment: home office
  lighting: morning light
shots:
  - id: text
    need: a plain text-to-image call
    template: cover.j2
  - id: edit
    need: an edit from a reference image
    template: cover.j2
    references:
      - path: refs/face.png
  - id: set
    need: an identity set in one call
    template: cover.j2
    max_images: 3
  - id: edit-set
    need: an identity set edited from a reference
    template: cover.j2
    max_images: 2
    references:
      - path: refs/face.png
"""

PROMPT = "Photo of Mia Tan, oval face, light freckles, wearing a cream sweater, in a home office, morning light."


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


def hosted_project(
    root: Path,
    fake: FakeProviders,
    provider: str,
    monkeypatch: pytest.MonkeyPatch,
    *,
    batch: str = MODES_BATCH,
    persona: str = PERSONA,
    concurrency: int = 4,
    key: str | None = None,
) -> Path:
    """A project building with `provider` against `fake`, its key and base URL in the environment."""
    write_project(
        root,
        batches={"covers": batch},
        personas={"mia": persona},
        config=f"provider: {provider}\n" + CONFIG.format(provider=provider, concurrency=concurrency),
    )
    (root / "refs").mkdir(exist_ok=True)
    Image.new("RGB", (64, 64), (200, 120, 90)).save(root / "refs" / "face.png")
    monkeypatch.setenv(KEY_ENV[provider], key if key is not None else fake.keys[provider])
    monkeypatch.setenv(URL_ENV[provider], fake.base_urls[provider])
    monkeypatch.setenv("IMGBUILD_FAL_STORAGE_URL", fake.base_urls["fal_storage"])
    return root


def assert_no_secret(root: Path, secret: str) -> None:
    """The key is in no file of the project, .imgbuild/ included."""
    needle = secret.encode()
    leaks = [p for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]
    assert leaks == []


def images_of(root: Path) -> list[Path]:
    return sorted((root / "assets").glob("*/images/candidates/*"))


def assert_valid_images(root: Path, count: int) -> None:
    files = images_of(root)
    assert len(files) == count
    for path in files:
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            image.load()  # a truncated file raises here
            assert image.format == {".png": "PNG", ".jpg": "JPEG"}[path.suffix]


# -- 1. exact bodies, every mode, every provider ----------------------------------------------------


def expected_bodies(provider: str, reference: str) -> dict[str, dict[str, object]]:
    """What each provider's documented API must receive for the four shots of MODES_BATCH."""
    if provider == "ark":
        base = {
            "model": "seedream-5-0-260128",
            "prompt": PROMPT,
            "size": "2048x2048",
            "response_format": "url",
            "watermark": False,
            "output_format": "png",
        }
        return {
            "text": {**base, "sequential_image_generation": "disabled"},
            "edit": {**base, "image": [reference], "sequential_image_generation": "disabled"},
            "set": {
                **base,
                "sequential_image_generation": "auto",
                "sequential_image_generation_options": {"max_images": 3},
            },
            "edit-set": {
                **base,
                "image": [reference],
                "sequential_image_generation": "auto",
                "sequential_image_generation_options": {"max_images": 2},
            },
        }
    if provider == "replicate":
        base = {"prompt": PROMPT, "size": "2K", "aspect_ratio": "1:1", "output_format": "png"}
        return {
            "text": {"input": {**base, "sequential_image_generation": "disabled", "max_images": 1}},
            "edit": {
                "input": {
                    **base,
                    "sequential_image_generation": "disabled",
                    "max_images": 1,
                    "image_input": [reference],
                }
            },
            "set": {"input": {**base, "sequential_image_generation": "auto", "max_images": 3}},
            "edit-set": {
                "input": {**base, "sequential_image_generation": "auto", "max_images": 2, "image_input": [reference]}
            },
        }
    base = {"prompt": PROMPT, "image_size": {"width": 2048, "height": 2048}, "num_images": 1}
    return {
        "text": {**base, "max_images": 1},
        "edit": {**base, "max_images": 1, "image_urls": [reference]},
        "set": {**base, "max_images": 3},
        "edit-set": {**base, "max_images": 2, "image_urls": [reference]},
    }


@pytest.mark.parametrize("provider", PROVIDERS)
def test_each_mode_sends_the_documented_body(
    provider: str, fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = hosted_project(tmp_path / "p", fake, provider, monkeypatch, concurrency=1)
    assert run_cli(root, "build") == 0

    creates = fake.creates(provider)
    assert len(creates) == 4  # one call per asset: an identity set is one call
    by_shot = {}
    for request in creates:
        body = request.json
        prompt_owner = body["input"] if provider == "replicate" else body
        refs = prompt_owner.get("image") or prompt_owner.get("image_input") or prompt_owner.get("image_urls")
        sequential = str(body).count("'auto'") or (provider == "fal" and prompt_owner["max_images"] > 1)
        by_shot[("edit-" if refs else "") + ("set" if sequential else "text")] = (request, body)
    by_shot["edit"] = by_shot.pop("edit-text")

    face = (root / "refs" / "face.png").read_bytes()
    if provider == "ark":
        import base64

        reference = "data:image/png;base64," + base64.b64encode(face).decode()
    elif provider == "replicate":
        (upload,) = fake.uploads  # uploaded once, reused by the second edit
        assert upload.data == face
        reference = upload.url
    else:
        (upload,) = fake.uploads
        assert upload.data == face
        reference = upload.url
    for shot, body in expected_bodies(provider, reference).items():
        request, sent = by_shot[shot]
        assert sent == body, shot
        if provider == "fal":
            assert request.path.endswith("/edit" if "image_urls" in body else "/text-to-image")
            assert request.headers["authorization"] == f"Key {fake.keys['fal']}"
        elif provider == "replicate":
            assert request.path == "/replicate/v1/models/bytedance/seedream-5-lite/predictions"
            assert "prefer" not in request.headers  # the id must come back before any wait
        else:
            assert request.headers["authorization"] == f"Bearer {fake.keys['ark']}"

    # 1 + 1 + 3 + 2 images, each decodable; the sets are one candidate with several images
    assert_valid_images(root, 7)
    record = json.loads((root / "assets" / "covers.set" / "asset.json").read_text())
    assert sorted((c["candidate"], c["image"]) for c in record["candidates"]) == [(1, 1), (1, 2), (1, 3)]
    # the uploads are recorded under upload/<run-id>/ of the asset that needed them
    uploads = sorted((root / "assets").glob("*/upload/*/manifest.json"))
    assert {p.parts[-4] for p in uploads} <= {"covers.edit", "covers.edit-set"}
    assert len(uploads) == (2 if provider == "ark" else 1)  # hosted uploads are reused while valid
    # every call's raw exchanges and answer are kept as internal state, the key redacted; the
    # committed run folder holds the handoff: the request and the manifest
    runs = list((root / "assets").glob("*/runs/image/*"))
    assert len(runs) == 4
    for run in runs:
        internal = root / ".imgbuild/exchanges/assets" / run.parts[-4] / run.name
        exchanges = json.loads((internal / "http.json").read_text())
        assert exchanges[0]["request"]["headers"]["Authorization"] == "<redacted>"
        assert exchanges[0]["response"]["status"] in (200, 201)
        assert (internal / "response.json").is_file()
        assert sorted(p.name for p in run.iterdir()) == ["manifest.json", "request.json"]
    assert_no_secret(root, fake.keys[provider])


# -- 2. faults: 20% of calls fail, 5% of downloads are cut --------------------------------------

FIFTY_PERSONA = """\
id: mia
name: Mia Tan
traits:
  face: oval face, light freckles
evidence:
  - path: evidence/mia.md
allowed:
  environment: [e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]
  lighting: [l0, l1, l2, l3, l4]
"""

FIFTY_BATCH = """\
purpose: fifty assets under fire
persona: mia
source_basis:
  - path: evidence/mia.md
output: assets
quality: draft
quality_reason: tests only
aspect_ratio: "9:16"
output_format: png
vary:
  environment: [e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]
  lighting: [l0, l1, l2, l3, l4]
shots:
  - id: hook
    need: a first frame
    prompt: "Mia, {{ attrs.environment }}, {{ attrs.lighting }}"
"""


@pytest.mark.parametrize("provider", PROVIDERS)
def test_fifty_assets_complete_through_faults_without_paying_twice(
    provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeProviders(fault_rate=0.2, cut_rate=0.05, seed=7) as fake:
        root = hosted_project(tmp_path / "p", fake, provider, monkeypatch, batch=FIFTY_BATCH, persona=FIFTY_PERSONA)
        assert run_cli(root, "build") == 0
        faults = [r.fault for r in fake.calls(provider) if r.fault]
        cuts = [r for r in fake.requests if r.fault == "cut"]
        assert len(faults) >= 5 and cuts  # the faults really happened
        assert fake.billed[provider] == 50  # one accepted create per asset: nothing paid twice
        assert len(fake.creates(provider)) == 50
    assert_valid_images(root, 50)
    assert run_cli(root, "check") == 0
    assert_no_secret(root, fake.keys[provider])


# -- 3. a refused key stops the build after one call -----------------------------------------------


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_401_stops_the_build_after_one_call(
    provider: str,
    fake: FakeProviders,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = hosted_project(tmp_path / "p", fake, provider, monkeypatch, batch=FIFTY_BATCH, persona=FIFTY_PERSONA)
    batch = root / "batches" / "covers.yaml"
    batch.write_text(FIFTY_BATCH.replace("e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]", "e0]"))
    assert run_cli(root, "build") == 0  # five assets made with the good key
    before = snapshot(root / "assets")
    calls_before = len(fake.requests)
    capsys.readouterr()

    batch.write_text(FIFTY_BATCH)  # 45 more to make
    monkeypatch.setenv(KEY_ENV[provider], "wrong-key-123")
    assert run_cli(root, "build") == 3
    out = capsys.readouterr().out
    assert len(fake.requests) - calls_before == 1  # exactly one call reached the provider
    assert f"check {KEY_ENV[provider]}" in out and "STOPPED" in out
    after = snapshot(root / "assets")
    assert {k: v for k, v in after.items() if k in before} == before  # nothing made before is touched
    assert_no_secret(root, "wrong-key-123")
    assert_no_secret(root, fake.keys[provider])


@pytest.mark.parametrize("provider", PROVIDERS)
def test_no_key_refuses_before_any_call(
    provider: str,
    fake: FakeProviders,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = hosted_project(tmp_path / "p", fake, provider, monkeypatch)
    monkeypatch.delenv(KEY_ENV[provider])
    assert run_cli(root, "build") == 3
    assert fake.requests == []
    assert f"{KEY_ENV[provider]} is not set" in capsys.readouterr().out
    assert not (root / "assets").exists()


# -- 4. killed while jobs are in flight: resumed, never created twice ------------------------------


@pytest.mark.parametrize("provider", ["replicate", "fal"])
def test_killed_build_resumes_its_jobs(provider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeProviders(latency=30.0) as fake:
        root = hosted_project(tmp_path / "p", fake, provider, monkeypatch, batch=FIFTY_BATCH, persona=FIFTY_PERSONA)
        (root / "batches" / "covers.yaml").write_text(
            FIFTY_BATCH.replace("e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]", "e0, e1]")
        )
        build = subprocess.Popen(
            [sys.executable, "-m", "doit", "-n", "4"],
            cwd=root,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while len(fake.creates(provider)) < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # let the ids reach the records
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
        created = len(fake.creates(provider))
        assert 4 <= created < 10
        # the jobs finish on the provider's side while nobody watches
        fake.latency = 0.0
        for job in list(fake._jobs.values()):
            job.done_at = 0.0
        assert run_cli(root, "build") == 0
        assert fake.billed[provider] == 10
        resumed = [r for r in fake.creates(provider)]
        assert len(resumed) == 10  # the killed build's jobs were polled, not created again
    assert_valid_images(root, 10)
    assert not list((root / ".imgbuild/calls").rglob("*.json"))  # no call left in flight
    assert_no_secret(root, fake.keys[provider])


# -- budget and limits ------------------------------------------------------------------------------


def test_budget_refuses_before_the_first_call(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted_project(tmp_path / "p", fake, "ark", monkeypatch, batch=FIFTY_BATCH, persona=FIFTY_PERSONA)
    config = root / "imgbuild.yaml"
    config.write_text(config.read_text() + "budget: 1.00\n")
    assert run_cli(root, "plan") == 0
    out = capsys.readouterr().out
    assert "  image-seedream-v5-lite-text: 50 paid images × $0.035 = $1.75" in out
    assert "total: 50 images to generate, estimated $1.75 at list prices (budget $1.00: a build would refuse)" in out
    assert run_cli(root, "build") == 3
    assert "over the budget of $1.00" in capsys.readouterr().out
    assert fake.requests == []


def test_limits_are_checked_before_any_call(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = MODES_BATCH.replace("max_images: 3", "max_images: 8")  # fal makes at most 6 per call
    root = hosted_project(tmp_path / "p", fake, "fal", monkeypatch, batch=batch)
    assert run_cli(root, "build") == 2
    err = capsys.readouterr().err
    assert "p/batches/covers.yaml:26 shots[2].max_images: max_images 8; fal makes at most 6 per call\n" in err
    assert fake.requests == []


def test_a_rejected_prompt_fails_only_its_asset(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    batch = FIFTY_BATCH.replace("[e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]", "[e0, FORBIDDEN]", 1).replace(
        "[l0, l1, l2, l3, l4]\nshots", "[l0]\nshots"
    )
    persona = FIFTY_PERSONA.replace("e9]", "e9, FORBIDDEN]")
    root = hosted_project(tmp_path / "p", fake, "ark", monkeypatch, batch=batch, persona=persona)
    assert run_cli(root, "build") == 1
    out = capsys.readouterr().out
    assert "FAILED covers:covers.hook.forbidden.l0.c1" in out and "InputTextSensitiveContentDetected" in out
    # not retried as a transient failure; tried once more as a content-filter refusal (default 1)
    assert len(fake.creates("ark")) == 3
    assert_valid_images(root, 1)
    history = json.loads((root / "assets" / "covers.hook.forbidden.l0" / "index.json").read_text())["history"]
    assert history[-1]["event"] == "failed" and "sensitive" in history[-1]["reason"]


def test_poll_finishes_jobs_of_a_killed_build_without_new_calls(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProviders(latency=30.0) as fake:
        root = hosted_project(tmp_path / "p", fake, "replicate", monkeypatch, batch=FIFTY_BATCH, persona=FIFTY_PERSONA)
        (root / "batches" / "covers.yaml").write_text(
            FIFTY_BATCH.replace("e0, e1, e2, e3, e4, e5, e6, e7, e8, e9]", "e0]")
        )
        build = subprocess.Popen(
            [sys.executable, "-m", "doit", "-n", "5"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while len(fake.creates("replicate")) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
        for job in list(fake._jobs.values()):
            job.done_at = 0.0
        assert run_cli(root, "poll") == 0
        out = capsys.readouterr().out.splitlines()
        assert out[-1] == "imgbuild poll: 5 calls finished, 0 assets failed"
        assert len(fake.creates("replicate")) == 5  # polled and downloaded, nothing created
        assert run_cli(root, "check") == 0
        assert run_cli(root, "poll") == 0
        assert capsys.readouterr().out.splitlines()[-1] == "imgbuild poll: nothing in flight"
    assert_valid_images(root, 5)


def test_an_unreachable_host_stops_the_build(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = hosted_project(tmp_path / "p", fake, "ark", monkeypatch, batch=FIFTY_BATCH, persona=FIFTY_PERSONA)
    fake.close()  # nothing listens on that port any more
    config = root / "imgbuild.yaml"
    config.write_text(config.read_text().replace("attempts: 12", "attempts: 3"))
    started = time.monotonic()
    assert run_cli(root, "build") == 3
    assert time.monotonic() - started < 10
    out = capsys.readouterr().out
    assert f"ark: cannot connect to {fake.url} after 3 tries" in out
    histories = [json.loads(p.read_text())["history"] for p in (root / "assets").glob("*/index.json")]
    assert len(histories) <= 4  # the calls that were under way when the host was found down
    assert "note:" not in out  # a connection never made cannot have been billed


def test_a_partial_answer_keeps_its_images_and_records_the_errors(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batch = MODES_BATCH.replace("template: cover.j2\n    max_images: 3", 'prompt: "Mia PARTIAL set"\n    max_images: 3')
    root = hosted_project(tmp_path / "p", fake, "ark", monkeypatch, batch=batch)
    assert run_cli(root, "build", "covers:covers.set.*") == 0
    record = json.loads((root / "assets" / "covers.set" / "asset.json").read_text())
    assert [(c["candidate"], c["image"]) for c in record["candidates"]] == [(1, 1), (1, 2)]
    (run,) = (root / "assets" / "covers.set" / "runs" / "image").iterdir()
    manifest = json.loads((run / "manifest.json").read_text())
    assert [e["image"] for e in manifest["errors"]] == [3]
    assert manifest["errors"][0]["error"].startswith("OutputImageSensitiveContentDetected")
    history = json.loads((root / "assets" / "covers.set" / "index.json").read_text())["history"]
    assert history[-1]["event"] == "partial"
