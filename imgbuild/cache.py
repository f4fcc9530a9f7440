"""The resolution cache and the no-op index: data that can be wrong but can never run code.

Resolving (parse, validate, expand, render, hash) is most of what a no-op build costs, and its
result depends only on the input files, imgbuild's own code and the provider choice. It is kept
under ``.imgbuild/cache/`` in three kinds of JSON file, each written atomically:

* ``project.json``: the validated spec (config, personas, batches, manifest lines) with the stamp
  and sha256 of every input file and the listing of every input folder;
* ``batches/<batch>.json``: one batch's requests, under a digest of everything they are computed
  from (the batch's spec, its persona, the config, the templates its shots load);
* ``current/<batch>.json`` and ``checked/<batch>.json``: the no-op index of one batch for a build
  and for `imgbuild check`: "all of this batch was in order when its lock file had this stamp",
  with the files that must still exist (and, for check, the asset.json stamps). A no-op stats
  those files instead of loading, hashing and checking every request (see imgbuild.noop).

Every file is one JSON array, ``[header, body]``. The header (format, key, stamps) is decoded and
checked first; the body (kept undecoded meanwhile, as msgspec.Raw) is decoded only when nothing
is stale, with msgspec decoding into the typed dataclasses, so a file of the wrong shape is
refused before any of it is used. JSON cannot
name a callable: a planted or corrupt file (``.imgbuild/`` is not committed, but a clone or an
archive may carry one) is at worst ignored. Whatever goes wrong reading it, the answer is
computed afresh, never a crash and never a wrong answer from a file that does not match.

A file's stamp (size, mtime_ns, inode) is checked first; when it differs, the file's sha256 is
compared before the entry is given up, as git does with its index: a ``touch``, a checkout that
rewrites identical bytes or a fresh clone costs one hash, not a resolve. Nothing is stored while an
input is younger than two seconds when resolving starts (a "racy" file: a second edit within the
file system's timestamp granularity could keep its stamp).

imgbuild's code is an input too: an edit to ``normalize_prompt``, to the hashed fields, a schema or
the models registry changes request hashes or validity without any project file changing. The key
holds `code_fingerprint()`: the (relative path, size, mtime_ns) of every ``*.py`` file of the
package, of the JSON Schemas and of ``data/models.json``, about sixty ``stat`` calls once per
process.

The cache is local state: deleting it is always safe, and `imgbuild check` works without it.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

import msgspec

from imgbuild import __version__
from imgbuild.project import CONFIG_FILE, PROVIDER_ENV, STATE_DIR

__all__ = [
    "BatchVerdict",
    "InputFile",
    "all_present",
    "batch_verdict",
    "cache_key",
    "capture_warnings",
    "code_digest",
    "code_fingerprint",
    "code_stamps",
    "content_sha256",
    "file_sha256",
    "input_paths",
    "load_batch",
    "load_spec",
    "made_by",
    "stamp_inputs",
    "stamped_sha256",
    "store_batch",
    "store_spec",
    "store_verdict",
]

_FORMAT = 4  # 3: the spec holds each batch's portable inputs digest; 4: and its sources
_RACY_NS = 2_000_000_000  # coarser than any file system's mtime granularity we know of

Stamp = tuple[int, int, int]  # size, mtime_ns, inode
T = TypeVar("T")
log = logging.getLogger("imgbuild")


@dataclass(frozen=True)
class InputFile:
    """One input file as it was read: None for both when it did not exist (and must still not)."""

    path: str  # absolute
    stamp: Stamp | None
    sha256: str | None


@dataclass(frozen=True)
class _SpecHeader:
    format: int
    key: str
    files: tuple[InputFile, ...]
    folders: Mapping[str, tuple[str, ...]]  # absolute path -> sorted listing
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class _BatchHeader:
    format: int
    key: str
    digest: str
    warnings: tuple[str, ...]


@dataclass(frozen=True)
class BatchVerdict:
    """The no-op index of one batch: all was in order when its lock file read `lock`."""

    format: int
    key: str
    digest: str  # the batch's digest then (its manifest, persona, config, templates)
    lock: InputFile
    images: int  # images (a build's index) or assets (a check's) it vouches for
    files: tuple[str, ...]  # project-relative files that must still exist
    stamps: tuple[tuple[str, Stamp], ...] = ()  # project-relative files that must be unchanged


def _folder(root: Path) -> Path:
    return root / STATE_DIR / "cache"


def _batch_file(root: Path, kind: str, batch_id: str) -> Path:
    return _folder(root) / kind / f"{batch_id}.json"  # batch ids are slugs: safe as file names


def cache_key(root: Path, provider: str | None) -> str:
    """What besides the input files decides the resolution (cwd: messages show paths from it)."""
    parts = (
        _FORMAT,
        __version__,
        code_fingerprint(),
        str(root),
        os.getcwd(),
        provider,
        os.environ.get(PROVIDER_ENV),
    )
    return hashlib.sha256(repr(parts).encode("utf-8")).hexdigest()


@functools.cache
def code_fingerprint() -> str:
    """A digest of the stamps of imgbuild's own code and data, computed once per process."""
    from imgbuild.spec.schema import schema_dir

    stamps = code_stamps(Path(__file__).resolve().parent, schema_dir())
    return hashlib.sha256(repr(stamps).encode("utf-8")).hexdigest()


