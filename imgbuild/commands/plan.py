"""`imgbuild plan`: what a build would generate, why, how many calls, and the estimated cost."""

from __future__ import annotations

from collections import Counter, defaultdict
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
    by_model: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # model -> [calls, images]
    print(f"provider: {resolution.provider}" + ("" if paid else " (offline placeholders, no cost)"))
    for batch in resolution.project.batches:
        batch_states = [s for s in states if s.request.batch == batch.id]
        calls = sum(len(s.todo) for s in batch_states)
        images = sum(len(s.todo) * s.request.max_images for s in batch_states)
        candidates = sum(s.request.candidates for s in batch_states)
        cost = 0.0
        for s in batch_states:
            if s.todo:
                counts = by_model[s.request.model]
                counts[0] += len(s.todo)
                counts[1] += len(s.todo) * s.request.max_images
                cost += len(s.todo) * s.request.max_images * get_model(s.request.model).price_per_image
        kinds = Counter(s.status for s in batch_states if s.stale)
        decided = Counter(
            resolution.decisions[s.request.asset_id].kind
            for s in batch_states
            if s.stale and s.request.asset_id in resolution.decisions
        )
        kinds.update(
            {"to edit from approved": decided["edit"], "to regenerate despite approval": decided["regenerate"]}
        )
        why = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()) if n)
        variants = sum(1 for s in batch_states if s.request.variant_test)
        made = f"{images} images in {_count(calls, 'call')}" if images != calls else f"{calls}"
        print(
            f"{batch.id}: {len(batch_states)} assets ({_count(variants, 'variant test')}), {candidates} candidates;"
            f" {made} to generate"
            + (f" ({why})" if why else "")
            + f"; {batch.model} at {batch.quality}"
            + (f" ~${cost:.2f}" if paid else "")
        )
        if verbose:
            for state in batch_states:
                if state.stale:
                    print(f"  {state.request.asset_id} #{','.join(map(str, state.todo))}: {'; '.join(state.reasons)}")
    total_images = sum(images for _, images in by_model.values())
    total_cost = sum(images * get_model(model).price_per_image for model, (_, images) in by_model.items())
    if paid and by_model:
        for model, (_, images) in sorted(by_model.items()):
            price = get_model(model).price_per_image
            print(f"  {model}: {_count(images, 'paid image')} × ${price:.3f} = ${images * price:.2f}")
    summary = f"total: {total_images} images to generate"
    if paid:
        summary += f", estimated ${total_cost:.2f} at list prices"
        budget = resolution.project.config.budget
        if budget is not None:
            summary += f" (budget ${budget:.2f}" + (": a build would refuse)" if total_cost > budget else ")")
    elif total_images:
        summary += f" (free with preview; about ${total_cost:.2f} at list price on a hosted provider)"
    print(summary)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
