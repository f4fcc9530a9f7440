"""`imgbuild export`: the current approved images, with a manifest, for the render stage; each
exported copy carries XMP provenance that an independent reader (exiftool, Debian's
libimage-exiftool-perl, installed by tests/setup.sh) reads back, while the candidates and approved
copies in assets/ stay byte-identical to what the provider sent."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, run_cli, snapshot, write_project
from PIL import Image

from imgbuild.provenance import DIGITAL_SOURCE_TYPE

POSTERS = (
    BATCH.replace("output_format: jpeg", "output_format: png")
    .replace("candidates: 2", "candidates: 1")
    .replace("  environment: [home office, cafe]\n", "")
    .replace("fixed:\n  wardrobe: cream sweater", "fixed:\n  wardrobe: cream sweater\n  environment: cafe")
)
COVER = "covers.hook.cafe.lamp-light"
POSTER = "posters.hook.morning-light"


def exiftool(path: Path) -> dict[str, Any]:
    exe = shutil.which("exiftool")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("exiftool is missing: run `bash tests/setup.sh` (Debian's libimage-exiftool-perl)")
        pytest.skip("exiftool is missing: `bash tests/setup.sh` installs it")
    out = subprocess.run([exe, "-json", "-G1", "-XMP:all", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    (tags,) = json.loads(out.stdout)
    return dict(tags)


def pixels(data: bytes) -> tuple[str, tuple[int, int], bytes]:
    with Image.open(io.BytesIO(data)) as image:
        return image.mode, image.size, image.tobytes()


@pytest.fixture(scope="module")
def approved_once(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = write_project(tmp_path_factory.mktemp("export") / "p", batches={"covers": BATCH, "posters": POSTERS})
    assert run_cli(root, "build") == 0
    assert run_cli(root, "approve", COVER, "2", "--pass", "all", "--by", "ana", "--note", "the best light") == 0
    assert run_cli(root, "approve", POSTER, "1", "--pass", "all", "--fail", "realism=soft", "--override",
                   "--note", "good enough for a poster", "--by", "bo") == 0  # fmt: skip
    return root


@pytest.fixture
def project(approved_once: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "p"
    shutil.copytree(approved_once, root)
    capsys.readouterr()
    return root


def test_export_copies_the_approved_images_with_a_manifest_and_lists_the_rest(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = snapshot(project / "assets")
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir)) == 1  # five assets have no approval
    out = capsys.readouterr().out.splitlines()
    assert sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file()) == [
        f"covers/{COVER}.jpg",
        "imgbuild-export.json",
        f"posters/{POSTER}.png",
    ]
    unapproved = [line for line in out if line.startswith("unapproved: ")]
    assert len(unapproved) == 4  # 3 covers, 1 poster
    other = "covers.hook.cafe.morning-light"
    assert f"unapproved: assets/{other}: no approved image (run imgbuild approve {other} <candidate>)" in out
    assert out[-1] == "imgbuild export: 4 of 6 assets have no current approved image"
    assert snapshot(project / "assets") == before  # nothing in assets/ changed

    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    assert manifest["schema"] == "imgbuild.export/1"
    assert [m["id"] for m in manifest["missing"]] == sorted(line.split("/")[1].split(":")[0] for line in unapproved)
    cover, poster = manifest["assets"]
    lock = json.loads((project / "batches" / "covers.lock.json").read_text())["assets"][COVER]
    assert cover["id"] == COVER and cover["batch"] == "covers" and cover["shot"] == "hook"
    assert cover["attributes"] == {
        "fixed": {"wardrobe": "cream sweater"},
        "vary": {"environment": "cafe", "lighting": "lamp light"},
    }
    assert (cover["request_hash"], cover["prompt_hash"], cover["model"]) == (
        lock["request_hash"], lock["prompt_hash"], lock["model"])  # fmt: skip
    assert cover["source_basis"] == lock["source_basis"]
    assert cover["source"] == {"file": lock["approval"]["file"], "sha256": lock["approval"]["sha256"]}
    assert cover["approval"]["candidate"] == "2" and cover["approval"]["by"] == "ana"
    assert cover["approval"]["note"] == "the best light"
    assert set(cover["approval"]["checklist"]) == {
        "realism",
        "benchmark-fit",
        "repeatability",
        "copied-creator",
        "ad-drift",
    }
    assert poster["approval"]["override"] is True
    assert poster["approval"]["checklist"]["realism"] == {"result": "fail", "note": "soft"}
    for entry in manifest["assets"]:
        assert hashlib.sha256((out_dir / entry["file"]).read_bytes()).hexdigest() == entry["sha256"]


def test_exported_images_carry_xmp_that_exiftool_reads_and_the_same_pixels(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    for entry in manifest["assets"]:
        exported = out_dir / entry["file"]
        source = (project / entry["source"]["file"]).read_bytes()
        assert hashlib.sha256(source).hexdigest() == entry["source"]["sha256"]  # the approved copy, untouched
        tags = exiftool(exported)
        assert tags["XMP-iptcExt:DigitalSourceType"] == DIGITAL_SOURCE_TYPE
        assert tags["XMP-iptcExt:AISystemUsed"] == entry["model"] == "image-seedream-v5-lite-text"
        assert tags["XMP-iptcExt:AISystemVersionUsed"] == entry["provider_model"]
        assert tags["XMP-imgbuild:AssetID"] == entry["id"]
        assert tags["XMP-imgbuild:RequestHash"] == entry["request_hash"]
        assert tags["XMP-xmp:CreatorTool"].startswith("imgbuild ")
        # Not re-encoded: the same pixels, and the file only grew by the metadata.
        data = exported.read_bytes()
        assert pixels(data) == pixels(source)
        assert len(source) < len(data) < len(source) + 2048
        # The approved copy itself carries no XMP.
        assert "XMP-imgbuild:AssetID" not in exiftool(project / entry["source"]["file"])


def test_a_second_export_is_stable_and_drops_what_lost_its_approval(
    project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = tmp_path / "render"
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    first = snapshot(out_dir)
    assert run_cli(project, "export", "--to", str(out_dir), "--allow-missing") == 0
    assert snapshot(out_dir) == first  # same names, same bytes
    # The poster's manifest changes: its approval is stale now, so its export goes.
    posters = project / "batches" / "posters.yaml"
    posters.write_text(posters.read_text().replace("wardrobe: cream sweater", "wardrobe: navy blazer"))
    capsys.readouterr()
    assert run_cli(project, "export", "posters", "--to", str(out_dir)) == 1
    out = capsys.readouterr().out
    assert f"stale approval: assets/{POSTER}: approved candidate 1 was made for an older request" in out
    assert not (out_dir / "posters" / f"{POSTER}.png").exists()
    # The folder holds what this export selected, and only that: the covers went too.
    assert not (out_dir / "covers" / f"{COVER}.jpg").exists()
    manifest = json.loads((out_dir / "imgbuild-export.json").read_text())
    assert manifest["assets"] == []
    assert [m["id"] for m in manifest["missing"]] == ["posters.hook.lamp-light", POSTER]


def test_an_unknown_batch_is_a_usage_error(project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(project, "export", "nope", "--to", str(tmp_path / "out")) == 2
    assert "no batch 'nope' in this project (batches: covers, posters)" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
