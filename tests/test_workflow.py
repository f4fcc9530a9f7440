"""End-to-end behaviour a user sees: build, rebuild nothing, change one thing, check in CI."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from helpers import BATCH, TEMPLATE, copy_repo_layout, run_cli, run_doit, snapshot, write_project


def asset_dirs(root: Path) -> list[str]:
    return sorted(p.name for p in (root / "assets").iterdir())


def history_events(root: Path) -> int:
    return sum(len(json.loads(p.read_text())["history"]) for p in (root / "assets").glob("*/index.json"))


def test_examples_build_then_noop(tmp_path: Path) -> None:
    """The README's first command: `doit` at the repository root builds every example asset;
    a second `doit` generates nothing and says so."""
    project = copy_repo_layout(tmp_path / "repo")

    first = run_doit(project)
    assert first.returncode == 0, first.stderr
    last = first.stdout.strip().splitlines()[-1]  # the README quotes it, with the time it took
    assert re.fullmatch(r"imgbuild: 21 generated, 0 up to date, 0 failed, 0 not started \(\d+\.\d s\)", last), last
    assets = project / "batches" / "assets"
    assert len(list(assets.glob("*/asset.json"))) == 8
    assert len(list(assets.glob("*/images/candidates/*"))) == 21
    assert (project / "batches" / "covers.lock.json").is_file()
    assert (project / "batches" / "persona-candidates.lock.json").is_file()
    before = snapshot(project / "batches")

    second = run_doit(project)
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "imgbuild: all 21 images up to date, nothing to generate"
    assert snapshot(project / "batches") == before  # not one record touched, not one call made


def test_adding_a_vary_value_builds_only_new_assets(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    before = snapshot(tmp_path / "assets")
    ids_before = asset_dirs(tmp_path)
    assert len(ids_before) == 4

    write_project(
        tmp_path,
        personas={"mia": _persona_with_lighting("noon light")},
        batches={
            "covers": BATCH.replace(
                "lighting: [morning light, lamp light]", "lighting: [morning light, lamp light, noon light]"
            )
        },
    )
    assert run_cli(tmp_path, "build") == 0
    after = snapshot(tmp_path / "assets")
    ids_after = asset_dirs(tmp_path)
    assert set(ids_before) < set(ids_after)  # nothing renamed
    assert sorted(set(ids_after) - set(ids_before)) == [
        "covers.hook.cafe.noon-light",
        "covers.hook.home-office.noon-light",
    ]
    untouched = {k: v for k, v in after.items() if k.split("/")[0] in ids_before}
    assert untouched == before  # records of untouched assets are byte-identical


def _persona_with_lighting(extra: str) -> str:
    from helpers import PERSONA

    return PERSONA.replace("lighting: [morning light, lamp light]", f"lighting: [morning light, lamp light, {extra}]")


def test_template_change_regenerates_exactly_its_assets(tmp_path: Path) -> None:
    two_shots = BATCH + ("  - id: desk\n    need: a desk shot\n    template: desk.j2\n    candidates: 1\n")
    desk = "Desk shot of {{ persona.name }} in a {{ attrs.environment }}, {{ attrs.lighting }}.\n"
    write_project(tmp_path, batches={"covers": two_shots}, templates={"cover.j2": TEMPLATE, "desk.j2": desk})
    assert run_cli(tmp_path, "build") == 0
    before = snapshot(tmp_path / "assets")

    write_project(tmp_path, batches={"covers": two_shots}, templates={"cover.j2": TEMPLATE, "desk.j2": "Close " + desk})
    assert run_cli(tmp_path, "build") == 0
    after = snapshot(tmp_path / "assets")
    changed = {k.split("/")[0] for k in set(after) | set(before) if after.get(k) != before.get(k)}
    assert changed == {
        "covers.desk.cafe.lamp-light",
        "covers.desk.cafe.morning-light",
        "covers.desk.home-office.lamp-light",
        "covers.desk.home-office.morning-light",
    }
    # every desk asset gained exactly one new candidate; the old one is kept, never overwritten
    for asset in changed:
        record = json.loads(after[f"{asset}/asset.json"])
        assert len(record["candidates"]) == 2
        assert record["candidates"][0]["request_hash"] != record["candidates"][1]["request_hash"]
        old_file = f"{asset}/{record['candidates'][0]['file']}"
        assert after[old_file] == before[old_file]


def test_reformatting_yaml_rebuilds_nothing(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    before = snapshot(tmp_path)
    reformatted = """\
# the same batch, written differently
shots:
  - candidates: 2
    template: "cover.j2"
    id: hook
    editable:
      - wardrobe
      - lighting
    need: 'a first frame'
vary:
  lighting:     [ morning light,   lamp light ]   # same values
  environment:
    - home office
    - cafe
fixed: {wardrobe: cream sweater}
output_format: jpeg
aspect_ratio: '1:1'
quality_reason: >-
  tests only need small placeholders
