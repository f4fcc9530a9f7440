"""`imgbuild plan`: what a build would generate, why, how many calls, and the estimated cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.models import get_model
from imgbuild.resolve import resolve
from imgbuild.shard import chosen_shard, select, select_orphans, shard_line
from imgbuild.state import StateIndex, assess, estimate, find_orphans

__all__ = ["plan"]


def plan(root: Path, *, verbose: bool = False, shard: str | None = None) -> int:
    """Print the plan per batch (of one shard). Never calls a provider; always exits 0 on valid input."""
    chosen = chosen_shard(shard)
    whole = resolve(root)
    resolution = select(whole, chosen)
    states = assess(resolution, StateIndex(resolution, verify=True))
    paid = resolution.provider != "preview"
    print(f"provider: {resolution.provider}" + ("" if paid else " (offline placeholders, no cost)"))
    if chosen is not None:
        print(shard_line(chosen, whole, resolution))
    for batch in resolution.project.batches:
        mine = [s for s in states if s.request.batch == batch.id]
        images, cost, by_model = estimate((s.request, s.todo) for s in mine)
        calls = sum(len(s.todo) for s in mine)
        candidates = sum(s.request.candidates for s in mine)
        kinds = Counter(s.status for s in mine if s.stale)
        decided = Counter(
            resolution.decisions[s.request.asset_id].kind
            for s in mine
            if s.stale and s.request.asset_id in resolution.decisions
        )
        kinds.update(
            {"to edit from approved": decided["edit"], "to regenerate despite approval": decided["regenerate"]}
        )
        why = ", ".join(f"{n} {kind}" for kind, n in sorted(kinds.items()) if n)
        variants = sum(1 for s in mine if s.request.variant_test)
        made = f"{images} images in {_count(calls, 'call')}" if images != calls else f"{calls}"
        models = sorted(by_model) or sorted({s.model for s in mine})
        print(
            f"{batch.id}: {len(mine)} assets ({_count(variants, 'variant test')}), {candidates} candidates;"
            f" {made} to generate"
            + (f" ({why})" if why else "")
            + f"; {', '.join(models)} at {batch.quality}"
            + (f" ~${cost:.2f}" if paid else "")
        )
        repeats = sum(s.repeats for s in mine)
        if repeats:
            print(
                f"  {_count(repeats, 'paid call')} of interrupted builds may have been billed and would be made again"
                " (no answer or job was recorded)"
            )
        if verbose:
            stale = [s for s in mine if s.stale]
            for state in stale:
                print(f"  {state.request.asset_id} #{','.join(map(str, state.todo))}: {'; '.join(state.reasons)}")
            if not stale:
                print(f"  checked {len(mine)} assets: every candidate is made for its current request")
    images, total_cost, by_model = estimate((s.request, s.todo) for s in states)
    if paid and by_model:
        for model, (_, n) in sorted(by_model.items()):
            price = get_model(model).price_per_image
            print(f"  {model}: {_count(n, 'paid image')} × ${price:.3f} = ${n * price:.2f}")
    orphans = select_orphans(find_orphans(whole), chosen)
    for orphan in orphans:
        print(f"orphaned: {orphan.asset_dir}: {orphan.reason()}")
    summary = f"total: {images} images to generate"
    if paid:
        summary += f", estimated ${total_cost:.2f} at list prices"
        budget = resolution.project.config.budget
        if budget is not None:
            summary += f" (budget ${budget:.2f}" + (": a build would refuse)" if total_cost > budget else ")")
    elif images:
        summary += f" (free with preview; about ${total_cost:.2f} at list price on a hosted provider)"
    print(summary)
    return EXIT_OK


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
