"""The input pipeline: YAML files → spec objects → assets → rendered, hashed requests.

`resolve()` is the one entry point used by every command and by the doit task generator. It either
returns the complete, valid set of requests or raises InvalidInput naming every problem found.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgbuild.errors import EXIT_INVALID, FatalError, InvalidInput, Problem
from imgbuild.models import ModelSpec, Pricing, get_model, route_of

if TYPE_CHECKING:
    from imgbuild.edits import EditDecision
    from imgbuild.requests import ImageRequest
    from imgbuild.spec.model import Batch, Project

__all__ = ["PROVIDER_ENV", "Resolution", "UnknownAsset", "resolve"]

PROVIDER_ENV = "IMGBUILD_PROVIDER"


@dataclass(frozen=True)
class Resolution:
    """A valid project and the request of every asset, grouped by batch in manifest order."""

    project: Project
    provider: str
    requests: Mapping[str, tuple[ImageRequest, ...]]  # batch id -> requests, in expansion order
    decisions: Mapping[str, EditDecision] = field(default_factory=dict)  # asset id -> the edit rule's verdict

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def pricing(self) -> Pricing:
        """How this build's images are priced: the provider's route and currency rates."""
        return Pricing.of(self.provider, self.project.config.providers.get(self.provider, {}))

    def batch(self, batch_id: str) -> Batch:
        return next(b for b in self.project.batches if b.id == batch_id)

    def all_requests(self) -> list[ImageRequest]:
        return [r for reqs in self.requests.values() for r in reqs]

    def find(self, asset_id: str) -> ImageRequest:
        """The request of `asset_id`; UnknownAsset (exit 2) naming close matches when there is none."""
        import difflib

        requests = {req.asset_id: req for req in self.all_requests()}
        if asset_id in requests:
            return requests[asset_id]
        close = difflib.get_close_matches(asset_id, list(requests), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownAsset(f"no asset {asset_id!r} in this project{hint} (`imgbuild ls` lists every asset)")


class UnknownAsset(FatalError):
    """A command named an asset id that no manifest declares."""

    exit_code = EXIT_INVALID


def resolve(root: Path, *, provider: str | None = None, use_cache: bool = True) -> Resolution:
    """Load, validate, expand and render the project at `root`. Raises InvalidInput.

    The result is cached in .imgbuild/ (see imgbuild.cache) while no input file changes."""
    from imgbuild import cache

    root = root.resolve()
    key = cache.cache_key(root, provider)
    if use_cache:
        hit = cache.load(root, key)
        if isinstance(hit, Resolution):
            return _with_approvals(hit)
    started_ns = time.time_ns()
    with cache.capture_warnings() as warnings:
        resolution = _resolve(root, provider)
    if use_cache:
        project = resolution.project
        evidence = {str(root / ref.path) for p in project.personas.values() for ref in p.evidence}
        evidence |= {str(root / ref.path) for b in project.batches for ref in b.source_basis}
        evidence |= {str(root / ref.path) for b in project.batches for s in b.shots for ref in s.references}
        files, folders = cache.input_paths(root, project.config, evidence)
        cache.store(root, key, resolution, files=files, folders=folders, warnings=warnings, started_ns=started_ns)
    return _with_approvals(resolution)


def _with_approvals(resolution: Resolution) -> Resolution:
    """Apply the edit rule: approvals live in the records, not in the (cached) manifests."""
    from imgbuild.edits import apply_edit_rule
    from imgbuild.records.lock import lock_path, read_lock

    locks = {batch.id: read_lock(lock_path(batch.path)) for batch in resolution.project.batches}
    requests, decisions = apply_edit_rule(resolution.root, resolution.requests, locks)
    if not decisions:
        return resolution
    return replace(resolution, requests=requests, decisions=decisions)


def _resolve(root: Path, provider: str | None) -> Resolution:
    from imgbuild.attribute_use import RenderedAsset, attribute_use_problems
    from imgbuild.requests import make_request
    from imgbuild.spec.expand import expand_project
    from imgbuild.spec.load import display, load_project
    from imgbuild.spec.render import PromptRenderer, RenderError

    problems: list[Problem] = []
    project = load_project(root, problems)
    chosen = provider or os.environ.get(PROVIDER_ENV) or project.config.provider
    served = _check_models(chosen, project, problems) if _check_provider(chosen, project, problems) else set()
    assets = expand_project(project, problems)
    config = project.config
    templates = config.root / config.templates_dir
    renderer = PromptRenderer(templates, display(config.root, templates), config.root)
    rendered: dict[str, list[RenderedAsset]] = {b.id: [] for b in project.batches}
    failed_shots: set[tuple[str, int]] = set()
    checked_shots: set[tuple[str, int]] = set()
    for asset in assets:
        shot_key = (asset.batch.id, asset.shot.index)
        if shot_key in failed_shots:
            continue  # one broken template is reported once, not once per asset
        persona = project.personas[asset.batch.persona]
        try:
            rendering = renderer.render(asset, persona)
        except RenderError as exc:
            problems.append(exc.problem)
            failed_shots.add(shot_key)
            continue
        if asset.batch.id not in served:
            continue
        req = make_request(
            asset,
            prompt=rendering.prompt,
            negative_prompt=rendering.negative,
            persona_traits=persona.traits,
            provider=chosen,
            template_sha256=renderer.source_hash(asset),
            persona_evidence=persona.evidence,
        )
        if shot_key not in checked_shots:  # the limits depend on the shot, not on its values
            checked_shots.add(shot_key)
            _check_limits(asset.batch, asset.shot.index, req, root, problems)
        rendered[asset.batch.id].append(RenderedAsset(asset, req, rendering.attributes_read))
    failed_batches = {batch_id for batch_id, _ in failed_shots}
    for batch in project.batches:
        if batch.id in served and batch.id not in failed_batches:  # else what was rendered is partial
            problems.extend(attribute_use_problems(batch, rendered[batch.id]))
    if problems:
        raise InvalidInput(problems)
    requests = {batch_id: tuple(r.request for r in items) for batch_id, items in rendered.items()}
    return Resolution(project, chosen, requests)


def _check_limits(batch: Batch, shot: int, req: ImageRequest, root: Path, problems: list[Problem]) -> None:
    from imgbuild.requests import limit_problems

    sizes = {ref.path: os.path.getsize(root / ref.path) for ref in req.references}
    pixels = {ref.path: _pixels(root / ref.path) for ref in req.references}
    for key, message in limit_problems(req, get_model(req.model).limits(req.provider), sizes, pixels):
        if key == "output_format":  # set for the whole batch
            line, path = batch.line(key), key
        elif key == "size":  # the quality tier and the aspect ratio of the batch make the size
            line, path = batch.line("aspect_ratio"), "aspect_ratio"
        elif key:
            line, path = batch.line("shots", shot, key), f"shots[{shot}].{key}"
        else:
            line, path = batch.line("shots", shot), f"shots[{shot}]"
        problems.append(Problem(batch.file, line, path, message))


def _pixels(path: Path) -> int:
    """Width × height from the image's header (0 when Pillow cannot read it: the upload says why)."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return int(image.width * image.height)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError):
        return 0


