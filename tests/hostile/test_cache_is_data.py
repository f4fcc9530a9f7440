"""Issue 11, class 1: the resolution cache and the no-op index are data that cannot run anything.

A file under .imgbuild/ may come from anywhere (an archive, a clone that committed it, a crash, a
disk error). Whatever it holds, imgbuild never executes it, ignores it when it does not match,
and gives the answer it would give without it.
"""

from __future__ import annotations

import ast
import json
import os
import pickle
import resource
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from helpers import BATCH, PERSONA, REPO, run_cli, run_doit, write_project

import imgbuild.cache
from imgbuild.resolve import resolve


def age(root: Path, seconds: float = 60) -> None:
    """Make every input look older than the racy window, so that what is read gets cached."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if ".imgbuild" not in path.parts and ".git" not in path.parts:
            os.utime(path, (past, past))


class _Payload:
    """Unpickling this creates `marker`: the proof that a cache file was executed."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


MORE_LIGHT = "[morning light, lamp light, dusk]"


def more_light(root: Path) -> None:
    """The project with a third lighting value (backed by the persona): two more assets."""
    write_project(
        root,
        batches={"covers": BATCH.replace("[morning light, lamp light]", MORE_LIGHT)},
        personas={"mia": PERSONA.replace("[morning light, lamp light]", MORE_LIGHT)},
    )


def cache_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / ".imgbuild" / "cache").rglob("*") if p.is_file())


