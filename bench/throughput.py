"""Throughput benchmark: does a hosted build keep the provider busy?

What it measures
    A loopback server (tests/fakes/servers.py) answers as Ark, Replicate and fal do, each call
    taking LATENCY seconds (Ark: the POST is held that long; Replicate / fal: the job is done that
    long after it was created, and the client polls for it). For each provider asked for, a fresh
    project with one batch of N assets (one candidate each) is built with ``imgbuild build -j C``
    in this process. Wall time is compared with the ideal: N / C × LATENCY — every thread always
    waiting on exactly one call. The ratio wall / ideal (target ≤ 1.15) shows what retries,
    polling, downloads, verifying images, writing records and doit itself cost on top.

    The first call of a build runs alone (the first-call gate: a wrong key costs one refused call,
    not one per thread), so with Ark the floor is one extra LATENCY: (1 + ceil((N-1)/C)) / (N/C).

Usage::

    python bench/throughput.py                        # N=200, C=16, LATENCY=1 s, all three providers
    python bench/throughput.py --provider ark --n 400 --concurrency 32

It prints one line per provider and exits 0 whether or not the target is met (a benchmark, not a
test); it exits 1 only when a build fails.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import imgbuild.main

REPO = Path(__file__).resolve().parents[1]

# The loopback server runs in its own process, as a real provider would: its Python work must not
# compete with the build for this process's GIL.
SERVER = """
import json, sys
sys.path.insert(0, sys.argv[1])
from fakes.servers import FakeProviders
with FakeProviders(latency=float(sys.argv[2])) as fake:
    print(json.dumps({"keys": fake.keys, "base_urls": fake.base_urls}), flush=True)
    sys.stdin.read()  # until the benchmark closes our stdin
    print(json.dumps(dict(fake.billed)), flush=True)
"""

TARGET = 1.15
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


def write_project(root: Path, provider: str, n: int, concurrency: int) -> None:
    cols = 10 if n % 10 == 0 else 1
    a = ", ".join(f"a{i}" for i in range(n // cols))
    b = ", ".join(f"b{i}" for i in range(cols))
    files = {
        "imgbuild.yaml": f"provider: {provider}\nconcurrency: {concurrency}\n",
        "personas/bench.yaml": PERSONA.format(a=a, b=b),
        "batches/bench.yaml": BATCH.format(a=a, b=b),
        "evidence/bench.md": "# benchmark\n",
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def measure(provider: str, n: int, concurrency: int, latency: float) -> float | None:
    """Wall seconds of one build of n assets, or None when the build failed."""
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(REPO / "tests"), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None
    try:
        fake = json.loads(server.stdout.readline())
        with tempfile.TemporaryDirectory(prefix="imgbuild-throughput-") as tmp:
            root = Path(tmp)
            write_project(root, provider, n, concurrency)
            os.environ[KEY_ENV[provider]] = fake["keys"][provider]
            os.environ[URL_ENV[provider]] = fake["base_urls"][provider]
            out = io.StringIO()
            started = time.perf_counter()
            with contextlib.redirect_stdout(out):
                code = imgbuild.main.main(["-C", str(root), "build", "-j", str(concurrency)])
            wall = time.perf_counter() - started
        server.stdin.close()
        billed = json.loads(server.stdout.readline()).get(provider, 0)
    finally:
        server.kill()
        server.wait()
    if code != 0 or billed != n:
        print(out.getvalue()[-2000:], f"billed {billed}", file=sys.stderr)
        return None
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--provider", action="append", choices=sorted(KEY_ENV), help="default: all three")
    parser.add_argument("--n", type=int, default=200, help="images (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="calls in flight (default 16)")
    parser.add_argument("--latency", type=float, default=1.0, help="seconds per call (default 1.0)")
    args = parser.parse_args()
    ideal = args.n / args.concurrency * args.latency
    print(f"{args.n} images, concurrency {args.concurrency}, {args.latency:g} s per call: ideal {ideal:.2f} s")
    failed = False
    for provider in args.provider or sorted(KEY_ENV):
        wall = measure(provider, args.n, args.concurrency, args.latency)
        if wall is None:
            print(f"{provider:>9}: build FAILED")
            failed = True
            continue
        ratio = wall / ideal
        verdict = "PASS" if ratio <= TARGET else "FAIL"
        print(f"{provider:>9}: wall {wall:.2f} s  wall/ideal {ratio:.3f}  (target <= {TARGET}) {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
