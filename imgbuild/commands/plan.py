"""`imgbuild plan`: what a build would generate, why, how many calls, and the estimated cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from imgbuild.commands.output import orphan_row, print_json
from imgbuild.errors import EXIT_OK
from imgbuild.models import get_model
from imgbuild.resolve import Resolution, resolve
from imgbuild.state import AssetState, StateIndex, assess, estimate, find_orphans

__all__ = ["plan"]


def plan(root: Path, *, verbose: bool = False, as_json: bool = False) -> int:
    """Print the plan per batch (or one JSON document: schemas/output/plan.schema.json). Never
    calls a provider; always exits 0 on valid input."""
    resolution = resolve(root)
    states = assess(resolution, StateIndex(resolution, verify=True))
    document = _plan(resolution, states)
    if as_json:
        print_json(document)
    else:
        _print(document, verbose=verbose)
    return EXIT_OK


def _plan(resolution: Resolution, states: list[AssetState]) -> dict[str, Any]:
    paid = resolution.provider != "preview"
    batches = []
    for batch in resolution.project.batches:
        mine = [s for s in states if s.request.batch == batch.id]
        images, cost, by_model = estimate((s.request, s.todo) for s in mine)
        kinds = Counter(s.status for s in mine if s.stale)
        decided = Counter(
            resolution.decisions[s.request.asset_id].kind
            for s in mine
            if s.stale and s.request.asset_id in resolution.decisions
        )
        kinds.update(
            {"to edit from approved": decided["edit"], "to regenerate despite approval": decided["regenerate"]}
        )
        batches.append(
            {
                "id": batch.id,
                "assets": len(mine),
                "variant_tests": sum(1 for s in mine if s.request.variant_test),
                "candidates": sum(s.request.candidates for s in mine),
                "images": images,
                "calls": sum(len(s.todo) for s in mine),
                "why": {kind: n for kind, n in sorted(kinds.items()) if n},
                "models": sorted(by_model) or sorted({s.model for s in mine}),
                "quality": batch.quality,
                "cost_usd": round(cost, 6),
                "repeats": sum(s.repeats for s in mine),
                "stale": [
                    {"id": s.request.asset_id, "todo": list(s.todo), "reasons": list(s.reasons)}
                    for s in mine
                    if s.stale
                ],
            }
        )
    images, total_cost, by_model = estimate((s.request, s.todo) for s in states)
    budget = resolution.project.config.budget
    return {
        "version": 1,
        "command": "plan",
        "provider": resolution.provider,
        "paid": paid,
        "batches": batches,
        "models": [
            {
                "model": model,
                "calls": calls,
                "images": n,
                "price_per_image_usd": get_model(model).price_per_image,
                "cost_usd": round(n * get_model(model).price_per_image, 6),
            }
            for model, (calls, n) in sorted(by_model.items())
        ],
        "orphans": [orphan_row(o) for o in find_orphans(resolution)],
        "images": images,
        "cost_usd": round(total_cost, 6),  # at list prices (a preview build costs nothing)
        "budget_usd": budget,
        "over_budget": paid and budget is not None and total_cost > budget,
    }


def _print(plan: dict[str, Any], *, verbose: bool) -> None:
    paid = plan["paid"]
    print(f"provider: {plan['provider']}" + ("" if paid else " (offline placeholders, no cost)"))
    for batch in plan["batches"]:
        images, calls = batch["images"], batch["calls"]
        why = ", ".join(f"{n} {kind}" for kind, n in batch["why"].items())
        made = f"{images} images in {_count(calls, 'call')}" if images != calls else f"{calls}"
        print(
            f"{batch['id']}: {batch['assets']} assets ({_count(batch['variant_tests'], 'variant test')}),"
            f" {batch['candidates']} candidates; {made} to generate"
            + (f" ({why})" if why else "")
            + f"; {', '.join(batch['models'])} at {batch['quality']}"
            + (f" ~${batch['cost_usd']:.2f}" if paid else "")
        )
        if batch["repeats"]:
            print(
                f"  {_count(batch['repeats'], 'paid call')} of interrupted builds may have been billed and would be"
                " made again (no answer or job was recorded)"
            )
        if verbose:
            for stale in batch["stale"]:
                print(f"  {stale['id']} #{','.join(map(str, stale['todo']))}: {'; '.join(stale['reasons'])}")
            if not batch["stale"]:
                print(f"  checked {batch['assets']} assets: every candidate is made for its current request")
    if paid:
        for model in plan["models"]:
            print(
                f"  {model['model']}: {_count(model['images'], 'paid image')} × ${model['price_per_image_usd']:.3f}"
                f" = ${model['cost_usd']:.2f}"
            )
    for orphan in plan["orphans"]:
        print(f"orphaned: {orphan['asset_dir']}: {orphan['reasons'][0]}")
    summary = f"total: {plan['images']} images to generate"
    if paid:
        summary += f", estimated ${plan['cost_usd']:.2f} at list prices"
        if plan["budget_usd"] is not None:
            summary += f" (budget ${plan['budget_usd']:.2f}" + (
                ": a build would refuse)" if plan["over_budget"] else ")"
            )
    elif plan["images"]:
        summary += f" (free with preview; about ${plan['cost_usd']:.2f} at list price on a hosted provider)"
    print(summary)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