@functools.cache
def code_digest() -> str:
    """sha256 of the content of the same files as `code_fingerprint` (about 0.7 MB, a few ms):
    what a committed lock file can name, since the stamps differ on every install."""
    from imgbuild.spec.schema import schema_dir

    digest = hashlib.sha256(__version__.encode("utf-8"))
    for name, path in _code_files(Path(__file__).resolve().parent, schema_dir()):
        found = file_sha256(str(path))
        digest.update(f"\0{name}\0{found or '-'}".encode())
    return digest.hexdigest()


def made_by() -> str:
    """What reads a project's files, by content, as finely as the inputs digest names it (so the
    two change together, and a lock file no more often than before): imgbuild's code
    (`code_digest`) and the file that states Jinja's release. Found without importing Jinja, so
    a fresh clone's check that parses nothing need not load it (imgbuild.sealed). Not PyYAML's,
    Pillow's or Python's release: a lock file would change with every machine that builds it."""
    return f"{code_digest()} jinja2 {_jinja_release()}"


@functools.cache
def _jinja_release() -> str | None:
    import importlib.util

    module = sys.modules.get("jinja2")
    origin = getattr(module, "__file__", None) if module is not None else None
    if origin is None:
        spec = importlib.util.find_spec("jinja2")
        origin = spec.origin if spec is not None else None
    return file_sha256(origin) if origin else None


def code_stamps(package: Path, schemas: Path) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of every ``*.py`` under `package`, of the models registry in it and
    of every schema in `schemas`: the code and data a resolution is computed by. A missing file
    is stamped (path, -1, -1)."""
    stamps = []
    for name, path in _code_files(package, schemas):
        stamp = _stamp(str(path))
        stamps.append((name, stamp[0], stamp[1]) if stamp is not None else (name, -1, -1))
    return stamps


def _code_files(package: Path, schemas: Path) -> list[tuple[str, Path]]:
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
    return files


# What a system call on a path from a file imgbuild did not write itself can raise besides OSError:
# ValueError for a path with a NUL byte (a planted cache file, a crafted lock file). Either way the
# path names no file we can use, and whatever vouched with it is given up.
_UNUSABLE = (OSError, ValueError)


def _stamp(path: str) -> Stamp | None:
    try:
        st = os.stat(path)
    except _UNUSABLE:
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino)


_MAX_CACHE_BYTES = 1 << 30  # 100,000 assets' requests are a few hundred MB


@contextmanager
def _regular_file(path: str | Path) -> Iterator[Any]:
    """`path` opened for reading if it is a regular file, else None. Opened without blocking, so
    a FIFO put where an input or a cache file was (or a committed link to /dev/zero) is never read:
    the cache is only given up, and the real loaders report the file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except _UNUSABLE:
        yield None
        return
    with os.fdopen(fd, "rb") as file:
        yield file if stat.S_ISREG(os.fstat(fd).st_mode) else None


