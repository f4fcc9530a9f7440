"""Building: the one place that calls a provider and has the records written.

session.py holds what a build shares (lock, provider, budget, stop latch, counters),
candidate.py makes, resumes and finishes one candidate, uploads.py makes reference images
reachable, images.py checks what came back.

A name is imported from its module when it is first asked for here (PEP 562): a no-op build
makes a session but never a candidate, so it does not load the providers and the records.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgbuild.build.candidate import finish_pending, make_candidate
    from imgbuild.build.session import BuildSession, Estimate, StaleWork

_WHERE = {  # name -> the module that defines it
    "finish_pending": "imgbuild.build.candidate",
    "make_candidate": "imgbuild.build.candidate",
    "BuildSession": "imgbuild.build.session",
    "Estimate": "imgbuild.build.session",
    "StaleWork": "imgbuild.build.session",
}


def __getattr__(name: str) -> Any:
    try:
        module = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # asked once
    return value


__all__ = ["BuildSession", "Estimate", "StaleWork", "finish_pending", "make_candidate"]
