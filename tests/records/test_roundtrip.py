"""Every record imgbuild writes reads into its typed model and writes back byte for byte.

A build with the preview provider (an identity set, an approval, an edit from the approved image
after an editable attribute changed, a rejection), a kill's pending call, and a build against a
loopback fake of a hosted provider: each asset.json, index.json, lock file and
.imgbuild/calls/ file is read with its model and written again with json_bytes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes.servers import FakeProviders
from helpers import BATCH, run_cli, write_project

from imgbuild.records import AssetStore, new_run_id
from imgbuild.records.atomic import json_bytes
from imgbuild.records.model import AssetRecord, History, LockFile, PendingCalls
from imgbuild.resolve import resolve

ASSET = "covers.hook.home-office.morning-light"

SET_SHOT = """\
  - id: set
    need: an identity set in one call
    template: cover.j2
    candidates: 1
    max_images: 3
"""

MODELS: dict[str, Callable[[Any], Any]] = {
    "asset.json": AssetRecord.from_json,
    "index.json": History.from_json,
    "lock": LockFile.from_json,
    "calls": PendingCalls.from_json,
}


def records_of(root: Path) -> dict[str, list[Path]]:
    """Every record file of the project, by kind."""
    return {
        "asset.json": sorted(root.glob("assets/*/asset.json")),
        "index.json": sorted(root.glob("assets/*/index.json")),
        "lock": sorted(root.glob("batches/*.lock.json")),
        "calls": sorted(root.glob(".imgbuild/calls/**/*.json")),
    }


def assert_round_trip(root: Path) -> dict[str, int]:
    """Read and write back every record; returns how many of each kind there were."""
    counts = {}
    for kind, paths in records_of(root).items():
        for path in paths:
            data = path.read_bytes()
            model = MODELS[kind](json.loads(data))
            assert json_bytes(model.to_json()) == data, path.relative_to(root).as_posix()
        counts[kind] = len(paths)
    return counts


def test_preview_records_round_trip(tmp_path: Path) -> None:
    root = write_project(tmp_path / "p", batches={"covers": BATCH + SET_SHOT})
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "1", "--pass", "all", "--by", "ana") == 0
    assert run_cli(root, "reject", ASSET, "2", "--fail", "realism=hands melt", "--by", "bo") == 0
    assert run_cli(root, "approve", "covers.set.home-office.morning-light", "1.2", "--pass", "all") == 0
    assert_round_trip(root)

    # an editable attribute changes: the approved asset is edited from its approval
    changed = BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer") + SET_SHOT
    write_project(root, batches={"covers": changed})
    assert run_cli(root, "build") == 0
    record = json.loads((root / "assets" / ASSET / "asset.json").read_text())
    assert len(record["candidates"]) == 4 and record["approval"]["by"] == "ana"
    assert any(
        e["event"] == "rejected" for e in json.loads((root / "assets" / ASSET / "index.json").read_text())["history"]
    )

    # a call in flight, as a kill leaves it
    write_project(root, batches={"covers": changed.replace("navy blazer", "olive overshirt")})
    req = resolve(root).find(ASSET)
    AssetStore(root).submit(req.facts, new_run_id(), 1, provider="preview", provider_body={})

    counts = assert_round_trip(root)
    assert counts == {"asset.json": 8, "index.json": 8, "lock": 1, "calls": 1}


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.mark.parametrize("provider", ["replicate", "fal"])
def test_hosted_records_round_trip(
    provider: str, fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hosted records carry more: remote URLs, uploads of reference images, identity sets."""
    from providers.test_hosted import hosted_project

    root = hosted_project(tmp_path / "p", fake, provider, monkeypatch, concurrency=1)
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", "covers.set", "1.3", "--pass", "all", "--by", "ana") == 0
    assert run_cli(root, "reject", "covers.edit", "1", "--fail", "realism") == 0

    counts = assert_round_trip(root)
    assert counts == {"asset.json": 4, "index.json": 4, "lock": 1, "calls": 0}
    record = json.loads((root / "assets" / "covers.set" / "asset.json").read_text())
    assert all(c["remote_url"] for c in record["candidates"])