def file_sha256(path: str) -> str | None:
    """sha256 of a regular file's content; None when it is missing, unreadable or not a file."""
    found = stamped_sha256(path)
    return found[1] if found is not None else None


def stamped_sha256(path: str) -> tuple[Stamp, str] | None:
    """(stamp, sha256) of a regular file, from one open: None when it is missing, unreadable or
    not a regular file. Opened without blocking (a FIFO is never read) and read with bare system
    calls (open, fstat, read, close): a fresh clone's check hashes every asset.json with it."""
    try:
        fd = os.open(path, _READ_FLAGS)
    except _UNUSABLE:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        stamp = (info.st_size, info.st_mtime_ns, info.st_ino)
        if info.st_size > _SMALL_FILE:
            with os.fdopen(os.dup(fd), "rb") as f:
                return stamp, hashlib.file_digest(f, "sha256").hexdigest()
        return stamp, hashlib.sha256(os.read(fd, info.st_size)).hexdigest()
    except OSError:
        return None
    finally:
        os.close(fd)


def content_sha256(path: str) -> tuple[None, str] | None:
    """(None, sha256) of a small file's content, from open, read and close alone: what a check
    that keeps no stamps needs (imgbuild.sealed). A file under 64 KiB (every asset.json we know
    of) is one read, one system call fewer than `stamped_sha256`; a larger one is read in blocks
    to its end, up to 1 MiB (None beyond, and for anything that cannot be read: a folder, a NUL
    byte). What is not a regular file gives other bytes than the ones asked for (a FIFO opened
    without blocking reads as empty), so its digest does not match. (A 64 KiB buffer costs no
    more than an 8 KiB one here; 1 MiB did, more than the fstat it saves.)"""
    try:
        fd = os.open(path, _READ_FLAGS)
    except _UNUSABLE:
        return None
    try:
        data = os.read(fd, _BLOCK)
        if len(data) == _BLOCK:  # a short read of a regular file is its end
            parts, size = [data], len(data)
            while data and size <= _SMALL_FILE:
                data = os.read(fd, _BLOCK)
                parts.append(data)
                size += len(data)
            if data:
                return None
            data = b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)
    return None, hashlib.sha256(data).hexdigest()


_READ_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_BLOCK = 1 << 16
_SMALL_FILE = 1 << 20


def _listing(folder: str) -> tuple[str, ...] | None:
    """The names in an input folder, but the lock files: a build writes those beside the
    manifests, and the spec does not depend on them (else the first check after a first build
    would load the project again)."""
    try:
        return tuple(sorted(name for name in os.listdir(folder) if not name.endswith(".lock.json")))
    except _UNUSABLE:
        return None


def all_present(base: str, names: Iterable[str]) -> bool:
    """Every `base + name` exists (following links, as os.path.exists does). access(F_OK) answers
    without building a stat result: with the stamps, this is the whole per-asset cost of a no-op."""
    access, present = os.access, os.F_OK
    try:
        return all(access(base + name, present) for name in names)
    except ValueError:  # a NUL byte (see _UNUSABLE): access raises only this
        return False


def _unchanged(file: InputFile) -> bool:
    """The file holds what it held when `file` was taken: same stamp, or else same content."""
    stamp = _stamp(file.path)
    if stamp == file.stamp:
        return True
    if stamp is None or file.stamp is None:
        return False
    return file_sha256(file.path) == file.sha256


def stamp_inputs(files: Iterable[str], started_ns: int) -> tuple[InputFile, ...] | None:
    """The stamp and sha256 of each file, or None when one is racy (changed too recently)."""
    out = []
    for path in files:
        stamp = _stamp(path)  # None: an optional input that does not exist (imgbuild.yaml) - yet
        if stamp is not None and stamp[1] >= started_ns - _RACY_NS:
            return None
        out.append(InputFile(path, stamp, file_sha256(path) if stamp is not None else None))
    return tuple(out)


# -- reading and writing the files ------------------------------------------------------------------


def _enc_hook(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, MappingProxyType):
        return dict(value)
    raise NotImplementedError(f"cannot cache a {type(value).__name__}")