def test_no_module_of_imgbuild_can_load_executable_data() -> None:
    """The class at its root: nothing in the package imports a loader that can run code."""
    unsafe = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle", "joblib"}
    found = []
    for path in sorted((REPO / "imgbuild").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            found += [f"{path.relative_to(REPO)}: {n}" for n in names if n.split(".")[0] in unsafe]
    assert found == []


def test_a_planted_pickle_is_never_executed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    project, marker = tmp_path / "project", tmp_path / "executed"
    write_project(project)
    age(project)
    assert run_cli(project, "build") == 0
    age(project)  # the lock file too: a no-op index is not written for a racy one
    assert "all 8 images up to date" in run_doit(project).stdout  # writes the no-op index
    files = cache_files(project)
    names = {p.relative_to(project / ".imgbuild" / "cache").as_posix() for p in files}
    assert {"project.json", "batches/covers.json", "current/covers.json"} <= names
    payload = pickle.dumps(_Payload(marker))
    for path in [*files, project / ".imgbuild/cache/resolution.pickle"]:  # and where the old format lived
        path.write_bytes(payload)
    capsys.readouterr()

    assert run_cli(project, "check") == 0
    assert "all 4 assets match their manifests" in capsys.readouterr().out
    noop = run_doit(project)
    assert noop.returncode == 0, noop.stderr
    assert "all 8 images up to date" in noop.stdout
    assert not marker.exists()
    # What was planted was replaced by data: one JSON array, [header, body].
    header, body = json.loads((project / ".imgbuild/cache/project.json").read_bytes())
    assert header["format"] == imgbuild.cache._FORMAT and body[0]["project"]["config"]["provider"] == "preview"


def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    header, _ = json.loads(data)
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "header-only":
        path.write_text(json.dumps([header]))
    elif how == "wrong-shape":  # valid JSON, a matching header, a body of the wrong type
        path.write_text(json.dumps([header, {"requests": "all of them", "project": 3}]))
    elif how == "bad-header":
        path.write_text(json.dumps([{"format": "two", "key": 1}, None]))
    elif how == "binary":
        path.write_bytes(os.urandom(len(data)))
    else:
        raise AssertionError(how)


@pytest.mark.parametrize("how", ["truncated", "header-only", "wrong-shape", "bad-header", "binary"])
def test_a_corrupt_cache_is_ignored_and_the_answer_stays_right(tmp_path: Path, how: str) -> None:
    write_project(tmp_path)
    age(tmp_path)
    good = resolve(tmp_path)
    for path in cache_files(tmp_path):
        _corrupt(path, how)
        assert resolve(tmp_path) == good, path.name
    for path in cache_files(tmp_path):  # all at once, too
        _corrupt(path, how)
    assert resolve(tmp_path) == good


def test_a_cache_file_that_is_not_a_plain_file_is_never_read(tmp_path: Path) -> None:
    """A pull request can commit `.imgbuild/cache/*.json` as a link to /dev/zero or to a huge
    file (git keeps links); a FIFO can be put there by hand. None is read: the cache is ignored."""
    project = write_project(tmp_path / "p")
    age(project)
    good = resolve(project)
    huge = tmp_path / "huge.json"  # sparse: no disk used
    with huge.open("wb") as file:
        file.truncate((1 << 30) + 1)
    for kind in ("/dev/zero", "fifo", "huge"):
        resolve(project)  # the cache written again
        files = cache_files(project)
        assert files, kind
        for path in files:
            path.unlink()
            if kind == "fifo":
                os.mkfifo(path)
            else:
                path.symlink_to("/dev/zero" if kind == "/dev/zero" else huge)
        started, peak = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert resolve(project) == good, kind
        assert time.monotonic() - started < 30, kind
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak  # KiB on Linux
        assert grew < 256 * 1024, f"{kind}: reading the cache grew the process by {grew} KiB"
        for path in files:
            path.unlink()


def test_an_input_swapped_for_a_fifo_after_caching_is_reported_not_waited_on(tmp_path: Path) -> None:
    """The cache confirms a changed stamp by hashing the file; a FIFO there must not block that
    hash: the template loader then reports it (exit 2, naming the file)."""
    write_project(tmp_path)
    age(tmp_path)
    resolve(tmp_path)
    template = tmp_path / "templates" / "cover.j2"
    template.unlink()
    os.mkfifo(template)
    started = time.monotonic()
    assert run_cli(tmp_path, "plan") == 2
    assert time.monotonic() - started < 30


def test_a_cache_from_other_inputs_is_ignored(tmp_path: Path) -> None:
    """The cache files of one version of the project, put back after the manifests changed: each
    is refused by its stamps or digest before its content is used."""
    write_project(tmp_path)
    age(tmp_path)
    resolve(tmp_path)
    saved = tmp_path / "saved"
    shutil.copytree(tmp_path / ".imgbuild" / "cache", saved)
    more_light(tmp_path)
    age(tmp_path)
    after = resolve(tmp_path)
    assert len(after.requests["covers"]) == 6
    shutil.rmtree(tmp_path / ".imgbuild" / "cache")
    shutil.copytree(saved, tmp_path / ".imgbuild" / "cache")
    assert resolve(tmp_path) == after
    # Only the spec's header was touched to get there: the old batch file was never decoded.
    assert {r.vary["lighting"] for r in resolve(tmp_path).requests["covers"]} == {"morning light", "lamp light", "dusk"}


def _git(folder: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True, env=env)


@pytest.mark.skipif(shutil.which("git") is None, reason="needs git")
def test_check_in_a_fresh_clone_with_a_planted_cache(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A clone whose .imgbuild/ was planted from a build of an older commit at the very same path
    (so even the cache key matches): `check` and `doit` still see the clone as it is."""
    work, origin = tmp_path / "work", tmp_path / "origin.git"
    write_project(work)
    (work / ".gitignore").write_text(".imgbuild/\n")
    age(work)
    assert run_cli(work, "build") == 0
    age(work)
    assert run_cli(work, "check") == 0
    noop = run_doit(work)  # writes the no-op index of the older commit
    assert "all 8 images up to date" in noop.stdout
    _git(tmp_path, "init", "-q", "--bare", str(origin))
    _git(work, "init", "-q")
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "built")
    _git(work, "push", "-q", str(origin), "HEAD:main")
    planted = tmp_path / "planted"
    shutil.copytree(work / ".imgbuild", planted)
    # The next commit adds a lighting value (two new assets) and loses one image.
    more_light(work)
    lost = sorted(work.glob("assets/*/images/candidates/*.jp*g"))[0]
    _git(work, "rm", "-q", str(lost.relative_to(work)))
    _git(work, "add", "-A")
    _git(work, "commit", "-q", "-m", "more light, one image lost")
    _git(work, "push", "-q", str(origin), "HEAD:main")
    shutil.rmtree(work)
    _git(tmp_path, "clone", "-q", "-b", "main", str(origin), str(work))
    shutil.copytree(planted, work / ".imgbuild")
    capsys.readouterr()

    assert run_cli(work, "check") == 1
    out = capsys.readouterr().out
    assert out.count("new: ") == 2
    asset_dir = lost.relative_to(work).parts[:2]
    assert f"missing-image: {'/'.join(asset_dir)}: image missing: images/candidates/{lost.name}" in out
    assert "3 of 6 assets need attention" in out
    build = run_doit(work)
    assert "5 generated, 7 up to date, 0 failed" in build.stdout, build.stdout  # 2 x 2 new, 1 lost


@pytest.mark.parametrize("name", ["assets/x\u0000y/asset.json", "../" * 40 + "etc/passwd", "", "a" * 5000])
def test_a_planted_no_op_index_naming_odd_files_is_only_given_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    """The no-op index names files to stat. A planted one whose key matches and whose names are a
    NUL byte, a climb out of the project, nothing or too long for the system is given up like
    any other that does not hold: `check` and `doit` give the answer they give without it."""
    write_project(tmp_path)
    age(tmp_path)
    assert run_cli(tmp_path, "build") == 0
    age(tmp_path)
    assert run_cli(tmp_path, "check") == 0
    assert "all 8 images up to date" in run_doit(tmp_path).stdout
    indexes = sorted((tmp_path / ".imgbuild/cache").glob("c*/*.json"))
    assert {p.parent.name for p in indexes} == {"checked", "current"}
    lost = sorted(tmp_path.glob("assets/*/images/candidates/*.jp*g"))[0]
    lost.unlink()
    for path in indexes:
        header, body = json.loads(path.read_bytes())
        header["files"] = [name, *header["files"]]
        header["stamps"] = [[name, [1, 2, 3]], *header["stamps"]]
        path.write_text(json.dumps([header, body]))
    capsys.readouterr()
    assert run_cli(tmp_path, "check") == 1
    assert "missing-image: " in capsys.readouterr().out
    build = run_doit(tmp_path)
    assert "1 generated, 7 up to date, 0 failed" in build.stdout, build.stdout + build.stderr


@pytest.mark.parametrize("where", ["files", "folders"])
def test_a_planted_spec_cache_naming_a_path_with_a_nul_byte_is_only_given_up(tmp_path: Path, where: str) -> None:
    """The spec cache's header names input files and folders to stat and list; a planted one with
    a NUL byte in such a path (which no system call accepts) is refused like any that does not
    match, instead of stopping every command with a ValueError."""
    write_project(tmp_path)
    age(tmp_path)
    good = resolve(tmp_path)
    cache = tmp_path / ".imgbuild/cache/project.json"
    header, body = json.loads(cache.read_bytes())
    if where == "files":
        header["files"] = [{"path": f"{tmp_path}/x\u0000y", "stamp": [1, 2, 3], "sha256": "0" * 64}, *header["files"]]
    else:
        header["folders"] = {f"{tmp_path}/x\u0000y": [], **header["folders"]}
    cache.write_text(json.dumps([header, body]))
    assert resolve(tmp_path) == good
