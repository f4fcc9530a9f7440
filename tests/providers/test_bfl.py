"""FLUX.2 through the BFL API, against the loopback stand-in: the documented bodies (seeded,
references as input_image, input_image_2), the job recorded before polling and resumed after a
kill without a second create, moderation as a content refusal, the key in no file."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fakes.bfl import KEY, FakeBfl
from helpers import hosted_model_project, model_batch, run_cli

from imgbuild.providers.bfl import seed_of
from imgbuild.resolve import resolve

SHOTS = """\
  - id: text
    need: text to image, two candidates
    template: cover.j2
    candidates: 2
  - id: edit
    need: a multi-reference edit
    template: cover.j2
    references:
      - path: refs/face.png
      - path: refs/side.png
"""
PROMPT = "Photo of Mia Tan, oval face, light freckles, wearing a cream sweater, in a home office, morning light."


def project(root: Path, monkeypatch: pytest.MonkeyPatch, fake: FakeBfl, shots: str = SHOTS) -> Path:
    env = {"BFL_API_KEY": KEY, "IMGBUILD_BFL_BASE_URL": fake.base_url}
    batch = model_batch("image-flux-2-pro-text", shots, aspect="3:2")
    return hosted_model_project(
        root, monkeypatch, "bfl", batch, env=env, refs={"face.png": (64, 48), "side.png": (48, 64)}
    )


def test_text_and_multi_reference_edit_send_the_documented_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeBfl() as fake:
        root = project(tmp_path, monkeypatch, fake)
        assert run_cli(root, "build") == 0
    requests = {r.asset_id: r for r in resolve(root).all_requests()}
    text, edit = requests["covers.text"], requests["covers.edit"]
    base = {"prompt": PROMPT, "width": 1248, "height": 832, "output_format": "png"}
    bodies = sorted((job.body for job in fake.creates), key=lambda b: (len(b), b["seed"]))
    assert sorted(seed_of(text.request_hash, k) for k in (1, 2)) == sorted(
        b["seed"] for b in bodies if "input_image" not in b
    )  # each candidate its own seed, from the request
    assert [b for b in bodies if "input_image" not in b] == sorted(
        ({**base, "seed": seed_of(text.request_hash, k)} for k in (1, 2)), key=lambda b: b["seed"]
    )
    (edited,) = [b for b in bodies if "input_image" in b]
    assert edited == {
        **base,
        "seed": seed_of(edit.request_hash, 1),
        "input_image": base64.b64encode((root / "refs" / "face.png").read_bytes()).decode(),
        "input_image_2": base64.b64encode((root / "refs" / "side.png").read_bytes()).decode(),
    }
    assert all(job.model == "flux-2-pro" for job in fake.creates)
    assert fake.downloads == 3
    assert len(list((root / "assets").glob("*/images/candidates/*.png"))) == 3
    assert KEY.encode() not in b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


def test_a_killed_build_resumes_its_bfl_jobs_without_creating_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeBfl() as fake:
        root = project(tmp_path, monkeypatch, fake)
        fake.hold = True  # every job stays Pending: the build waits on them
        build = subprocess.Popen(
            [sys.executable, "-m", "doit", "-n", "3"],
            cwd=root,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while sum(job.polls > 0 for job in fake.creates) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)  # polled: the job id was on disk before the first poll
        os.killpg(build.pid, signal.SIGKILL)
        build.wait()
        assert len(fake.creates) == 3
        fake.hold = False  # the jobs finish while nobody watches
        assert run_cli(root, "poll") == 0
        assert capsys.readouterr().out.splitlines()[-1] == "imgbuild poll: 3 calls finished, 0 assets failed"
        assert len(fake.creates) == 3  # resumed, never created twice
        assert run_cli(root, "check") == 0


def test_a_moderated_request_is_retried_once_then_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = "  - id: refused\n    need: a refusal\n    prompt: FORBIDDEN Mia\n"
    with FakeBfl() as fake:
        root = project(tmp_path, monkeypatch, fake, refused)
        assert run_cli(root, "build") == 1
    assert len(fake.creates) == 2
    assert fake.downloads == 0
