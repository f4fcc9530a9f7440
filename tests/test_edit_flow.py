"""The review loop end to end with the preview provider: approve, edit from the approved image,
regenerate when the change is not editable, and identity sets made in one call."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, PERSONA, TEMPLATE, run_cli, write_project

ASSET = "covers.hook.home-office.morning-light"


def asset_json(root: Path, asset: str = ASSET) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((root / "assets" / asset / "asset.json").read_text())
    return data


def newest_run(root: Path, asset: str = ASSET) -> dict[str, Any]:
    """request.json of the asset's newest image run."""
    runs = sorted((root / "assets" / asset / "runs" / "image").iterdir())
    data: dict[str, Any] = json.loads((runs[-1] / "request.json").read_text())
    return data


def output(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return capsys.readouterr().out.splitlines()


def test_approve_edit_then_regenerate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p")
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "2", "--pass", "all", "--by", "tester") == 0
    approved = asset_json(root)["approval"]
    approved_file = root / "assets" / ASSET / approved["file"]
    approved_bytes = approved_file.read_bytes()
    output(capsys)

    # -- an editable attribute changes: the approved asset is edited, the others regenerate ----------
    batch = root / "batches" / "covers.yaml"
    batch.write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    assert run_cli(root, "plan", "-v") == 0
    lines = output(capsys)
    assert lines[1] == (
        "covers: 4 assets (0 variant tests), 8 candidates; 8 to generate (4 changed, 1 to edit from approved);"
        " image-seedream-v5-lite-edit, image-seedream-v5-lite-text at draft"
    )
    assert (
        f"  {ASSET} #1,2: fixed.wardrobe: 'cream sweater' → 'navy blazer'; prompt changed; "
        "edit from approved candidate 2: wardrobe: 'cream sweater' → 'navy blazer'"
    ) in lines
    assert run_cli(root, "explain", ASSET) == 0
    explained = output(capsys)
    assert "  next build: edit from approved candidate 2: wardrobe: 'cream sweater' → 'navy blazer'" in explained
    assert f"  reference (approved): assets/{ASSET}/{approved['file']}  sha256 {approved['sha256'][:16]}" in explained

    assert run_cli(root, "build") == 0
    edit = newest_run(root)
    assert edit["request"]["mode"] == "edit"
    assert edit["request"]["model"] == "image-seedream-v5-lite-edit"
    assert edit["request"]["references"] == [
        {"path": f"assets/{ASSET}/{approved['file']}", "sha256": approved["sha256"], "role": "approved"}
    ]
    assert edit["request"]["prompt"].startswith("Edit the first reference image: keep the same person")
    assert "change only this: wardrobe now navy blazer." in edit["request"]["prompt"]
    assert edit["provider_body"]["references"] == [f"preview://upload/{approved['sha256']}"]
    # the upload is recorded under upload/<run-id>/, once (the second candidate reuses it)
    (upload,) = (root / "assets" / ASSET / "upload").iterdir()
    manifest = json.loads((upload / "manifest.json").read_text())
    assert manifest["reference"]["sha256"] == approved["sha256"]
    history = json.loads((root / "assets" / ASSET / "index.json").read_text())["history"]
    assert [e["event"] for e in history].count("uploaded") == 1
    # the other assets have no approval: plain text-to-image again
    other = newest_run(root, "covers.hook.cafe.morning-light")
    assert other["request"]["mode"] == "text" and other["request"]["references"] == []
    output(capsys)

    # the edit request is stable: nothing to do; the old approval is stale until a new one
    assert run_cli(root, "build") == 0
    assert output(capsys)[-1] == "imgbuild: all 8 images up to date, nothing to generate"
    assert run_cli(root, "status") == 0
    assert "1 approved (1 stale)" in output(capsys)[0]

    # approving an edited candidate makes it current; later builds keep it
    assert run_cli(root, "approve", ASSET, "1", "--pass", "all", "--by", "tester") == 0
    second = asset_json(root)["approval"]
    second_bytes = (root / "assets" / ASSET / second["file"]).read_bytes()
    assert run_cli(root, "build") == 0
    assert run_cli(root, "check", "--approved") == 1  # three assets were never approved
    out = output(capsys)
    assert "imgbuild: all 8 images up to date, nothing to generate" in out
    assert not any(ASSET in line for line in out if line.startswith(("unapproved", "stale")))

    # -- the persona's face changes: not editable, so regenerate -----------------------------------------
    (root / "personas" / "mia.yaml").write_text(PERSONA.replace("oval face", "round face"))
    assert run_cli(root, "plan", "-v") == 0
    lines = output(capsys)
    assert any(
        line.startswith(f"  {ASSET} #1,2: ")
        and line.endswith(
            "regenerate; not an edit of approved candidate 1: persona.traits.face changed (the persona is never edited)"
        )
        for line in lines
    ), lines
    assert run_cli(root, "build") == 0
    fresh = newest_run(root)
    assert fresh["request"]["mode"] == "text" and fresh["request"]["references"] == []
    assert "round face" in fresh["request"]["prompt"]

    # the approved files were never touched by any build
    assert approved_file.read_bytes() == approved_bytes
    assert (root / "assets" / ASSET / second["file"]).read_bytes() == second_bytes


def test_a_template_change_is_not_an_edit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p")
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", ASSET, "1", "--pass", "all", "--by", "tester") == 0
    (root / "templates" / "cover.j2").write_text(TEMPLATE.replace("Photo of", "Portrait of"))
    (root / "batches" / "covers.yaml").write_text(BATCH.replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    output(capsys)
    assert run_cli(root, "explain", ASSET) == 0
    assert "  next build: regenerate; not an edit of approved candidate 1: the prompt template changed" in output(
        capsys
    )


SET_BATCH = BATCH.replace("    candidates: 2\n", "    candidates: 1\n    max_images: 3\n")


def test_identity_set_is_one_call_with_several_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_project(tmp_path / "p", batches={"covers": SET_BATCH})
    assert run_cli(root, "plan") == 0
    assert "covers: 4 assets (0 variant tests), 4 candidates; 12 images in 4 calls to generate" in output(capsys)[1]
    assert run_cli(root, "build") == 0
    assert output(capsys)[-1].startswith("imgbuild: 4 generated, 0 up to date, 0 failed")
    record = asset_json(root)
    assert [(c["candidate"], c["image"]) for c in record["candidates"]] == [(1, 1), (1, 2), (1, 3)]
    assert len({c["run"] for c in record["candidates"]}) == 1
    assert newest_run(root)["request"]["mode"] == "sequential"
    lock = json.loads((root / "batches" / "covers.lock.json").read_text())
    entry = lock["assets"][ASSET]
    assert entry["status"] == "complete"
    assert [(i["candidate"], i["image"]) for i in entry["images"]] == [(1, 1), (1, 2), (1, 3)]

    assert run_cli(root, "build") == 0
    assert output(capsys)[-1] == "imgbuild: all 4 images up to date, nothing to generate"
    assert run_cli(root, "approve", ASSET, "1.2", "--pass", "all", "--by", "tester") == 0
    assert asset_json(root)["approval"]["image"] == 2
    # a deleted image of a set makes the set stale: the whole call is made again
    (root / "assets" / ASSET / record["candidates"][0]["file"]).unlink()
    assert run_cli(root, "check") == 1
