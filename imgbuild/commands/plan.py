"""`imgbuild plan`: what a build would generate, why, how many calls, and the estimated cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.models import get_model
from imgbuild.records.state import assess
from imgbuild.resolve import resolve

__all__ = ["plan"]


def plan(root: Path, *, verbose: bool = False) -> int:
    """Print the plan per batch. Never calls a provider; always exits 0 on valid input."""
    resolution = resolve(root)
    states = assess(resolution)
    paid = resolution.provider != "preview"
    total_calls = 0
    total_cost = 0.0
    print(f"provider: {resolution.provider}" + ("" if paid else " (offline placeholders, no cost)"))
    for batch in resolution.project.batches:
        batch_states = [s for s in states if s.request.batch == batch.id]
        calls = sum(len(s.todo) for s in batch_states)
        candidates = sum(s.request.candidates for s in batch_states)
        model = get_model(batch.model)
        cost = calls * model.price_per_image
        total_calls += calls
        total_cost += cost
        kinds = Counter(s.status for s in batch_states if s.stale)
        why = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()))
        variants = sum(1 for s in batch_states if s.request.variant_test)
        print(
            f"{batch.id}: {len(batch_states)} assets ({_count(variants, 'variant test')}), {candidates} candidates;"
            f" {calls} to generate"
            + (f" ({why})" if why else "")
            + f"; {model.key} at {batch.quality}"
            + (f" ~${cost:.2f}" if paid else "")
        )
        if verbose:
            for state in batch_states:
                if state.stale:
                    print(f"  {state.request.asset_id} #{','.join(map(str, state.todo))}: {'; '.join(state.reasons)}")
    summary = f"total: {total_calls} images to generate"
    if paid:
        summary += f", estimated ${total_cost:.2f}"
        budget = resolution.project.config.budget
        if budget is not None:
            summary += f" (budget ${budget:.2f})"
    elif total_calls:
        summary += f" (free with preview; about ${total_cost:.2f} at list price on a hosted provider)"
    print(summary)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