quality: draft
output: assets
source_basis: [{path: evidence/mia.md}]
persona: mia
purpose: "covers for tests"
"""
    write_project(tmp_path, batches={"covers": reformatted})
    before["batches/covers.yaml"] = reformatted.encode()
    assert run_cli(tmp_path, "build") == 0
    after = snapshot(tmp_path)
    # The same requests and records; the lock file names the manifest's new bytes, and only that
    # (its sources: what lets a fresh clone's check hash the files instead of parsing them).
    lock, was = (json.loads(d.pop("batches/covers.lock.json")) for d in (after, before))
    assert after == before
    assert lock["sources"]["files"]["batches/covers.yaml"] == hashlib.sha256(reformatted.encode()).hexdigest()
    lock["sources"]["files"]["batches/covers.yaml"] = was["sources"]["files"]["batches/covers.yaml"]
    assert {k: v for k, v in lock.items() if k != "seal_sha256"} == {k: v for k, v in was.items() if k != "seal_sha256"}


def test_template_rewrap_rebuilds_nothing(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    before = snapshot(tmp_path / "assets")
    write_project(
        tmp_path,
        templates={
            "cover.j2": TEMPLATE.replace(",\nin a", ", in a").replace(
                " {{ attrs.lighting }}", "\n   {{ attrs.lighting }}"
            )
        },
    )
    assert run_cli(tmp_path, "build") == 0
    assert snapshot(tmp_path / "assets") == before


def fresh_clone(source: Path, target: Path) -> Path:
    """What CI sees: the committed files, no .imgbuild/ (no doit database, no temp files)."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(".imgbuild"))
    return target


def test_check_on_a_fresh_clone(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = write_project(tmp_path / "work")
    assert run_cli(work, "build") == 0
    clone = fresh_clone(work, tmp_path / "clone")
    capsys.readouterr()

    assert run_cli(clone, "check") == 0
    assert capsys.readouterr().out == "imgbuild check: all 4 assets match their manifests\n"
    assert not (clone / ".imgbuild" / "doit.db").exists()

    # a changed fixed value: every asset is stale, and the line names the field
    write_project(clone, batches={"covers": BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer")})
    assert run_cli(clone, "check") == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines[:4] == [
        f"changed: assets/{asset}: fixed.wardrobe: 'cream sweater' → 'navy blazer'; prompt changed"
        for asset in (
            "covers.hook.home-office.morning-light",
            "covers.hook.home-office.lamp-light",
            "covers.hook.cafe.morning-light",
            "covers.hook.cafe.lamp-light",
        )
    ]
    assert lines[4] == "imgbuild check: 4 of 4 assets need attention (run `imgbuild plan`, then `doit`)"


def test_check_names_changed_setting_and_deleted_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    work = write_project(tmp_path / "work")
    assert run_cli(work, "build") == 0
    clone = fresh_clone(work, tmp_path / "clone")
    record = json.loads((clone / "assets/covers.hook.cafe.lamp-light/asset.json").read_text())
    # Candidates are listed in the order their calls finished, which a parallel build does not fix.
    lost = record["candidates"][1]
    image = lost["file"]
    (clone / "assets/covers.hook.cafe.lamp-light" / image).unlink()
    capsys.readouterr()

    assert run_cli(clone, "check") == 1
    assert capsys.readouterr().out.splitlines() == [
        f"missing-image: assets/covers.hook.cafe.lamp-light: image missing: {image} (candidate {lost['candidate']})",
        "imgbuild check: 1 of 4 assets need attention (run `imgbuild plan`, then `doit`)",
    ]

    write_project(clone, batches={"covers": BATCH.replace('aspect_ratio: "1:1"', 'aspect_ratio: "16:9"')})
    assert run_cli(clone, "check") == 1
    out = capsys.readouterr().out
    assert (
        "changed: assets/covers.hook.home-office.morning-light:"
        " aspect_ratio: '1:1' → '16:9'; size: '2048x2048' → '2848x1600'"
    ) in out


def test_check_reports_orphans_and_rebuild_fixes_stale(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    write_project(
        tmp_path, batches={"covers": BATCH.replace("environment: [home office, cafe]", "environment: [cafe]")}
    )
    capsys.readouterr()
    assert run_cli(tmp_path, "check") == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (
        "orphaned: assets/covers.hook.home-office.lamp-light: no manifest declares this asset any more"
        " (was in batch covers) — restore its values, or `imgbuild prune` it"
    )
    assert len(out) == 3

    shutil.rmtree(tmp_path / "assets/covers.hook.home-office.lamp-light")
    shutil.rmtree(tmp_path / "assets/covers.hook.home-office.morning-light")
    assert run_cli(tmp_path, "check") == 0


def test_more_candidates_builds_only_the_new_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    write_project(tmp_path, batches={"covers": BATCH.replace("candidates: 2", "candidates: 3")})
    capsys.readouterr()
    assert run_cli(tmp_path, "plan") == 0
    assert "covers: 4 assets (0 variant tests), 12 candidates; 4 to generate (4 incomplete);" in capsys.readouterr().out
    assert run_cli(tmp_path, "build") == 0
    assert "imgbuild: 4 generated, 8 up to date, 0 failed" in capsys.readouterr().out
    assert run_cli(tmp_path, "check") == 0


def test_deleted_image_is_rebuilt_and_the_lock_follows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    lock_before = json.loads((tmp_path / "batches/covers.lock.json").read_text())
    entry = lock_before["assets"]["covers.hook.cafe.lamp-light"]
    deleted = tmp_path / entry["images"][0]["file"]
    deleted.unlink()
    capsys.readouterr()
    assert run_cli(tmp_path, "build") == 0
    assert "imgbuild: 1 generated, 7 up to date, 0 failed" in capsys.readouterr().out
    lock_after = json.loads((tmp_path / "batches/covers.lock.json").read_text())
    new_entry = lock_after["assets"]["covers.hook.cafe.lamp-light"]
    assert new_entry["images"][0]["file"] != entry["images"][0]["file"]
    assert (tmp_path / new_entry["images"][0]["file"]).is_file()
    assert {k: v for k, v in lock_after["assets"].items() if k != "covers.hook.cafe.lamp-light"} == {
        k: v for k, v in lock_before["assets"].items() if k != "covers.hook.cafe.lamp-light"
    }
    assert run_cli(tmp_path, "check") == 0
