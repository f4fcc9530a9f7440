"""fal's storage is public with no expiry by default: every submit and storage upload imgbuild
sends asks for a short lifecycle, and submits turn payload storage off. Asserted on the
requests the loopback fal received, and on what the upload cache then does with the URL."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from fakes.servers import FakeProviders
from helpers import run_cli
from test_hosted import fake, hosted_project  # noqa: F401  (the fixture and the project builder)

DAY = 24 * 3600


def test_submits_and_uploads_ask_for_a_short_life_and_no_payload_storage(
    fake: FakeProviders,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = hosted_project(tmp_path / "p", fake, "fal", monkeypatch, concurrency=1)
    before = time.time()
    assert run_cli(root, "build") == 0

    creates = fake.creates("fal")
    uploads = fake.calls("fal", "upload")
    assert len(creates) == 4 and uploads  # text, edit, set and edit-set; the reference uploaded
    for request in creates:
        assert json.loads(request.headers["x-fal-object-lifecycle-preference"]) == {"expiration_duration_seconds": DAY}
        assert request.headers["x-fal-store-io"] == "0"
    (initiate,) = [r for r in uploads if r.method == "POST"]
    assert json.loads(initiate.headers["x-fal-object-lifecycle-preference"]) == {"expiration_duration_seconds": DAY}
    # The signed PUT carries neither the key nor our headers: the initiate call set the lifecycle.
    (put,) = [r for r in uploads if r.method == "PUT"]
    assert "authorization" not in put.headers

    # The upload cache knows the URL expires, so a later build uploads again instead of handing
    # fal a URL that is gone.
    cache = json.loads((root / ".imgbuild" / "uploads.json").read_text())
    (entry,) = cache.values()
    assert before + DAY - 5 <= entry["expires"] <= time.time() + DAY


def test_lock_files_keep_no_provider_url_and_an_old_one_is_rewritten_without_a_call(
    fake: FakeProviders,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = hosted_project(tmp_path / "p", fake, "fal", monkeypatch, concurrency=1)
    assert run_cli(root, "build") == 0
    lock_file = root / "batches" / "covers.lock.json"
    text = lock_file.read_text()
    lock = json.loads(text)
    assert lock["schema"] == "imgbuild.lock/2"
    assert "http://" not in text and "https://" not in text and "remote_url" not in text
    for entry in lock["assets"].values():
        assert all(set(image) <= {"candidate", "image", "file", "sha256"} for image in entry["images"])
    # The run records still trace the call: the URLs the provider returned are in asset.json.
    record = json.loads((root / "assets" / "covers.text" / "asset.json").read_text())
    served = [c["remote_url"] for c in record["candidates"]] + [u.url for u in fake.uploads]
    assert all(url.startswith(fake.url) for url in served)
    assert not any(url in text for url in served)

    # A lock file written by the version before (with remote URLs) vouches for nothing; the next
    # build rewrites it from the records, making no call.
    old = json.loads(text)
    old["schema"] = "imgbuild.lock/1"
    for entry in old["assets"].values():
        entry["remote_urls"] = [f"{fake.url}/files/x.png"]
    lock_file.write_text(json.dumps(old))
    creates = len(fake.creates("fal"))
    assert run_cli(root, "check") == 0  # decided from asset.json meanwhile: still current
    assert run_cli(root, "build") == 0
    assert len(fake.creates("fal")) == creates
    assert json.loads(lock_file.read_text()) == lock