def _check_provider(name: str, project: Project, problems: list[Problem]) -> bool:
    from imgbuild.providers import provider_names

    if name in provider_names():
        return True
    where = f"${PROVIDER_ENV}" if os.environ.get(PROVIDER_ENV) == name else (project.config.file or "provider")
    problems.append(
        Problem(where, None, "provider", f"unknown provider {name!r} (known: {', '.join(provider_names())})")
    )
    return False


def _check_models(provider: str, project: Project, problems: list[Problem]) -> set[str]:
    """The ids of the batches whose model the provider (in its region) serves; a problem for each
    other batch, and for a budget that cannot be checked in USD."""
    settings = project.config.providers.get(provider, {})
    region = settings.get("region")
    where = project.config.file or "imgbuild.yaml"
    served, unserved = set(), set()
    for batch, key in ((b, k) for b in project.batches for k in b.model_keys):
        model = get_model(key)
        if provider not in model.provider_models:
            message = f"{key!r} is not served by provider {provider!r}"
        elif region is not None and model.region_model(provider, region) is None:
            others = ", ".join(sorted(model.regions.get(provider, {})))
            message = (
                f"{model.label} is not served in {provider} region {region!r} (providers.{provider}.region in "
                f"{where}); it is served in {others}"
            )
        else:
            served.add(batch.id)
            _check_price(provider, settings, project, model, problems)
            continue
        unserved.add(batch.id)
        problems.append(Problem(batch.file, batch.line("model"), "model", message))
    return served - unserved


def _check_price(
    provider: str, settings: Mapping[str, Any], project: Project, model: ModelSpec, problems: list[Problem]
) -> None:
    """A budget must be checkable in USD: a route billing another currency needs its rate, and a
    family with no known price anywhere cannot be budgeted at all."""
    if project.config.budget is None or provider == "preview":
        return
    where, route = project.config.file or "imgbuild.yaml", route_of(provider, settings)
    price = model.price(route)
    if price is None and model.list_price_usd() is None:
        problem = Problem(
            where,
            None,
            "budget",
            f"no price of {model.label} is known (docs/models.md), so `budget:` cannot be checked for it: "
            "remove `budget:` or choose another model",
        )
    elif price is not None and price.currency != "USD" and f"usd_per_{price.currency.lower()}" not in settings:
        key = f"usd_per_{price.currency.lower()}"
        problem = Problem(
            where,
            None,
            f"providers.{provider}.{key}",
            f"{route} bills in {price.currency} and `budget:` is in USD: set providers.{provider}.{key} "
            f"(the USD value of one {price.currency}) so the budget can be checked",
        )
    else:
        return
    if problem not in problems:
        problems.append(problem)
