"""Atomic file writes: temp file + rename, so a crash never leaves a half-written file.

A rename is atomic for every process: a kill at any moment leaves the old file or the new one,
never a mix, without any fsync. fsync (of the file, then of its folder) is only about the machine
losing power or its kernel crashing before the page cache reaches the disk; a `durable` write
pays it (a few ms of wall time and about 0.2 ms of CPU each), the others leave it to the kernel.
The build makes durable only what a paid call cannot be recovered without (docs/records.md).

Temp files are made in the project's ``.imgbuild/tmp/`` (same file system, so the rename is atomic)
and named after the writing process, so leftovers of a killed process are recognised and removed
by the next run — a kill at any moment leaves no truncated and no orphaned file.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import json
import os
import stat
import threading
from pathlib import Path
from typing import Any

from imgbuild.records.errors import WriteOutsideProject

__all__ = ["atomic_write_bytes", "atomic_write_json", "confined", "json_bytes", "remove_stale_temp_files"]

_counter = itertools.count()
_counter_lock = threading.Lock()


def json_bytes(data: Any) -> bytes:
    """Records are pretty JSON with sorted keys: stable bytes for stable data, readable diffs.

    The bytes are those of ``json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False)``,
    made faster: the standard library indents in pure Python (its C encoder cannot indent), so
    the record is encoded compactly by the C encoder (the same strings and numbers, the same key
    order) and re-indented by msgspec, which copies every string and number as it is (decision
    68; tests/records/test_json_bytes.py checks the bytes are the same). What is not JSON to
    msgspec (NaN, Infinity) takes the slow way."""
    import msgspec.json  # imported by the first record written, not by every command

    compact = json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    try:
        return msgspec.json.format(compact, indent=2) + b"\n"
    except msgspec.DecodeError:
        return _stdlib_json_bytes(data)


def _stdlib_json_bytes(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


def atomic_write_json(path: Path | str, data: Any, *, temp_dir: Path | None = None, durable: bool = True) -> None:
    atomic_write_bytes(path, json_bytes(data), temp_dir=temp_dir, durable=durable)


def atomic_write_bytes(
    path: Path | str, data: bytes, *, temp_dir: Path | None = None, confine: bool = True, durable: bool = True
) -> None:
    """Write `data` to `path` so that `path` holds either its old content or all of `data`;
    `durable`: on disk when this returns, a power cut after it included.

    A records write (its temp folder is a project's ``.imgbuild/tmp``) stays inside that project:
    a folder on the way that is a link to somewhere outside — committed under assets/ or an
    output folder, say — is refused (WriteOutsideProject) before any folder is made. Only a
    place the user names on the command line (``gallery --out``) is written with confine=False.

    Paths are handled as strings inside: a build writes ten files per image, and pathlib's
    objects (made, hashed and compared for every folder on the way) cost more than the writes'
    own Python."""
    target = os.fspath(path)
    parent = _parent(target)
    folder = os.fspath(temp_dir) if temp_dir is not None else parent
    state = _parent(folder)
    project = _parent(state) if confine and temp_dir is not None and os.path.basename(state) == STATE_FOLDER else None
    found = _confine(target, project) if project is not None else None
    try:
        try:
            _write(target, parent, data, folder, durable)
        except FileNotFoundError:  # a folder this process made was removed meanwhile: make it again
            _made_folders.discard(parent)
            _made_folders.discard(folder)
            _write(target, parent, data, folder, durable)
    except OSError as exc:
        if exc.filename is None:  # write() and fsync() name no file: a full disk must say which
            raise OSError(exc.errno, exc.strerror, target) from exc
        raise
    if project is not None:  # the folders this write made, under one found inside, are inside too
        made = parent
        while made != found and made != _parent(made):
            _remember_inside(made, project)
            made = _parent(made)


def _parent(path: str) -> str:
    """`Path(path).parent`, as a string, of a path as pathlib writes one (no "//", no trailing "/")."""
    cut = path.rfind("/")
    return path[:cut] if cut > 0 else "/" if cut == 0 else "."


def _write(target: str, parent: str, data: bytes, folder: str, durable: bool) -> None:
    _make_folder(parent)
    _make_folder(folder)
    with _counter_lock:
        n = next(_counter)
    temp = f"{folder}/.{_pid}-{n}.{os.path.basename(target)}.tmp"
    renamed = False
    try:
        # os-level calls: open() would add an fstat, an isatty and a seek to every record written
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.replace(temp, target)
            renamed = True
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise
            # .imgbuild/ on another file system: fall back to a temp file beside the target.
            atomic_write_bytes(Path(target), data, temp_dir=Path(parent), durable=durable)
            return
        if durable:
            _fsync_dir(parent)
    finally:
        if not renamed:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)


STATE_FOLDER = ".imgbuild"


def confined(path: Path, project: Path) -> None:
    """Refuse `path` (WriteOutsideProject) when the nearest folder of it that exists is really
    outside `project`: nothing is written, and no folder made, through a link out.

    A folder found (or made) inside is remembered with its identity (device, inode), so the
    next write into it, or into a new folder under it, costs one lstat instead of resolving
    every folder of its path (decision 66). A folder removed, or replaced by a link or by
    another folder since, no longer matches and is resolved again."""
    _confine(os.fspath(path), os.fspath(project))


def _confine(path: str, project: str) -> str:
    """`confined`; the nearest folder of `path` that exists (the folders below it are missing)."""
    probe, st = _parent(path), None
    while True:
        try:
            st = os.lstat(probe)
            break
        except OSError:
            up = _parent(probe)
            if up == probe:
                break
            probe = up
    if st is not None and stat.S_ISDIR(st.st_mode) and _inside.get((probe, project)) == (st.st_dev, st.st_ino):
        return probe
    real = Path(probe).resolve()
    if not real.is_relative_to(Path(project).resolve()):
        raise WriteOutsideProject(Path(path), real)
    _remember_inside(probe, project)
    return probe


_MOST_REMEMBERED = 65536
_inside: dict[tuple[str, str], tuple[int, int]] = {}  # (folder, project) → its identity when found inside


def _remember_inside(folder: str, project: str) -> None:
    with contextlib.suppress(OSError):
        st = os.lstat(folder)
        if stat.S_ISDIR(st.st_mode):
            if len(_inside) >= _MOST_REMEMBERED:  # a 100k-asset build: bounded memory, checked afresh
                _inside.clear()
            _inside[(folder, project)] = (st.st_dev, st.st_ino)


_made_folders: set[str] = set()  # folders this process created or found: no mkdir per write


def _make_folder(folder: str) -> None:
    if folder in _made_folders:
        return
    missing = []  # down to the nearest folder this process made or found: no mkdir fails for a parent
    known = folder
    while known not in _made_folders and _parent(known) != known:
        missing.append(known)
        known = _parent(known)
    try:
        if known not in _made_folders:
            raise FileNotFoundError
        for below in reversed(missing):
            try:
                os.mkdir(below)
            except FileExistsError:
                if not os.path.isdir(below):
                    raise
    except OSError:  # a folder known was removed, or a file is in the way: pathlib says what is wrong
        Path(folder).mkdir(parents=True, exist_ok=True)
    if len(_made_folders) >= _MOST_REMEMBERED:  # a 100k-asset build: bounded memory, made afresh
        _made_folders.clear()
    _made_folders.update(missing)


def _fsync_dir(folder: str) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _forked() -> None:
    global _pid
    _pid = os.getpid()


_pid = os.getpid()  # temp files are named after their process (remove_stale_temp_files)
os.register_at_fork(after_in_child=_forked)


def remove_stale_temp_files(folder: Path) -> int:
    """Remove temp files left by processes that no longer run. Returns how many were removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    for temp in folder.glob(".*.tmp"):
        pid_text = temp.name[1:].split("-", 1)[0]
        if pid_text.isdigit() and not _alive(int(pid_text)):
            try:
                temp.unlink()
                removed += 1
            except FileNotFoundError:
                pass
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