def _dec_hook(kind: type, value: Any) -> Any:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError(f"not a {kind}")


_encoder = msgspec.json.Encoder(enc_hook=_enc_hook)


@functools.cache
def _decoder(kind: Any) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(kind, dec_hook=_dec_hook)


def _read(path: Path) -> tuple[msgspec.Raw, msgspec.Raw] | None:
    """(header, body) of a cache file, still undecoded; None when it is missing or not a JSON
    array of two. Only the syntax is scanned here: nothing is built until `_decode`."""
    try:
        with _regular_file(path) as file:
            if file is None or os.fstat(file.fileno()).st_size > _MAX_CACHE_BYTES:
                return None  # not ours: a link to a huge file costs nothing either
            data = file.read()
    except OSError:
        return None
    found: tuple[msgspec.Raw, msgspec.Raw] | None = _decode(data, tuple[msgspec.Raw, msgspec.Raw])
    return found


def _decode(data: bytes, kind: Any) -> Any:
    """`data` decoded and validated as `kind`, or None (the entry is then ignored)."""
    try:
        return _decoder(kind).decode(data)
    except (msgspec.DecodeError, NotImplementedError, TypeError, ValueError):
        return None


def _write(path: Path, header: Any, body: Any = None) -> bool:
    """Write one cache file atomically, never through a link out of the project (a committed
    `.imgbuild` or `.imgbuild/cache` that links elsewhere gets nothing), and without fsync: a
    cache lost to a power cut only costs time."""
    from imgbuild.records import RecordError
    from imgbuild.records.atomic import atomic_write_bytes, confined

    project = next((p.parent for p in path.parents if p.name == STATE_DIR), None)
    try:
        if project is not None:
            confined(path, project)
        data = _encoder.encode((header, body))  # one JSON document: [header, body]
        atomic_write_bytes(path, data, temp_dir=path.parent, confine=False, durable=False)
    except (OSError, RecordError, TypeError, NotImplementedError, msgspec.EncodeError):
        return False  # a cache that cannot be written only costs time
    return True


def _replay(warnings: Iterable[str]) -> None:
    for message in warnings:
        log.warning("%s", message)


# -- the spec --------------------------------------------------------------------------------------


# "batch:<id>" / "persona:<id>" -> the (path, line) pairs of its manifest
_Lines = Mapping[str, tuple[tuple[tuple[str | int, ...], int], ...]]


def _pairs(lines: Mapping[tuple[str | int, ...], int]) -> tuple[tuple[tuple[str | int, ...], int], ...]:
    return tuple((tuple(k), v) for k, v in lines.items())


def load_spec(root: Path, key: str, kind: type[T]) -> T | None:
    """The cached spec (of type `kind`) when every input is as it was, else None. Replays its
    warnings. Stamps are checked before the spec itself is decoded."""
    found = _read(_folder(root) / "project.json")
    header = _decode(found[0], _SpecHeader) if found else None
    if found is None or header is None or header.format != _FORMAT or header.key != key:
        return None
    if any(_listing(folder) != names for folder, names in header.folders.items()):
        return None
    if not all(_unchanged(f) for f in header.files):
        return None
    body = _decode(found[1], tuple[kind, _Lines])  # type: ignore[valid-type]
    if body is None:
        return None
    spec: Any = body[0]
    lines: Any = body[1]
    project = spec.project
    batches = tuple(replace(b, lines=dict(lines.get(f"batch:{b.id}", ()))) for b in project.batches)
    personas = {k: replace(p, lines=dict(lines.get(f"persona:{k}", ()))) for k, p in project.personas.items()}
    spec = replace(spec, project=replace(project, batches=batches, personas=MappingProxyType(personas)))
    _replay(header.warnings)
    return spec


