"""`imgbuild approve` / `reject`, the review state in status, `check --approved` and lock files."""

from __future__ import annotations

import fcntl
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from helpers import BATCH, run_cli, run_doit, snapshot, write_project

from imgbuild.decisions import reviewer
from imgbuild.review import CHECKLIST

ASSET = "covers.hook.cafe.lamp-light"
ASSET_DIR = f"assets/{ASSET}"
ALL_ASSETS = (
    "covers.hook.home-office.morning-light",
    "covers.hook.home-office.lamp-light",
    "covers.hook.cafe.morning-light",
    "covers.hook.cafe.lamp-light",
)
TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Path:
    """A built project (4 assets, 2 candidates each); the reviewer is Ana unless --by says otherwise."""
    monkeypatch.setenv("IMGBUILD_REVIEWER", "Ana")
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    capsys.readouterr()
    return tmp_path


def asset_record(root: Path, asset: str = ASSET) -> dict[str, Any]:
    return json.loads((root / "assets" / asset / "asset.json").read_text())


def lock_entry(root: Path, asset: str = ASSET) -> dict[str, Any]:
    return json.loads((root / "batches/covers.lock.json").read_text())["assets"][asset]


def candidate(root: Path, k: int, asset: str = ASSET) -> dict[str, Any]:
    return next(c for c in asset_record(root, asset)["candidates"] if c["candidate"] == k)


def approve_all(root: Path, k: int = 1) -> None:
    for asset in ALL_ASSETS:
        assert run_cli(root, "approve", asset, str(k), "--pass", "all") == 0


PASS_ALL = {item: {"result": "pass", "note": None} for item in CHECKLIST}


# -- approving ----------------------------------------------------------------------------------


def test_approve_copies_the_image_and_records_the_review(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    cand = candidate(project, 2)
    name = cand["file"].rsplit("/", 1)[1]

    assert run_cli(project, "approve", ASSET, "2", "--pass", "all", "--by", "Ana Reviewer") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"approved {ASSET} candidate 2 (by Ana Reviewer)",
        "  checklist: realism pass, benchmark-fit pass, repeatability pass, copied-creator pass, ad-drift pass",
        f"  approved image: {ASSET_DIR}/images/approved/{name}",
        "  batches/covers.lock.json updated",
    ]

    after = snapshot(project)
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert changed == [
        f"{ASSET_DIR}/asset.json",
        f"{ASSET_DIR}/images/approved/{name}",
        f"{ASSET_DIR}/index.json",
        "batches/covers.lock.json",
    ]
    assert after[f"{ASSET_DIR}/images/approved/{name}"] == before[f"{ASSET_DIR}/{cand['file']}"]  # byte for byte

    record = asset_record(project)
    sent = json.loads((project / ASSET_DIR / "runs/image" / cand["run"] / "request.json").read_text())
    approval = dict(record["approval"])
    assert TIME.fullmatch(approval.pop("at"))
    assert approval == {
        "candidate": 2,
        "image": None,
        "run": cand["run"],
        "source": cand["file"],
        "file": f"images/approved/{name}",
        "sha256": cand["sha256"],
        "request_hash": record["request_hash"],
        "prompt_hash": record["prompt_hash"],
        "request": sent["request"],
        "by": "Ana Reviewer",
        "checklist": PASS_ALL,
        "override": False,
        "note": None,
    }
    [review] = record["reviews"]
    assert TIME.fullmatch(review.pop("at"))
    assert review == {
        "decision": "approve",
        "candidate": 2,
        "image": None,
        "run": cand["run"],
        "request_hash": record["request_hash"],
        "by": "Ana Reviewer",
        "checklist": PASS_ALL,
        "override": False,
        "note": None,
    }
    event = json.loads((project / ASSET_DIR / "index.json").read_text())["history"][-1]
    assert {k: event[k] for k in ("event", "kind", "candidate", "image", "candidate_run", "by", "override")} == {
        "event": "approved",
        "kind": "review",
        "candidate": 2,
        "image": None,
        "candidate_run": cand["run"],
        "by": "Ana Reviewer",
        "override": False,
    }

    entry = lock_entry(project)
    assert entry["rejected"] == []
    assert entry["approval"] == {
        "candidate": 2,
        "image": None,
        "file": f"{ASSET_DIR}/images/approved/{name}",
        "sha256": cand["sha256"],
        "request_hash": entry["request_hash"],
        "stale": False,
        "by": "Ana Reviewer",
        "at": record["approval"]["at"],
        "override": False,
        "request": sent["request"],
    }
    # the other assets' lock entries are untouched
    assert {k: v for k, v in json.loads(after["batches/covers.lock.json"])["assets"].items() if k != ASSET} == {
        k: v for k, v in json.loads(before["batches/covers.lock.json"])["assets"].items() if k != ASSET
    }


