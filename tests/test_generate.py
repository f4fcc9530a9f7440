"""Paid work is never lost: a failed download is retried from the saved answer, not re-bought."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, run_cli, write_project

from imgbuild import models, providers
from imgbuild.providers import Call, Job, Output, Response
from imgbuild.providers.preview import PreviewProvider

CALLS: dict[str, int] = {"generate": 0, "download": 0}
BROKEN = {"download": True}


class FlakyDownloads(PreviewProvider):
    """The preview provider, except that one asset's download is cut short while BROKEN."""

    name = "flaky"

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response:
        CALLS["generate"] += 1
        return super().generate(call, on_job)

    def download(self, call: Call, output: Output) -> bytes:
        CALLS["download"] += 1
        data = super().download(call, output)
        broken = BROKEN["download"] and call.request.asset_id == "covers.hook.home-office.morning-light"
        return data[: len(data) // 2] if broken else data


@pytest.fixture
def flaky() -> Iterator[None]:
    providers.register("flaky")(FlakyDownloads)
    families = models._registry()["families"]
    for family in families.values():
        family["provider_models"]["flaky"] = "flaky/" + family["provider_models"]["preview"]
    models._models.cache_clear()
    CALLS.update(generate=0, download=0)
    BROKEN["download"] = True
    yield
    BROKEN["download"] = False
    del providers._REGISTRY["flaky"]
    for family in families.values():
        del family["provider_models"]["flaky"]
    models._models.cache_clear()


def read(path: Path) -> Any:
    return json.loads(path.read_text())


def test_cut_download_fails_the_asset_and_the_rerun_reuses_the_answer(
    tmp_path: Path, flaky: None, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path, batches={"covers": BATCH.replace("candidates: 2", "candidates: 1")})
    assert run_cli(tmp_path, "build", "--provider", "flaky", "-j", "1") == 1
    out = capsys.readouterr().out
    assert "FAILED covers:covers.hook.home-office.morning-light.c1: covers.hook.home-office.morning-light" in out
    assert "downloaded file is not a whole image" in out
    assert "imgbuild: 3 generated, 0 up to date, 1 failed" in out  # the other assets went on
    assert CALLS["generate"] == 4

    asset = tmp_path / "assets/covers.hook.home-office.morning-light"
    record = read(asset / "asset.json")
    assert record["candidates"] == []
    assert "pending" not in record  # calls in flight are internal state, under .imgbuild/calls/
    [pending] = read(tmp_path / ".imgbuild/calls" / "assets/covers.hook.home-office.morning-light.json")["pending"]
    assert (tmp_path / ".imgbuild/exchanges" / asset.relative_to(tmp_path) / pending["run"] / "response.json").is_file()
    events = [e["event"] for e in read(asset / "index.json")["history"]]
    assert events == ["submitted", "keep-failed"]
    assert not list(asset.glob("images/candidates/*"))  # nothing half-written was kept

    BROKEN["download"] = False
    assert run_cli(tmp_path, "build", "--provider", "flaky", "-j", "1") == 0
    assert CALLS["generate"] == 4  # no new call: the failed asset was finished from its saved answer
    record = read(asset / "asset.json")
    assert [c["run"] for c in record["candidates"]] == [pending["run"]]
    assert not (tmp_path / ".imgbuild/calls" / "assets/covers.hook.home-office.morning-light.json").exists()
    assert [e["event"] for e in read(asset / "index.json")["history"]] == ["submitted", "keep-failed", "completed"]
