"""The no-op index: a plain `doit` or `imgbuild check` skips the batches that cannot have changed,
and gives the same answer as looking at everything."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from helpers import BATCH, PERSONA, TEMPLATE, run_cli, run_doit, write_project

import imgbuild.cache
import imgbuild.resolve
from imgbuild import noop
from imgbuild.tasks import lean_run

OTHER = BATCH.replace("purpose: covers for tests", "purpose: more covers").replace(
    "template: cover.j2", "template: other.j2"
)


def age(root: Path, seconds: float = 60) -> None:
    """Every file older than the racy window (records too), as between real edits."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if ".imgbuild" not in path.parts:
            os.utime(path, (past, past))


def built(root: Path, **kwargs: object) -> Path:
    write_project(root, **kwargs)  # type: ignore[arg-type]
    age(root)
    assert run_cli(root, "build") == 0
    age(root)
    return root


@pytest.mark.parametrize(
    ("argv", "lean"),
    [
        ([], True),
        (["-n", "8"], True),
        (["run", "--continue"], True),
        (["--verbosity", "2"], True),
        (["list"], False),
        (["info", "covers"], False),
        (["covers"], False),
        (["run", "covers:_lock"], False),
        (["-a"], False),
        (["forget"], False),
        (["--no-such-option"], False),
    ],
)
def test_only_a_plain_run_of_every_task_is_lean(argv: list[str], lean: bool) -> None:
    assert lean_run(argv) is lean


def test_a_noop_build_gives_doit_no_task_for_a_current_batch(tmp_path: Path) -> None:
    root = built(tmp_path)
    first = run_doit(root)  # finds every image current and enters the batch in the index
    assert "all 8 images up to date" in first.stdout
    source = noop.source(root, noop.BUILD)
    assert source.counts == {"covers": 8}
    assert dict(source.resolution.requests) == {}  # nothing resolved, nothing handed to doit
    again = run_doit(root)
    assert again.returncode == 0 and "all 8 images up to date, nothing to generate" in again.stdout
    # doit still knows every image task by name.
    listed = run_doit(root, "list", "--all").stdout.split()
    tasks = [t for t in listed if t.startswith("covers:") and t.endswith((".c1", ".c2"))]
    assert len(tasks) == 8
    info = run_doit(root, "info", tasks[0])
    assert info.returncode == 0 and "candidate" in info.stdout
    one = run_doit(root, tasks[0])
    assert one.returncode == 0 and "all 1 images up to date" in one.stdout


def test_a_lost_image_is_rebuilt_although_its_batch_was_indexed(tmp_path: Path) -> None:
    root = built(tmp_path)
    run_doit(root)
    lost = sorted(root.glob("assets/*/images/candidates/*"))[3]
    lost.unlink()
    rebuilt = run_doit(root)
    assert "1 generated, 7 up to date, 0 failed" in rebuilt.stdout, rebuilt.stdout
    assert len(list(root.glob("assets/*/images/candidates/*"))) == 8  # made again, under a new run id


def test_an_approval_or_an_edit_is_seen_through_the_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = built(tmp_path)
    run_doit(root)
    asset = sorted(p.name for p in (root / "assets").iterdir())[0]
    assert run_cli(root, "approve", asset, "1", "--pass", "all") == 0  # rewrites the lock file: the index is stale
    age(root)
    assert "all 8 images up to date" in run_doit(root).stdout
    assert noop.source(root, noop.BUILD).counts == {"covers": 8}  # entered again
    write_project(root, batches={"covers": BATCH.replace("cream sweater", "navy blazer")})
    age(root)
    capsys.readouterr()
    assert run_cli(root, "check") == 1
    assert "4 of 4 assets need attention" in capsys.readouterr().out
    build = run_doit(root)
    assert "generated" in build.stdout and "0 failed" in build.stdout


