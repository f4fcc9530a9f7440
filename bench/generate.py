"""Write a built imgbuild project of N assets in minutes, for the scale benchmarks.

Building 100,000 placeholders with the preview provider takes hours (each one is drawn, encoded and
recorded through doit). This writes the same on-disk result through the real record code, without
a provider: the project (one persona, one template, BATCHES batch files, one shot, one candidate
per asset), then for every asset what a finished call leaves — ``AssetStore.submit`` (pending call,
asset.json, history, request.json), the image file, ``AssetStore.complete`` (manifest, candidate,
history) — and finally each batch's lock file through ``LockWriter``, as the lock task writes it.
The image is one small valid JPEG (64x64, a few hundred bytes), the same for every asset.

Two things differ from a real build, on purpose and only here: ``os.fsync`` is a no-op in the
generating processes (about 18 fsyncs per image are what makes a real build's records durable, and
a benchmark fixture need not survive a power cut), and the batches are written by parallel worker
processes. Afterwards, every file's mtime is set a minute back, as for files that come out of git.

Usage::

    python bench/generate.py DIR --n 100000 --batches 10   # about 4 minutes on 2 cores
    python bench/generate.py DIR --n 10000                  # about 25 s

Then ``doit`` in DIR reports "all N images up to date" and ``imgbuild -C DIR check`` passes.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import math
import multiprocessing
import os
import sys
import time
from pathlib import Path

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
purpose: scale benchmark batch {index} ({n} assets)
persona: bench
source_basis:
  - path: evidence/bench.md
output: assets/{batch}
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


def factors(n: int) -> list[int]:
    """Sizes of the vary lists whose product is `n`: two near-equal factors, or [n] for a prime."""
    a = max(d for d in range(1, math.isqrt(n) + 1) if n % d == 0)
    return [n] if a == 1 else [a, n // a]


def vary_values(n: int) -> dict[str, list[str]]:
    """The vary attributes of a batch: their cartesian product has `n` entries."""
    out: dict[str, list[str]] = {}
    for name, size in zip(["pose", "backdrop"], factors(n), strict=False):
        width = len(str(size))
        out[name] = [f"{name} {i:0{width}d}" for i in range(1, size + 1)]
    return out


def batch_sizes(n: int, batches: int) -> list[int]:
    base, extra = divmod(n, batches)
    return [base + (1 if i < extra else 0) for i in range(batches)]


def _yaml_lists(values: dict[str, list[str]], indent: str) -> str:
    lines = []
    for key, items in values.items():
        lines.append(f"{indent}{key}:\n")
        lines += [f"{indent}  - {v}\n" for v in items]
    return "".join(lines)


def write_project(root: Path, n: int, batches: int) -> list[str]:
    """The project files (rewritten only when they differ). Returns the batch ids."""
    sizes = batch_sizes(n, batches)
    allowed: dict[str, set[str]] = {"wardrobe": {"cream sweater"}}
    files = {
        "templates/bench.j2": TEMPLATE + ", {{ attrs.pose }}, {{ attrs.backdrop | default('plain') }}.\n",
        "evidence/bench.md": "# Benchmark persona\n\nEvery value is allowed.\n",
        "imgbuild.yaml": f"# the scale benchmark project\nmax_assets_per_batch: {max(sizes)}\n",
        "dodo.py": DODO,
    }
    ids = []
    for index, size in enumerate(sizes, 1):
        batch = f"b{index:02d}"
        ids.append(batch)
        vary = vary_values(size)
        for key, values in vary.items():
            allowed.setdefault(key, set()).update(values)
        files[f"batches/{batch}.yaml"] = BATCH.format(index=index, n=size, batch=batch, vary=_yaml_lists(vary, "  "))
    files["personas/bench.yaml"] = PERSONA.format(allowed=_yaml_lists({k: sorted(v) for k, v in allowed.items()}, "  "))
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
    return ids


def small_jpeg() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 180, 160)).save(out, "JPEG", quality=50)
    return out.getvalue()


def _write_batch(args: tuple[str, str]) -> int:
    """Records of every asset of one batch (in a worker process), then its lock file."""
    root_text, batch_id = args
    os.fsync = lambda fd: None  # type: ignore[assignment]  # see the module docstring
    from imgbuild.records import AssetStore, new_run_id
    from imgbuild.records.store import KeptImage
    from imgbuild.resolve import resolve
    from imgbuild.state import LockWriter, StateIndex

    root = Path(root_text)
    resolution = resolve(root, provider="preview", batches=[batch_id])
    store = AssetStore(root)
    data = small_jpeg()
    digest = hashlib.sha256(data).hexdigest()
    made = 0
    for req in resolution.requests[batch_id]:
        record = store.read_asset(req.asset_dir)
        if record is not None and store.made(record, req.asset_dir, req.request_hash):
            continue  # written by an earlier, interrupted run of this script
        run = new_run_id()
        store.submit(req.facts, run, 1, provider="preview", provider_body={"prompt": req.prompt})
        relative = f"images/candidates/{run}.jpg"
        store.write_image(req.asset_dir, relative, data)
        kept = KeptImage(1, None, relative, digest, len(data), 64, 64, None)
        store.complete(req.facts, run, 1, [kept], errors=[], usage={}, seconds=0.0)
        made += 1
    LockWriter(StateIndex(resolution)).write(batch_id)
    return made


def age(root: Path, seconds: float = 60) -> None:
    """Every file a minute old, as after a checkout (and outside the caches' racy window)."""
    past = time.time() - seconds
    for dirpath, _, filenames in os.walk(root):
        if ".imgbuild" in Path(dirpath).parts:
            continue
        for name in filenames:
            os.utime(os.path.join(dirpath, name), (past, past))


def generate(root: Path, n: int, batches: int = 10, jobs: int | None = None) -> None:
    """Write the project at `root` with `n` built assets in `batches` batch files."""
    started = time.perf_counter()
    ids = write_project(root, n, batches)
    age(root)  # the inputs: old enough for the resolution cache the workers share
    jobs = jobs or len(os.sched_getaffinity(0))
    os.environ["IMGBUILD_PROVIDER"] = "preview"
    with multiprocessing.get_context("fork").Pool(min(jobs, len(ids))) as pool:
        made = sum(pool.map(_write_batch, [(str(root), b) for b in ids], chunksize=1))
    age(root)
    print(f"generated {made} of {n} assets in {len(ids)} batches under {root} ({time.perf_counter() - started:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("dir", type=Path, help="the project folder (made if missing; reused if present)")
    parser.add_argument("--n", type=int, default=100_000, help="number of assets (default 100000)")
    parser.add_argument("--batches", type=int, default=10, help="batch files (default 10)")
    parser.add_argument("--jobs", type=int, help="worker processes (default: one per CPU)")
    args = parser.parse_args(argv)
    if args.n < 1 or not 1 <= args.batches <= args.n:
        parser.error("--n must be at least 1 and --batches between 1 and --n")
    args.dir.mkdir(parents=True, exist_ok=True)
    generate(args.dir.resolve(), args.n, args.batches, args.jobs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
