"""No-op benchmark: how much slower is an up-to-date ``doit`` in an imgbuild project than bare doit?

What it measures
    1. Writes a project with one persona and one batch whose ``vary`` product is exactly N assets
       (one candidate each, draft 1:1 JPEG placeholders) and builds it once with the offline
       ``preview`` provider (``python -m doit -n JOBS``), then checks that a second ``doit`` says
       "all N images up to date".
    2. Writes a bare doit project in another folder: one ``task_x`` yielding N subtasks with a
       no-op Python action and ``uptodate: [True]``, same backend (``sqlite3``) and a ``dep_file``
       in that folder, and runs it once to warm its database.
    3. Times ``python -m doit`` in both folders, interleaved (imgbuild, bare, imgbuild, bare...) so
       machine noise hits both, REPEAT times each, as child processes: wall time from this process,
       peak RSS of the child from ``/usr/bin/time -f %M`` (or, without GNU time, from
       ``getrusage(RUSAGE_CHILDREN)`` in a fresh wrapper process per measurement). Every child
       gets IMGBUILD_PROVIDER=preview and a bytecode cache in the benchmark folder
       (PYTHONPYCACHEPREFIX, PYTHONDONTWRITEBYTECODE unset), so neither side pays for compiling.

It prints one row per run, the median wall times, their ratio (imgbuild / bare doit) and the
largest peak RSS of the imgbuild no-op, each against its target (ratio <= 2.0, RSS <= 250 MB;
MB = 2**20 bytes). It exits 0 whether or not the targets are met (it is a benchmark, not a test);
it exits 1 only when it cannot measure (the set-up build fails or the project is not up to date).

Usage::

    python bench/noop.py                  # N = 10,000 (set-up build takes minutes)
    python bench/noop.py --n 1000         # a quick run
    python bench/noop.py --dir /tmp/nb    # keep the projects in /tmp/nb and reuse them next time
    python bench/noop.py --n 1000 --profile /tmp/noop.prof   # + cProfile and GC time of a no-op

The children import imgbuild the way this interpreter would (the editable install); to measure a
fixed revision while the checkout is being edited, export it and put it first on the path:
``git archive REV | tar -x -C /tmp/snap && PYTHONPATH=/tmp/snap python bench/noop.py``. The
``code:`` line of the output says which copy was measured.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import pstats
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

RATIO_TARGET = 2.0
RSS_TARGET_MB = 250.0

PERSONA = """\
id: bench
name: Bench Person
traits:
  face: oval face, light freckles
  age_range: late twenties
evidence:
  - path: evidence/bench.md
allowed:
{allowed}"""

TEMPLATE = "Photo of {{ persona.name }}, {{ persona.traits.face }}, wearing a {{ attrs.wardrobe }}"

BATCH = """\
purpose: no-op benchmark ({n} assets)
persona: bench
source_basis:
  - path: evidence/bench.md
output: assets
quality: draft
quality_reason: benchmark placeholders only need to exist
aspect_ratio: "1:1"
output_format: jpeg
max_assets: {n}
fixed:
  wardrobe: cream sweater
vary:
{vary}shots:
  - id: s
    need: a benchmark frame
    template: bench.j2
    candidates: 1
"""

DODO = """\
from imgbuild.tasks import project_tasks

DOIT_CONFIG, task_imgbuild = project_tasks(".")
"""

BARE_DODO = """\
\"\"\"Bare doit: {n} trivial, always up-to-date tasks (the no-op baseline).\"\"\"

DOIT_CONFIG = {{"backend": "sqlite3", "dep_file": {dep_file!r}}}


def noop():
    return None


def task_x():
    for i in range({n}):
        yield {{"name": str(i), "actions": [noop], "uptodate": [True]}}
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

ROW = "{:>6}  {:>10.2f}  {:>8.2f}  {:>11.0f}  {:>8.0f}"
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

_PROGRESS = re.compile(r"^\[\s*(\d+)/(\d+)\]")


@dataclass(frozen=True)
class Sample:
    """One measured child process."""

    wall: float  # seconds
    rss_mb: float  # peak resident set size, MB (2**20 bytes)
    returncode: int
    stdout: str
    stderr: str


# -- the projects ------------------------------------------------------------------------------