def test_an_edited_batch_re_resolves_only_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = built(
        tmp_path, batches={"covers": BATCH, "more": OTHER}, templates={"cover.j2": TEMPLATE, "other.j2": TEMPLATE}
    )
    rendered: list[list[str]] = []
    real = imgbuild.resolve._render
    monkeypatch.setattr(
        imgbuild.resolve,
        "_render",
        lambda p, prov, batches, problems: rendered.append([b.id for b in batches]) or real(p, prov, batches, problems),
    )
    imgbuild.resolve.resolve(root)
    assert rendered == []  # all from the cache
    (root / "batches/more.yaml").write_text(OTHER.replace("purpose: more covers", "purpose: still more covers"))
    age(root)
    assert imgbuild.resolve.resolve(root).batch("more").purpose == "still more covers"
    assert rendered == [["more"]]
    (root / "templates/other.j2").write_text(TEMPLATE.replace("Photo", "Portrait"))
    age(root)
    again = imgbuild.resolve.resolve(root)
    assert rendered[-1] == ["more"]  # only the batch whose shots load other.j2
    assert again.requests["more"][0].prompt.startswith("Portrait")
    assert again.requests["covers"][0].prompt.startswith("Photo")
    (root / "personas/mia.yaml").write_text(PERSONA.replace("late twenties", "early thirties"))
    age(root)
    imgbuild.resolve.resolve(root)
    assert sorted(rendered[-1]) == ["covers", "more"]  # both batches rest on the persona


def test_touching_a_batch_file_keeps_every_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = built(tmp_path)
    run_doit(root)
    os.utime(root / "batches/covers.yaml")  # new stamp, same content (a checkout, a touch)
    monkeypatch.setattr(imgbuild.resolve, "_render", lambda *a: pytest.fail("resolved again"))
    assert noop.source(root, noop.BUILD).counts == {"covers": 8}


def test_check_sees_a_changed_asset_record_through_its_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = built(tmp_path)
    assert run_cli(root, "check") == 0
    assert run_cli(root, "check") == 0  # from the index
    assert noop.source(root, noop.CHECK).counts == {"covers": 4}
    record = sorted(root.glob("assets/*/asset.json"))[0]
    record.write_text("{ broken")  # a bad merge: the lock file alone still vouches for it
    capsys.readouterr()
    assert run_cli(root, "check") == 2
    assert f"broken: assets/{record.parent.name}/asset.json: is not valid JSON" in capsys.readouterr().out


def test_check_finds_an_orphan_next_to_an_indexed_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = built(tmp_path)
    run_cli(root, "check")
    stray = root / "assets" / "covers.hook.stray"
    stray.mkdir()
    (stray / "asset.json").write_text(json.dumps({"schema_version": 1}))
    capsys.readouterr()
    assert run_cli(root, "check") == 1
    assert "orphaned: assets/covers.hook.stray" in capsys.readouterr().out


def test_doit_info_forget_and_clean_do_something_sensible(tmp_path: Path) -> None:
    """Issue 16, item 6: `doit info <batch>` exits 0 when the batch is built, `doit forget` with no
    task does not crash, `doit clean` says why no paid image is removed and what to run instead."""
    root = tmp_path
    write_project(root)
    age(root)
    stale = run_doit(root, "info", "covers")
    assert stale.returncode == 1 and "status     : run" in stale.stdout  # nothing built yet
    assert run_cli(root, "build") == 0
    info = run_doit(root, "info", "covers")
    assert info.returncode == 0, info.stdout + info.stderr
    assert "status     : up-to-date" in info.stdout
    forget = run_doit(root, "forget")
    assert forget.returncode == 0 and "Traceback" not in forget.stderr
    assert "forgetting covers" in forget.stdout
    images = sorted(root.glob("assets/*/images/candidates/*"))
    clean = run_doit(root, "clean")
    assert clean.returncode == 0
    assert "covers: nothing removed: images are paid work" in clean.stdout
    assert "imgbuild prune" in clean.stdout
    assert sorted(root.glob("assets/*/images/candidates/*")) == images
    assert "all 8 images up to date" in run_doit(root).stdout  # forgetting doit's state costs nothing


def test_imgbuild_build_of_everything_uses_the_index_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = built(tmp_path)
    assert run_cli(root, "build") == 0  # finds every image current: the batch is indexed
    monkeypatch.setattr(imgbuild.resolve, "_render", lambda *a: pytest.fail("resolved again"))
    monkeypatch.setattr(imgbuild.cache, "load_batch", lambda *a: pytest.fail("requests loaded"))
    capsys.readouterr()
    assert run_cli(root, "build") == 0
    assert "all 8 images up to date, nothing to generate" in capsys.readouterr().out
    monkeypatch.undo()
    # a selection still gets its tasks: resolved, and counted as the plain run counts them
    assert run_cli(root, "build", "covers") == 0
    assert "all 8 images up to date" in capsys.readouterr().out
