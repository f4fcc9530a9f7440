"""`imgbuild poll`: finish what an interrupted build left in flight, without any new paid call.

A provider job recorded in an asset's pending entry is resumed (polled, its images downloaded);
an answer saved in response.json is kept. Nothing is created: a call that left nothing to resume
is for the next build to decide.
"""

from __future__ import annotations

from pathlib import Path

from imgbuild.errors import EXIT_FAILED, EXIT_OK, FatalError, ProviderRefused
from imgbuild.generate import resumable_candidates
from imgbuild.records.store import AssetStore
from imgbuild.resolve import resolve
from imgbuild.tasks import make_generator

__all__ = ["poll"]


def poll(root: Path, *, provider: str | None = None) -> int:
    """Resume every recorded job of the current requests. 0 when all finished, 1 when any failed."""
    resolution = resolve(root, provider=provider)
    store = AssetStore(resolution.root)
    waiting = [req for req in resolution.all_requests() if resumable_candidates(store, req)]
    if not waiting:
        print("imgbuild poll: nothing in flight")
        return EXIT_OK
    generator = make_generator(resolution)
    generator.estimate = None  # resuming pays for nothing new
    finished = failed = 0
    try:
        for req in waiting:
            try:
                n = generator.finish_pending(req)
            except ProviderRefused:
                raise
            except FatalError as exc:
                failed += 1
                print(f"FAILED {req.asset_id}: {exc}")
                continue
            finished += n
            print(f"finished {req.asset_id} ({n} call{'s' if n != 1 else ''})")
    finally:
        generator.close()
    print(f"imgbuild poll: {finished} calls finished, {failed} assets failed")
    return EXIT_FAILED if failed else EXIT_OK
