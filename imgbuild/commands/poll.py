"""`imgbuild poll`: finish what an interrupted build left in flight, without any new paid call.

A provider job recorded for a call in flight is resumed (polled, its images downloaded); an
answer saved by the interrupted build is kept. Nothing is created: a call that left nothing to
resume is for the next build to decide.
"""

from __future__ import annotations

from pathlib import Path

from imgbuild.build import finish_pending, make_candidate
from imgbuild.build.single import load_request_file, report_made, request_session
from imgbuild.errors import EXIT_FAILED, EXIT_OK, EXPECTED, BuildStop
from imgbuild.resolve import resolve
from imgbuild.tasks import make_session

__all__ = ["poll", "poll_request"]


def poll(root: Path, *, provider: str | None = None) -> int:
    """Resume every recorded job of the current requests. 0 when all finished, 1 when any failed."""
    resolution = resolve(root, provider=provider)
    session = make_session(resolution)
    waiting = [req for req in resolution.all_requests() if session.store.resumable(req.asset_dir, req.request_hash)]
    if not waiting:
        print("imgbuild poll: nothing in flight")
        return EXIT_OK
    session.estimate = None  # resuming pays for nothing new
    finished = failed = 0
    try:
        for req in waiting:
            try:
                n = finish_pending(session, req)
            except BuildStop:
                raise
            except EXPECTED as exc:
                failed += 1
                print(f"FAILED {req.asset_id}: {exc}")
                continue
            finished += n
            print(f"finished {req.asset_id} ({n} call{'s' if n != 1 else ''})")
    finally:
        session.close()
    print(f"imgbuild poll: {finished} calls finished, {failed} assets failed")
    return EXIT_FAILED if failed else EXIT_OK


def poll_request(root: Path, path: Path) -> int:
    """`imgbuild poll REQUEST.json`: finish that request's calls in flight without a new call."""
    rf = load_request_file(root, path)
    req = rf.request
    session = request_session(root, rf.config, req.provider)
    try:
        waiting = session.store.resumable(req.asset_dir, req.request_hash)
        if rf.candidate is not None:
            waiting = [k for k in waiting if k == rf.candidate]
        if not waiting:
            print(f"imgbuild poll: {req.asset_id}: nothing in flight for this request")
            return EXIT_OK
        session.estimate = None  # resuming pays for nothing new
        if rf.candidate is None:
            finish_pending(session, req)
        else:
            make_candidate(session, req, rf.candidate)
        for k in waiting:
            report_made("poll", session, req, k)
    finally:
        session.close()
    return EXIT_OK
