"""Paper cuts a new user hit (issue 16), each tried as a new user would: on a fresh `imgbuild init`
project (or the repository's examples), with the hosted provider played by a loopback server."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from fakes.servers import FakeProviders
from helpers import copy_examples, rejected, run_cli, run_doit, summary

import imgbuild.main
from imgbuild.records import AssetRecord
from imgbuild.resolve import resolve

FAST_RETRIES = "providers:\n  ark:\n    retries: {attempts: 2, base_delay: 0.01, max_delay: 0.02}\n"


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


def new_project(tmp_path: Path, capsys: pytest.CaptureFixture[str], config: str = "") -> Path:
    """`imgbuild init` as a new user runs it, with `config` appended to its imgbuild.yaml."""
    assert run_cli(tmp_path, "init", "proj") == 0
    capsys.readouterr()
    root = tmp_path / "proj"
    if config:
        path = root / "imgbuild.yaml"
        path.write_text(path.read_text().replace("provider: preview", "provider: ark", 1) + config)
    return root


def on_ark(root: Path, fake: FakeProviders, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARK_API_KEY", fake.keys["ark"])
    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", fake.base_urls["ark"])


def identity_sets(root: Path, max_images: int) -> None:
    """The scaffold's shot made into identity sets of `max_images` images per candidate."""
    path = root / "batches/first-frames.yaml"
    text = path.read_text()
    path.write_text(text.replace("    candidates: 2\n", f"    candidates: 2\n    max_images: {max_images}\n"))


# -- 1. the budget counts what the build will make ------------------------------------------------


def sets_on_ark(
    tmp_path: Path,
    fake: FakeProviders,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    budget: float,
) -> Path:
    """The scaffold on Ark with a budget, in sets of 3: 4 assets × 2 candidates × 3 = 24 images
    ($0.84); the park half is 12 ($0.42)."""
    root = new_project(tmp_path, capsys, FAST_RETRIES + f"budget: {budget:.2f}\n")
    identity_sets(root, 3)
    on_ark(root, fake, monkeypatch)
    return root


