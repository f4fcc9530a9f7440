"""Building: the one place that calls a provider and has the records written.

session.py holds what a build shares (lock, provider, budget, stop latch, counters),
candidate.py makes, resumes and finishes one candidate, uploads.py makes reference images
reachable, images.py checks what came back.
"""

from __future__ import annotations

from imgbuild.build.candidate import finish_pending, make_candidate
from imgbuild.build.session import BuildSession, Estimate, StaleWork

__all__ = ["BuildSession", "Estimate", "StaleWork", "finish_pending", "make_candidate"]
