"""A build's store keeps the records it writes in memory (AssetStore.keep_records).

A paid call reads asset.json, index.json and the asset's calls file back a dozen times between
submit and complete; under the build lock no other process writes them, so the build's store
reads each at most once and writes through to disk exactly as before. Any other store (the
studio's, a command's) still reads the disk every time.
"""

from __future__ import annotations

import collections
from pathlib import Path
from typing import Any

import pytest

import imgbuild.records.store as store_module
from imgbuild.build.session import BuildSession
from imgbuild.records import AssetStore, KeptImage
from imgbuild.records.model import RequestFacts

ASSET_DIR = "assets/cover.one"


def _facts(prompt: str = "a cover") -> RequestFacts:
    return RequestFacts(
        asset_id="cover.one",
        asset_dir=ASSET_DIR,
        batch="covers",
        shot="hook",
        purpose="covers",
        persona="mia",
        variant_test=None,
        request_hash="a" * 64,
        prompt_hash="b" * 64,
        request={"prompt": prompt, "size": "2048x2048", "attrs": {"light": "lámpara"}},
        evidence=(),
    )


def _call(store: AssetStore, run: str, candidate: int) -> None:
    """One paid call as a build records it: submit, answer, image, complete."""
    facts = _facts()
    store.submit(facts, run, candidate, provider="ark", provider_body={"prompt": "a cover"})
    store.save_response(ASSET_DIR, run, {"data": [{"url": "https://example.test/x.png"}]})
    store.write_image(ASSET_DIR, f"images/candidates/{run}.png", b"png bytes")
    kept = KeptImage(candidate, None, f"images/candidates/{run}.png", "c" * 64, 9, 1, 1, None)
    store.complete(facts, run, candidate, [kept], errors=[], usage={"generated_images": 1}, seconds=1.0)


@pytest.fixture
def disk_reads(monkeypatch: pytest.MonkeyPatch) -> collections.Counter[str]:
    reads: collections.Counter[str] = collections.Counter()
    real = store_module.read_json_file

    def counting(path: Path | str, shown: str) -> Any:
        path = Path(path)
        reads["calls" if ".imgbuild/calls" in path.as_posix() else path.name] += 1
        return real(path, shown)

    monkeypatch.setattr(store_module, "read_json_file", counting)
    return reads


def test_a_builds_store_reads_each_record_at_most_once_per_call(
    tmp_path: Path, disk_reads: collections.Counter[str]
) -> None:
    store = AssetStore(tmp_path)
    store.keep_records()
    _call(store, "20261201T000000000-aaaaaa", 1)
    assert disk_reads["asset.json"] <= 1 and disk_reads["index.json"] <= 1 and disk_reads["calls"] <= 1

    # what is made is what a fresh reader of the disk sees
    fresh = AssetStore(tmp_path)
    record = fresh.read_asset(ASSET_DIR)
    assert record is not None and [c.run for c in record.candidates] == ["20261201T000000000-aaaaaa"]
    history = fresh.read_history(ASSET_DIR)
    assert history is not None and [e.event for e in history.events] == ["submitted", "completed"]
    assert fresh.pending(ASSET_DIR) == ()


def test_kept_records_write_the_same_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1796083200")  # the same times in both projects
    files = {}
    for keep in (False, True):
        root = tmp_path / f"keep-{keep}"
        root.mkdir()
        store = AssetStore(root)
        if keep:
            store.keep_records()
        for candidate in (1, 2):
            run = store.new_run_id(ASSET_DIR, f"{'a' * 64}:{candidate}")
            _call(store, run, candidate)
        store.refresh_request(_facts(prompt="a cover, new words"))
        files[keep] = {
            p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*"))
            if p.is_file() and not p.relative_to(root).as_posix().startswith(".imgbuild/tmp/")
        }
    assert files[True] == files[False]
    assert "assets/cover.one/asset.json" in files[True]


def test_a_store_that_keeps_nothing_reads_what_another_writer_wrote(tmp_path: Path) -> None:
    """The studio's and the commands' stores: a decision made by another process is seen."""
    store = AssetStore(tmp_path)
    _call(store, "20261201T000000000-aaaaaa", 1)
    assert store.read_asset(ASSET_DIR) is not None
    other = AssetStore(tmp_path)
    other.refresh_request(_facts(prompt="changed elsewhere"))
    record = store.read_asset(ASSET_DIR)
    assert record is not None and record.request["prompt"] == "changed elsewhere"


def test_an_asset_with_no_call_in_flight_is_not_kept(tmp_path: Path) -> None:
    """Memory stays with the calls in flight: a 100,000-asset build keeps only those."""
    store = AssetStore(tmp_path)
    store.keep_records()
    _call(store, "20261201T000000000-aaaaaa", 1)
    assert store._kept == {}


def test_a_build_keeps_its_records_once_it_holds_the_build_lock(tmp_path: Path) -> None:
    session = BuildSession(tmp_path, "preview")
    try:
        assert session.store._kept is None  # before the lock another build may be writing
        session.hold_build_lock()
        assert session.store._kept is not None
    finally:
        session.close()