def factors(n: int) -> list[int]:
    """Sizes of the vary lists whose product is `n`: two near-equal factors, or [n] for a prime."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return [n] if a == 1 else [a, n // a]


def vary_values(n: int) -> dict[str, list[str]]:
    """The vary attributes of the benchmark batch: their cartesian product has `n` entries."""
    names = ["pose", "backdrop"]
    out: dict[str, list[str]] = {}
    for name, size in zip(names, factors(n), strict=False):
        width = len(str(size))
        out[name] = [f"{name} {i:0{width}d}" for i in range(1, size + 1)]
    return out


def _yaml_lists(values: dict[str, list[str]], indent: str) -> str:
    lines = []
    for key, items in values.items():
        lines.append(f"{indent}{key}:\n")
        lines += [f"{indent}  - {v}\n" for v in items]
    return "".join(lines)


def write_project(root: Path, n: int) -> None:
    """The imgbuild project: one persona, one template, one batch of exactly `n` assets."""
    vary = vary_values(n)
    allowed = {"wardrobe": ["cream sweater"], **vary}  # the fact rule: every value is backed
    files = {
        "personas/bench.yaml": PERSONA.format(allowed=_yaml_lists(allowed, "  ")),
        "templates/bench.j2": TEMPLATE + "".join(f", {{{{ attrs.{k} }}}}" for k in vary) + ".\n",
        "batches/bench.yaml": BATCH.format(n=n, vary=_yaml_lists(vary, "  ")),
        "evidence/bench.md": "# Benchmark persona\n\nEvery value is allowed.\n",
        "imgbuild.yaml": "# the benchmark project: every setting at its default\n",  # marks the project root
        "dodo.py": DODO,
    }
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def write_bare(root: Path, n: int) -> None:
    """The bare doit project: `n` trivial always-up-to-date subtasks."""
    root.mkdir(parents=True, exist_ok=True)
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


def setup_build(project: Path, n: int, jobs: int, env: dict[str, str]) -> bool:
    """Build every image once (progress every ~10%); False if the build failed."""
    print(f"set-up build: python -m doit -n {jobs} in {project} ({n} images)", flush=True)
    step = max(1, n // 10)
    tail: deque[str] = deque(maxlen=20)
    started = time.perf_counter()
    with subprocess.Popen(
        doit_argv("-n", str(jobs)),
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            match = _PROGRESS.match(line)
            if match and (int(match[1]) % step == 0 or int(match[1]) == int(match[2])):
                elapsed = time.perf_counter() - started
                done = int(match[1])
                print(f"  [{done:>{len(match[2])}}/{match[2]}] {elapsed:7.1f} s", flush=True)
        returncode = proc.wait()
    elapsed = time.perf_counter() - started
    summary = next((t for t in reversed(tail) if t.startswith("imgbuild:")), "(no summary line)")
    print(f"  {summary}")
    print(f"  set-up build: {elapsed:.1f} s, exit code {returncode}", flush=True)
    if returncode != 0:
        print("  last output:\n    " + "\n    ".join(tail), file=sys.stderr)
    return returncode == 0


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
    parser.add_argument("--repeat", type=int, default=3, help="timed runs of each (default 3)")
    parser.add_argument(
        "--dir",
        type=Path,
        help="keep the projects in this folder and reuse them (default: a temporary folder)",
    )
    parser.add_argument("--jobs", type=int, default=2, help="doit -n for the set-up build")
    parser.add_argument(
        "--profile", type=Path, help="also cProfile one imgbuild no-op into this file and time its cyclic GC"
    )
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1 or args.jobs < 1:
        parser.error("--n, --repeat and --jobs must be at least 1")
    return args


def run(args: argparse.Namespace, base: Path) -> int:
    n: int = args.n
    project, bare = base / f"imgbuild-{n}", base / f"bare-{n}"
    env = child_env(base)
    print(f"machine: {machine()}")
    print(f"code: {imgbuild_source(env, base)}")
    rss_source = f"{TIME_BIN} -f %M" if TIME_BIN else "getrusage(RUSAGE_CHILDREN) wrapper"
    print(f"peak RSS from: {rss_source}")
    shape = " x ".join(map(str, factors(n)))
    print(f"N = {n} assets ({shape} vary values), repeat = {args.repeat}")
    write_project(project, n)
    write_bare(bare, n)

    if not setup_build(project, n, args.jobs, env):
        return 1
    first = measure(doit_argv(), project, env)
    if not check_noop(first, n):
        return 1
    print(f"confirmed: {first.stdout.strip().splitlines()[-1]} ({first.wall:.2f} s)")
    warm = measure(doit_argv(), bare, env)  # creates and fills the bare project's database
    if warm.returncode != 0:
        print(f"bare doit failed:\n{warm.stderr[-2000:]}", file=sys.stderr)
        return 1
    print(f"bare doit warmed ({warm.wall:.2f} s)\n", flush=True)

    ours: list[Sample] = []
    theirs: list[Sample] = []
    cold: list[Sample] = []
    print(f"{'run':>6}  {'imgbuild s':>10}  {'bare s':>8}  {'imgbuild MB':>11}  {'bare MB':>8}  {'cold s':>7}")
    for i in range(1, args.repeat + 1):
        # cold: without .imgbuild/cache, as after editing an input file (resolves the project again)
        shutil.rmtree(project / ".imgbuild" / "cache", ignore_errors=True)
        c = measure(doit_argv(), project, env)
        a = measure(doit_argv(), project, env)
        if not check_noop(a, n) or not check_noop(c, n):
            return 1
        b = measure(doit_argv(), bare, env)
        ours.append(a)
        theirs.append(b)
        cold.append(c)
        print(ROW.format(i, a.wall, b.wall, a.rss_mb, b.rss_mb) + f"  {c.wall:>7.2f}", flush=True)
    ours_s = statistics.median(s.wall for s in ours)
    bare_s = statistics.median(s.wall for s in theirs)
    cold_s = statistics.median(s.wall for s in cold)
    ours_mb = max(s.rss_mb for s in ours)
    bare_mb = max(s.rss_mb for s in theirs)
    print(ROW.format("median", ours_s, bare_s, ours_mb, bare_mb) + f"  {cold_s:>7.2f}  (MB: max of the runs)")
    print(
        f"\ncold no-op ratio, resolution cache removed (imgbuild/bare doit): {cold_s / bare_s:.2f}"
        f" (for information; peak RSS {max(s.rss_mb for s in cold):.0f} MB)"
    )
    ratio = ours_s / bare_s
    print(
        f"no-op ratio (imgbuild/bare doit): {ratio:.2f} (target <= {RATIO_TARGET}) "
        f"{'PASS' if ratio <= RATIO_TARGET else 'OVER'}"
    )
    print(
        f"peak RSS imgbuild no-op: {ours_mb:.0f} MB (target <= {RSS_TARGET_MB:.0f} MB) "
        f"{'PASS' if ours_mb <= RSS_TARGET_MB else 'OVER'}"
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
