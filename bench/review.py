"""Review studio benchmark: how soon is the first screen of a 1,000-asset batch interactive,
with every image on it loaded, once the thumbnails exist?

What it measures
    1. Writes the no-op benchmark's project (bench/noop.py) with N assets and CANDIDATES
       candidates each, builds it once with the offline ``preview`` provider, and runs
       ``imgbuild gallery``, which makes every thumbnail not made yet (timed: the one-off cost;
       ``--fresh-thumbs`` makes them all again in a kept ``--dir``).
    2. Starts ``imgbuild review --no-open`` (the real command, a child process) and opens it in
       headless Chromium through Selenium and Debian's chromedriver, REPEAT times, each in a
       fresh tab with the cache off (CDP ``Network.setCacheDisabled``). For each load the page
       itself reports, from the Navigation Timing origin: when the key handler was in place
       (``performance.mark("imgbuild-ready")``) and when the last image on the first screen
       finished (Resource Timing ``responseEnd`` of each one), after checking every one of them
       decoded (``complete`` and ``naturalWidth > 0``). "Interactive with every image loaded" is
       the later of the two.
    3. Side by side, in the same runs: the static gallery page of the same batch, opened from
       disk, measured the same way (its images load eagerly, so it waits for all of them).

It prints one row per load, the medians, the studio's median against its target (< 1,000 ms)
and the ratio studio / static gallery. It exits 0 whether or not the target is met; 1 only when
it cannot measure.

Usage::

    python bench/review.py                 # N = 1,000 assets × 2 candidates (set-up takes minutes)
    python bench/review.py --n 200         # a quick run
    python bench/review.py --dir /tmp/rb   # keep the project in /tmp/rb and reuse it next time
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from noop import write_project  # the same project as the no-op benchmark

TARGET_MS = 1000.0
# The later of "key handler in place" and "every first-screen image loaded", in ms from navigation
# start, or a string saying what is not loaded.
MEASURE = """
const ready = performance.getEntriesByName("imgbuild-ready")[0];
const shown = [...document.images].filter(i => { const r = i.getBoundingClientRect();
  return r.bottom > 0 && r.top < innerHeight && r.right > 0 && r.left < innerWidth; });
if (!shown.length) return "no image on the first screen";
const broken = shown.filter(i => !(i.complete && i.naturalWidth > 0));
if (broken.length) return broken.length + " of " + shown.length + " first-screen images not loaded";
// Over file:// there is no Resource Timing; the static page's images are eager, so they all
// finish before its load event.
const t = performance.timing, loaded = t.loadEventStart - t.navigationStart;
const ends = shown.map(i => (performance.getEntriesByName(i.src)[0] || {}).responseEnd || loaded);
// The static gallery has no key handler: it is interactive when its DOM is.
const interactive = ready ? ready.startTime : t.domInteractive - t.navigationStart;
return [interactive, Math.max(...ends), shown.length, document.images.length];
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="assets in the batch (default 1,000)")
    parser.add_argument("--candidates", type=int, default=2, help="candidates per asset (default 2)")
    parser.add_argument("--repeat", type=int, default=7, help="loads of each page (default 7)")
    parser.add_argument("--dir", type=Path, default=None, help="keep the project here (default: a temp folder)")
    parser.add_argument("--fresh-thumbs", action="store_true", help="make the thumbnails again (timed)")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="imgbuild-review-bench-"))
    root = base / f"review-{args.n}x{args.candidates}"
    env = {**os.environ, "IMGBUILD_PROVIDER": "preview"}
    imgbuild = [sys.executable, "-m", "imgbuild", "-C", str(root)]

    write_project(root, args.n)
    batch = root / "batches" / "bench.yaml"
    batch.write_text(batch.read_text().replace("candidates: 1", f"candidates: {args.candidates}"))
    started = time.perf_counter()
    built = subprocess.run([*imgbuild, "build", "-j", "4"], env=env, capture_output=True, text=True, check=False)
    if built.returncode != 0:
        print(built.stdout[-2000:], built.stderr[-2000:], sep="\n")
        return 1
    print(f"set-up build: {time.perf_counter() - started:.1f} s ({args.n} assets × {args.candidates})")
    thumbs = root / ".imgbuild" / "thumbs"
    if args.fresh_thumbs:
        shutil.rmtree(thumbs, ignore_errors=True)
    made = "from a run before (--fresh-thumbs makes them again)" if thumbs.is_dir() else "made now"
    started = time.perf_counter()
    subprocess.run([*imgbuild, "gallery"], env=env, capture_output=True, check=True)
    print(f"thumbnails ({made}) + gallery page: {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    subprocess.run([*imgbuild, "gallery"], env=env, capture_output=True, check=True)
    print(f"gallery page again, thumbnails cached: {time.perf_counter() - started:.1f} s")

    server = subprocess.Popen([*imgbuild, "review", "--no-open"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        line = server.stdout.readline()  # "imgbuild review: http://127.0.0.1:PORT/ (Ctrl-C to stop)"
        url = line.split()[2]
        return measure(url, (root / "gallery" / "bench.html").as_uri(), args.repeat, base)
    finally:
        server.terminate()
        server.wait(timeout=10)


def measure(studio: str, gallery: str, repeat: int, base: Path) -> int:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1440,900",
                "--disable-background-networking", f"--user-data-dir={base / 'chromium-profile'}"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    rows: dict[str, list[float]] = {"studio": [], "gallery": []}
    try:
        driver.execute_cdp_cmd("Network.enable", {})
        driver.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
        print(f"chromium {driver.capabilities.get('browserVersion')}, python {platform.python_version()}")
        print(f"{'page':>8}  {'load':>4}  {'ready ms':>8}  {'images ms':>9}  {'total ms':>8}  first screen / page")
        for n in range(1, repeat + 1):
            for name, url in (("studio", studio), ("gallery", gallery)):
                driver.get("about:blank")
                driver.get(url)
                result = None
                for _ in range(200):  # the page has loaded; lazy images may still be arriving
                    result = driver.execute_script(MEASURE)
                    if isinstance(result, list):
                        break
                    time.sleep(0.05)
                if not isinstance(result, list):
                    print(f"{name}: {result}")
                    return 1
                ready, images, shown, total = result
                rows[name].append(max(ready, images))
                row = f"{name:>8}  {n:>4}  {ready:>8.0f}  {images:>9.0f}  {max(ready, images):>8.0f}"
                print(f"{row}  {shown} / {total} images")
    finally:
        driver.quit()
    studio_ms, gallery_ms = (statistics.median(rows[k]) for k in ("studio", "gallery"))
    verdict = "met" if studio_ms < TARGET_MS else "NOT met"
    print(f"median: studio {studio_ms:.0f} ms (target < {TARGET_MS:.0f} ms: {verdict})")
    print(f"median: static gallery {gallery_ms:.0f} ms")
    print(f"ratio studio / static gallery: {studio_ms / gallery_ms:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
