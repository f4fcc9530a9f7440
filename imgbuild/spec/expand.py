"""Expansion: batch → shots × the cartesian product of `vary` (+ variant tests) → assets.

Asset ids come from the batch, the shot, the variant test and the varying *values* — never from a
position in a list — so adding a value adds assets and renames none.
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType

from imgbuild.errors import Problem
from imgbuild.models import get_model
from imgbuild.spec.model import Batch, Project, Shot, VariantTest

__all__ = ["MAX_ID_LENGTH", "Asset", "asset_id", "count_batch", "expand_batch", "expand_project"]

MAX_ID_LENGTH = 80
_SLUG_RUN = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Asset:
    """One image to make (with `shot.candidates` candidates), before its prompt is rendered."""

    id: str
    batch: Batch
    shot: Shot
    variant: VariantTest | None
    fixed: Mapping[str, str]  # attributes with one value for the whole shot
    vary: Mapping[str, str]  # this asset's choice of each varying attribute
    model: str | None = None  # the endpoint key, when the batch lists several (None: the batch's one)

    @property
    def attributes(self) -> dict[str, str]:
        """All attributes of this asset, fixed and varying."""
        return {**self.fixed, **self.vary}


@functools.lru_cache(maxsize=4096)  # a batch of 10,000 assets has a few hundred distinct values
def slug(text: str) -> str:
    """A readable, id-safe form of a value: ``"Soft morning light"`` → ``soft-morning-light``."""
    return _SLUG_RUN.sub("-", text.lower()).strip("-") or "x"


def asset_id(batch: str, shot: str, variant: str | None, vary: Mapping[str, str]) -> str:
    """The stable id of an asset; long ids keep a readable head and gain a short hash of the rest."""
    parts = [batch, shot]
    if variant is not None:
        parts.append(f"vt-{variant}")
    parts += [slug(vary[key]) for key in sorted(vary)]
    full = ".".join(parts)
    if len(full) <= MAX_ID_LENGTH:
        return full
    digest = hashlib.sha256(
        "\x1f".join([*parts[:2], variant or "", *(f"{k}={vary[k]}" for k in sorted(vary))]).encode()
    ).hexdigest()[:10]
    return f"{full[: MAX_ID_LENGTH - 11].rstrip('.-_')}-{digest}"


def expand_batch(batch: Batch) -> Iterator[Asset]:
    """Every asset of a batch: each shot over its attribute product, then each variant test; all
    of it once per model when the batch lists several (the model's family then names the asset)."""
    if not batch.models:
        yield from _expand_shots(batch)
        return
    for key in batch.models:
        family = get_model(key).family
        for asset in _expand_shots(batch):
            named = {**asset.vary, "model": family}
            variant = asset.variant.id if asset.variant else None
            yield replace(asset, id=asset_id(batch.id, asset.shot.id, variant, named), model=key)


def _expand_shots(batch: Batch) -> Iterator[Asset]:
    for shot in batch.shots:
        fixed, vary = _merge(batch, shot)
        yield from _product(batch, shot, None, fixed, vary)
        for variant in batch.variant_tests:
            if variant.shots is not None and shot.id not in variant.shots:
                continue
            v_fixed = {k: v for k, v in fixed.items() if k not in variant.vary}
            v_fixed.update(variant.fixed)
            v_vary = {k: v for k, v in vary.items() if k not in variant.fixed}
            v_vary.update(variant.vary)
            yield from _product(batch, shot, variant, v_fixed, v_vary)


def count_batch(batch: Batch) -> int:
    """How many assets `expand_batch` yields, computed from the list lengths alone."""
    total = 0
    for shot in batch.shots:
        _, vary = _merge(batch, shot)
        total += math.prod(len(v) for v in vary.values())
        for variant in batch.variant_tests:
            if variant.shots is not None and shot.id not in variant.shots:
                continue
            v_vary = {k: v for k, v in vary.items() if k not in variant.fixed}
            v_vary.update(variant.vary)
            total += math.prod(len(v) for v in v_vary.values())
    return total


def _merge(batch: Batch, shot: Shot) -> tuple[dict[str, str], dict[str, tuple[str, ...]]]:
    fixed: dict[str, str] = {}
    vary: dict[str, tuple[str, ...]] = {}
    for level_fixed, level_vary in ((batch.fixed, batch.vary), (shot.fixed, shot.vary)):
        for key, value in level_fixed.items():
            vary.pop(key, None)
            fixed[key] = value
        for key, values in level_vary.items():
            fixed.pop(key, None)
            vary[key] = values
    return fixed, vary


def _product(
    batch: Batch,
    shot: Shot,
    variant: VariantTest | None,
    fixed: Mapping[str, str],
    vary: Mapping[str, tuple[str, ...]],
) -> Iterator[Asset]:
    keys = sorted(vary)
    frozen_fixed = MappingProxyType(dict(fixed))
    for values in itertools.product(*(vary[k] for k in keys)):
        chosen = dict(zip(keys, values, strict=True))
        yield Asset(
            id=asset_id(batch.id, shot.id, variant.id if variant else None, chosen),
            batch=batch,
            shot=shot,
            variant=variant,
            fixed=frozen_fixed,
            vary=MappingProxyType(chosen),
        )


def expand_project(project: Project, problems: list[Problem]) -> list[Asset]:
    """Every asset of every batch. Duplicate ids and batches over the asset cap are problems."""
    assets: list[Asset] = []
    seen: dict[str, Asset] = {}
    reported: set[tuple[str, int]] = set()  # one problem per shot, not one per clashing asset
    for batch in project.batches:
        count = count_batch(batch)  # counted, not built: a product of billions is refused at once
        cap = batch.max_assets or project.config.max_assets_per_batch
        if count > cap:
            problems.append(
                Problem(
                    batch.file,
                    1,
                    "",
                    f"expands to {count} assets, over the cap of {cap} — set max_assets: "
                    f"{count} in the manifest to allow it",
                )
            )
            continue
        batch_assets = list(expand_batch(batch))
        for asset in batch_assets:
            other = seen.get(asset.id)
            if other is not None:
                if (batch.id, asset.shot.index) in reported:
                    continue
                reported.add((batch.id, asset.shot.index))
                problems.append(
                    Problem(
                        batch.file,
                        batch.line("shots", asset.shot.index),
                        f"shots[{asset.shot.index}]",
                        f"duplicate asset id {asset.id!r} ({_describe(asset)} and {_describe(other)}"
                        f" of {other.batch.file}) — make the values distinct",
                    )
                )
                continue
            seen[asset.id] = asset
            assets.append(asset)
    return assets


def _describe(asset: Asset) -> str:
    values = ", ".join(f"{k}={v!r}" for k, v in sorted(asset.vary.items()))
    return f"shot {asset.shot.id!r}" + (f" with {values}" if values else "")
