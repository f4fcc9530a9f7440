"""`imgbuild plan`: what a build would generate, why, how many calls, and the estimated cost."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from imgbuild.errors import EXIT_OK
from imgbuild.models import get_model
from imgbuild.providers import missing_key
from imgbuild.resolve import resolve
from imgbuild.state import AssetState, StateIndex, assess, estimate, find_orphans
from imgbuild.tasks import select, task_name

__all__ = ["plan"]

log = logging.getLogger("imgbuild")


def plan(root: Path, *, verbose: bool = False, selection: Sequence[str] = ()) -> int:
    """Print the plan per batch, of the whole project or of what `imgbuild build SELECTION` would
    make (then the whole project's total too). Never calls a provider; exits 0 on valid input."""
    resolution = resolve(root)
    project = assess(resolution, StateIndex(resolution, verify=True))
    states = _selected(project, select(resolution, selection)) if selection else project
    paid = resolution.provider != "preview"
    print(f"provider: {resolution.provider}" + ("" if paid else " (offline placeholders, no cost)"))
    for batch in resolution.project.batches:
        mine = [s for s in states if s.request.batch == batch.id]
        if selection and not mine:
            continue
        of_all = sum(1 for s in project if s.request.batch == batch.id)
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
            f"{batch.id}: {len(mine)}{f' of {of_all}' if len(mine) != of_all else ''} assets"
            f" ({_count(variants, 'variant test')}), {candidates} candidates;"
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
            current = len(mine) - len(stale)
            if not stale:
                print(f"  checked {_count(len(mine), 'asset')}: every candidate is made for its current request")
            elif current:
                print(f"  checked {_count(len(mine), 'asset')}: the other {current} made for their current requests")
    images, total_cost, by_model = estimate((s.request, s.todo) for s in states)
    if paid and by_model:
        for model, (_, n) in sorted(by_model.items()):
            price = get_model(model).price_per_image
            print(f"  {model}: {_count(n, 'paid image')} × ${price:.3f} = ${n * price:.2f}")
    orphans = find_orphans(resolution)
    for orphan in orphans:
        print(f"orphaned: {orphan.asset_dir}: {orphan.reason()}")
    if not states:
        print("the selection matches no image")
    key = missing_key(resolution.provider) if images else None
    if key:  # found now rather than at the build's first call
        log.warning(
            "%s is not set: a build with provider %r would stop before its first call; export the %s API key"
            " as %s first (keys are read from the environment only)",
            key, resolution.provider, resolution.provider, key,
        )  # fmt: skip
    budget = resolution.project.config.budget
    print(_total("selection" if selection else "total", images, total_cost, paid, budget))
    if selection:  # what the budget would say of a build without a selection
        images, total_cost, _ = estimate((s.request, s.todo) for s in project)
        print(_total("whole project", images, total_cost, paid, budget))
    return EXIT_OK


def _selected(states: list[AssetState], chosen: set[str]) -> list[AssetState]:
    """The states of the assets with a chosen image task, each with only its chosen candidates to make."""
    out = []
    for state in states:
        req = state.request
        if any(task_name(req, k) in chosen for k in range(1, req.candidates + 1)):
            out.append(replace(state, todo=tuple(k for k in state.todo if task_name(req, k) in chosen)))
    return out


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
