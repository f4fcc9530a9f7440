"""Records of an older schema are read and migrated; a newer one stops (tests/test_state.py).

asset.json version 1 kept the calls in flight in its own ``pending`` list. Read now, those calls
are calls in flight as before; the next write of the asset moves them to .imgbuild/calls/, and a
call closed after that never comes back from the old list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import BATCH, run_cli, write_project

from imgbuild.records import AssetStore
from imgbuild.records.model import PendingCall, PendingCalls
from imgbuild.resolve import resolve

ASSET = "covers.hook.cafe.lamp-light"
ASSET_DIR = f"assets/{ASSET}"


def _as_version_1(root: Path, pending: list[dict[str, object]]) -> None:
    path = root / ASSET_DIR / "asset.json"
    data = json.loads(path.read_text())
    data["schema"] = "imgbuild.asset/1"
    data["pending"] = pending
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _calls_file(root: Path) -> Path:
    return root / ".imgbuild/calls" / f"{ASSET_DIR}.json"


def test_a_version_1_record_reads_and_its_calls_in_flight_move_with_the_next_write(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    _as_version_1(tmp_path, [])
    capsys.readouterr()
    assert run_cli(tmp_path, "check") == 0  # a version-1 record with nothing in flight reads as it is

    # one more candidate per asset, and a call for it that a killed version-1 build left in flight
    write_project(tmp_path, batches={"covers": BATCH.replace("candidates: 2", "candidates: 3")})
    req = resolve(tmp_path).find(ASSET)
    call = {
        "run": "20261201T000000000-abcdef",
        "candidate": 3,
        "request_hash": req.request_hash,
        "state": "submitted",
        "job": {"provider": "replicate", "id": "job-1", "urls": {}},
        "submitted": "2026-12-01T00:00:00.000Z",
    }
    _as_version_1(tmp_path, [call])
    store = AssetStore(tmp_path)
    [pending] = store.pending(ASSET_DIR)
    assert (pending.run, pending.candidate, pending.job and pending.job.id) == (call["run"], 3, "job-1")
    assert not _calls_file(tmp_path).exists()  # reading wrote nothing

    capsys.readouterr()
    assert run_cli(tmp_path, "explain", ASSET) == 0
    out = capsys.readouterr().out
    assert "status: interrupted, candidates 3 to generate" in out
    assert f"call {call['run']} (candidate 3): possibly billed; resumable without a new call" in out

    # the next write of the asset (a review) moves the call and writes version 2
    assert run_cli(tmp_path, "approve", ASSET, "1", "--pass", "all", "--by", "ana") == 0
    data = json.loads((tmp_path / ASSET_DIR / "asset.json").read_text())
    assert data["schema"] == "imgbuild.asset/2" and "pending" not in data
    assert [c["run"] for c in json.loads(_calls_file(tmp_path).read_text())["pending"]] == [call["run"]]
    assert [c.run for c in AssetStore(tmp_path).pending(ASSET_DIR)] == [call["run"]]


def test_a_call_closed_after_the_move_does_not_come_back_from_the_old_list(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    req = resolve(tmp_path).find(ASSET)
    call = {
        "run": "20261201T000000000-abcdef",
        "candidate": 1,
        "request_hash": req.request_hash,
        "state": "submitted",
        "job": None,
        "submitted": "2026-12-01T00:00:00.000Z",
    }
    _as_version_1(tmp_path, [call])
    store = AssetStore(tmp_path)
    store.fail(req.facts, str(call["run"]), 1, "closed by the test")
    assert AssetStore(tmp_path).pending(ASSET_DIR) == ()
    data = json.loads((tmp_path / ASSET_DIR / "asset.json").read_text())
    assert data["schema"] == "imgbuild.asset/2" and "pending" not in data


def test_a_call_left_in_flight_after_its_images_were_kept_is_dropped_by_the_next_build(tmp_path: Path) -> None:
    """A kill between asset.json (candidates kept) and the calls file (call closed) leaves the
    call listed in flight. The store never resumes it, and the next build that does any work
    rewrites the calls file without it, so no record says a made image is still being made."""
    root = write_project(tmp_path, batches={"covers": BATCH})
    assert run_cli(root, "build") == 0
    req = resolve(root).find(ASSET)
    store = AssetStore(root)
    record = store.read_asset(req.asset_dir)
    assert record is not None
    made = record.candidates[0]
    # the calls file as the kill left it: the made call still listed
    calls = _calls_file(root)
    calls.parent.mkdir(parents=True, exist_ok=True)
    left = PendingCall(made.run, made.candidate, made.request_hash, "submitted", None, "2026-12-01T00:00:00Z")
    calls.write_text(json.dumps(PendingCalls(req.asset_id, (left,)).to_json()))
    assert store.pending(req.asset_dir) == ()  # never resumed: its images are kept

    # any build that does work tidies it away: here it makes another asset's lost image again
    other = store.read_asset("assets/covers.hook.cafe.morning-light")
    assert other is not None
    (root / "assets/covers.hook.cafe.morning-light" / other.candidates[0].file).unlink()
    assert run_cli(root, "build") == 0
    assert not calls.exists()
