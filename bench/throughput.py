"""Throughput benchmark: does a hosted build keep the provider busy, at its rate limit, cheaply?

What it measures
    A loopback server (tests/fakes/servers.py, in its own process) answers as Ark, Replicate and
    fal do, each call taking LATENCY seconds (Ark: the POST is held that long; Replicate / fal:
    the job is done that long after it was created, and the client polls for it). For each
    provider asked for, a fresh project with one batch of N assets (one candidate each) is built
    with ``imgbuild build -j C`` in this process. It prints, side by side:

    * wall / ideal, the ideal being N / C × LATENCY (every thread always waiting on exactly one
      call), or with ``--rate-limit R`` the time R allows, (N - 1) / R minutes + LATENCY;
    * CPU per image: this process's user + system CPU during the build, less what the same
      command costs when nothing is stale and its resolution cache is gone (resolving the
      project, loading tasks), over N; imports are done before the clock starts;
    * with ``--rate-limit``: the rate the server saw, (accepted creates - 1) / (last - first);
    * with ``--throttle F``: the server answers 429 to a share F of the creates; the 429s seen.

    Every run checks that the server billed exactly N creates, delivered N images and that N
    images are on disk: an image lost or billed twice fails the run (exit 1).

    The first call of a build runs alone for a moment (the first-call gate: a wrong key costs one
    refused call, not one per thread), and N / C rounds round up, so the floor is a little above 1.

Usage::

    python bench/throughput.py                        # N=200, C=16, LATENCY=1 s, all three providers
    python bench/throughput.py --provider ark --n 1000 --concurrency 256 --latency 15
    python bench/throughput.py --provider ark --n 1000 --concurrency 256 --latency 15 --rate-limit 500
    python bench/throughput.py --provider ark --n 1000 --concurrency 256 --latency 15 --throttle 0.3333

It prints one line per provider and exits 0 whether or not the targets are met (a benchmark, not
a test); it exits 1 only when a build fails or loses or double-bills an image.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import io
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import imgbuild.main

REPO = Path(__file__).resolve().parents[1]

# The loopback server runs in its own process, as a real provider would: its Python work must not
# compete with the build for this process's GIL.
SERVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fakes.servers import FakeProviders
provider, throttle = sys.argv[3], float(sys.argv[4])
with FakeProviders(latency=float(sys.argv[2]), fault_rate=throttle, faults=("429",)) as fake:
    print(json.dumps({"keys": fake.keys, "base_urls": fake.base_urls}), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    creates = fake.calls(provider, "create")
    print(json.dumps({
        "billed": fake.billed[provider],
        "images": fake.billed_images[provider],
        "throttled": sum(1 for r in creates if r.fault == "429"),
        "accepted": sorted(r.received for r in creates if r.fault is None),
    }), flush=True)
"""

TARGET = 1.10
CPU_TARGET_MS = 8.0
KEY_ENV = {"ark": "ARK_API_KEY", "replicate": "REPLICATE_API_TOKEN", "fal": "FAL_KEY"}
URL_ENV = {"ark": "IMGBUILD_ARK_BASE_URL", "replicate": "IMGBUILD_REPLICATE_BASE_URL", "fal": "IMGBUILD_FAL_BASE_URL"}

PERSONA = """\
id: bench
name: Bench
traits:
  face: a face
evidence:
  - path: evidence/bench.md
allowed:
  a: [{a}]
  b: [{b}]
"""

BATCH = """\
purpose: throughput benchmark
persona: bench
source_basis:
  - path: evidence/bench.md
output: assets
quality: draft
quality_reason: benchmark
aspect_ratio: "1:1"
output_format: png
vary:
  a: [{a}]
  b: [{b}]
shots:
  - id: s
    need: throughput
    prompt: "bench {{{{ attrs.a }}}} {{{{ attrs.b }}}}"
"""