def test_approving_with_a_failed_item_needs_override_and_note(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ("approve", ASSET, "1", "--pass", "all", "--fail", "ad-drift=a little salesy")
    before = snapshot(project)
    for extra in ((), ("--override",), ("--note", "ok for the launch test")):
        assert run_cli(project, *args, *extra) == 2
        assert capsys.readouterr().err == (
            "imgbuild: error: checklist item ad-drift failed:"
            " approving anyway needs --override and a --note saying why\n"
        )
        assert snapshot(project) == before

    assert run_cli(project, *args, "--override", "--note", "ok for the launch test") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == (
        "  checklist: realism pass, benchmark-fit pass, repeatability pass, copied-creator pass,"
        " ad-drift FAIL (a little salesy)"
    )
    assert out[2] == "  override: ad-drift failed — ok for the launch test"
    approval = asset_record(project)["approval"]
    assert approval["checklist"]["ad-drift"] == {"result": "fail", "note": "a little salesy"}
    assert approval["checklist"]["realism"] == {"result": "pass", "note": None}
    assert (approval["override"], approval["note"]) == (True, "ok for the launch test")
    assert lock_entry(project)["approval"]["override"] is True


def test_approving_again_replaces_the_approval_and_keeps_the_old_in_reviews(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 0
    first = asset_record(project)["approval"]
    assert run_cli(project, "approve", ASSET, "2", "--pass", "all=looks right", "--note", "sharper") == 0
    assert capsys.readouterr().out.splitlines()[-3:] == [
        f"  approved image: {ASSET_DIR}/images/approved/{candidate(project, 2)['file'].rsplit('/', 1)[1]}",
        "  replaces the approval of candidate 1 (kept in the asset's reviews)",
        "  batches/covers.lock.json updated",
    ]
    record = asset_record(project)
    assert record["approval"]["candidate"] == 2
    assert record["approval"]["checklist"]["realism"] == {"result": "pass", "note": "looks right"}
    assert [(r["decision"], r["candidate"]) for r in record["reviews"]] == [("approve", 1), ("approve", 2)]
    assert record["reviews"][0]["at"] == first["at"]
    # both copies stay: an approved image is never removed
    assert len(list((project / ASSET_DIR / "images/approved").iterdir())) == 2


# -- rejecting ----------------------------------------------------------------------------------


def test_reject_records_and_clears_the_approval_of_the_rejected_candidate(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "reject", ASSET, "1", "--fail", "realism=hands melt", "--by", "Bo") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"rejected {ASSET} candidate 1 (by Bo)",
        "  checklist: realism FAIL (hands melt)",
        "  batches/covers.lock.json updated",
    ]
    record = asset_record(project)
    assert record["approval"] is None
    assert record["reviews"][-1]["decision"] == "reject"
    assert record["reviews"][-1]["checklist"] == {"realism": {"result": "fail", "note": "hands melt"}}
    assert lock_entry(project)["rejected"] == ["1"]

    assert run_cli(project, "approve", ASSET, "2", "--pass", "all") == 0
    approved_file = project / ASSET_DIR / asset_record(project)["approval"]["file"]
    capsys.readouterr()
    assert run_cli(project, "reject", ASSET, "2", "--note", "off-brief after all") == 0
    assert capsys.readouterr().out.splitlines() == [
        f"rejected {ASSET} candidate 2 (by Ana)",
        "  note: off-brief after all",
        f"  candidate 2 was the approved image: {ASSET} has no approval now (its copy stays in images/approved/)",
        "  batches/covers.lock.json updated",
    ]
    assert asset_record(project)["approval"] is None
    assert lock_entry(project)["approval"] is None
    assert lock_entry(project)["rejected"] == ["1", "2"]
    assert approved_file.is_file()
    events = json.loads((project / ASSET_DIR / "index.json").read_text())["history"]
    assert [e["event"] for e in events if e["kind"] == "review"] == ["rejected", "approved", "rejected"]

    # a later approval of a rejected candidate takes it off the rejected list
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 0
    assert lock_entry(project)["rejected"] == ["2"]


def test_rejecting_another_candidate_keeps_the_approval(project: Path) -> None:
    assert run_cli(project, "approve", ASSET, "2", "--pass", "all") == 0
    assert run_cli(project, "reject", ASSET, "1", "--fail", "benchmark-fit") == 0
    assert asset_record(project)["approval"]["candidate"] == 2
    assert lock_entry(project)["approval"]["candidate"] == 2


# -- refused decisions --------------------------------------------------------------------------

REFUSED = [
    (
        ("approve", "covers.hook.cafe.lamp-ligth", "1", "--pass", "all"),
        "no asset 'covers.hook.cafe.lamp-ligth' in this project; did you mean covers.hook.cafe.lamp-light,"
        " covers.hook.cafe.morning-light, covers.hook.home-office.lamp-light? (`imgbuild ls` lists every asset)",
    ),
    (
        ("reject", "nothing-like-it", "1", "--note", "x"),
        "no asset 'nothing-like-it' in this project (`imgbuild ls` lists every asset)",
    ),
    (
        ("approve", ASSET, "3", "--pass", "all"),
        f"asset {ASSET} has no candidate 3 for its current request (candidates: 1, 2)",
    ),
    (
        ("approve", ASSET, "1.2", "--pass", "all"),
        f"candidate 1 of asset {ASSET} is a single image, not a set: give 1",
    ),
    (
        ("approve", ASSET, "first", "--pass", "all"),
        "candidate 'first' is not a candidate number: give K (e.g. 2), or K.I for image I of a sequential set",
    ),
    (
        ("approve", ASSET, "0", "--pass", "all"),
        "candidate '0' is not a candidate number: give K (e.g. 2), or K.I for image I of a sequential set",
    ),
    (
        ("approve", ASSET, "1", "--pass", "realism", "--pass", "ad-drift"),
        "approve needs every checklist item passed or failed; missing: benchmark-fit, repeatability, copied-creator"
        " (--pass ITEM, --fail ITEM=NOTE, or --pass all for every item not failed)",
    ),
    (
        ("approve", ASSET, "1"),
        "approve needs every checklist item passed or failed; missing: realism, benchmark-fit, repeatability,"
        " copied-creator, ad-drift (--pass ITEM, --fail ITEM=NOTE, or --pass all for every item not failed)",
    ),
    (
        ("approve", ASSET, "1", "--pass", "realsim"),
        "unknown checklist item 'realsim' — did you mean realism? (the items: realism, benchmark-fit,"
        " repeatability, copied-creator, ad-drift, or all)",
    ),
    (
        ("reject", ASSET, "1", "--fail", "all"),
        "unknown checklist item 'all' (the items: realism, benchmark-fit, repeatability, copied-creator, ad-drift)",
    ),
    (
        ("approve", ASSET, "1", "--pass", "realism", "--fail", "realism"),
        "checklist item realism is both passed and failed: state each item once",
    ),
    (
        ("approve", ASSET, "1", "--pass", "realism", "--pass", "realism=twice"),
        "checklist item realism is given twice: state each item once",
    ),
    (
        ("approve", ASSET, "1", "--pass", "all", "--fail", "realism", "--fail", "ad-drift", "--override"),
        "checklist items realism, ad-drift failed: approving anyway needs --override and a --note saying why",
    ),
    (
        ("approve", ASSET, "1", "--pass", "all", "--override", "--note", "why not"),
        "--override is for approving despite a failed checklist item, and every item passed",
    ),
    (
        ("reject", ASSET, "1"),
        "reject needs a reason: at least one --fail ITEM[=NOTE], or a --note",
    ),
    (
        ("reject", ASSET, "1", "--pass", "realism", "--note", "  "),
        "reject needs a reason: at least one --fail ITEM[=NOTE], or a --note",
    ),
]


@pytest.mark.parametrize(("args", "message"), REFUSED, ids=[" ".join(a) for a, _ in REFUSED])
def test_refused_decisions_say_why_and_change_nothing(
    project: Path, capsys: pytest.CaptureFixture[str], args: tuple[str, ...], message: str
) -> None:
    before = snapshot(project)
    assert run_cli(project, *args) == 2
    captured = capsys.readouterr()
    assert captured.err == f"imgbuild: error: {message}\n"
    assert captured.out == ""
    assert snapshot(project) == before


def test_the_asset_id_is_checked_before_the_checklist(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(project, "approve", "covers.hook.cafe", "9") == 2
    assert capsys.readouterr().err == (
        "imgbuild: error: no asset 'covers.hook.cafe' in this project; did you mean covers.hook.cafe.lamp-light,"
        " covers.hook.cafe.morning-light? (`imgbuild ls` lists every asset)\n"
    )


def test_an_asset_never_built_or_a_missing_file_is_refused(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cand = candidate(project, 2)
    (project / ASSET_DIR / cand["file"]).unlink()
    before = snapshot(project)
    assert run_cli(project, "approve", ASSET, "2", "--pass", "all") == 2
    assert capsys.readouterr().err == (
        f"imgbuild: error: candidate 2 of asset {ASSET}: its image {ASSET_DIR}/{cand['file']} is missing"
        " (run doit to make it again)\n"
    )
    assert snapshot(project) == before

    shutil.rmtree(project / ASSET_DIR)
    before = snapshot(project)
    assert run_cli(project, "reject", ASSET, "1", "--note", "x") == 2
    assert capsys.readouterr().err == f"imgbuild: error: asset {ASSET} has no candidates yet (run doit to build it)\n"
    assert snapshot(project) == before


def test_a_changed_candidate_file_is_not_approved(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cand = candidate(project, 1)
    path = project / ASSET_DIR / cand["file"]
    path.write_bytes(path.read_bytes() + b"retouched")
    before = snapshot(project)
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 2
    assert capsys.readouterr().err == (
        f"imgbuild: error: candidate 1 of asset {ASSET}: {ASSET_DIR}/{cand['file']} has changed since it was"
        " generated (its sha256 is not the one in asset.json); only the generated image can be approved\n"
    )
    assert snapshot(project) == before


def test_an_approved_file_is_never_overwritten(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cand = candidate(project, 1)
    name = cand["file"].rsplit("/", 1)[1]
    other = project / ASSET_DIR / "images/approved" / name
    other.parent.mkdir(parents=True)
    other.write_bytes(b"something else")
    before = snapshot(project)
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 2
    assert capsys.readouterr().err == (
        f"imgbuild: error: {ASSET_DIR}/images/approved/{name} exists with other content;"
        " an approved image is never overwritten\n"
    )
    assert snapshot(project) == before


def test_no_decision_while_a_build_runs(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = snapshot(project)
    with open(project / ".imgbuild/build.lock", "w") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("pid 4242")
        held.flush()
        assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 2
    assert capsys.readouterr().err == (
        "imgbuild: error: a build is running in this project (pid 4242); approve when it has finished\n"
    )
    assert snapshot(project) == before


# -- sequential identity sets -------------------------------------------------------------------


def make_set(root: Path, k: int = 1, images: int = 3) -> list[dict[str, Any]]:
    """Turn candidate `k` into a sequential identity set of `images` images, as a set build records it."""
    record = asset_record(root)
    first = next(c for c in record["candidates"] if c["candidate"] == k)
    entries = []
    for i in range(1, images + 1):
        entry = {**first, "image": i, "file": first["file"].replace(".jpg", f"-{i}.jpg")}
        shutil.copy(root / ASSET_DIR / first["file"], root / ASSET_DIR / entry["file"])
        entries.append(entry)
    record["candidates"] = [c for c in record["candidates"] if c["candidate"] != k] + entries
    (root / ASSET_DIR / "asset.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return entries


def test_image_numbers_of_a_set(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # `1` alone approves the whole set (tests/test_paper_cuts.py); `1.I` is image I of it.
    entries = make_set(project)
    before = snapshot(project)
    for args, message in [
        (("1.4",), f"asset {ASSET} has no candidate 1.4 for its current request (candidates: 1.1, 1.2, 1.3, 2)"),
        (("2.1",), f"candidate 2 of asset {ASSET} is a single image, not a set: give 2"),
    ]:
        assert run_cli(project, "approve", ASSET, *args, "--pass", "all") == 2
        assert capsys.readouterr().err == f"imgbuild: error: {message}\n"
        assert snapshot(project) == before

    assert run_cli(project, "approve", ASSET, "1.2", "--pass", "all") == 0
    assert capsys.readouterr().out.splitlines()[0] == f"approved {ASSET} candidate 1.2 (by Ana)"
    approval = asset_record(project)["approval"]
    assert (approval["candidate"], approval["image"], approval["source"]) == (1, 2, entries[1]["file"])
    assert (project / ASSET_DIR / approval["file"]).read_bytes() == (
        project / ASSET_DIR / entries[1]["file"]
    ).read_bytes()
    assert lock_entry(project)["approval"]["image"] == 2

    assert run_cli(project, "reject", ASSET, "1.3", "--fail", "repeatability") == 0
    assert lock_entry(project)["rejected"] == ["1.3"]


# -- status, check --approved, builds -----------------------------------------------------------


def test_check_approved_and_status(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(project, "status") == 0
    assert capsys.readouterr().out == "covers: 4/4 current, 0 approved, 4 unreviewed; image-seedream-v5-lite-text\n"
    assert run_cli(project, "check") == 0
    assert capsys.readouterr().out == "imgbuild check: all 4 assets match their manifests\n"
    assert run_cli(project, "check", "--approved") == 1
    assert capsys.readouterr().out.splitlines() == [
        *(f"unapproved: assets/{a}: no approved image (run imgbuild approve {a} <candidate>)" for a in ALL_ASSETS),
        "imgbuild check: 4 of 4 assets have no current approved image (run `imgbuild approve <asset> <candidate>`)",
    ]

    approve_all(project)
    assert run_cli(project, "reject", ASSET, "2", "--fail", "ad-drift") == 0
    capsys.readouterr()
    assert run_cli(project, "check", "--approved") == 0
    assert capsys.readouterr().out == (
        "imgbuild check: all 4 assets match their manifests and have a current approved image\n"
    )
    assert run_cli(project, "reject", ASSET, "1", "--fail", "ad-drift") == 0
    capsys.readouterr()
    assert run_cli(project, "status") == 0
    assert capsys.readouterr().out == "covers: 4/4 current, 3 approved, 1 rejected; image-seedream-v5-lite-text\n"

    # an approved image deleted from the tree is no approved image for the render stage
    other = ALL_ASSETS[0]
    approved = project / "assets" / other / asset_record(project, other)["approval"]["file"]
    approved.unlink()
    assert run_cli(project, "check", "--approved") == 1
    assert capsys.readouterr().out.splitlines() == [
        f"unapproved: assets/{other}: the approved image assets/{other}/images/approved/{approved.name} is missing"
        f" (restore it, or run imgbuild approve {other} <candidate> again)",
        f"unapproved: {ASSET_DIR}: no approved image (run imgbuild approve {ASSET} <candidate>)",
        "imgbuild check: 2 of 4 assets have no current approved image (run `imgbuild approve <asset> <candidate>`)",
    ]


def test_builds_never_touch_approved_images_and_a_changed_manifest_makes_the_approval_stale(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_cli(project, "approve", ASSET, "2", "--pass", "all") == 0
    approved_before = snapshot(project / ASSET_DIR / "images/approved")
    record_before = asset_record(project)
    before = snapshot(project)

    noop = run_doit(project)
    assert noop.returncode == 0, noop.stderr
    assert "nothing to generate" in noop.stdout
    assert snapshot(project) == before  # the lock file already holds the decision

    # a change outside the shot's editable attributes: new candidates, made from scratch
    write_project(project, batches={"covers": BATCH.replace('aspect_ratio: "1:1"', 'aspect_ratio: "16:9"')})
    capsys.readouterr()
    assert run_cli(project, "status") == 0
    assert (
        capsys.readouterr().out == "covers: 0/4 current (4 changed), 1 approved (1 stale), 3 unreviewed;"
        " image-seedream-v5-lite-text\n"
    )
    assert run_cli(project, "check", "--approved") == 1
    lines = capsys.readouterr().out.splitlines()
    assert f"stale approval: {ASSET_DIR}: approved candidate 2 was made for an older request" in lines
    assert lines[-2:] == [
        "imgbuild check: 4 of 4 assets need attention (run `imgbuild plan`, then `doit`)",
        "imgbuild check: 4 of 4 assets have no current approved image (run `imgbuild approve <asset> <candidate>`)",
    ]

    rebuild = run_doit(project)
    assert rebuild.returncode == 0, rebuild.stderr
    assert snapshot(project / ASSET_DIR / "images/approved") == approved_before
    record = asset_record(project)
    assert record["approval"] == record_before["approval"]  # stays attached to its request
    assert record["request_hash"] != record["approval"]["request_hash"]
    entry = lock_entry(project)
    assert entry["approval"]["stale"] is True
    assert entry["approval"]["request_hash"] == record_before["request_hash"]
    assert entry["approval"]["request"]["aspect_ratio"] == "1:1"
    assert run_cli(project, "status") == 0
    assert (
        capsys.readouterr().out
        == "covers: 4/4 current, 1 approved (1 stale), 3 unreviewed; image-seedream-v5-lite-text\n"
    )
    assert run_cli(project, "check", "--approved") == 1
    assert f"stale approval: {ASSET_DIR}: approved candidate 2 was made for an older request" in (
        capsys.readouterr().out.splitlines()
    )

    # a new approval of the current request ends it
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 0
    assert lock_entry(project)["approval"]["stale"] is False
    capsys.readouterr()
    assert run_cli(project, "status") == 0
    assert capsys.readouterr().out == "covers: 4/4 current, 1 approved, 3 unreviewed; image-seedream-v5-lite-text\n"


def test_approving_before_rebuilding_a_changed_manifest_says_the_approval_is_stale(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(project, batches={"covers": BATCH.replace('aspect_ratio: "1:1"', 'aspect_ratio: "16:9"')})
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 0
    assert capsys.readouterr().out.splitlines()[-2:] == [
        "  note: the manifest has changed since this candidate was made; the approval shows as stale"
        " until a candidate of the new request is approved (run doit to make them)",
        "  batches/covers.lock.json updated",
    ]


def test_a_lock_file_written_before_reviews_gains_the_review_state(project: Path) -> None:
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 0
    lock = project / "batches/covers.lock.json"
    expected = json.loads(lock.read_text())["assets"]
    data = json.loads(lock.read_text())
    for entry in data["assets"].values():
        del entry["approval"], entry["rejected"]
    lock.write_text(json.dumps(data))
    assert run_cli(project, "build") == 0
    assert json.loads(lock.read_text())["assets"] == expected


def test_a_decision_without_a_lock_entry_leaves_the_lock_to_the_next_build(
    project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (project / "batches/covers.lock.json").unlink()
    assert run_cli(project, "approve", ASSET, "1", "--pass", "all") == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "  batches/covers.lock.json has no entry for this asset yet; the next build writes it"
    )
    assert not (project / "batches/covers.lock.json").exists()
    assert run_cli(project, "build") == 0
    assert lock_entry(project)["approval"]["candidate"] == 1


# -- who decides --------------------------------------------------------------------------------


def test_the_reviewer_comes_from_by_env_git_or_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IMGBUILD_REVIEWER", "From Env")
    monkeypatch.setenv("USER", "login-name")
    assert reviewer(tmp_path, "  Given  ") == "Given"
    assert reviewer(tmp_path, None) == "From Env"
    monkeypatch.delenv("IMGBUILD_REVIEWER")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    assert reviewer(tmp_path, None) == "login-name"  # no git repository with a user.name here
    if shutil.which("git"):
        subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
        subprocess.run(["git", "-C", str(tmp_path), "config", "user.name", "Git User"], check=True)
        assert reviewer(tmp_path, None) == "Git User"
