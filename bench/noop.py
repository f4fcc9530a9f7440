"""No-op and check benchmark: an up-to-date imgbuild project against bare doit, side by side.

What it measures
    1. Writes a built project of N assets in BATCHES batch files with bench/generate.py (the real
       record code, small images; minutes even at 100,000), and checks that ``doit`` says
       "all N images up to date".
    2. Writes the bare doit baseline in another folder: N tasks, each with a no-op Python action,
       one target file of its own and one file_dep shared by all (the shape a hand-written doit
       project of N images needs), same backend (``sqlite3``), and runs it once to fill its
       database.
    3. Times, interleaved in each of REPEAT rounds so machine noise hits all of them: bare doit;
       the imgbuild no-op ``doit``; ``imgbuild check`` with a warm ``.imgbuild/``; ``doit`` after
       touching one of the batch files; ``imgbuild check`` with no ``.imgbuild/`` at all (as in a
       fresh clone); then a ``doit`` that rebuilds the caches (the cold no-op, for information);
       and, for information, doit's floor: the bare project with one task, which is what any doit
       run pays before its first task (Python, doit's imports and plugins, its database); and the
       check's floors, a few lines of Python without imgbuild that do what any check must: stat
       every asset.json and image (warm: stamps to trust), or read and hash every lock file and
       asset.json and stat every image (a fresh clone: nothing to trust).
       Each is a child process: wall time from here, peak RSS from ``/usr/bin/time -f %M`` (or,
       without GNU time, ``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process). Every child
       gets IMGBUILD_PROVIDER=preview and a bytecode cache in the benchmark folder.

It prints one row per round, the medians, each ratio against its target (no-op / bare <= 0.25,
warm check / bare <= 0.2, fresh-clone check / bare <= 0.4, touched no-op / warm no-op <= 1.2, peak
RSS of the no-op and of the check <= 100 MB up to 10,000 assets and <= 300 MB up to 100,000;
MB = 2**20 bytes) and the cost per asset (compare a run at 10,000 with one at 100,000). It exits 0
whether or not the targets are met (it is a benchmark, not a test); 1 only when it cannot measure.

Usage::

    python bench/noop.py                          # N = 10,000 (set-up about 30 s)
    python bench/noop.py --n 100000 --dir /tmp/nb # set-up a few minutes; the projects are kept
    python bench/noop.py --n 1000 --repeat 1      # a quick run
    python bench/noop.py --n 1000 --profile /tmp/noop.prof   # + cProfile and GC time of a no-op

The children import imgbuild the way this interpreter would (the editable install); to measure a
fixed revision while the checkout is being edited, export it and put it first on the path:
``git archive REV | tar -x -C /tmp/snap && PYTHONPATH=/tmp/snap python bench/noop.py``. The
``code:`` line of the output says which copy was measured.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

NOOP_TARGET = 0.25  # imgbuild no-op / bare doit
CHECK_TARGET = 0.2  # warm imgbuild check / bare doit
FRESH_TARGET = 0.4  # imgbuild check without .imgbuild/ / bare doit
TOUCH_TARGET = 1.2  # no-op after touching one batch file / warm no-op


def rss_target_mb(n: int) -> float:
    return 100.0 if n <= 10_000 else 300.0


BARE_DODO = """\
\"\"\"Bare doit: {n} up-to-date tasks, each with a target file and one shared file_dep.\"\"\"

DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": {dep_file!r}}}


def noop():
    return None


def task_x():
    for i in range({n}):
        yield {{
            "name": str(i),
            "actions": [noop],
            "file_dep": ["shared.txt"],
            "targets": [f"targets/{{i}}"],
        }}
"""

# Runs `argv` and writes {"wall": s, "maxrss_kb": kb, "rc": rc} to the file named by argv[1]:
# the peak RSS of the one child this fresh process ever had (used when GNU time is missing).
RSS_WRAPPER = """\
import json, resource, subprocess, sys, time
t = time.perf_counter()
rc = subprocess.run(sys.argv[2:], check=False).returncode
wall = time.perf_counter() - t
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
open(sys.argv[1], "w").write(json.dumps({"wall": wall, "maxrss_kb": rss, "rc": rc}))
"""

# Runs `doit` (argv[0] "doit", as `python -m doit` would) with a hook timing every cyclic-GC
# collection, and writes {generation: [collections, seconds]} to the file named by argv[1].
GC_HOOK = """\
import atexit, gc, json, runpy, sys, time
report, acc, start = sys.argv[1], {0: [0, 0.0], 1: [0, 0.0], 2: [0, 0.0]}, [0.0]
def hook(phase, info):
    if phase == "start":
        start[0] = time.perf_counter()
    else:
        acc[info["generation"]][0] += 1
        acc[info["generation"]][1] += time.perf_counter() - start[0]
