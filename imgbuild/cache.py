"""A cache of the resolved project, so that a no-op build skips YAML, schemas and Jinja.

Resolving (parse, validate, expand, render, hash) is most of what a no-op build costs. Its result
depends only on the input files, imgbuild's own code and the provider choice, so it is kept in
``.imgbuild/cache/resolution.pickle`` with a stamp of every input: each file's size, mtime and
inode, and each input folder's listing. Any difference is a miss and the project is resolved
afresh. Nothing is cached while an input is younger than two seconds when resolving starts (a
"racy" file, as git calls it: a second edit within the file system's timestamp granularity could
keep its stamp), so a stamp that matches always means the content that was read.
Warnings printed while resolving are stored and printed again on a hit.

imgbuild's code is an input too: an edit to ``normalize_prompt`` or to the hashed fields changes
request hashes, an edit to a schema or to the models registry changes what is valid or what size
a tier means, all without any project file changing. ``__version__`` moves only on a release, so
with it alone an editable install kept serving the old hashes after such an edit (the build then
skips images whose request really changed). The key holds `code_fingerprint()` as well: the
(relative path, size, mtime_ns) of every ``*.py`` file of the package, of the JSON Schemas and of
``data/models.json``, about sixty ``stat`` calls made once per process. Stamps rather than content
hashes, as for the inputs: hashing the code on every no-op would cost more than a rare false miss
(a file touched but not changed) does.

The cache is local state: deleting it is always safe, and `imgbuild check` works without it.
"""

from __future__ import annotations

import copyreg
import functools
import hashlib
import logging
import os
import pickle
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from imgbuild import __version__
from imgbuild.project import CONFIG_FILE, STATE_DIR

__all__ = [
    "CachedResolution",
    "cache_key",
    "capture_warnings",
    "code_fingerprint",
    "code_stamps",
    "input_paths",
    "load",
    "store",
]

_FORMAT = 1
_RACY_NS = 2_000_000_000  # coarser than any file system's mtime granularity we know of


def _mapping_proxy(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


# The spec's frozen mappings are MappingProxyType, which pickle cannot rebuild on its own.
copyreg.pickle(MappingProxyType, lambda m: (_mapping_proxy, (dict(m),)))

Stamp = tuple[int, int, int]  # size, mtime_ns, inode


@dataclass
class CachedResolution:
    key: tuple[Any, ...]
    files: dict[str, Stamp | None]  # absolute path -> stamp (None: must still not exist)
    folders: dict[str, tuple[str, ...]]  # absolute path -> sorted listing
    warnings: list[str]
    resolution: Any = field(repr=False)


def _path(root: Path) -> Path:
    return root / STATE_DIR / "cache" / "resolution.pickle"


def cache_key(root: Path, provider: str | None) -> tuple[Any, ...]:
    """What besides the input files decides the resolution (cwd: messages show paths from it)."""
    return (
        _FORMAT,
        __version__,
        code_fingerprint(),
        str(root),
        os.getcwd(),
        provider,
        os.environ.get("IMGBUILD_PROVIDER"),
    )


@functools.cache
def code_fingerprint() -> str:
    """A digest of the stamps of imgbuild's own code and data, computed once per process."""
    from imgbuild.spec.schema import schema_dir

    stamps = code_stamps(Path(__file__).resolve().parent, schema_dir())
    return hashlib.sha256(repr(stamps).encode("utf-8")).hexdigest()


def code_stamps(package: Path, schemas: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every ``*.py`` under `package`, of the models registry in it and
    of every schema in `schemas`: the code and data a resolution is computed by. A missing file
    is stamped (path, -1, -1)."""
    files: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(package):
        dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
        folder = Path(dirpath)
        files += [
            (folder.relative_to(package).joinpath(n).as_posix(), folder / n)
            for n in sorted(filenames)
            if n.endswith(".py")
        ]
    files.append(("data/models.json", package / "data" / "models.json"))
    files += [(f"schemas/{p.name}", p) for p in sorted(schemas.glob("*.schema.json"))]
    stamps = []
    for name, path in files:
        stamp = _stamp(str(path))
        stamps.append((name, stamp[0], stamp[1]) if stamp is not None else (name, -1, -1))
    return stamps


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


def _listing(folder: str) -> tuple[str, ...] | None:
    try:
        return tuple(sorted(os.listdir(folder)))
    except OSError:
        return None


def load(root: Path, key: tuple[Any, ...]) -> Any | None:
    """The cached resolution when every input is as it was, else None. Replays its warnings."""
    try:
        with open(_path(root), "rb") as f:
            cached = pickle.load(f)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, TypeError, ValueError):
        return None
    if not isinstance(cached, CachedResolution) or cached.key != key:
        return None
    for folder, names in cached.folders.items():
        if _listing(folder) != names:
            return None
    for file, stamp in cached.files.items():
        if _stamp(file) != stamp:
            return None
    log = logging.getLogger("imgbuild")
    for message in cached.warnings:
        log.warning("%s", message)
    return cached.resolution


def input_paths(root: Path, config: Any, files: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files, folders) whose state decides the resolution of the project at `root`."""
    folders = [root / config.batches_dir, root / config.personas_dir]
    templates = root / config.templates_dir
    all_files = {str(root / CONFIG_FILE), *files}
    all_folders = {str(f) for f in folders}  # not the root: builds add assets/ and .imgbuild/ there
    for folder in folders:
        for name in _listing(str(folder)) or ():
            if name.endswith((".yaml", ".yml")):
                all_files.add(str(folder / name))
    for dirpath, dirnames, filenames in os.walk(templates):
        all_folders.add(dirpath)
        dirnames.sort()
        all_files.update(os.path.join(dirpath, name) for name in filenames)
    return sorted(all_files), sorted(all_folders)


def store(
    root: Path,
    key: tuple[Any, ...],
    resolution: Any,
    *,
    files: list[str],
    folders: list[str],
    warnings: list[str],
    started_ns: int,
) -> bool:
    """Keep `resolution` for the next run unless an input is racy. Returns True when stored."""
    stamps: dict[str, Stamp | None] = {}
    for file in files:
        stamp = _stamp(file)  # None: an optional input that does not exist (imgbuild.yaml) - yet
        if stamp is not None and stamp[1] >= started_ns - _RACY_NS:
            return False
        stamps[file] = stamp
    listings = {}
    for folder in folders:
        names = _listing(folder)
        if names is not None:
            listings[folder] = names
    cached = CachedResolution(key, stamps, listings, warnings, resolution)
    target = _path(root)
    from imgbuild.records.atomic import atomic_write_bytes

    try:
        data = pickle.dumps(cached, protocol=pickle.HIGHEST_PROTOCOL)
        atomic_write_bytes(target, data, temp_dir=target.parent)
    except (OSError, pickle.PicklingError, TypeError, AttributeError):
        return False  # a cache that cannot be written only costs time
    return True


@contextmanager
def capture_warnings() -> Iterator[list[str]]:
    """Collect the warnings logged meanwhile (they are also printed as usual)."""
    messages: list[str] = []

    class _Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    handler = _Collector(level=logging.WARNING)
    logger = logging.getLogger("imgbuild")
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
