"""`--shard i/n`: the split, and a batch built in 3 shards in 3 clones, combined, against one build.

The 3-clone test is the one a team's CI runs in spirit (docs/scale.md): a base commit, one clone
per shard on its own branch, a fan-in clone that merges the branches with git and runs
`imgbuild merge`. Its committed tree must be the one an unsharded build commits, byte for byte.
Both builds run with the reproducible clock (SOURCE_DATE_EPOCH, records/clock.py), so that
times, run ids and the order of each asset's events do not depend on when they ran, and with 4
jobs, so that the two candidates of one asset are made at the same time and finish in any order.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from helpers import BATCH, TEMPLATE, run_cli, run_doit, write_project

from imgbuild.errors import UsageError
from imgbuild.shard import SHARD_ENV, Shard, chosen_shard, parse_shard, shard_of

# Two shots of four assets each, two candidates per asset: 8 assets, 16 images.
TWO_SHOTS = (
    BATCH
    + """\
  - id: opener
    need: an opening frame
    template: opener.j2
    candidates: 2
"""
)
TEMPLATES = {"cover.j2": TEMPLATE, "opener.j2": "An opening frame. " + TEMPLATE}
EPOCH = "1764633600"  # 2025-12-02T00:00:00Z


def test_an_asset_belongs_to_one_shard_chosen_by_the_sha256_of_its_id() -> None:
    # Golden values: sha256 is the same on every machine and Python (hash() is salted per process).
    assert [shard_of("covers.hook.home-office.morning-light", n) for n in (1, 2, 3, 7)] == [1, 2, 2, 3]
    ids = [f"covers.hook.look-{i}" for i in range(3000)]
    owners = [[Shard(i, 3).owns(a) for i in (1, 2, 3)] for a in ids]
    assert all(sum(o) == 1 for o in owners)
    sizes = [sum(o[i] for o in owners) for i in range(3)]
    assert min(sizes) > 900, sizes  # an even split, near 1000 each


def test_a_bad_shard_is_exit_2_naming_where_it_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for text in ("0/3", "4/3", "3", "a/b", "1/0", "-1/3"):
        with pytest.raises(UsageError, match=r"--shard: .* is not a shard; expected I/N with 1 <= I <= N"):
            parse_shard(text)
    assert parse_shard(" 2 / 3 ") == Shard(2, 3)
    monkeypatch.setenv(SHARD_ENV, "")
    assert chosen_shard() is None  # an empty variable from a CI template means no shard
    monkeypatch.setenv(SHARD_ENV, "2/3")
    assert chosen_shard() == Shard(2, 3)
    assert chosen_shard("1/2") == Shard(1, 2)  # the option wins
    monkeypatch.setenv(SHARD_ENV, "3of3")
    write_project(tmp_path)
    assert run_cli(tmp_path, "plan") == 2
    assert "$IMGBUILD_SHARD: '3of3' is not a shard" in capsys.readouterr().err
    result = run_doit(tmp_path, "list")  # plain doit: the same message and exit code, nothing written
    assert result.returncode == 2, result.stderr
    assert "$IMGBUILD_SHARD: '3of3' is not a shard" in result.stderr
    assert not (tmp_path / "assets").exists()


def test_plan_and_check_of_a_shard_count_only_its_assets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path, batches={"covers": TWO_SHOTS}, templates=TEMPLATES)
    mine = [a for a in _asset_ids(tmp_path) if Shard(2, 3).owns(a)]
    assert run_cli(tmp_path, "plan", "--shard", "2/3") == 0
    out = capsys.readouterr().out
    assert f"shard 2/3: {len(mine)} of 8 assets" in out
    assert f"total: {2 * len(mine)} images to generate" in out
    assert run_cli(tmp_path, "build", "--shard", "2/3") == 0
    capsys.readouterr()
    made = sorted(p.name for p in (tmp_path / "assets").iterdir())
    assert made == sorted(mine)
    assert not list(tmp_path.glob("batches/*.lock.json"))  # a shard never writes a lock file
    assert run_cli(tmp_path, "check", "--shard", "2/3") == 0
    assert f"imgbuild check: all {len(mine)} assets match their manifests" in capsys.readouterr().out
    # The assets of the other shards are not orphans of this one, and the whole check still fails.
    assert run_cli(tmp_path, "check") == 1
    out = capsys.readouterr().out
    assert "orphaned" not in out
    assert f"{8 - len(mine)} of 8 assets need attention" in out


def test_each_orphan_is_reported_by_exactly_one_shard(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path, batches={"covers": TWO_SHOTS}, templates=TEMPLATES)
    assert run_cli(tmp_path, "build") == 0
    fewer = TWO_SHOTS.replace("environment: [home office, cafe]", "environment: [cafe]")
    write_project(tmp_path, batches={"covers": fewer}, templates=TEMPLATES)  # 4 of the 8 are orphans now
    capsys.readouterr()
    reported = []
    for i in (1, 2, 3):
        assert run_cli(tmp_path, "check", "--shard", f"{i}/3") in (0, 1)
        lines = capsys.readouterr().out.splitlines()
        reported += [line.split(": ")[1] for line in lines if line.startswith("orphaned:")]
    gone = [
        f"assets/covers.{shot}.home-office.{light}"
        for shot in ("hook", "opener")
        for light in ("morning-light", "lamp-light")
    ]
    assert sorted(reported) == sorted(gone)


def test_plain_doit_builds_the_shard_of_imgbuild_shard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_project(tmp_path, batches={"covers": TWO_SHOTS}, templates=TEMPLATES)
    mine = sorted(a for a in _asset_ids(tmp_path) if Shard(3, 3).owns(a))
    monkeypatch.setenv(SHARD_ENV, "3/3")
    listed = run_doit(tmp_path, "list", "--all")
    assert listed.returncode == 0, listed.stderr
    assert sorted(line.split()[0].removesuffix(".c1") for line in listed.stdout.splitlines() if ".c1" in line) == [
        f"covers:{a}" for a in mine
    ]
    assert "_lock" not in listed.stdout
    built = run_doit(tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    assert f"imgbuild: {2 * len(mine)} generated" in built.stdout
    assert "imgbuild: shard 3/3: no lock file written; once every shard is in one tree, `imgbuild merge`" in (
        built.stdout
    )
    assert sorted(p.name for p in (tmp_path / "assets").iterdir()) == mine
    assert not list(tmp_path.glob("batches/*.lock.json"))


def test_a_sharded_build_in_three_clones_merges_with_git_into_one_unsharded_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    origin = write_project(tmp_path / "origin", batches={"covers": TWO_SHOTS}, templates=TEMPLATES)
    (origin / ".gitignore").write_text(".imgbuild/\n__pycache__/\n", encoding="utf-8")
    _git(origin, "init", "-q", "-b", "main")
    _commit(origin, "the project, nothing built")

    whole = _clone(origin, tmp_path / "whole", "whole")
    assert run_cli(whole, "build", "-j", "4") == 0
    _commit(whole, "one unsharded build")

    owned: dict[int, set[str]] = {}
    for i in (1, 2, 3):
        clone = _clone(origin, tmp_path / f"shard-{i}", f"shard-{i}")
        assert run_cli(clone, "build", "-j", "4", "--shard", f"{i}/3") == 0
        _commit(clone, f"shard {i}/3")
        _git(clone, "push", "-q", "origin", f"shard-{i}")
        changed = _git(clone, "diff", "--name-only", "main", "HEAD").split()
        owned[i] = {path.split("/")[1] for path in changed}
        assert all(path.startswith("assets/") for path in changed), changed  # asset folders only
    assert all(owned.values()), owned  # every shard had work
    assert sorted(a for ids in owned.values() for a in ids) == sorted(_asset_ids(origin))  # each asset once

    combined = _clone(origin, tmp_path / "combined", "combined")
    merged = subprocess.run(
        ["git", "merge", "--no-edit", "origin/shard-1", "origin/shard-2", "origin/shard-3"],
        cwd=combined,
        capture_output=True,
        text=True,
        env=_git_env(),
        check=False,
    )
    assert merged.returncode == 0, merged.stdout + merged.stderr  # an octopus merge: no conflict at all
    assert "CONFLICT" not in merged.stdout
    capsys.readouterr()
    assert run_cli(combined, "merge") == 0
    assert "imgbuild merge: all 8 assets are current" in capsys.readouterr().out
    _commit(combined, "the shards, merged")

    files = _git(whole, "ls-files").split()
    assert files == _git(combined, "ls-files").split()
    assert "batches/covers.lock.json" in files
    assert sum(f.endswith(".jpg") for f in files) == 16
    for name in files:  # records, lock file and images, byte for byte
        assert (combined / name).read_bytes() == (whole / name).read_bytes(), name
    assert _git(combined, "rev-parse", "HEAD^{tree}") == _git(whole, "rev-parse", "HEAD^{tree}")
    assert run_cli(combined, "check") == 0


def test_without_the_reproducible_clock_records_state_the_real_time(tmp_path: Path) -> None:
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    index = next((tmp_path / "assets").glob("*/index.json")).read_text(encoding="utf-8")
    assert "2025-12-02T00:00:00.000Z" not in index
    assert '"time": "20' in index


def test_a_malformed_source_date_epoch_stops_the_build_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_project(tmp_path)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "2025-12-02")
    assert run_cli(tmp_path, "build") == 2
    assert "$SOURCE_DATE_EPOCH='2025-12-02' is not a time" in capsys.readouterr().err
    assert not (tmp_path / "assets").exists()


def test_merge_names_what_a_failed_shard_left_unmade(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_project(tmp_path, batches={"covers": TWO_SHOTS}, templates=TEMPLATES)
    assert run_cli(tmp_path, "build", "--shard", "1/3") == 0
    assert run_cli(tmp_path, "build", "--shard", "3/3") == 0
    capsys.readouterr()
    missing = sorted(a for a in _asset_ids(tmp_path) if Shard(2, 3).owns(a))
    assert run_cli(tmp_path, "merge") == 1
    out = capsys.readouterr().out
    named = [line.split(": ")[1].removeprefix("assets/") for line in out.splitlines() if line.startswith("new: ")]
    assert sorted(named) == missing
    assert f"{len(missing)} of 8 assets are not made for their current request" in out
    assert (tmp_path / "batches/covers.lock.json").exists()  # what exists is stated all the same


def _asset_ids(root: Path) -> list[str]:
    from imgbuild.resolve import resolve

    return [r.asset_id for r in resolve(root, use_cache=False).all_requests()]


def _git_env() -> dict[str, str]:
    return {
        **os.environ,
        "GIT_AUTHOR_NAME": "shard test",
        "GIT_AUTHOR_EMAIL": "shard@example.invalid",
        "GIT_COMMITTER_NAME": "shard test",
        "GIT_COMMITTER_EMAIL": "shard@example.invalid",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_NOSYSTEM": "1",
    }


def _git(folder: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, env=_git_env(), check=False)
    assert done.returncode == 0, f"git {' '.join(args)}: {done.stderr}"
    return done.stdout.strip()


def _commit(folder: Path, message: str) -> None:
    _git(folder, "add", "-A")
    _git(folder, "commit", "-q", "-m", message)


def _clone(origin: Path, folder: Path, branch: str) -> Path:
    _git(origin.parent, "clone", "-q", str(origin), str(folder))
    _git(folder, "checkout", "-q", "-b", branch)
    return folder


def test_reproducible_run_ids_repeat_across_projects_and_never_within_an_asset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from imgbuild.records import AssetStore
    from imgbuild.resolve import resolve

    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    runs = []
    for name in ("one", "two"):
        root = write_project(tmp_path / name)
        req = resolve(root, use_cache=False).all_requests()[0]
        store = AssetStore(root)
        first = store.new_run_id(req.asset_dir, f"{req.request_hash}:1")
        store.submit(req.facts, first, 1, provider="preview", provider_body={})
        store.fail(req.facts, first, 1, "refused by a content filter")
        again = store.new_run_id(req.asset_dir, f"{req.request_hash}:1")  # the retry of the same candidate
        runs.append((first, again))
    (first, again), other = runs
    assert first.startswith("20251202T000000000-") and again.startswith("20251202T000000000-")
    assert again != first  # the failed run keeps its id and its folder
    assert other == (first, again)  # the same work in another folder: the same ids


def test_a_shard_spends_from_the_budget_of_the_whole_project(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from ecosystem.test_json_output import validator
    from fakes.servers import FakeProviders

    from imgbuild.resolve import resolve
    from imgbuild.shard import project_estimate, select_shard

    hosted = "provider: ark\nproviders:\n  ark:\n    retries: {attempts: 2, base_delay: 0.01, max_delay: 0.05}\n"
    root = write_project(tmp_path, batches={"covers": TWO_SHOTS}, templates=TEMPLATES, config=hosted)
    whole = resolve(root, use_cache=False)
    mine, all_images = project_estimate(select_shard(whole, Shard(1, 3))), project_estimate(whole)
    assert mine[1] < all_images[1]
    with FakeProviders() as fake:
        monkeypatch.setenv("ARK_API_KEY", fake.keys["ark"])
        monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", fake.base_urls["ark"])
        # Enough for shard 1's images, not for the whole project's: three such shards would overspend.
        (root / "imgbuild.yaml").write_text(hosted + f"budget: {(mine[1] + all_images[1]) / 2:.4f}\n")
        capsys.readouterr()
        assert run_cli(root, "plan", "--shard", "1/3") == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[-2].startswith(f"total: {mine[0]} images to generate") and "budget" not in lines[-2]
        assert lines[-1].startswith(f"all 3 shards: {all_images[0]} images to generate")
        assert lines[-1].endswith(": a build would refuse)")
        assert run_cli(root, "plan", "--shard", "1/3", "--json") == 0
        document = json.loads(capsys.readouterr().out)
        assert (document["images"], document["over_budget"]) == (mine[0], True)  # what this shard's build says
        errors = list(validator("plan").iter_errors(document))
        assert not errors, errors
        assert run_cli(root, "build", "--shard", "1/3") == 3
        assert "(its 3 shards together), over the budget" in capsys.readouterr().out
        assert fake.requests == []
        (root / "imgbuild.yaml").write_text(hosted + f"budget: {all_images[1] + 0.01:.4f}\n")
        assert run_cli(root, "build", "--shard", "1/3") == 0
        assert fake.billed["ark"] == mine[0]  # one image per call: the shard's images, no others


def test_merge_states_the_approvals_of_asset_json_a_lock_file_taken_whole_had_lost(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A git merge that takes one side's lock file whole (`git checkout --theirs`) keeps the
    other side's approval only in asset.json; `imgbuild merge` writes the lock from the records,
    so the approval is stated again — and a lock already right is left byte for byte."""
    write_project(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    lock = tmp_path / "batches/covers.lock.json"
    before = lock.read_bytes()
    capsys.readouterr()
    assert run_cli(tmp_path, "merge") == 0
    assert "unchanged: batches/covers.lock.json" in capsys.readouterr().out

    asset = _asset_ids(tmp_path)[0]
    assert run_cli(tmp_path, "approve", asset, "1", "--pass", "all", "--by", "ana") == 0
    approved = lock.read_bytes()
    assert approved != before
    lock.write_bytes(before)  # the side of the merge that never saw the approval

    assert run_cli(tmp_path, "merge") == 0
    assert "wrote: batches/covers.lock.json" in capsys.readouterr().out
    assert lock.read_bytes() == approved
    capsys.readouterr()
    assert run_cli(tmp_path, "ls", "--state", "approved") == 0
    assert capsys.readouterr().out.split()[0] == asset