gc.callbacks.append(hook)
atexit.register(lambda: open(report, "w").write(json.dumps(acc)))
sys.argv = ["doit"]
runpy.run_module("doit", run_name="__main__", alter_sys=True)
"""


# What any check must at least do, with no imgbuild at all (run in the project, for information):
# "warm" stats every asset.json and image the lock files name (a check that trusts stamps); "fresh"
# reads and hashes every lock file and asset.json and stats every image (a check that has no
# stamps to trust). The names are read from a list the set-up wrote (FLOOR_NAMES).
FLOOR = """\
import hashlib, os, sys
mode, names = sys.argv[1], open(sys.argv[2], encoding="utf-8").read().split("\\n")
records, images, locks = ([name for name in line.split("\\t") if name] for line in names)
if mode == "fresh":
    for name in locks + records:
        with open(name, "rb") as f:
            hashlib.sha256(f.read()).hexdigest()
else:
    for name in records:
        os.stat(name)
for name in images:
    os.stat(name)
"""
FLOOR_NAMES = ".floor-names"


def write_floor_names(project: Path) -> None:
    """The asset.json, image and lock files of the built project, for FLOOR (one tab-separated line
    each)."""
    records: list[str] = []
    images: list[str] = []
    locks = sorted((project / "batches").glob("*.lock.json"))
    for lock in locks:
        for entry in json.loads(lock.read_bytes())["assets"].values():
            records.append(f"{entry['asset_dir']}/asset.json")
            images += (image["file"] for image in entry["images"])
    rows = ["\t".join(records), "\t".join(images), "\t".join(p.relative_to(project).as_posix() for p in locks)]
    (project / FLOOR_NAMES).write_text("\n".join(rows), encoding="utf-8")


def floor_argv(mode: str) -> list[str]:
    return [sys.executable, "-c", FLOOR, mode, FLOOR_NAMES]


@dataclass(frozen=True)
class Sample:
    """One measured child process."""

    wall: float  # seconds
    rss_mb: float  # peak resident set size, MB (2**20 bytes)
    returncode: int
    stdout: str
    stderr: str


# -- the projects ------------------------------------------------------------------------------


def write_floor(root: Path) -> None:
    """doit's own start-up: the bare project with a single task (Python, doit's imports and plugins,
    its database): what any doit run pays before its first task."""
    write_bare(root, 1)


def write_bare(root: Path, n: int) -> None:
    """The bare doit project: `n` tasks with a target each (made here) and one shared file_dep."""
    (root / "targets").mkdir(parents=True, exist_ok=True)
    (root / "shared.txt").write_text("shared input\n", encoding="utf-8")
    for i in range(n):
        target = root / "targets" / str(i)
        if not target.exists():
            target.touch()
    (root / "dodo.py").write_text(BARE_DODO.format(n=n, dep_file=str(root / ".doit.db")), encoding="utf-8")


# -- running doit ------------------------------------------------------------------------------


def child_env(base: Path) -> dict[str, str]:
    """The environment of every doit child: the preview provider and a warm bytecode cache.

    With PYTHONDONTWRITEBYTECODE set (as in some sandboxes) the editable imgbuild would be
    compiled from source on every run while doit's installed modules have their .pyc files;
    both sides get a bytecode cache under `base` instead (nothing is written into the sources).
    """
    env = dict(os.environ)
    env["IMGBUILD_PROVIDER"] = "preview"  # never a paid provider, whatever the shell says
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = str(base / "pycache")
    return env


def doit_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "doit", *args]


def imgbuild_argv(*args: str) -> list[str]:
    return [sys.executable, "-m", "imgbuild", *args]


def _time_binary() -> str | None:
    path = shutil.which("time", path="/usr/bin:/bin") or None
    if path is None:
        return None
    probe = subprocess.run([path, "-f", "%M", "true"], capture_output=True, text=True, check=False)
    return path if probe.returncode == 0 and probe.stderr.strip().isdigit() else None


TIME_BIN = _time_binary()


def measure(argv: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """Run `argv` in `cwd` as a child process; its wall time and peak RSS."""
    with tempfile.TemporaryDirectory(prefix="noop-measure-") as tmp:
        report = Path(tmp) / "report"
        if TIME_BIN is not None:
            started = time.perf_counter()
            proc = subprocess.run(
                [TIME_BIN, "-f", "%M", "-o", str(report), *argv],
                cwd=cwd,
                env=env,
                capture_output=True,
                text=True,
                check=False,
            )
            wall = time.perf_counter() - started
            # GNU time writes "Command exited with non-zero status N" before %M on failure.
            rss_kb = int(report.read_text().split()[-1])
            return Sample(wall, rss_kb / 1024, proc.returncode, proc.stdout, proc.stderr)
        proc = subprocess.run(
            [sys.executable, "-c", RSS_WRAPPER, str(report), *argv],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        data = json.loads(report.read_text())
        return Sample(data["wall"], data["maxrss_kb"] / 1024, data["rc"], proc.stdout, proc.stderr)


def up_to_date_line(n: int) -> str:
    return f"all {n} images up to date"


def check_noop(sample: Sample, n: int) -> bool:
    if sample.returncode == 0 and up_to_date_line(n) in sample.stdout:
        return True
    print(
        f"imgbuild no-op is not a no-op (exit {sample.returncode}); "
        f"expected {up_to_date_line(n)!r}:\n"
        f"--- stdout (tail)\n{sample.stdout[-2000:]}\n--- stderr (tail)\n{sample.stderr[-2000:]}",
        file=sys.stderr,
    )
    return False


def profile_noop(project: Path, out: Path, env: dict[str, str], top: int = 15) -> None:
    """cProfile one imgbuild no-op into `out`; print its top entries by cumulative and own time."""
    argv = [sys.executable, "-m", "cProfile", "-o", str(out), "-m", "doit"]
    subprocess.run(argv, cwd=project, env=env, capture_output=True, check=True)
    for key, label in (("cumulative", "cumulative time"), ("tottime", "own time")):
        print(f"\ncProfile of one imgbuild no-op ({out}), top {top} by {label}:")
        pstats.Stats(str(out), stream=sys.stdout).sort_stats(key).print_stats(top)


def gc_time(folder: Path, env: dict[str, str]) -> dict[int, tuple[int, float]]:
    """Collections and seconds spent in the cyclic GC, per generation, during one no-op `doit`.

    cProfile cannot show this: a collection is charged to whatever function allocated last.
    """
    with tempfile.TemporaryDirectory(prefix="noop-gc-") as tmp:
        report = Path(tmp) / "gc.json"
        argv = [sys.executable, "-c", GC_HOOK, str(report)]
        subprocess.run(argv, cwd=folder, env=env, capture_output=True, check=True)
        data = json.loads(report.read_text())
    return {int(gen): (count, seconds) for gen, (count, seconds) in data.items()}


def print_gc(project: Path, bare: Path, env: dict[str, str]) -> None:
    print("\ncyclic GC during one no-op (collections / seconds, by generation):")
    for label, folder in (("imgbuild", project), ("bare doit", bare)):
        stats = gc_time(folder, env)
        detail = ", ".join(f"gen{g} {n} / {s:.3f} s" for g, (n, s) in sorted(stats.items()))
        total = sum(s for _, s in stats.values())
        print(f"  {label:<9}  {total:.2f} s  ({detail})")


# -- main --------------------------------------------------------------------------------------


def machine() -> str:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{platform.system()} {platform.machine()}, {cpus} CPUs (nproc), "
        f"Python {platform.python_version()}, "
        f"doit {version('doit')}, imgbuild {version('imgbuild')}"
    )


def _git(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["git", "-C", str(folder), *args]
    return subprocess.run(argv, capture_output=True, text=True, check=False)


def imgbuild_source(env: dict[str, str], cwd: Path) -> str:
    """Where the children (in `cwd`) import imgbuild from, with its git revision if a checkout."""
    probe = [sys.executable, "-c", "import imgbuild; print(imgbuild.__file__)"]
    found = subprocess.run(probe, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if found.returncode != 0:
        return "imgbuild not importable"
    folder = Path(found.stdout.strip()).parent.parent
    rev = _git(folder, "rev-parse", "--short", "HEAD")
    if rev.returncode != 0:
        return f"imgbuild from {folder}"
    dirty = _git(folder, "status", "--porcelain", "--", "imgbuild")
    edits = " + uncommitted changes" if dirty.stdout.strip() else ""
    return f"imgbuild from {folder} (git {rev.stdout.strip()}{edits})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="number of assets (default 10000)")
    parser.add_argument("--batches", type=int, default=10, help="batch files (default 10)")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (default 3)")
    parser.add_argument(
        "--dir",
        type=Path,
        help="keep the projects in this folder and reuse them (default: a temporary folder)",
    )
    parser.add_argument(
        "--profile", type=Path, help="also cProfile one imgbuild no-op into this file and time its cyclic GC"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1 or not 1 <= args.batches <= args.n:
        parser.error("--n and --repeat must be at least 1, --batches between 1 and --n")
    return args


COLUMNS = ("bare", "no-op", "check", "touched", "fresh chk", "cold no-op", "doit floor", "chk floor", "fresh flr")


def _row(label: object, values: list[float], digits: int = 2) -> str:
    return f"{label!s:>6}  " + "  ".join(f"{v:>10.{digits}f}" for v in values)


def _verdict(value: float, target: float) -> str:
    return "PASS" if value <= target else "OVER"


def setup(project: Path, bare: Path, args: argparse.Namespace, env: dict[str, str]) -> bool:
    """Generate the imgbuild project and the bare one, and confirm both are up to date."""
    n = args.n
    generator = [sys.executable, str(Path(__file__).with_name("generate.py")), str(project)]
    started = time.perf_counter()
    # The fixture is written by the imgbuild next to this script, whichever copy is measured.
    own = {**env, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH", "")])}
    made = subprocess.run([*generator, "--n", str(n), "--batches", str(args.batches)], env=own, check=False)
    if made.returncode != 0:
        return False
    print(f"set-up: bench/generate.py {time.perf_counter() - started:.1f} s")
    first = measure(doit_argv(), project, env)
    if not check_noop(first, n):
        return False
    print(f"confirmed: {first.stdout.strip().splitlines()[-1]} ({first.wall:.2f} s)")
    checked = measure(imgbuild_argv("check"), project, env)  # and the check's no-op index is written
    if not check_ok(checked, n):
        return False
    print(f"confirmed: {checked.stdout.strip().splitlines()[-1]} ({checked.wall:.2f} s)")
    write_floor_names(project)
    write_bare(bare, n)
    write_floor(bare.with_name("floor"))
    measure(doit_argv(), bare.with_name("floor"), env)
    warm = measure(doit_argv(), bare, env)  # runs every no-op action once and fills the database
    again = measure(doit_argv(), bare, env)
    if warm.returncode != 0 or again.returncode != 0 or again.stdout.count("-- ") != n:
        print(f"bare doit is not up to date:\n{again.stdout[-2000:]}{again.stderr[-2000:]}", file=sys.stderr)
        return False
    print(f"bare doit warmed ({warm.wall:.2f} s, then {again.wall:.2f} s with all {n} tasks up to date)\n", flush=True)
    return True


def check_ok(sample: Sample, n: int) -> bool:
    if sample.returncode == 0 and f"all {n} assets match their manifests" in sample.stdout:
        return True
    print(f"imgbuild check failed (exit {sample.returncode}):\n{sample.stdout[-2000:]}{sample.stderr[-2000:]}")
    return False


def one_round(project: Path, bare: Path, n: int, env: dict[str, str]) -> list[Sample] | None:
    """bare, no-op, warm check, touched no-op, fresh-clone check, cold no-op, doit's floor, the
    warm and the fresh check's floor: in that order."""
    b = measure(doit_argv(), bare, env)
    floor = measure(doit_argv(), bare.with_name("floor"), env)
    warm_floor = measure(floor_argv("warm"), project, env)
    fresh_floor = measure(floor_argv("fresh"), project, env)
    noop = measure(doit_argv(), project, env)
    check = measure(imgbuild_argv("check"), project, env)
    batch = sorted((project / "batches").glob("*.yaml"))[0]
    os.utime(batch)  # `touch`: new stamps, same content
    touched = measure(doit_argv(), project, env)
    shutil.rmtree(project / ".imgbuild")
    fresh = measure(imgbuild_argv("check"), project, env)
    shutil.rmtree(project / ".imgbuild", ignore_errors=True)
    cold = measure(doit_argv(), project, env)  # resolves everything, writes the caches again
    # The caches store nothing while an input is younger than two seconds (the racy window), and
    # the batch file was touched just now: wait it out, or the next round's no-op is not warm.
    time.sleep(max(0.0, batch.stat().st_mtime + 2.1 - time.time()))
    measure(doit_argv(), project, env)  # untimed: the build's no-op index is written again,
    measure(imgbuild_argv("check"), project, env)  # and the check's
    if not (check_noop(noop, n) and check_noop(touched, n) and check_noop(cold, n)):
        return None
    if not (check_ok(check, n) and check_ok(fresh, n)):
        return None
    if warm_floor.returncode != 0 or fresh_floor.returncode != 0:
        print(f"the floor script failed:\n{warm_floor.stderr[-2000:]}{fresh_floor.stderr[-2000:]}", file=sys.stderr)
        return None
    return [b, noop, check, touched, fresh, cold, floor, warm_floor, fresh_floor]