def test_a_selection_under_the_budget_builds_in_an_over_budget_project(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = sets_on_ark(tmp_path, fake, monkeypatch, capsys, budget=0.50)

    assert run_cli(root, "plan", "first-frames:*park*") == 0
    assert capsys.readouterr().out.splitlines() == [
        "provider: ark",
        "first-frames: 2 of 4 assets (0 variant tests), 4 candidates; 12 images in 4 calls to generate (2 new);"
        " image-seedream-v5-lite-sequential at max ~$0.42",
        "  image-seedream-v5-lite-sequential: 12 paid images × $0.035 = $0.42",
        "selection: 12 images to generate, estimated $0.42 at list prices (budget $0.50)",
        "whole project: 24 images to generate, estimated $0.84 at list prices (budget $0.50: a build would refuse)",
    ]

    assert run_cli(root, "build") == 3  # the whole project: refused before any call
    out = capsys.readouterr().out
    assert (
        "imgbuild: STOPPED: this build would make 24 images for about $0.84 at list prices, over the budget"
        " of $0.50 in imgbuild.yaml; build a part of it (batch ids or task globs such as 'BATCH:*park*';"
        " `imgbuild plan SELECTION` prices one) or raise `budget:`"
    ) in out
    assert fake.requests == []

    assert run_cli(root, "build", "first-frames:*park*") == 0  # its part: 4 calls of 3 images
    assert "imgbuild: 4 generated, 0 up to date, 0 failed, 0 not started" in capsys.readouterr().out
    assert len(fake.creates("ark")) == 4
    made = {p.parent.parent.parent.name for p in (root / "assets").glob("*/images/candidates/*")}
    assert made == {f"first-frames.hook.city-park-bench.{light}" for light in ("overcast-daylight", "golden-hour-sun")}

    # Plain doit selects the same way, and the rest of the project now fits the budget too.
    result = run_doit(root, "first-frames")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "imgbuild: 4 generated, 4 up to date, 0 failed, 0 not started" in result.stdout
    assert len(fake.creates("ark")) == 8


def test_a_selection_over_the_budget_counts_only_its_selection(
    fake: FakeProviders, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = sets_on_ark(tmp_path, fake, monkeypatch, capsys, budget=0.30)
    for how in ("imgbuild build", "doit"):
        if how == "doit":
            result = run_doit(root, "first-frames:*park*")
            code, out = result.returncode, result.stdout
        else:
            code, out = run_cli(root, "build", "first-frames:*park*"), capsys.readouterr().out
        assert code == 3, (how, out)
        assert (
            "this build would make 12 images for about $0.42 at list prices (the whole project: 24 images,"
            " about $0.84), over the budget of $0.30 in imgbuild.yaml" in out
        ), how
        assert "0 generated, 0 up to date, 0 failed, 4 not started" in out, how
    assert fake.requests == []


def test_plan_rejects_a_selection_that_names_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = new_project(tmp_path, capsys)
    assert run_cli(root, "plan", "first-frame") == 2
    assert capsys.readouterr().err == (
        "imgbuild: error: nothing in this project is called 'first-frame': select batch ids or task globs"
        " such as 'first-frames:*' (`imgbuild ls` lists the assets)\n"
    )
    assert run_cli(root, "plan", "first-frames:*nowhere*") == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        "the selection matches no image",
        "selection: 0 images to generate",
        "whole project: 8 images to generate (free with preview; about $0.28 at list price on a hosted provider)",
    ]


def test_the_manifest_docs_show_the_stop_message_the_build_prints() -> None:
    docs = (Path(__file__).resolve().parents[1] / "docs/manifests.md").read_text()
    assert (
        "imgbuild: STOPPED: this build would make 8 images for about $0.28 at list prices, over the budget of"
        " $0.20 in imgbuild.yaml; build a part of it (batch ids or task globs such as 'BATCH:*park*';"
        " `imgbuild plan SELECTION` prices one) or raise `budget:`"
    ) in docs
    assert "a selection does not\nlower the sum" not in docs


# -- 3. an unreachable host names the setting ------------------------------------------------------


def test_an_unreachable_host_names_the_setting_that_chose_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = new_project(tmp_path, capsys, FAST_RETRIES + "    base_url: http://127.0.0.1:9\n")
    monkeypatch.setenv("ARK_API_KEY", "a-key-no-server-will-see")
    monkeypatch.delenv("IMGBUILD_ARK_BASE_URL", raising=False)
    assert run_cli(root, "build") == 3
    assert (
        "imgbuild: STOPPED: ark: cannot connect to http://127.0.0.1:9 after 2 tries ([Errno 111] Connection"
        " refused); the URL comes from providers.ark.base_url in imgbuild.yaml ($IMGBUILD_ARK_BASE_URL would"
        " win over it): fix it\n"
    ) in capsys.readouterr().out

    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", "http://127.0.0.1:9/api/v3")
    assert run_cli(root, "build") == 3
    assert (
        "after 2 tries ([Errno 111] Connection refused); the URL comes from $IMGBUILD_ARK_BASE_URL (it wins"
        " over providers.ark.base_url in imgbuild.yaml): fix or unset it\n"
    ) in capsys.readouterr().out


# -- 4. reject's help -----------------------------------------------------------------------------


def test_reject_help_does_not_mention_an_option_it_lacks(capsys: pytest.CaptureFixture[str]) -> None:
    for command, mentions in (("reject", False), ("approve", True)):
        with pytest.raises(SystemExit):
            imgbuild.main.main([command, "--help"])
        out = capsys.readouterr().out
        assert ("--override" in out) is mentions, command
        assert "a note on the decision" in out


# -- 9. plan warns before a hosted build without its key -------------------------------------------


def test_plan_warns_when_the_providers_key_is_not_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = new_project(tmp_path, capsys, FAST_RETRIES)
    monkeypatch.delenv("ARK_API_KEY", raising=False)
    assert run_cli(root, "plan") == 0
    out = capsys.readouterr()
    assert out.err == (
        "warning: ARK_API_KEY is not set: a build with provider 'ark' would stop before its first call;"
        " export the ark API key as ARK_API_KEY first (keys are read from the environment only)\n"
    )
    assert out.out.splitlines()[-1] == "total: 8 images to generate, estimated $0.28 at list prices"

    monkeypatch.setenv("ARK_API_KEY", "  ")  # blank is not set: the build would refuse it too
    assert run_cli(root, "plan") == 0
    assert "ARK_API_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("ARK_API_KEY", "a-key")
    assert run_cli(root, "plan") == 0
    assert capsys.readouterr().err == ""
    monkeypatch.delenv("ARK_API_KEY")
    monkeypatch.setenv("IMGBUILD_PROVIDER", "preview")  # the offline provider needs no key
    assert run_cli(root, "plan") == 0
    assert capsys.readouterr().err == ""


# -- 2. unquoted values YAML reads as something other than text ------------------------------------


def test_an_unquoted_ratio_is_reported_as_needing_quotes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = new_project(tmp_path, capsys)
    monkeypatch.chdir(root)  # where a user runs it: paths in messages are relative to it
    batch = root / "batches/first-frames.yaml"
    text = batch.read_text()
    batch.write_text(
        text.replace('aspect_ratio: "9:16"', "aspect_ratio: 9:16").replace(
            "  wardrobe: grey hoodie", "  wardrobe: 2026-12-01"
        )
    )
    assert rejected(root, capsys) == [
        "batches/first-frames.yaml:10 aspect_ratio: YAML reads 9:16 as the number 556 (base 60), expected one of"
        " '1:1', '4:3', '3:4', '16:9', '9:16', '3:2', '2:3', '21:9' — quote it: '9:16'",
        "batches/first-frames.yaml:13 fixed.wardrobe: YAML reads 2026-12-01 as the date 2026-12-01, expected"
        " string — quote it: '2026-12-01'",
        summary(2),
    ]


# -- 7. evidence that cannot ground anything --------------------------------------------------------


def test_an_empty_evidence_file_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = new_project(tmp_path, capsys)
    monkeypatch.chdir(root)  # where a user runs it: paths in messages are relative to it
    (root / "evidence/ava-benchmark.md").write_text("\n  \n")
    assert rejected(root, capsys) == [
        "batches/first-frames.yaml:6 source_basis[0].path: evidence file 'evidence/ava-benchmark.md' is empty:"
        " an empty file backs nothing (write down what it shows)",
        "personas/ava.yaml:12 evidence[0].path: evidence file 'evidence/ava-benchmark.md' is empty:"
        " an empty file backs nothing (write down what it shows)",
        summary(2),
    ]


def test_an_anchor_that_is_not_in_its_file_is_bad_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = copy_examples(tmp_path / "examples")
    monkeypatch.chdir(root)
    persona = root / "personas/mia.yaml"
    persona.write_text(persona.read_text().replace('anchor: "#identity"', 'anchor: "#identty"'))
    batch = root / "covers.yaml"
    batch.write_text(batch.read_text().replace('anchor: "#environments"', 'anchor: "#wardrobe-1"'))
    (root / "evidence/notes.txt").write_text("Covers: faces in the upper third.\n")
    persona.write_text(
        persona.read_text().replace(
            "evidence:\n",
            "evidence:\n  - path: evidence/notes.txt\n    anchor: upper third\n"
            "  - path: evidence/notes.txt\n    anchor: lower third\n",
            1,
        )
    )
    lines = rejected(root, capsys)
    assert lines == [
        "covers.yaml:10 source_basis[1].anchor: '#wardrobe-1' is not a heading of evidence/mia-benchmark.md"
        " (its anchors: '#benchmark-study-with-me-creators-q3-sample-of-10-channels', '#identity', '#wardrobe',"
        " '#environments', '#lighting')",
        "personas/mia.yaml:14 evidence[1].anchor: 'lower third' does not occur in evidence/notes.txt",
        "personas/mia.yaml:16 evidence[2].anchor: '#identty' is not a heading of evidence/mia-benchmark.md"
        " (its anchors: '#benchmark-study-with-me-creators-q3-sample-of-10-channels', '#identity', '#wardrobe',"
        " '#environments', '#lighting')",
        summary(3),
    ]


def test_anchors_follow_github_headings_not_code_blocks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = new_project(tmp_path, capsys)
    (root / "evidence/ava-benchmark.md").write_text(
        "# Ava\n\n## Identity\n\n```\n# not-a-heading\n```\n\n## Identity\n\nLighting\n--------\n"
        '\n<a id="Clip-12"></a>\n'
    )
    persona = root / "personas/ava.yaml"
    text = persona.read_text()
    for anchor, ok in (("#identity-1", True), ("#lighting", True), ("#clip-12", True), ("#not-a-heading", False)):
        persona.write_text(text.replace('"#identity"', f'"{anchor}"'))
        assert (run_cli(root, "plan") == 0) is ok, anchor
        capsys.readouterr()


# -- 5. the scaffold and the examples read well for every value they ship --------------------------


def test_every_shipped_value_reads_well_in_its_prompt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = new_project(tmp_path, capsys)
    allowed = yaml.safe_load((root / "personas/ava.yaml").read_text())["allowed"]
    batch = root / "batches/first-frames.yaml"
    text = batch.read_text().replace("fixed:\n  wardrobe: grey hoodie\n", "")
    batch.write_text(text.replace("vary:\n", f"vary:\n  wardrobe: {json.dumps(allowed['wardrobe'])}\n"))
    prompts = {r.asset_id: r.prompt for r in resolve(root).all_requests()}
    assert len(prompts) == 8  # every wardrobe × environment × lighting the persona allows
    assert prompts["first-frames.hook.city-park-bench.golden-hour-sun.grey-hoodie"] == (
        "Photorealistic vertical first frame for a short video. Ava, early thirties, heart-shaped face, warm brown"
        " eyes, short curly dark hair, athletic, average height. Wardrobe: grey hoodie. Setting: city park bench."
        " Light: golden-hour sun. Candid, natural skin texture, clean sporty-casual, solid colours. Face in the upper"
        " third, space at the bottom for a caption. Purpose: Scroll-stopping first frame; Ava mid-sentence, looking"
        " into the lens"
    )
    for wardrobe in allowed["wardrobe"]:
        for environment in allowed["environment"]:
            for lighting in allowed["lighting"]:
                wanted = f"Wardrobe: {wardrobe}. Setting: {environment}. Light: {lighting}."
                assert sum(wanted in p for p in prompts.values()) == 1, wanted

    examples = copy_examples(tmp_path / "examples")
    for prompt in (r.prompt for r in resolve(examples).all_requests()):
        assert not re.search(r"\ba [aeiou]", prompt, re.IGNORECASE), prompt  # "wearing a olive overshirt"
        assert "Wardrobe: " in prompt


# -- 8. plan -v says what it checked; messages point at ls ------------------------------------------


def test_plan_verbose_says_what_it_checked_once_things_are_current(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = new_project(tmp_path, capsys)
    assert run_cli(root, "build", "first-frames:*park*") == 0
    capsys.readouterr()
    assert run_cli(root, "plan", "-v") == 0
    assert capsys.readouterr().out.splitlines()[2:] == [
        "  first-frames.hook.small-kitchen-with-morning-clutter.overcast-daylight #1,2: new asset: never generated",
        "  first-frames.hook.small-kitchen-with-morning-clutter.golden-hour-sun #1,2: new asset: never generated",
        "  checked 4 assets: the other 2 made for their current requests",
        "total: 4 images to generate (free with preview; about $0.14 at list price on a hosted provider)",
    ]
    assert run_cli(root, "build") == 0
    capsys.readouterr()
    assert run_cli(root, "plan", "-v") == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        "first-frames: 4 assets (0 variant tests), 8 candidates; 0 to generate; image-seedream-v5-lite-text at max",
        "  checked 4 assets: every candidate is made for its current request",
        "total: 0 images to generate",
    ]
    assert run_cli(root, "explain", "first-frames.hook.city-park") == 2
    assert "(`imgbuild ls` lists every asset)" in capsys.readouterr().err
    docs = Path(__file__).resolve().parents[1] / "docs"
    assert not [p.name for p in docs.glob("*.md") if "plan -v` lists" in p.read_text()]


# -- 10. approving an identity set as a whole ------------------------------------------------------

SET_ASSET = "first-frames.hook.city-park-bench.golden-hour-sun"


def test_an_identity_set_is_approved_and_rejected_as_a_whole(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = new_project(tmp_path, capsys)
    identity_sets(root, 3)
    batch = root / "batches/first-frames.yaml"  # one asset, small placeholders: the test is about records
    text = batch.read_text().replace("quality: max\n", "quality: draft\nquality_reason: a test\n")
    text = text.replace("[small kitchen with morning clutter, city park bench]", "[city park bench]")
    batch.write_text(text.replace("[overcast daylight, golden-hour sun]", "[golden-hour sun]"))
    assert run_cli(root, "build") == 0
    capsys.readouterr()
    folder = root / "assets" / SET_ASSET
    record = json.loads((folder / "asset.json").read_text())
    made = [c for c in record["candidates"] if c["candidate"] == 2]
    assert [c["image"] for c in made] == [1, 2, 3]

    assert run_cli(root, "approve", SET_ASSET, "2", "--pass", "all", "--by", "ana") == 0
    copies = [f"assets/{SET_ASSET}/images/approved/{Path(c['file']).name}" for c in made]
    assert capsys.readouterr().out.splitlines() == [
        f"approved {SET_ASSET} candidate 2: the whole set of 3 images (by ana)",
        "  checklist: realism pass, benchmark-fit pass, repeatability pass, copied-creator pass, ad-drift pass",
        *(f"  approved image: {copy}" for copy in copies),
        "  batches/first-frames.lock.json updated",
    ]
    for cand, copy in zip(made, copies, strict=True):
        assert (root / copy).read_bytes() == (folder / cand["file"]).read_bytes()
    data = json.loads((folder / "asset.json").read_text())
    assert AssetRecord.from_json(data).to_json() == data  # the new field round-trips byte for byte
    approval = data["approval"]
    assert (approval["candidate"], approval["image"]) == (2, None)
    assert [(i["image"], i["source"], i["sha256"]) for i in approval["images"]] == [
        (c["image"], c["file"], c["sha256"]) for c in made
    ]
    lock = json.loads((root / "batches/first-frames.lock.json").read_text())["assets"][SET_ASSET]["approval"]
    assert [(i["image"], i["file"], i["sha256"]) for i in lock["images"]] == [
        (c["image"], copy, c["sha256"]) for c, copy in zip(made, copies, strict=True)
    ]

    assert run_cli(root, "status") == 0
    assert capsys.readouterr().out == ("first-frames: 1/1 current, 1 approved; image-seedream-v5-lite-sequential\n")
    assert run_cli(root, "ls", SET_ASSET) == 0
    assert capsys.readouterr().out.startswith(f"{SET_ASSET}  current  approved  ")
    assert run_cli(root, "check", "--approved") == 0
    assert capsys.readouterr().out.endswith("match their manifests and have a current approved image\n")
    assert run_cli(root, "explain", SET_ASSET) == 0
    assert "  approval: candidate 2 (the whole set of 3 images) by ana at " in capsys.readouterr().out

    assert run_cli(root, "reject", SET_ASSET, "2", "--fail", "repeatability=faces drift", "--by", "ana") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"rejected {SET_ASSET} candidate 2: the whole set of 3 images (by ana)"
    assert f"  candidate 2 was the approved image: {SET_ASSET} has no approval now" in out[-2]
    entry = json.loads((root / "batches/first-frames.lock.json").read_text())["assets"][SET_ASSET]
    assert (entry["approval"], entry["rejected"]) == (None, ["2.1", "2.2", "2.3"])
    assert run_cli(root, "approve", SET_ASSET, "1.2", "--pass", "all") == 0  # one image still works
    entry = json.loads((root / "batches/first-frames.lock.json").read_text())["assets"][SET_ASSET]
    assert (entry["approval"]["image"], "images" in entry["approval"]) == (2, False)


def test_a_default_provider_url_points_at_the_network_and_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    from imgbuild.providers import create_provider

    monkeypatch.setenv("FAL_KEY", "a-key-never-sent")
    monkeypatch.delenv("IMGBUILD_FAL_BASE_URL", raising=False)
    monkeypatch.setenv("IMGBUILD_FAL_STORAGE_URL", "http://127.0.0.1:9")
    provider = create_provider("fal", Path("."), {})
    try:
        assert provider.api.url_sources == {  # type: ignore[attr-defined]
            "https://queue.fal.run": "the URL is fal's public API: check the network (a proxy or test server"
            " goes in providers.fal.base_url in imgbuild.yaml, or $IMGBUILD_FAL_BASE_URL)",
            "http://127.0.0.1:9": "the URL comes from $IMGBUILD_FAL_STORAGE_URL (it wins over"
            " providers.fal.storage_url in imgbuild.yaml): fix or unset it",
        }
    finally:
        provider.close()  # type: ignore[attr-defined]