def write_project(root: Path, provider: str, n: int, concurrency: int, rate_limit: float | None) -> None:
    cols = 10 if n % 10 == 0 else 1
    a = ", ".join(f"a{i}" for i in range(n // cols))
    b = ", ".join(f"b{i}" for i in range(cols))
    config = f"provider: {provider}\nconcurrency: {concurrency}\nmax_assets_per_batch: {max(n, 1000)}\n"
    config += f"providers:\n  {provider}:\n    retries: {{base_delay: 0.2, max_delay: 2}}\n"
    if rate_limit:
        config += f"    rate_limit: {rate_limit:g}\n"
    files = {
        "imgbuild.yaml": config,
        "personas/bench.yaml": PERSONA.format(a=a, b=b),
        "batches/bench.yaml": BATCH.format(a=a, b=b),
        "evidence/bench.md": "# benchmark\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@dataclass
class Run:
    wall: float  # seconds of the whole `imgbuild build`
    cpu: float  # CPU seconds of this process (user + system) during it; the server's are not counted
    noop_cpu: float  # CPU seconds of the same build run again when everything is made
    billed: int  # creates the server accepted (and would have billed)
    images: int  # images the server delivered
    kept: int  # images on disk in the project afterwards
    throttled: int  # creates the server answered 429
    accepted: list[float]  # when the server received each accepted create (its clock)


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(
    provider: str, n: int, concurrency: int, latency: float, *, rate_limit: float | None = None, throttle: float = 0.0
) -> Run | None:
    """One build of n assets, or None when the build failed."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(REPO / "tests"), str(latency), provider, str(throttle)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        fake = json.loads(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="imgbuild-throughput-") as tmp:
            root = Path(tmp)
            write_project(root, provider, n, concurrency, rate_limit)
            os.environ[KEY_ENV[provider]] = fake["keys"][provider]
            os.environ[URL_ENV[provider]] = fake["base_urls"][provider]
            out = io.StringIO()
            gc.collect()
            cpu, started = cpu_seconds(), time.perf_counter()
            with contextlib.redirect_stdout(out):
                code = imgbuild.main.main(["-C", str(root), "build", "-j", str(concurrency)])
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            kept = len(list(root.glob("assets/*/images/candidates/*")))
            # The same command again with nothing to make and its resolution cache removed: what
            # the first build spent besides its images (resolving, loading tasks, checks).
            shutil.rmtree(root / ".imgbuild" / "cache", ignore_errors=True)
            noop = cpu_seconds()
            with contextlib.redirect_stdout(io.StringIO()):
                imgbuild.main.main(["-C", str(root), "build", "-j", str(concurrency)])
            noop = cpu_seconds() - noop
        server.stdin.close()
        seen = json.loads(server.stdout.readline())
    finally:
        server.kill()
        server.wait()
    run = Run(wall, cpu, noop, seen["billed"], seen["images"], kept, seen["throttled"], seen["accepted"])
    if code != 0 or run.billed != n or run.kept != n:
        print(out.getvalue()[-2000:], f"billed {run.billed}, kept {run.kept}", file=sys.stderr)
        return None
    return run


def warm_imports() -> None:
    """Import what a hosted build imports on first use: once per process, not per image."""
    import doit.cmd_run  # noqa: F401
    import httpx  # noqa: F401
    import PIL.Image  # noqa: F401

    import imgbuild.commands.build
    import imgbuild.providers.ark
    import imgbuild.providers.fal
    import imgbuild.providers.replicate
    import imgbuild.tasks  # noqa: F401


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider", action="append", choices=sorted(KEY_ENV), help="default: all three")
    parser.add_argument("--n", type=int, default=200, help="images (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (default 16)")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per call (default 1.0)")
    parser.add_argument("--rate-limit", type=float, default=None, help="providers.<name>.rate_limit, images/min")
    parser.add_argument("--throttle", type=float, default=0.0, help="share of creates the server answers 429")
    parser.add_argument("--target", type=float, default=TARGET, help=f"wall / ideal to meet (default {TARGET})")
    args = parser.parse_args()
    ideal = args.n / args.concurrency * args.latency
    if args.rate_limit:
        ideal = max(ideal, (args.n - 1) / args.rate_limit * 60 + args.latency)
    print(
        f"{args.n} images, concurrency {args.concurrency}, {args.latency:g} s per call"
        + (f", rate_limit {args.rate_limit:g}/min" if args.rate_limit else "")
        + (f", {args.throttle:.0%} of creates answered 429" if args.throttle else "")
        + f": ideal {ideal:.2f} s"
    )
    failed = False
    warm_imports()
    for provider in args.provider or sorted(KEY_ENV):
        run = measure(
            provider, args.n, args.concurrency, args.latency, rate_limit=args.rate_limit, throttle=args.throttle
        )
        if run is None:
            print(f"{provider:>9}: build FAILED (an image lost or billed twice: see above)")
            failed = True
            continue
        ratio = run.wall / ideal
        verdict = "PASS" if ratio <= args.target else "FAIL"
        line = (
            f"{provider:>9}: wall {run.wall:.2f} s  wall/ideal {ratio:.3f} (target <= {args.target:g}) {verdict}"
            f"  CPU per image {(run.cpu - run.noop_cpu) / args.n * 1000:.1f} ms (target <= {CPU_TARGET_MS:g};"
            f" {run.cpu / args.n * 1000:.1f} with resolving the project)"
            f"  billed {run.billed}, delivered {run.images}, kept {run.kept}"
        )
        if args.rate_limit and len(run.accepted) > 1:
            rate = (len(run.accepted) - 1) / (run.accepted[-1] - run.accepted[0]) * 60
            line += f"  rate {rate:.1f}/min ({rate / args.rate_limit - 1:+.2%} of the limit)"
        if args.throttle:
            line += f"  429s {run.throttled}"
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