def run(args: argparse.Namespace, base: Path) -> int:
    n: int = args.n
    project, bare = base / f"imgbuild-{n}-{args.batches}", base / f"bare-{n}"
    env = child_env(base)
    print(f"machine: {machine()}")
    print(f"code: {imgbuild_source(env, base)}")
    rss_source = f"{TIME_BIN} -f %M" if TIME_BIN else "getrusage(RUSAGE_CHILDREN) wrapper"
    print(f"peak RSS from: {rss_source}")
    print(f"N = {n} assets in {args.batches} batch files, repeat = {args.repeat}")
    if not setup(project, bare, args, env):
        return 1

    rounds: list[list[Sample]] = []
    print("wall seconds:\n   run  " + "  ".join(f"{c:>10}" for c in COLUMNS))
    for i in range(1, args.repeat + 1):
        samples = one_round(project, bare, n, env)
        if samples is None:
            return 1
        rounds.append(samples)
        print(_row(i, [s.wall for s in samples]), flush=True)
    walls = [statistics.median(r[k].wall for r in rounds) for k in range(len(COLUMNS))]
    rss = [max(r[k].rss_mb for r in rounds) for k in range(len(COLUMNS))]
    print(_row("median", walls))
    print("peak RSS, MB (max of the rounds):\n" + _row("max", rss, 0))
    bare_s, noop_s, check_s, touched_s, fresh_s, cold_s, floor_s, warm_floor_s, fresh_floor_s = walls
    limit = rss_target_mb(n)
    print()
    for label, value, target in (
        ("no-op doit / bare doit", noop_s / bare_s, NOOP_TARGET),
        ("imgbuild check (warm .imgbuild/) / bare doit", check_s / bare_s, CHECK_TARGET),
        ("imgbuild check (no .imgbuild/, a fresh clone) / bare doit", fresh_s / bare_s, FRESH_TARGET),
        ("doit after touching 1 of the batch files / warm no-op", touched_s / noop_s, TOUCH_TARGET),
    ):
        print(f"{label}: {value:.2f} (target <= {target}) {_verdict(value, target)}")
    print(f"cold no-op (no .imgbuild/) / bare doit: {cold_s / bare_s:.2f} (for information)")
    print(
        f"doit's floor (Python, doit and one up-to-date task) / bare doit: {floor_s / bare_s:.2f} (no run is below it)"
    )
    print(
        f"the check's floor (Python, stat every asset.json and image) / bare doit: {warm_floor_s / bare_s:.2f};"
        f" on a fresh clone (Python, read and hash every lock file and asset.json, stat every image):"
        f" {fresh_floor_s / bare_s:.2f} (for information: what any check must do, without imgbuild)"
    )
    for label, mb in (("no-op", rss[1]), ("warm check", rss[2]), ("fresh-clone check", rss[4])):
        print(f"peak RSS {label}: {mb:.0f} MB (target <= {limit:.0f} MB) {_verdict(mb, limit)}")
    print(f"bare doit peak RSS: {rss[0]:.0f} MB")
    print(
        f"cost per asset: no-op {noop_s / n * 1e6:.1f} us, warm check {check_s / n * 1e6:.1f} us,"
        f" fresh-clone check {fresh_s / n * 1e6:.1f} us, bare doit {bare_s / n * 1e6:.1f} us"
    )
    if args.profile is not None:
        profile_noop(project, args.profile.resolve(), env)
        print_gc(project, bare, env)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.dir is not None:
        args.dir.mkdir(parents=True, exist_ok=True)
        return run(args, args.dir.resolve())
    with tempfile.TemporaryDirectory(prefix="imgbuild-noop-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
