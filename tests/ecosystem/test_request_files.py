"""The brief's tool contract: `imgbuild call REQUEST.json`, `imgbuild poll REQUEST.json` and
`imgbuild upload IMAGE` against the loopback fal, through the build's own code: the same
records, refusals, budget, retries and kill-safety as `imgbuild build`."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.servers import FakeProviders
from helpers import BATCH as HELPER_BATCH
from helpers import PERSONA, run_cli, write_project

from imgbuild.requests import request_from_record
from imgbuild.resolve import resolve

# The tests' batch (helpers.BATCH) with PNG output, which fal makes, and two assets: one per lighting.
BATCH = (
    HELPER_BATCH.replace("output_format: jpeg", "output_format: png")
    .replace("  environment: [home office, cafe]\n", "")
    .replace("fixed:\n  wardrobe: cream sweater", "fixed:\n  wardrobe: cream sweater\n  environment: home office")
)
CONFIG = """\
provider: fal
providers:
  fal:
    retries: {attempts: 12, base_delay: 0.01, max_delay: 0.05}
"""
ASSET = "covers.hook.lamp-light"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


def fal_project(root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch, config: str = CONFIG) -> Path:
    write_project(root, batches={"covers": BATCH}, personas={"mia": PERSONA}, config=config)
    monkeypatch.setenv("FAL_KEY", fake.keys["fal"])
    monkeypatch.setenv("IMGBUILD_FAL_BASE_URL", fake.base_urls["fal"])
    monkeypatch.setenv("IMGBUILD_FAL_STORAGE_URL", fake.base_urls["fal_storage"])
    return root


def request_record(root: Path, asset: str = ASSET) -> dict[str, Any]:
    """The normalized request a build would make for `asset`, as a hand-off file would hold it."""
    (req,) = [r for r in resolve(root).all_requests() if r.asset_id == asset]
    return req.record()


def write_json(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data, indent=2))
    return path


def run_request(root: Path) -> dict[str, Any]:
    (path,) = (root / "assets" / ASSET / "runs" / "image").glob("*/request.json")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def test_a_normalized_record_rebuilds_the_same_request(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", batches={"covers": BATCH})
    for req in resolve(root).all_requests():
        again, problems = request_from_record(req.record())
        assert problems == [] and again is not None
        assert again.request_hash == req.request_hash
        assert again.record() == req.record()


def test_call_records_a_candidate_exactly_as_a_build_does(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    built = fal_project(tmp_path / "built", fake, monkeypatch)
    (built / "batches" / "covers.yaml").write_text(BATCH.replace("candidates: 2", "candidates: 1"))
    called = fal_project(tmp_path / "called", fake, monkeypatch)
    (called / "batches" / "covers.yaml").write_text(BATCH.replace("candidates: 2", "candidates: 1"))
    assert run_cli(built, "build", f"covers:*{ASSET.split('.')[-1]}*") == 0
    request = write_json(tmp_path / "request.json", request_record(called))
    creates = len(fake.creates("fal"))
    capsys.readouterr()

    assert run_cli(called, "call", str(request)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"imgbuild call: {ASSET} candidate 1: 1 image(s): assets/{ASSET}/images/candidates/")
    assert len(fake.creates("fal")) == creates + 1
    # The same records as the build's: the request, the exact provider body, the asset's history.
    by_build, by_call = run_request(built), run_request(called)
    for key in ("request", "provider_body", "provider", "candidate", "kind"):
        assert by_call[key] == by_build[key], key
    events = [e["event"] for e in json.loads((called / "assets" / ASSET / "index.json").read_text())["history"]]
    assert events == ["submitted", "completed"]
    # The state module sees it as made: check and plan agree, and a build makes no call for it.
    assert run_cli(called, "explain", ASSET) == 0
    assert "status: current" in capsys.readouterr().out
    assert run_cli(called, "build") == 0
    assert len(fake.creates("fal")) == creates + 2  # only the other asset
    # A second call of the same request pays nothing: every candidate is made.
    capsys.readouterr()
    assert run_cli(called, "call", str(request)) == 0
    no_call = f"imgbuild call: {ASSET}: all 1 candidates already made for this request; no call\n"
    assert capsys.readouterr().out == no_call
    assert len(fake.creates("fal")) == creates + 2


def test_call_takes_a_runs_request_json_and_retries_as_a_build_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProviders(fault_rate=0.4, faults=("429", "500"), seed=3) as fake:
        root = fal_project(tmp_path / "p", fake, monkeypatch)
        record = request_record(root)
        run_file = write_json(
            tmp_path / "run-request.json", {"run_id": "x", "kind": "image", "candidate": 2, "request": record}
        )
        assert run_cli(root, "call", str(run_file)) == 0
        assert [r for r in fake.requests if r.fault]  # throttled and failed answers, retried
        assert fake.billed["fal"] == 1  # and one job made
        record_json = json.loads((root / "assets" / ASSET / "asset.json").read_text())
        assert [c["candidate"] for c in record_json["candidates"]] == [2]  # the run's candidate


def test_call_refuses_what_a_build_refuses(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = fal_project(tmp_path / "p", fake, monkeypatch, config=CONFIG + "budget: 0.001\n")
    record = request_record(root)
    # The budget: one draft image costs more than $0.001.
    assert run_cli(root, "call", str(write_json(tmp_path / "ok.json", record))) == 3
    assert "over the budget of $0.00 in imgbuild.yaml" in capsys.readouterr().err
    # A hand edit under the old hash, a size the model does not make, an unknown field value:
    # every problem at once, by file, line and field.
    bad = {**record, "size": "64x64", "prompt": record["prompt"] + " Edited."}
    path = write_json(tmp_path / "bad.json", bad)
    assert run_cli(root, "call", str(path)) == 2
    err = capsys.readouterr().err.splitlines()
    lines = path.read_text().splitlines()
    size_line = next(i for i, line in enumerate(lines, 1) if '"size"' in line)
    hash_line = next(i for i, line in enumerate(lines, 1) if '"request_hash"' in line)
    prompt_line = next(i for i, line in enumerate(lines, 1) if '"prompt_hash"' in line)
    assert err[-1] == "3 problems in the project's input; nothing was generated"
    assert f"bad.json:{size_line} size: size 64x64 is outside what image-seedream-v5-lite-text makes" in err
    assert any(e.startswith(f"bad.json:{hash_line} request_hash: ") for e in err)
    assert any(e.startswith(f"bad.json:{prompt_line} prompt_hash: ") for e in err)
    schema_bad = write_json(tmp_path / "schema.json", {**record, "output_format": "gif", "asset_dir": "../outside"})
    assert run_cli(root, "call", str(schema_bad)) == 2
    err = capsys.readouterr().err
    assert "output_format: 'gif' is not one of" in err
    assert "asset_dir: '../outside' must be a folder inside the project (relative, no '..')" in err
    assert fake.creates("fal") == []
    assert not (root / "assets").exists()


def test_poll_resumes_the_one_call_a_killed_call_left_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with FakeProviders(latency=30.0) as fake:
        root = fal_project(tmp_path / "p", fake, monkeypatch)
        request = write_json(tmp_path / "request.json", request_record(root))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        proc = subprocess.Popen(
            [sys.executable, "-m", "imgbuild", "-C", str(root), "call", str(request)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not fake.calls("fal", "status") and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert run_cli(root, "check") == 1
        assert "interrupted" in capsys.readouterr().out
        for job in list(fake._jobs.values()):
            job.done_at = 0.0
        assert run_cli(root, "poll", str(request)) == 0
        out = capsys.readouterr().out
        assert out.startswith(f"imgbuild poll: {ASSET} candidate 1: 1 image(s): ")
        assert len(fake.creates("fal")) == 1  # resumed, not made again
        assert run_cli(root, "poll", str(request)) == 0
        assert capsys.readouterr().out == f"imgbuild poll: {ASSET}: nothing in flight for this request\n"


def test_upload_prints_a_reusable_url_and_records_it(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from PIL import Image

    root = fal_project(tmp_path / "p", fake, monkeypatch)
    (root / "refs").mkdir()
    Image.new("RGB", (32, 32), (200, 120, 90)).save(root / "refs" / "face.png")
    assert run_cli(root, "upload", str(root / "refs" / "face.png")) == 0
    url = capsys.readouterr().out.strip()
    (upload,) = fake.uploads
    assert url == upload.url and upload.data == (root / "refs" / "face.png").read_bytes()
    (manifest,) = (root / "assets" / "uploads" / "upload").glob("*/manifest.json")
    assert json.loads(manifest.read_text())["url"] == url
    cache = json.loads((root / ".imgbuild" / "uploads.json").read_text())
    assert [entry["url"] for entry in cache.values()] == [url]  # a build's edit reuses it
    # Not an image, or not in the project: exit 2, nothing sent.
    (root / "notes.txt").write_text("hello")
    assert run_cli(root, "upload", str(root / "notes.txt")) == 2
    outside = tmp_path / "outside.png"
    shutil.copy(root / "refs" / "face.png", outside)
    assert run_cli(root, "upload", str(outside)) == 2
    assert len(fake.uploads) == 1
