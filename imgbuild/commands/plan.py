"""`imgbuild plan`: what a build would generate, why, how many calls, and the estimated cost."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from imgbuild.commands.output import orphan_row, print_json
from imgbuild.errors import EXIT_OK
from imgbuild.models import get_model
from imgbuild.orphans import Orphan, find_orphans
from imgbuild.providers import missing_key
from imgbuild.resolve import Resolution, resolve
from imgbuild.shard import chosen_shard, project_estimate, select_orphans, select_shard, shard_line
from imgbuild.state import AssetState, StateIndex, assess, estimate
from imgbuild.tasks import select, task_name

__all__ = ["plan"]

log = logging.getLogger("imgbuild")


def plan(
    root: Path,
    *,
    verbose: bool = False,
    selection: Sequence[str] = (),
    as_json: bool = False,
    shard: str | None = None,
) -> int:
    """Print the plan per batch, of the whole project or of what `imgbuild build SELECTION` would
    make (then the whole project's total too), of one shard or all, or one JSON document
    (schemas/output/plan.schema.json). Never calls a provider; exits 0 on valid input."""
    chosen = chosen_shard(shard)
    whole = resolve(root)
    resolution = select_shard(whole, chosen)
    project = assess(resolution, StateIndex(resolution, verify=True))
    states = _selected(project, select(resolution, selection)) if selection else project
    document = _plan(resolution, project, states, selection, select_orphans(find_orphans(whole), chosen))
    shards = None
    if chosen is not None and document["paid"] and document["budget_usd"] is not None:
        # A shard's build checks the budget against every shard's images (docs/scale.md).
        images, cost = project_estimate(whole)
        document["over_budget"] = cost > document["budget_usd"]
        shards = _total(f"all {chosen.count} shards", images, cost, True, document["budget_usd"])
    key = missing_key(resolution.provider) if document["images"] else None
    if key:  # found now rather than at the build's first call
        log.warning(
            "%s is not set: a build with provider %r would stop before its first call; export the %s API key"
            " as %s first (keys are read from the environment only)",
            key, resolution.provider, resolution.provider, key,
        )  # fmt: skip
    if as_json:
        print_json(document)
    else:
        _print(document, verbose=verbose, shard=None if chosen is None else shard_line(chosen, whole, resolution))
        if shards is not None:
            print(shards)
    return EXIT_OK


def _selected(states: list[AssetState], chosen: set[str]) -> list[AssetState]:
    """The states of the assets with a chosen image task, each with only its chosen candidates to make."""
    out = []
    for state in states:
        req = state.request
        if any(task_name(req, k) in chosen for k in range(1, req.candidates + 1)):
            out.append(replace(state, todo=tuple(k for k in state.todo if task_name(req, k) in chosen)))
    return out


def _plan(
    resolution: Resolution,
    project: list[AssetState],
    states: list[AssetState],
    selection: Sequence[str],
    orphans: list[Orphan],
) -> dict[str, Any]:
    paid = resolution.provider != "preview"
    pricing = resolution.pricing
    batches = []
    for batch in resolution.project.batches:
        mine = [s for s in states if s.request.batch == batch.id]
        if selection and not mine:
            continue
        images, cost, by_model = estimate(((s.request, s.todo) for s in mine), pricing)
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
                "assets_in_batch": sum(1 for s in project if s.request.batch == batch.id),
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
    images, total_cost, by_model = estimate(((s.request, s.todo) for s in states), pricing)
    cost_of = {
        model: estimate(((s.request, s.todo) for s in states if s.request.model == model), pricing)[1]
        for model in by_model
    }
    budget = resolution.project.config.budget
    whole = None
    if selection:  # what the budget would say of a build without a selection
        all_images, all_cost, _ = estimate(((s.request, s.todo) for s in project), pricing)
        whole = {"images": all_images, "cost_usd": round(all_cost, 6)}
    return {
        "version": 1,
        "command": "plan",
        "provider": resolution.provider,
        "paid": paid,
        "selection": list(selection),
        "batches": batches,
        "models": [
            {
                "model": model,
                "calls": calls,
                "images": n,
                "price_per_image_usd": round(cost_of[model] / n, 6),  # the route's price, by size where it varies
                "cost_usd": round(cost_of[model], 6),
                "price": pricing.describe(get_model(model)),
            }
            for model, (calls, n) in sorted(by_model.items())
        ],
        "orphans": [orphan_row(o) for o in orphans],
        "images": images,
        "cost_usd": round(total_cost, 6),  # at list prices (a preview build costs nothing)
        "budget_usd": budget,
        "over_budget": paid and budget is not None and total_cost > budget,
        "whole_project": whole,
    }


def _print(plan: dict[str, Any], *, verbose: bool, shard: str | None) -> None:
    paid = plan["paid"]
    print(f"provider: {plan['provider']}" + ("" if paid else " (offline placeholders, no cost)"))
    if shard is not None:
        print(shard)
    for batch in plan["batches"]:
        images, calls, assets = batch["images"], batch["calls"], batch["assets"]
        why = ", ".join(f"{n} {kind}" for kind, n in batch["why"].items())
        made = f"{images} images in {_count(calls, 'call')}" if images != calls else f"{calls}"
        of_all = f" of {batch['assets_in_batch']}" if assets != batch["assets_in_batch"] else ""
        print(
            f"{batch['id']}: {assets}{of_all} assets ({_count(batch['variant_tests'], 'variant test')}),"
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
            stale = batch["stale"]
            for item in stale:
                print(f"  {item['id']} #{','.join(map(str, item['todo']))}: {'; '.join(item['reasons'])}")
            current = assets - len(stale)
            if not stale:
                print(f"  checked {_count(assets, 'asset')}: every candidate is made for its current request")
            elif current:
                print(f"  checked {_count(assets, 'asset')}: the other {current} made for their current requests")
    if paid:
        for model in plan["models"]:
            print(
                f"  {model['model']}: {_count(model['images'], 'paid image')} × {model['price']}"
                f" = ${model['cost_usd']:.2f}"
            )
    for orphan in plan["orphans"]:
        print(f"orphaned: {orphan['asset_dir']}: {orphan['reasons'][0]}")
    if not sum(b["assets"] for b in plan["batches"]):
        print("the selection matches no image")
    budget = None if shard is not None else plan["budget_usd"]  # a shard's verdict is on the all-shards line
    print(_total("selection" if plan["selection"] else "total", plan["images"], plan["cost_usd"], paid, budget))
    whole = plan["whole_project"]
    if whole is not None:
        print(_total("whole project", whole["images"], whole["cost_usd"], paid, budget))


def _total(label: str, images: int, cost: float, paid: bool, budget: float | None) -> str:
    line = f"{label}: {images} images to generate"
    if paid:
        line += f", estimated ${cost:.2f} at list prices"
        if budget is not None:
            line += f" (budget ${budget:.2f}" + (": a build would refuse)" if cost > budget else ")")
    elif images:
        line += f" (free with preview; about ${cost:.2f} at list price on a hosted provider)"
    return line


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
