"""The input pipeline: YAML files → spec objects → assets → rendered, hashed requests.

`resolve()` is the one entry point used by every command and by the doit task generator. It either
returns the complete, valid set of requests or raises InvalidInput naming every problem found.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from imgbuild.errors import EXIT_INVALID, FatalError, InvalidInput, Problem
from imgbuild.project import CONFIG_FILE, PROVIDER_ENV
from imgbuild.records.seal import SealedEvidence, Sources, is_plain, under
from imgbuild.spec.model import Batch, Project, cited_evidence

if TYPE_CHECKING:
    from imgbuild.edits import EditDecision
    from imgbuild.models import ModelSpec, Pricing
    from imgbuild.requests import ImageRequest

__all__ = ["Resolution", "Spec", "UnknownAsset", "load_spec", "resolve"]


@dataclass(frozen=True)
class Resolution:
    """A valid project and the request of every asset, grouped by batch in manifest order."""

    project: Project
    provider: str
    requests: Mapping[str, tuple[ImageRequest, ...]]  # batch id -> requests, in expansion order
    decisions: Mapping[str, EditDecision] = field(default_factory=dict)  # asset id -> the edit rule's verdict
    # Where it came from, for the no-op index (imgbuild.cache): not part of what it says.
    key: str = field(default="", compare=False)
    digests: Mapping[str, str] = field(default_factory=dict, compare=False)  # batch id -> digest of its inputs
    inputs: Mapping[str, str] = field(default_factory=dict, compare=False)  # batch id -> its portable inputs digest
    # batch id -> the files it was resolved from, for a lock file (see Spec; `warned` set when its
    # rendering warned)
    sources: Mapping[str, Sources] = field(default_factory=dict, compare=False)

    @property
    def root(self) -> Path:
        return self.project.root

    @property
    def pricing(self) -> Pricing:
        """How this build's images are priced: the provider's route and currency rates."""
        from imgbuild.models import Pricing

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


@dataclass(frozen=True)
class Spec:
    """The project level of a resolution: the valid spec, the provider, and per batch a digest of
    everything its requests are computed from (so each batch is resolved, and cached, alone)."""

    project: Project
    provider: str
    digests: Mapping[str, str]  # batch id -> digest (the cache's: also what its messages show)
    # batch id -> the same inputs without where the project is, plus imgbuild's code: what a lock
    # file records it was written under (committed; see imgbuild.noop, "sealed")
    inputs: Mapping[str, str]
    # batch id -> the files it is resolved from, by content (imgbuild.records.seal.Sources): only
    # for a project that loaded without a warning, and batches whose templates are named in them
    sources: Mapping[str, Sources] = field(default_factory=dict)


def resolve(
    root: Path,
    *,
    provider: str | None = None,
    use_cache: bool = True,
    batches: Collection[str] | None = None,
    spec: Spec | None = None,
    approvals_from_records: bool = False,
) -> Resolution:
    """Load, validate, expand and render the project at `root` (only `batches`, when given: the
    no-op build asks for the batches that may be stale; `spec`: the project's spec when the caller
    has it already; `approvals_from_records`: the edit rule reads every approval from asset.json,
    not from the lock entry — `imgbuild merge`, which writes the lock files from asset.json).
    Raises InvalidInput.

    Cached in .imgbuild/ (see imgbuild.cache): the spec while no input file changes, each batch's
    requests while its digest does not."""
    from imgbuild import cache

    root = root.resolve()
    key = cache.cache_key(root, provider)
    spec = spec or load_spec(root, provider, key, use_cache=use_cache)
    wanted = [b for b in spec.project.batches if batches is None or b.id in batches]
    if not wanted:  # the no-op index vouched for every batch: no request to load
        return Resolution(spec.project, spec.provider, {}, key=key, digests=spec.digests, inputs=spec.inputs)
    from imgbuild.requests import ImageRequest

    requests: dict[str, tuple[ImageRequest, ...]] = {}
    warned: set[str] = set()  # batches whose rendering warned: their sources say so (Sources.warned)
    missing = []
    for batch in wanted:
        hit = None
        if use_cache:
            hit = cache.load_batch(root, key, batch.id, spec.digests[batch.id], tuple[ImageRequest, ...])
        if hit is None:
            missing.append(batch)
        else:
            requests[batch.id] = hit[0]
            if hit[1]:
                warned.add(batch.id)
    if missing:
        problems: list[Problem] = []
        fresh = _render(spec.project, spec.provider, missing, problems)
        if problems:
            raise InvalidInput(problems)
        for batch_id, (reqs, warnings) in fresh.items():
            requests[batch_id] = reqs
            if warnings:
                warned.add(batch_id)
            if use_cache:  # the digest is of content, not stamps: no racy window here
                cache.store_batch(root, key, batch_id, spec.digests[batch_id], reqs, warnings)
    ordered = {b.id: requests[b.id] for b in wanted}
    sources = {k: msgspec.structs.replace(v, warned=k in warned) for k, v in spec.sources.items() if k in ordered}
    resolution = Resolution(
        spec.project, spec.provider, ordered, key=key, digests=spec.digests, inputs=spec.inputs, sources=sources
    )
    return _with_approvals(resolution, from_records=approvals_from_records)


def load_spec(root: Path, provider: str | None, key: str, *, use_cache: bool = True) -> Spec:
    """The project's validated spec, from the cache while no input changed. Raises InvalidInput
    naming every problem of every file (the templates' too)."""
    from imgbuild import cache

    if use_cache:
        hit = cache.load_spec(root, key, Spec)
        if hit is not None:
            return hit
    # Only now: the YAML loader and its schemas are a tenth of a no-op's imports.
    from imgbuild.spec.expand import expand_project
    from imgbuild.spec.load import load_project

    started_ns = time.time_ns()
    problems: list[Problem] = []
    with cache.capture_warnings() as warnings:
        project = load_project(root, problems)
        chosen = provider or os.environ.get(PROVIDER_ENV) or project.config.provider
        served = _check_models(chosen, project, problems) if _check_provider(chosen, project, problems) else set()
        expand_project(project, problems)  # the asset cap and duplicate ids, across batches
    if problems:
        broken = {p.file for p in problems}
        ok = [b for b in project.batches if b.id in served and b.file not in broken]
        _render(project, chosen, ok, problems)  # every problem in one run, the templates' too
        raise InvalidInput(problems)
    files: list[str] = []
    folders: list[str] = []
    if use_cache:
        files, folders = cache.input_paths(root, project.config, _evidence_files(root, project))
    stamped = cache.stamp_inputs(files, started_ns) if use_cache else None
    # No sources after a warning: a check that reads the sources alone would not show it.
    both = {b.id: _digests(project, chosen, b, sealable=not warnings) for b in project.batches}
    sources = {k: found for k, v in both.items() if (found := v[2]) is not None}
    spec = Spec(project, chosen, {k: v[0] for k, v in both.items()}, {k: v[1] for k, v in both.items()}, sources)
    if stamped is not None:
        cache.store_spec(root, key, spec, files=files, folders=folders, warnings=warnings, started_ns=started_ns)
    return spec


def _evidence_files(root: Path, project: Project) -> set[str]:
    evidence = {str(root / ref.path) for p in project.personas.values() for ref in p.evidence}
    evidence |= {str(root / ref.path) for b in project.batches for ref in b.source_basis}
    evidence |= {str(root / ref.path) for b in project.batches for s in b.shots for ref in s.references}
    return evidence


def _digests(project: Project, provider: str, batch: Batch, *, sealable: bool) -> tuple[str, str, Sources | None]:
    """(digest, inputs digest, sources) of what a batch's requests are computed from: the config,
    the provider, the batch, its persona and the templates its shots load; evidence and reference
    files are in the spec by their sha256. The sources are the same as files (`_sources`; None
    unless `sealable`).

    The digest keys the local cache and also covers what messages show (manifest lines, paths as
    shown from here) and the sources, so that a build writes them anew when only they changed (a
    comment in a manifest, a warning gone). The inputs digest is portable — the same in any clone,
    wherever it is and whatever the working folder — and covers imgbuild's own code instead: a
    lock file records it (see imgbuild.noop, "sealed")."""
    import jinja2

    from imgbuild.cache import code_digest
    from imgbuild.spec.render import template_closure

    root = project.root
    templates = root / project.config.templates_dir
    names = [s.template for s in batch.shots if s.template is not None]
    persona = project.personas.get(batch.persona)
    loaded, computed = template_closure(root, templates, names)
    portable = (
        replace(project.config, root=Path("."), file=None),
        provider,
        replace(batch, lines={}, file="", path=batch.path.relative_to(root)),
        replace(persona, lines={}, file="") if persona is not None else None,
        loaded,
    )
    shown = (
        str(root),
        project.config.file,
        batch.file,
        sorted((list(k), v) for k, v in batch.lines.items()),
        persona.file if persona is not None else None,
        sorted((list(k), v) for k, v in persona.lines.items()) if persona is not None else None,
    )
    sources = _sources(project, provider, batch, loaded) if sealable and not computed else None
    data = msgspec.json.encode(portable, enc_hook=_enc_hook)
    local = hashlib.sha256(data + msgspec.json.encode(shown) + msgspec.json.encode(sources)).hexdigest()
    # Mappings in key order: a manifest whose keys were reordered makes the same requests. Jinja
    # renders the prompts: another release of it may render the same template otherwise.
    same = msgspec.json.encode(portable, enc_hook=_enc_hook, order="deterministic")
    made_by = f"{code_digest()} jinja2 {jinja2.__version__}".encode("ascii")
    return local, hashlib.sha256(same + made_by).hexdigest(), sources


_FOLDERS = ("assets_dir", "batches_dir", "personas_dir", "templates_dir")


def _sources(project: Project, provider: str, batch: Batch, templates: Mapping[str, str | None]) -> Sources | None:
    """The files the batch's requests are computed from, each by the sha256 of the bytes that were
    read: the manifest and its persona (as parsed), the templates (`templates`, as read for the
    digest), the evidence and reference images (as hashed when loaded). None when a folder or a
    file is not named by a plain path (records.seal.is_plain: a ``..`` may cross a link or a
    folder a clone does not have) or was not read as named: the check then loads the project,
    which says what is wrong, if anything."""
    from imgbuild.cache import made_by

    config, read = project.config, project.read
    persona = project.personas[batch.persona]
    folders = {key: getattr(config, key) for key in _FOLDERS}
    manifest = batch.path.relative_to(project.root).as_posix()
    persona_file = under(config.personas_dir, f"{persona.id}.yaml")
    refs = (*persona.evidence, *batch.source_basis, *(r for shot in batch.shots for r in shot.references))
    named = (*folders.values(), batch.output, manifest, persona_file, *(ref.path for ref in refs))
    if not all(map(is_plain, named)) or manifest not in read or persona_file not in read:
        return None
    files = {manifest: read[manifest], persona_file: read[persona_file]}
    for name, sha256 in templates.items():
        path = under(config.templates_dir, name)
        if sha256 is None or not is_plain(path):
            return None
        files[path] = sha256
    files.update((ref.path, ref.sha256) for ref in refs)
    cited = cited_evidence(batch.source_basis, persona.evidence)
    return Sources(
        made_by=made_by(),
        provider=provider,
        config_provider=config.provider,
        config_sha256=read.get(CONFIG_FILE),
        folders=folders,
        output=batch.output,
        persona=persona_file,
        files=dict(sorted(files.items())),
        evidence=tuple(SealedEvidence(ref.path, ref.anchor, ref.sha256) for ref in cited),
    )


def _enc_hook(value: object) -> object:
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, Mapping):
        return dict(value)
    raise NotImplementedError(type(value).__name__)


