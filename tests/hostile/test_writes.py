"""Class 3: writes stay inside the project. A folder on the way of a write that links out —
assets/, an asset's folder, .imgbuild/ — stops the write before anything is made there;
`output:` cannot be an internal folder; a record's file path cannot leave its asset folder."""

from __future__ import annotations

import json

import pytest
from helpers import BATCH, snapshot, write_project
from hostile_support import run_command

from imgbuild.errors import EXIT_FAILED

ASSET = "covers.hook.home-office.morning-light"
SECONDS = 30.0


build = run_command


def test_an_output_folder_linked_out_is_bad_input(project, capsys):
    (project / "assets").symlink_to(project.parent / "outside", target_is_directory=True)
    code, text = build(project, capsys, "build")
    assert code == 2, text
    assert "batches/covers.yaml:5 output: 'assets' is a link to" in text
    assert sorted(p.name for p in (project.parent / "outside").iterdir()) == ["secret.txt"]


@pytest.mark.parametrize("linked", [f"assets/{ASSET}", f"assets/{ASSET}/images", f"assets/{ASSET}/images/candidates"])
def test_no_write_goes_through_a_link_out_of_the_project(project, capsys, linked):
    outside = project.parent / "outside"
    target = project / linked
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(outside, target_is_directory=True)
    before = snapshot(outside)
    code, text = build(project, capsys, "build")
    assert code == EXIT_FAILED, text
    assert "refused to write — a folder on its way is a link to" in text
    assert snapshot(outside) == before  # nothing written there, no folder made
    assert [p for p in outside.rglob("*") if p.name != "secret.txt"] == []


def test_the_state_folder_linked_out_stops_before_anything_starts(project, capsys):
    outside = project.parent / "outside"
    (project / ".imgbuild").symlink_to(outside, target_is_directory=True)
    code, text = build(project, capsys, "build")
    assert code == EXIT_FAILED, text
    assert ".imgbuild/build.lock: refused to write" in text or ".imgbuild/doit.db: refused to write" in text
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (project / "assets").exists()


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (".git", "'.git' is inside .git/, an internal folder"),
        (".imgbuild/assets", "'.imgbuild/assets' is inside .imgbuild/, an internal folder"),
        ("batches", "'batches' is inside batches/, the project's batches folder"),
        ("templates/out", "'templates/out' is inside templates/, the project's templates folder"),
        (".", "'.' is the project folder itself"),
        ("../elsewhere", "'../elsewhere' is outside the project folder"),
        ("/tmp", "'/tmp' is outside the project folder"),
    ],
)
def test_output_may_not_be_an_internal_folder(project, refused, output, expected):
    write_project(project, batches={"covers": BATCH.replace("output: assets", f"output: {output}")})
    refused(project, "batches/covers.yaml:5 output:", expected)


def test_output_linked_out_is_refused(project, refused):
    (project / "out").symlink_to(project.parent / "outside", target_is_directory=True)
    write_project(project, batches={"covers": BATCH.replace("output: assets", "output: out")})
    refused(project, "batches/covers.yaml:5 output:", "'out' is a link to", "outside the project folder")


BAD_PATHS = ["../../../outside/secret.txt", "/etc/passwd", "images/../../other/x.jpg", "images\\..\\x.jpg", "C:/x.jpg"]


def test_a_record_path_leaving_its_asset_is_refused_by_approve_and_check(project, capsys):
    assert build(project, capsys, "build")[0] == 0
    record_path = project / "assets" / ASSET / "asset.json"
    good = record_path.read_text()
    for bad_path in BAD_PATHS:
        record = json.loads(good)
        record["candidates"][0]["file"] = bad_path
        record_path.write_text(json.dumps(record))
        before = snapshot(project / "assets")
        code, text = build(project, capsys, "approve", ASSET, "1", "--pass", "all")
        assert code == 2, (bad_path, text)
        assert "which leaves the asset folder" in text and "asset.json" in text
        code, text = build(project, capsys, "check")
        assert code == 2, (bad_path, text)
        assert "which leaves the asset folder" in text
        assert snapshot(project / "assets") == before
        assert not (project / "assets" / ASSET / "images/approved").exists()


def test_a_folder_swapped_for_a_link_after_a_write_is_refused_at_the_next(tmp_path):
    # The check is remembered per folder (decision 66); a folder replaced since is checked again.
    from imgbuild.records.atomic import atomic_write_json
    from imgbuild.records.errors import WriteOutsideProject

    project, outside = tmp_path / "project", tmp_path / "outside"
    folder, temp = project / "assets" / "a", project / ".imgbuild" / "tmp"
    outside.mkdir()
    project.mkdir()
    atomic_write_json(folder / "asset.json", {"n": 1}, temp_dir=temp)
    atomic_write_json(folder / "asset.json", {"n": 2}, temp_dir=temp)  # remembered: no resolve
    folder.rename(project / "assets" / "moved")
    folder.symlink_to(outside, target_is_directory=True)
    with pytest.raises(WriteOutsideProject):
        atomic_write_json(folder / "asset.json", {"n": 3}, temp_dir=temp)
    assert list(outside.iterdir()) == []
