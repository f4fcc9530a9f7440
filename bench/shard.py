"""Shard benchmark: when does splitting a build over machines (``--shard i/n``) pay at all?

What it measures, side by side in one run
    1. **What one machine can drive.** An Ark build of N images (one candidate each) against the
       loopback server of bench/throughput.py (its own process, answering after LATENCY s), at
       concurrency C, in this process: wall time and this process's CPU time (every thread)
       per image. ``60 / cpu-per-image`` is the images per minute one core could keep in flight
       with CPU to spare for nothing else, to compare with what the account may ask for: about
       500 images per minute per model on Ark (docs/scale.md).
    2. **What the machine does when it is the bottleneck.** A preview build (Pillow draws every
       placeholder locally: CPU bound, as a self-hosted model would be) of the same N images,
       unsharded and as S shards run one after the other on this machine (then ``merge``), twice
       each, interleaved, the faster of each: the images per minute, and the shards' total wall
       over the one build (the price of n processes that each resolve the whole project).
    3. **The fixed cost of a shard.** ``imgbuild plan --shard 1/S`` against ``imgbuild plan`` on
       a project of P never-built assets, REPEAT times interleaved, medians: each shard resolves
       the whole project and assesses only its share.

Usage::

    python bench/shard.py                    # N=400, C=32, LATENCY=0.2 s, S=4, P=5000
    python bench/shard.py --n 1000 --shards 8

It exits 0 whether or not sharding would pay (a benchmark, not a test), 1 when a build fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import throughput  # bench/ is no package: its sibling is found through sys.path

import imgbuild.main

ARK_RATE_LIMIT = 500  # images per minute per model, ModelArk's limit for Seedream (docs/scale.md)


def quiet(argv: list[str]) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return imgbuild.main.main(argv)


def hosted(n: int, concurrency: int, latency: float) -> tuple[float, float] | None:
    """(wall s, CPU s of this process) of an Ark build of n images against the loopback server."""
    cpu = time.process_time()
    wall = throughput.measure("ark", n, concurrency, latency)
    return None if wall is None else (wall, time.process_time() - cpu)


def preview(n: int, jobs: int, shards: int) -> float | None:
    """Wall seconds of a preview build of n images, run as `shards` shards one after another."""
    with tempfile.TemporaryDirectory(prefix="imgbuild-shard-") as tmp:
        root = Path(tmp)
        throughput.write_project(root, "preview", n, jobs)
        started = time.perf_counter()
        for i in range(1, shards + 1):
            extra = ["--shard", f"{i}/{shards}"] if shards > 1 else []
            if quiet(["-C", str(root), "build", "-j", str(jobs), *extra]) != 0:
                return None
        if shards > 1 and quiet(["-C", str(root), "merge"]) != 0:
            return None
        return time.perf_counter() - started


def plan_times(assets: int, shards: int, repeat: int) -> tuple[float, float] | None:
    """Median seconds of `plan` and of `plan --shard 1/S` (in this process, warm cache); None
    when a plan fails."""
    with tempfile.TemporaryDirectory(prefix="imgbuild-shard-plan-") as tmp:
        root = Path(tmp)
        throughput.write_project(root, "preview", assets, 1)
        with open(root / "batches" / "bench.yaml", "a", encoding="utf-8") as batch:
            batch.write(f"max_assets: {assets}\n")  # over the default cap of 1,000
        if quiet(["-C", str(root), "plan"]) != 0:  # also fills the resolution cache, as a second command finds it
            return None
        whole, one = [], []
        for _ in range(repeat):
            for argv, into in (([], whole), (["--shard", f"1/{shards}"], one)):
                started = time.perf_counter()
                if quiet(["-C", str(root), "plan", *argv]) != 0:
                    return None
                into.append(time.perf_counter() - started)
        return statistics.median(whole), statistics.median(one)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=400, help="images per build (default 400)")
    parser.add_argument("--concurrency", type=int, default=32, help="Ark calls in flight (default 32)")
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per Ark call (default 0.2)")
    parser.add_argument("--shards", type=int, default=4, help="shards (default 4)")
    parser.add_argument("--plan-assets", type=int, default=5000, help="assets in the plan project (default 5000)")
    parser.add_argument("--repeat", type=int, default=5, help="plan timings per side (default 5)")
    args = parser.parse_args()
    os.environ.pop("IMGBUILD_SHARD", None)

    done = hosted(args.n, args.concurrency, args.latency)
    if done is None:
        print("ark build FAILED")
        return 1
    wall, cpu = done
    per_image = cpu / args.n
    drive = 60 / per_image
    print(
        f"ark, {args.n} images, concurrency {args.concurrency}, {args.latency:g} s per call: wall {wall:.2f} s,"
        f" CPU {per_image * 1000:.1f} ms per image -> one core drives {drive:,.0f} images/min"
        f" = {drive / ARK_RATE_LIMIT:.1f} x Ark's {ARK_RATE_LIMIT}/min per model"
    )

    jobs = os.cpu_count() or 1
    ones, splits = [], []
    for _ in range(2):  # interleaved, the faster of each: machine noise hits both sides
        ones.append(preview(args.n, jobs, 1))
        splits.append(preview(args.n, jobs, args.shards))
    if None in ones or None in splits:
        print("preview build FAILED")
        return 1
    one, split = min(t for t in ones if t is not None), min(t for t in splits if t is not None)
    print(
        f"preview, {args.n} images, -j {jobs}: one build {one:.2f} s ({args.n / one * 60:,.0f} images/min),"
        f" {args.shards} shards in turn + merge {split:.2f} s; shards / one build {split / one:.2f}"
    )

    timed = plan_times(args.plan_assets, args.shards, args.repeat)
    if timed is None:
        print("plan FAILED")
        return 1
    whole, part = timed
    print(
        f"plan of {args.plan_assets} assets: whole {whole:.3f} s, --shard 1/{args.shards} {part:.3f} s;"
        f" shard / whole {part / whole:.2f} (1/{args.shards} = {1 / args.shards:.2f} if only its share cost)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