def _with_approvals(resolution: Resolution, *, from_records: bool = False) -> Resolution:
    """Apply the edit rule: approvals live in the records, not in the (cached) manifests; in the
    lock entries for speed, or (`from_records`) in asset.json only."""
    from imgbuild.edits import apply_edit_rule
    from imgbuild.records.lock import lock_path, read_lock

    batches = {b.id: b for b in resolution.project.batches}
    locks = {
        batch_id: None if from_records else read_lock(lock_path(batches[batch_id].path))
        for batch_id in resolution.requests
    }
    requests, decisions = apply_edit_rule(resolution.root, resolution.requests, locks)
    if not decisions:
        return resolution
    return replace(resolution, requests=requests, decisions=decisions)


def _render(
    project: Project, provider: str, batches: list[Batch], problems: list[Problem]
) -> dict[str, tuple[tuple[ImageRequest, ...], list[str]]]:
    """The requests of `batches` and the warnings each logged, or problems appended."""
    from imgbuild import cache
    from imgbuild.attribute_use import RenderedAsset, attribute_use_problems
    from imgbuild.requests import make_request
    from imgbuild.spec.expand import expand_batch
    from imgbuild.spec.load import display
    from imgbuild.spec.render import PromptRenderer, RenderError

    config = project.config
    templates = config.root / config.templates_dir
    renderer = PromptRenderer(templates, display(config.root, templates), config.root)
    out: dict[str, tuple[tuple[ImageRequest, ...], list[str]]] = {}
    late: list[Problem] = []  # the attribute-use problems come after every rendering problem
    for batch in batches:
        persona = project.personas[batch.persona]
        rendered: list[RenderedAsset] = []
        failed_shots: set[int] = set()
        checked_shots: set[int] = set()
        with cache.capture_warnings() as warnings:
            for asset in expand_batch(batch):
                shot = asset.shot.index
                if shot in failed_shots:
                    continue  # one broken template is reported once, not once per asset
                try:
                    rendering = renderer.render(asset, persona)
                except RenderError as exc:
                    problems.append(exc.problem)
                    failed_shots.add(shot)
                    continue
                req = make_request(
                    asset,
                    prompt=rendering.prompt,
                    negative_prompt=rendering.negative,
                    persona_traits=persona.traits,
                    provider=provider,
                    template_sha256=renderer.source_hash(asset),
                    persona_evidence=persona.evidence,
                )
                if shot not in checked_shots:  # the limits depend on the shot, not on its values
                    checked_shots.add(shot)
                    _check_limits(batch, shot, req, project.root, problems)
                rendered.append(RenderedAsset(asset, req, rendering.attributes_read))
            if not failed_shots:  # else what was rendered is partial
                late.extend(attribute_use_problems(batch, rendered))
        out[batch.id] = (tuple(r.request for r in rendered), warnings)
    problems.extend(late)
    return out


def _check_limits(batch: Batch, shot: int, req: ImageRequest, root: Path, problems: list[Problem]) -> None:
    from imgbuild.models import get_model
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
    from imgbuild.models import get_model

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
    from imgbuild.models import route_of

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