def store_spec(
    root: Path, key: str, spec: Any, *, files: list[str], folders: list[str], warnings: list[str], started_ns: int
) -> bool:
    """Keep `spec` (an imgbuild.resolve.Spec) for the next run unless an input is racy."""
    stamped = stamp_inputs(files, started_ns)
    if stamped is None:
        return False
    listings = {f: names for f in folders if (names := _listing(f)) is not None}
    batches = spec.project.batches
    # Manifest lines are keyed by paths (tuples), which JSON objects cannot be: kept as pairs.
    personas = spec.project.personas
    lines = {f"batch:{b.id}": _pairs(b.lines) for b in batches}
    lines |= {f"persona:{k}": _pairs(p.lines) for k, p in personas.items()}
    bare_batches = tuple(replace(b, lines={}) for b in batches)
    bare_personas = {k: replace(p, lines={}) for k, p in personas.items()}
    bare = replace(spec, project=replace(spec.project, batches=bare_batches, personas=bare_personas))
    header = _SpecHeader(_FORMAT, key, stamped, listings, tuple(warnings))
    return _write(_folder(root) / "project.json", header, (bare, lines))


def input_paths(root: Path, config: Any, files: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files, folders) whose state decides the spec of the project at `root`."""
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


# -- one batch's requests ------------------------------------------------------------------------------


def load_batch(root: Path, key: str, batch_id: str, digest: str, kind: type[T]) -> tuple[T, tuple[str, ...]] | None:
    """The cached requests of one batch (decoded as `kind`) while its digest is `digest`, and the
    warnings its rendering gave (replayed)."""
    found = _read(_batch_file(root, "batches", batch_id))
    header = _decode(found[0], _BatchHeader) if found else None
    if found is None or header is None or (header.format, header.key, header.digest) != (_FORMAT, key, digest):
        return None
    body = _decode(found[1], kind)
    if body is None:
        return None
    _replay(header.warnings)
    return body, tuple(header.warnings)


def store_batch(root: Path, key: str, batch_id: str, digest: str, requests: Any, warnings: list[str]) -> bool:
    header = _BatchHeader(_FORMAT, key, digest, tuple(warnings))
    return _write(_batch_file(root, "batches", batch_id), header, requests)


# -- the no-op index --------------------------------------------------------------------------------


def batch_verdict(root: Path, key: str, purpose: str, batch_id: str, digest: str, lock: Path) -> BatchVerdict | None:
    """The batch's no-op index for `purpose` ("current": a build's, "checked": a check's) when it
    still holds: same key and digest, the lock file unchanged, every file it names present and
    every file it stamps unchanged. None: the batch must be looked at."""
    found = _read(_batch_file(root, purpose, batch_id))
    verdict = _decode(found[0], BatchVerdict) if found else None
    if verdict is None or (verdict.format, verdict.key, verdict.digest) != (_FORMAT, key, digest):
        return None
    if verdict.lock.path != str(lock) or not _unchanged(verdict.lock):
        return None
    # Plain str paths and bare system calls, a stamp compared in place: per asset, this is it.
    base = f"{root}/"
    if not all_present(base, verdict.files):
        return None
    stat_of = os.stat
    try:
        for name, (size, mtime_ns, inode) in verdict.stamps:
            info = stat_of(base + name)
            if info.st_mtime_ns != mtime_ns or info.st_size != size or info.st_ino != inode:
                return None
    except _UNUSABLE:
        return None
    return verdict


def store_verdict(
    root: Path,
    key: str,
    purpose: str,
    batch_id: str,
    digest: str,
    lock: Path,
    count: int,
    files: Iterable[str],
    stamped: Iterable[str],
    started_ns: int,
    known: Mapping[str, Stamp] | None = None,
) -> bool:
    """Record that all of the batch is in order for `purpose` (unless a file is racy). `known`:
    stamps of some of the `stamped` files, taken already."""
    base = f"{root}/"
    names = list(stamped)
    found = stamp_inputs([str(lock)], started_ns)
    stamps = []
    for name in names:
        stamp = known.get(name) if known is not None else None
        stamp = stamp or _stamp(base + name)
        if stamp is None or stamp[1] >= started_ns - _RACY_NS:
            return False
        stamps.append((name, stamp))
    if found is None or found[0].stamp is None:
        return False
    verdict = BatchVerdict(_FORMAT, key, digest, found[0], count, tuple(files), tuple(stamps))
    return _write(_batch_file(root, purpose, batch_id), verdict)


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
