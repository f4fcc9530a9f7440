"""Attributes that never reach a request: duplicate requests are an error, unused fixed values a warning.

The request hash covers what the provider sees (the rendered prompt, model, size...), not the
attributes, so an attribute that the template ignores makes assets that differ only in it resolve
to one request, and the build would pay for the same picture twice. Two assets of a batch with the
same `request_hash` are therefore an input error, whatever made them equal; the message names the
attribute(s) in which they differ, at the line that set it. A `fixed` attribute no template reads
cannot duplicate anything (it has one value), so it is only a warning: it is dead weight in the
manifest and in every record, and often a template forgot to use it.

Which attributes a template reads comes from the rendering itself (spec.render notes every
lookup in `attrs`); it decides the wording ("never uses attrs.x" or "renders the same prompt for
these values") and the warning, never whether two assets are duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from imgbuild.errors import Problem, format_path
from imgbuild.requests import ImageRequest
from imgbuild.spec.expand import Asset
from imgbuild.spec.model import Batch, Shot

__all__ = ["RenderedAsset", "attribute_use_problems"]

log = logging.getLogger("imgbuild")

DocPath = tuple[str | int, ...]
Scope = tuple[int, int | None]  # (shot index, variant test index or None): assets reading alike


@dataclass(frozen=True)
class RenderedAsset:
    """An asset with its resolved request and the attribute names its templates read."""

    asset: Asset
    request: ImageRequest
    attributes_read: frozenset[str]


def attribute_use_problems(batch: Batch, rendered: Sequence[RenderedAsset]) -> list[Problem]:
    """Problems for the assets of `batch` that resolve to the same request; logs a warning for
    each attribute the batch declares that no template reads (and is not such a problem already).

    `rendered` must hold every asset of the batch: a partial list could hide duplicates and make
    up unused attributes. One pass over the assets: this runs on every cold resolve."""
    first_of: dict[str, RenderedAsset] = {}  # request hash -> the first asset with that request
    duplicates: list[tuple[RenderedAsset, RenderedAsset]] = []  # (that first asset, a later one)
    read: dict[Scope, set[str]] = {}
    for item in rendered:
        first = first_of.setdefault(item.request.request_hash, item)
        if first is not item:
            duplicates.append((first, item))
        variant = item.asset.variant
        scope = (item.asset.shot.index, None if variant is None else variant.index)
        known = read.get(scope)
        if known is None:
            read[scope] = set(item.attributes_read)
        else:
            known |= item.attributes_read
    by_attribute = _by_attribute(duplicates)
    by_shot: dict[int, set[str]] = {}
    for (shot, _), names in read.items():
        by_shot.setdefault(shot, set()).update(names)
    problems = [_problem(batch, key, first, other, by_shot) for key, (first, other) in by_attribute.items()]
    _warn_unused(batch, read, reported={key for key in by_attribute if key is not None})
    return problems


def _by_attribute(
    duplicates: Sequence[tuple[RenderedAsset, RenderedAsset]],
) -> dict[str | None, tuple[RenderedAsset, RenderedAsset]]:
    """For each attribute in which assets with the same request differ, one such pair.

    Each attribute gets the pair that shows it most plainly: the one differing in the fewest
    attributes, the earliest in expansion order on a tie. Key None: a pair differing in no
    attribute at all (two shots, or a variant test, giving the same request). Every later asset
    is compared with the first one of its request only: linear in the number of duplicates."""
    best: dict[str | None, tuple[int, int, RenderedAsset, RenderedAsset]] = {}
    for order, (first, other) in enumerate(duplicates):
        differing = _differing(first.asset.attributes, other.asset.attributes)
        keys: list[str | None] = [*differing] or [None]
        for key in keys:
            known = best.get(key)
            if known is None or (len(differing), order) < known[:2]:
                best[key] = (len(differing), order, first, other)
    return {key: (first, other) for key, (_, _, first, other) in best.items()}


def _warn_unused(batch: Batch, read: Mapping[Scope, set[str]], reported: set[str]) -> None:
    """Log a warning for each attribute a batch declares that no template of its scope reads.

    The scope of a batch-level attribute is every asset of the batch (used by one shot's template
    is used); of a shot's or a variant test's, that shot's or variant test's assets. Each attribute
    is named once, at its outermost declaration, and not at all when it is in `reported`."""
    skip = set(reported)
    shots = {s.index: s for s in batch.shots}
    levels: list[tuple[DocPath, Mapping[str, object], Mapping[str, object], list[Scope]]] = [
        ((), batch.fixed, batch.vary, list(read))
    ]
    levels += [(("shots", s.index), s.fixed, s.vary, [k for k in read if k[0] == s.index]) for s in batch.shots]
    levels += [
        (("variant_tests", v.index), v.fixed, v.vary, [k for k in read if k[1] == v.index]) for v in batch.variant_tests
    ]
    for at, fixed, vary, scopes in levels:
        if not scopes:
            continue  # no asset has these values (e.g. a variant test for no shot): nothing rendered
        used = set().union(*(read[k] for k in scopes))
        for kind, attributes in (("fixed", fixed), ("vary", vary)):
            for key in attributes:
                if key in used or key in skip:
                    continue
                skip.add(key)
                path = (*at, kind, key)
                line = batch.line(*path)
                where = batch.file if line is None else f"{batch.file}:{line}"
                templates, verb = _templates([shots[i] for i in sorted({shot for shot, _ in scopes})])
                log.warning(
                    "%s %s: %s never %s attrs.%s, so it reaches no prompt — use it in the template or remove it",
                    where,
                    format_path(path),
                    templates,
                    verb,
                    key,
                )


def _differing(a: Mapping[str, str], b: Mapping[str, str]) -> list[str]:
    return sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))


def _problem(
    batch: Batch, key: str | None, first: RenderedAsset, other: RenderedAsset, read: Mapping[int, set[str]]
) -> Problem:
    a, b = first.asset, other.asset
    head = f"assets {a.id} and {b.id} resolve to the same request"
    if key is None:
        at: DocPath = ("variant_tests", b.variant.index) if b.variant is not None else ("shots", b.shot.index)
        message = f"{head}: same attribute values, same prompt and settings — make them differ or drop one"
        return Problem(batch.file, batch.line(*at), format_path(at), message)
    # The later asset's declaration is the one that added the duplicate; it may lack the key.
    path = _declared_at(b, key) or _declared_at(a, key)
    assert path is not None  # the two differ in `key`, so one of them has it
    scope = [a.shot] if a.shot.index == b.shot.index else [a.shot, b.shot]
    templates, verb = _templates(scope)
    if not any(key in read.get(s.index, ()) for s in scope):
        why = f"{templates} never {verb} attrs.{key}"
    else:  # read, e.g. in a condition, but these values make no difference
        why = f"{templates} {'renders' if verb == 'uses' else 'render'} the same prompt for {key} " + (
            f"{_shown(a, key)} and {_shown(b, key)}"
        )
    if path[0] == "variant_tests":
        fix = "use it in the template or drop it from the variant test"
    elif path[-2] == "vary":
        fix = "use it in the template or stop varying it"
    else:
        fix = "use it in the template or give it one value"
    return Problem(batch.file, batch.line(*path), format_path(path), f"{head}: {why} — {fix}")


def _declared_at(asset: Asset, key: str) -> DocPath | None:
    """Where in the manifest this asset's value of `key` comes from (the innermost level wins)."""
    variant, shot, batch = asset.variant, asset.shot, asset.batch
    if variant is not None:
        if key in variant.vary:
            return ("variant_tests", variant.index, "vary", key)
        if key in variant.fixed:
            return ("variant_tests", variant.index, "fixed", key)
    for at, level in ((("shots", shot.index), shot), ((), batch)):
        if key in level.vary:
            return (*at, "vary", key)
        if key in level.fixed:
            return (*at, "fixed", key)
    return None


def _shown(asset: Asset, key: str) -> str:
    value = asset.attributes.get(key)
    return "(not set)" if value is None else repr(value)


def _templates(shots: Sequence[Shot]) -> tuple[str, str]:
    """How to name the templates of `shots` ("template cover.j2", "the inline prompt"), and the
    verb agreeing with it ("uses" / "use")."""
    files = list(dict.fromkeys(s.template for s in shots if s.template is not None))
    inline = sum(1 for s in shots if s.template is None)
    parts = []
    if files:
        parts.append(("template " if len(files) == 1 else "templates ") + ", ".join(files))
    if inline:
        parts.append("the inline prompt" if inline == 1 else "the inline prompts")
    single = len(files) + inline == 1
    return " and ".join(parts), "uses" if single else "use"
