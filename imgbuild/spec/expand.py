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
from dataclasses import dataclass
from types import MappingProxyType
from typing import NamedTuple

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
    for choice in _choices(batch):
        yield Asset(
            choice.id, batch, choice.shot, choice.variant, choice.fixed, MappingProxyType(choice.vary), choice.model
        )


class _Choice(NamedTuple):
    """An asset before it is one: what `expand_project` needs of 10,000 of them to check ids."""

    id: str
    shot: Shot
    variant: VariantTest | None
    fixed: Mapping[str, str]
    vary: dict[str, str]
    model: str | None


def _choices(batch: Batch) -> Iterator[_Choice]:
    if not batch.models:
        yield from _expand_shots(batch)
        return
    for key in batch.models:
        family = get_model(key).family
        for choice in _expand_shots(batch):
            variant = choice.variant.id if choice.variant else None
            named = {**choice.vary, "model": family}
            yield choice._replace(id=asset_id(batch.id, choice.shot.id, variant, named), model=key)


def _expand_shots(batch: Batch) -> Iterator[_Choice]:
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
) -> Iterator[_Choice]:
    keys = sorted(vary)
    frozen_fixed = MappingProxyType(dict(fixed))
    variant_id = variant.id if variant else None
    for values in itertools.product(*(vary[k] for k in keys)):
        chosen = dict(zip(keys, values, strict=True))
        yield _Choice(asset_id(batch.id, shot.id, variant_id, chosen), shot, variant, frozen_fixed, chosen, None)


def expand_project(project: Project, problems: list[Problem]) -> None:
    """Check the assets of every batch: duplicate ids and batches over the asset cap are problems.
    Only ids are made (no Asset objects): a fresh clone's check expands every batch this way."""
    seen: dict[str, tuple[Batch, _Choice]] = {}
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
        for choice in _choices(batch):
            found = seen.setdefault(choice.id, (batch, choice))
            if found[1] is choice:
                continue
            shot = choice.shot.index
            if (batch.id, shot) in reported:
                continue
            reported.add((batch.id, shot))
            other_batch, other = found
            problems.append(
                Problem(
                    batch.file,
                    batch.line("shots", shot),
                    f"shots[{shot}]",
                    f"duplicate asset id {choice.id!r} ({_describe(choice)} and {_describe(other)}"
                    f" of {other_batch.file}) — make the values distinct",
                )
            )


def _describe(choice: _Choice) -> str:
    values = ", ".join(f"{k}={v!r}" for k, v in sorted(choice.vary.items()))
    return f"shot {choice.shot.id!r}" + (f" with {values}" if values else "")
