"""`imgbuild approve` / `imgbuild reject`: record a review decision on one candidate (the
checks, the writes and their order are in imgbuild.decisions, shared with the review studio)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from imgbuild.decisions import decide
from imgbuild.errors import EXIT_OK

__all__ = ["review"]


def review(
    root: Path,
    decision: str,
    asset: str,
    candidate: str,
    *,
    passed: Sequence[str],
    failed: Sequence[str],
    note: str | None,
    by: str | None,
    override: bool,
) -> int:
    """Approve or reject candidate `candidate` of asset `asset`, recording the checklist, and
    print what was recorded. Raises ReviewError (exit 2, nothing written) when the ids or the
    checklist do not allow it."""
    done = decide(root, decision, asset, candidate, passed=passed, failed=failed, note=note, by=by, override=override)
    print("\n".join(done.lines))
    return EXIT_OK
