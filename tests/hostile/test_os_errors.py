"""Class 6: OS errors. A full disk, a read-only file system or a refused permission where the
records live is reported as ``path: cause`` — exit 1 for a build, 2 where nothing could start —
never a traceback or 70; the records stay consistent and a rerun after the fix finishes.

The kernel's answer is injected at the one call every record write makes last (``os.replace``
of the atomic writer, and ``os.open``/``open`` for the build lock), only for paths under the
folder a case names: the tests run as root in CI, where permission bits refuse nothing. A file
where a folder should be is a real OS error and needs no injection."""

from __future__ import annotations

import builtins
import errno
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hostile_support import run_command
from PIL import Image

ASSET = "covers.hook.home-office.morning-light"
SECONDS = 30.0
IMAGES = 8  # helpers.BATCH: 4 assets × 2 candidates


run = run_command


def fail_under(monkeypatch: pytest.MonkeyPatch, folder: Path, code: int) -> Callable[[], None]:
    """Make the OS refuse writes under `folder` with `code`; returns the fix."""
    real_replace, real_open = os.replace, builtins.open

    def refused(path: object) -> bool:
        return Path(os.fspath(path)).absolute().is_relative_to(folder)  # type: ignore[arg-type]

    def replace(src: object, dst: object, **kwargs: object) -> None:
        if refused(dst):
            raise OSError(code, os.strerror(code), os.fspath(dst))  # type: ignore[arg-type]
        real_replace(src, dst, **kwargs)  # type: ignore[arg-type]

    def open_(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(c in mode for c in "wax+") and refused(file):
            raise OSError(code, os.strerror(code), os.fspath(file))  # type: ignore[arg-type]
        return real_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(builtins, "open", open_)
    return monkeypatch.undo


def assert_consistent_and_complete(root: Path) -> None:
    """Every record parses, every image decodes, no temp file is left, nothing is pending."""
    assert [p for p in root.rglob("*.tmp")] == []
    for path in root.rglob("*.json"):
        json.loads(path.read_text())
    images = sorted((root / "assets").glob("*/images/candidates/*"))
    assert len(images) == IMAGES
    for image in images:
        with Image.open(image) as img:
            img.load()
    assert list((root / ".imgbuild/calls").rglob("*.json")) == []


CAUSES = {
    errno.ENOSPC: "no space left on device",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
}


@pytest.mark.parametrize(
    ("where", "code"),
    [
        ("assets", errno.ENOSPC),
        (".imgbuild/exchanges", errno.EROFS),
        ("batches", errno.EACCES),
        ("assets", errno.EACCES),
    ],
)
def test_a_build_that_cannot_write_says_where_and_why_then_a_rerun_finishes(project, capsys, monkeypatch, where, code):
    folder = (project / where).absolute()
    fix = fail_under(monkeypatch, folder, code)
    exit_code, text = run(project, capsys, "build")
    assert exit_code == 1, text
    assert f"{folder}" in text and CAUSES[code] in text, text
    fix()
    exit_code, text = run(project, capsys, "build")
    assert exit_code == 0, text
    assert_consistent_and_complete(project)


def test_the_state_folder_refused_means_nothing_starts(project, capsys, monkeypatch):
    fail_under(monkeypatch, (project / ".imgbuild").absolute(), errno.EACCES)
    exit_code, text = run(project, capsys, "build")
    assert exit_code in (1, 2), text
    assert ".imgbuild" in text and "permission denied" in text
    assert not list((project / "assets").glob("*/images/candidates/*"))


def test_approve_that_cannot_write_the_approved_copy(project, capsys, monkeypatch):
    assert run(project, capsys, "build")[0] == 0
    approved = (project / "assets" / ASSET / "images").absolute()
    fix = fail_under(monkeypatch, approved, errno.ENOSPC)
    exit_code, text = run(project, capsys, "approve", ASSET, "1", "--pass", "all")
    assert exit_code == 1, text
    assert "no space left on device" in text
    fix()
    assert run(project, capsys, "approve", ASSET, "1", "--pass", "all")[0] == 0
    assert run(project, capsys, "check", "--approved")[0] in (0, 1)
    record = json.loads((project / "assets" / ASSET / "asset.json").read_text())
    assert record["approval"]["candidate"] == 1


def test_a_file_where_the_output_folder_should_be(project, capsys):
    (project / "assets").write_text("not a folder\n")
    exit_code, text = run(project, capsys, "build")
    assert exit_code == 1, text
    assert "assets" in text and "not a directory" in text
    (project / "assets").unlink()
    assert run(project, capsys, "build")[0] == 0
    assert_consistent_and_complete(project)


# -- the real thing, where the machine allows it: a small tmpfs mounted over assets/ -------------


@pytest.fixture
def small_disk(project: Path) -> Iterator[Callable[[str], None]]:
    """assets/ on its own 64 KiB tmpfs; yields `remount(options)`. Skipped where mounting is not
    allowed (not root, or a container without the capability)."""
    target = project / "assets"
    target.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(target)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")

    def remount(options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(target)], check=True)

    try:
        yield remount
    finally:
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.mark.parametrize(
    ("broken", "cause", "fixed"),
    [(None, "no space left on device", "size=64m"), ("ro", "read-only file system", "rw,size=64m")],
    ids=["a-full-disk-then-a-bigger-one", "read-only-then-writable"],
)
def test_the_real_thing(project, capsys, small_disk, broken, cause, fixed):
    if broken is not None:
        small_disk(broken)
    exit_code, text = run(project, capsys, "build")
    assert exit_code == 1, text
    assert cause in text
    small_disk(fixed)
    exit_code, text = run(project, capsys, "build")
    assert exit_code == 0, text
    assert_consistent_and_complete(project)
