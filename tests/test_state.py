"""What the state module tells a user, through the commands that ask it: evidence drift, a call a
kill left open, records that cannot be read, orphans and prune, a rename that keeps its records,
and a record that is outdated although its request is the same."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, run_cli, run_doit, write_project

from imgbuild.records import AssetStore, new_run_id
from imgbuild.resolve import resolve

ASSET = "covers.hook.cafe.lamp-light"
ASSETS = (
    "covers.hook.home-office.morning-light",
    "covers.hook.home-office.lamp-light",
    "covers.hook.cafe.morning-light",
    "covers.hook.cafe.lamp-light",
)


def output(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def asset_json(root: Path, asset: str = ASSET) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "assets" / asset / "asset.json").read_text())
    return data


def lock_json(root: Path, batch: str = "covers") -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "batches" / f"{batch}.lock.json").read_text())
    return data


@pytest.fixture
def built(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = write_project(tmp_path / "p")
    assert run_cli(root, "build") == 0
    output(capsys)
    return root


# -- evidence drift ------------------------------------------------------------------------------


def test_changed_evidence_is_reported_and_fails_only_under_strict(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = hashlib.sha256(b"# Mia benchmark\n").hexdigest()
    new = hashlib.sha256(b"# Mia benchmark, revised\n").hexdigest()
    (built / "evidence" / "mia.md").write_text("# Mia benchmark, revised\n")
    drift = [
        f"evidence: assets/{asset}: evidence/mia.md changed: images made from {old[:12]}, now {new[:12]}"
        for asset in ASSETS
    ]

    assert run_cli(built, "check") == 0
    assert output(capsys) == [
        *drift,
        "imgbuild check: 4 of 4 assets were made from evidence that has changed since (fails under --strict)",
        "imgbuild check: all 4 assets match their manifests",
    ]
    assert run_cli(built, "check", "--strict") == 1
    assert output(capsys) == [*drift, "imgbuild check: 4 of 4 assets were made from evidence that has changed since"]

    # evidence is not part of the request: nothing is made again, and the lock file keeps
    # stating the evidence the images were made from, not what the manifest cites now
    assert run_cli(built, "build") == 0
    assert output(capsys)[-1] == "imgbuild: all 8 images up to date, nothing to generate"
    done = run_doit(built)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "imgbuild: all 8 images up to date, nothing to generate"
    for asset in ASSETS:
        assert lock_json(built)["assets"][asset]["source_basis"] == [
            {"anchor": None, "path": "evidence/mia.md", "sha256": old}
        ]
    assert run_cli(built, "check", "--strict") == 1


# -- a call a kill left open -----------------------------------------------------------------------


def test_a_call_left_open_by_a_kill_is_interrupted_and_possibly_billed(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # the manifest changes, a build records its call for one asset and is killed before any answer
    write_project(built, batches={"covers": BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer")})
    req = resolve(built).find(ASSET)
    run = new_run_id()
    AssetStore(built).submit(req.facts, run, 1, provider="preview", provider_body={})
    reason = "interrupted: 1 call of the current request never finished (1 possibly billed)"

    assert run_cli(built, "status") == 0
    assert output(capsys) == [
        "covers: 0/4 current (3 changed, 1 interrupted), 1 interrupted calls possibly billed, 0 approved,"
        " 4 unreviewed; image-seedream-v5-lite-text"
    ]
    assert run_cli(built, "check") == 1
    lines = output(capsys)
    assert f"interrupted: assets/{ASSET}: {reason}" in lines
    assert lines[-1] == "imgbuild check: 4 of 4 assets need attention (run `imgbuild plan`, then `doit`)"
    assert run_cli(built, "explain", ASSET) == 0
    lines = output(capsys)
    assert "  status: interrupted, candidates 1, 2 to generate" in lines
    assert f"    {reason}" in lines
    assert f"    call {run} (candidate 1): possibly billed; a rebuild makes it again" in lines
    assert run_cli(built, "plan") == 0
    lines = output(capsys)
    assert lines[1] == (
        "covers: 4 assets (0 variant tests), 8 candidates; 8 to generate (3 changed, 1 interrupted);"
        " image-seedream-v5-lite-text at draft"
    )
    assert lines[2] == (
        "  1 paid call of interrupted builds may have been billed and would be made again"
        " (no answer or job was recorded)"
    )
    assert run_cli(built, "ls", "--state", "interrupted") == 0
    assert output(capsys) == [f"{ASSET}  interrupted  unreviewed  image-seedream-v5-lite-text  {reason}"]

    # a fresh clone has no .imgbuild/: the committed history still says so
    shutil.rmtree(built / ".imgbuild")
    assert run_cli(built, "check") == 1
    assert f"interrupted: assets/{ASSET}: {reason}" in output(capsys)

    # the next build makes the call again and closes the open one in the history
    assert run_cli(built, "build") == 0
    assert output(capsys)[-1].startswith("imgbuild: 8 generated, 0 up to date, 0 failed")
    assert run_cli(built, "check") == 0
    events = json.loads((built / "assets" / ASSET / "index.json").read_text())["history"]
    assert [e["event"] for e in events if e["run"] == run] == ["submitted"]


# -- records that cannot be read -----------------------------------------------------------------------

CONFLICT = "assets/covers.hook.cafe.lamp-light/asset.json: holds git merge-conflict markers — restore it from git (`git checkout -- FILE`) or resolve the conflict, then run the command again"  # noqa: E501


def test_merge_conflict_markers_are_named_by_every_command(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = built / "assets" / ASSET / "asset.json"
    good = path.read_text()
    path.write_text(f"<<<<<<< HEAD\n{good}=======\n{good}>>>>>>> theirs\n")

    assert run_cli(built, "check") == 2
    assert output(capsys) == [
        f"broken: {CONFLICT}",
        "imgbuild check: 1 of 4 assets need attention (run `imgbuild plan`, then `doit`)",
    ]
    assert run_cli(built, "status") == 2
    assert output(capsys) == [
        "covers: 3/4 current (1 broken), 0 approved, 4 unreviewed; image-seedream-v5-lite-text",
        f"broken: {CONFLICT}",
    ]
    assert run_cli(built, "explain", ASSET) == 2
    assert output(capsys)[-1] == f"  status: broken: {CONFLICT}"
    assert run_cli(built, "approve", ASSET, "1", "--pass", "all") == 2
    assert capsys.readouterr().err == f"imgbuild: error: {CONFLICT}\n"
    assert path.read_text() == f"<<<<<<< HEAD\n{good}=======\n{good}>>>>>>> theirs\n"  # left for the user


def test_a_wrong_shape_and_a_newer_schema_are_named(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = built / "assets" / ASSET / "asset.json"
    good = path.read_text()
    where = f"assets/{ASSET}/asset.json"

    path.write_text('{"schema": "imgbuild.asset/2"}\n')
    assert run_cli(built, "check") == 2
    assert output(capsys)[0] == (
        f"broken: {where}: is not a valid asset record (missing 'asset_id') — restore it from git"
        " (`git checkout -- FILE`) or resolve the conflict, then run the command again"
    )
    assert run_cli(built, "approve", ASSET, "1", "--pass", "all") == 2
    assert f"{where}: is not a valid asset record" in capsys.readouterr().err

    path.write_text(good.replace('"imgbuild.asset/2"', '"imgbuild.asset/9"'))
    assert run_cli(built, "check") == 2
    assert output(capsys)[0] == (
        f"broken: {where}: is a record of schema 'imgbuild.asset/9', which this imgbuild does not read"
        " — upgrade imgbuild (python3 -m pip install -U imgbuild) or restore the file from git"
    )
    assert run_cli(built, "explain", ASSET) == 2

    path.write_text(good)
    assert run_cli(built, "check") == 0


def test_a_lock_file_does_not_vouch_for_a_deleted_asset_record(built: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (built / "assets" / ASSET / "asset.json").unlink()  # images, index.json and lock entry stay
    assert ASSET in lock_json(built)["assets"]
    assert run_cli(built, "check") == 1
    assert output(capsys) == [
        f"new: assets/{ASSET}: new asset: never generated",
        "imgbuild check: 1 of 4 assets need attention (run `imgbuild plan`, then `doit`)",
    ]


# -- orphans and prune ---------------------------------------------------------------------------------


def orphan_line(asset: str, batch: str = "covers") -> str:
    return (
        f"orphaned: assets/{asset}: no manifest declares this asset any more (was in batch {batch})"
        " — restore its values, or `imgbuild prune` it"
    )


def test_orphans_are_reported_apart_and_pruned_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p")
    (root / "batches" / "extra.yaml").write_text(BATCH.replace("id: hook", "id: extra"))
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "1", "--pass", "all", "--by", "ana") == 0
    output(capsys)
    (root / "batches" / "extra.yaml").unlink()  # a deleted batch: its lock file stays behind
    for asset in [p.name for p in (root / "assets").glob("extra.*")]:
        shutil.rmtree(root / "assets" / asset)
    # the cafe value goes: its two assets are orphans; the others are stale too
    write_project(
        root,
        batches={
            "covers": BATCH.replace("environment: [home office, cafe]", "environment: [home office]").replace(
                "wardrobe: cream sweater", "wardrobe: navy blazer"
            )
        },
    )

    assert run_cli(root, "check") == 1
    lines = output(capsys)
    assert lines[-4:] == [
        orphan_line("covers.hook.cafe.lamp-light"),
        orphan_line("covers.hook.cafe.morning-light"),
        "imgbuild check: 2 of 2 assets need attention (run `imgbuild plan`, then `doit`)",
        "imgbuild check: 2 orphaned asset folders (`imgbuild prune` lists what it would remove)",
    ]
    assert run_cli(root, "plan") == 0
    lines = output(capsys)
    assert [line for line in lines if line.startswith("orphaned:")] == [
        orphan_line("covers.hook.cafe.lamp-light"),
        orphan_line("covers.hook.cafe.morning-light"),
    ]

    before = sorted(p.name for p in (root / "assets").iterdir())
    assert run_cli(root, "prune") == 0
    assert output(capsys) == [
        f"kept assets/{ASSET}: it holds approved images (add --approved to remove those too)",
        "would remove assets/covers.hook.cafe.morning-light/",
        "would remove batches/extra.lock.json (its batch manifest is gone)",
        "imgbuild prune: a dry run; `imgbuild prune --yes` removes these 2",
    ]
    assert sorted(p.name for p in (root / "assets").iterdir()) == before
    assert (root / "batches" / "extra.lock.json").is_file()

    assert run_cli(root, "prune", "--yes") == 0
    assert output(capsys) == [
        f"kept assets/{ASSET}: it holds approved images (add --approved to remove those too)",
        "removed assets/covers.hook.cafe.morning-light/",
        "removed batches/extra.lock.json (its batch manifest is gone)",
    ]
    assert not (root / "assets" / "covers.hook.cafe.morning-light").exists()
    assert not (root / "batches" / "extra.lock.json").exists()
    assert (root / "assets" / ASSET).is_dir()

    assert run_cli(root, "prune", "--yes", "--approved") == 0
    assert output(capsys) == [f"removed assets/{ASSET}/ (with its approved images)"]
    assert sorted(p.name for p in (root / "assets").iterdir()) == [
        "covers.hook.home-office.lamp-light",
        "covers.hook.home-office.morning-light",
    ]
    assert run_cli(root, "prune") == 0
    assert output(capsys) == ["imgbuild prune: nothing to remove"]


# -- a rename keeps the records -------------------------------------------------------------------------


def test_renaming_a_shot_and_moving_its_folders_keeps_images_and_approvals(
    built: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(built, "approve", ASSET, "1", "--pass", "all", "--by", "ana") == 0
    images = sorted(p.relative_to(built / "assets").as_posix().replace("covers.hook.", "covers.opener.", 1)
                    for p in (built / "assets").glob("*/images/**/*.jpg"))  # fmt: skip
    write_project(built, batches={"covers": BATCH.replace("id: hook", "id: opener")})
    for folder in sorted((built / "assets").iterdir()):  # what `git mv` does
        folder.rename(folder.with_name(folder.name.replace("covers.hook.", "covers.opener.")))
    output(capsys)

    assert run_cli(built, "plan") == 0
    assert output(capsys)[1] == (
        "covers: 4 assets (0 variant tests), 8 candidates; 0 to generate; image-seedream-v5-lite-text at draft"
    )
    # the records still name the old id until a build updates them (no call needed)
    assert run_cli(built, "check") == 1
    assert output(capsys)[0] == (
        "outdated: assets/covers.opener.home-office.morning-light: asset_id: 'covers.hook.home-office.morning-light'"
        " → 'covers.opener.home-office.morning-light'; shot: 'hook' → 'opener' (the request is the same:"
        " no call is needed; the next build updates the records)"
    )

    assert run_cli(built, "build") == 0
    assert output(capsys) == ["imgbuild: all 8 images up to date, nothing to generate"]
    assert run_cli(built, "check") == 0
    assert run_cli(built, "status") == 0
    assert output(capsys)[-1] == "covers: 4/4 current, 1 approved, 3 unreviewed; image-seedream-v5-lite-text"
    renamed = "covers.opener.cafe.lamp-light"
    assert asset_json(built, renamed)["asset_id"] == renamed
    assert asset_json(built, renamed)["approval"]["by"] == "ana"
    assert lock_json(built)["assets"][renamed]["approval"]["by"] == "ana"
    assert images == sorted(
        p.relative_to(built / "assets").as_posix() for p in (built / "assets").glob("*/images/**/*.jpg")
    )


# -- an outdated record --------------------------------------------------------------------------------

NO_WARDROBE = "Photo of {{ persona.name }} in a {{ attrs.environment }}, {{ attrs.lighting }}.\n"


def test_a_fixed_value_the_template_does_not_use_outdates_the_records_without_a_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_project(tmp_path / "p", templates={"cover.j2": NO_WARDROBE})
    assert run_cli(root, "build") == 0
    before = asset_json(root)
    output(capsys)

    write_project(
        root,
        templates={"cover.j2": NO_WARDROBE},
        batches={"covers": BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer")},
    )
    assert resolve(root).find(ASSET).request_hash == before["request_hash"]
    assert run_cli(root, "check") == 1
    assert output(capsys) == [
        *(
            f"outdated: assets/{asset}: fixed.wardrobe: 'cream sweater' → 'navy blazer' (the request is the same:"
            " no call is needed; the next build updates the records)"
            for asset in ASSETS
        ),
        "imgbuild check: 4 of 4 assets need attention (run `imgbuild plan`, then `doit`)",
    ]

    assert run_cli(root, "build") == 0
    assert output(capsys) == ["imgbuild: all 8 images up to date, nothing to generate"]
    after = asset_json(root)
    assert after["request"]["attributes"]["fixed"] == {"wardrobe": "navy blazer"}
    assert after["candidates"] == before["candidates"]  # no call made
    assert lock_json(root)["assets"][ASSET]["attributes"]["fixed"] == {"wardrobe": "navy blazer"}
    assert run_cli(root, "check") == 0
    assert output(capsys) == ["imgbuild check: all 4 assets match their manifests"]
