"""The normalized request record and its hashes: the stable local truth, whatever the provider.

`request_hash` covers everything that affects the pixels and nothing else (not run ids, times,
paths, evidence provenance or secrets): an unchanged hash means there is nothing to regenerate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from imgbuild.models import Limits, endpoint_key, get_model, mode_for
from imgbuild.records.model import EvidenceRef, RequestFacts
from imgbuild.spec.expand import Asset
from imgbuild.spec.model import SourceRef, cited_evidence

__all__ = [
    "HASHED_FIELDS",
    "ImageRequest",
    "Reference",
    "canonical_json",
    "evidence_of",
    "limit_problems",
    "make_request",
    "request_from_record",
    "request_hash",
    "sha256_text",
]

# The fields of the normalized record that go into the request hash.
HASHED_FIELDS = (
    "prompt",
    "negative_prompt",
    "model",
    "provider",
    "provider_model",
    "mode",
    "aspect_ratio",
    "size",
    "output_format",
    "quality_settings",
    "references",
    "max_images",
)


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant white space: equal data, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Reference:
    """A reference image of an edit, pinned by content: the request hash covers only `sha256`."""

    path: str  # project-relative
    sha256: str
    role: str  # "reference" (named in the manifest) or "approved" (the asset's approved image)

    def record(self) -> dict[str, str]:
        return {"path": self.path, "sha256": self.sha256, "role": self.role}


def evidence_of(source_basis: Iterable[SourceRef], persona_evidence: Iterable[SourceRef]) -> tuple[EvidenceRef, ...]:
    """The evidence files a batch's requests rest on: its source basis, then its persona's (each
    file and anchor once)."""
    return tuple(EvidenceRef(r.path, r.anchor, r.sha256) for r in cited_evidence(source_basis, persona_evidence))


@dataclass(frozen=True)
class ImageRequest:
    """Everything about one asset's image request, resolved. One call per candidate."""

    asset_id: str
    batch: str
    shot: str
    need: str
    purpose: str
    persona: str
    persona_traits: Mapping[str, str]
    source_basis: tuple[SourceRef, ...]
    fixed: Mapping[str, str]
    vary: Mapping[str, str]
    variant_test: str | None
    template: str  # template file name, or "inline"
    prompt: str
    negative_prompt: str | None
    prompt_hash: str
    model: str
    provider: str
    provider_model: str
    mode: str
    aspect_ratio: str
    size: str
    output_format: str
    quality: str
    quality_reason: str | None
    quality_settings: Mapping[str, Any]
    references: tuple[Reference, ...]
    max_images: int
    candidates: int
    editable: tuple[str, ...]
    asset_dir: str  # project-relative
    request_hash: str
    template_sha256: str = ""  # the template's source: tells a template edit from an attribute change
    edit: Mapping[str, Any] | None = None  # set when the edit rule made this an edit of the approved image
    persona_evidence: tuple[SourceRef, ...] = ()  # the persona lock's evidence files

    def evidence(self) -> tuple[EvidenceRef, ...]:
        """Every evidence file this request rests on: the batch's source basis, then the persona's."""
        return evidence_of(self.source_basis, self.persona_evidence)

    @cached_property
    def facts(self) -> RequestFacts:
        """What the records keep of this request (made once: a build writes it several times per call)."""
        return RequestFacts(
            asset_id=self.asset_id,
            asset_dir=self.asset_dir,
            batch=self.batch,
            shot=self.shot,
            purpose=self.purpose,
            persona=self.persona,
            variant_test=self.variant_test,
            request_hash=self.request_hash,
            prompt_hash=self.prompt_hash,
            request=self.record(),
            evidence=self.evidence(),
        )

    def hashed(self) -> dict[str, Any]:
        """The part of the record that the request hash covers."""
        return {name: _plain(getattr(self, name)) for name in HASHED_FIELDS}

    def record(self) -> dict[str, Any]:
        """The normalized record as JSON data (written to asset.json and every run's request.json)."""
        return {
            "asset_id": self.asset_id,
            "batch": self.batch,
            "shot": self.shot,
            "need": self.need,
            "purpose": self.purpose,
            "persona": {
                "id": self.persona,
                "traits": dict(self.persona_traits),
                "evidence": [s.record() for s in self.persona_evidence],
            },
            "source_basis": [s.record() for s in self.source_basis],
            "attributes": {"fixed": dict(self.fixed), "vary": dict(self.vary)},
            "variant_test": self.variant_test,
            "template": self.template,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "prompt_hash": self.prompt_hash,
            "model": self.model,
            "provider": self.provider,
            "provider_model": self.provider_model,
            "mode": self.mode,
            "aspect_ratio": self.aspect_ratio,
            "size": self.size,
            "output_format": self.output_format,
            "quality": {"tier": self.quality, "reason": self.quality_reason},
            "quality_settings": dict(self.quality_settings),
            "references": [r.record() for r in self.references],
            "max_images": self.max_images,
            "candidates": self.candidates,
            "editable": list(self.editable),
            "template_sha256": self.template_sha256,
            "edit": dict(self.edit) if self.edit is not None else None,
            "asset_dir": self.asset_dir,
            "request_hash": self.request_hash,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return [v.sha256 if isinstance(v, Reference) else v for v in value]  # references: content only
    return value


def request_hash(fields: Mapping[str, Any]) -> str:
    """sha256 of the canonical JSON of the hashed fields of a request's fields."""
    return sha256_text(canonical_json({name: _plain(fields[name]) for name in HASHED_FIELDS}))


def limit_problems(
    req: ImageRequest,
    limits: Limits,
    reference_bytes: Mapping[str, int],
    reference_pixels: Mapping[str, int] | None = None,
) -> list[tuple[str, str]]:
    """(shot key, message) for each way `req` breaks the limits of its model at its provider.

    Checked before any call: a request the provider would refuse must not cost a build."""
    out = []
    refs, images = len(req.references), req.max_images
    model = get_model(req.model)
    if model.edits and not refs:
        out.append(("references", f"{req.model} edits reference images: give the shot `references`"))
    if images > 1 and "sequential" not in model.takes:
        out.append(("max_images", f"{model.label} makes one image per call, no identity sets: drop `max_images`"))
    elif model.sequential and images < 2:
        out.append(("max_images", f"{req.model} makes identity sets: give the shot `max_images` (2 or more)"))
    if refs > limits.max_references:
        out.append(
            ("references", f"{refs} reference images; {req.provider} takes at most {limits.max_references} per call")
        )
    if images > limits.max_images and "sequential" in model.takes:
        out.append(("max_images", f"max_images {images}; {req.provider} makes at most {limits.max_images} per call"))
    if refs and images > 1 and refs + images > limits.max_outputs_with_references:
        out.append(
            (
                "max_images",
                f"{refs} reference images + {images} images is over the {limits.max_outputs_with_references} "
                "a call may hold",
            )
        )
    width, height = (int(n) for n in req.size.split("x"))
    if not model.min_pixels <= width * height <= model.max_pixels or not (
        model.min_aspect <= width / height <= model.max_aspect
    ):
        out.append(
            (
                "size",
                f"size {req.size} is outside what {req.model} makes ({model.label}: {model.min_pixels:,}-"
                f"{model.max_pixels:,} pixels; quality {req.quality}, aspect {req.aspect_ratio})",
            )
        )
    if req.output_format not in limits.output_formats:
        made = ", ".join(limits.output_formats)
        out.append(("output_format", f"{req.output_format!r} is not made by {req.model} on {req.provider} ({made})"))
    for ref in req.references:
        size = reference_bytes.get(ref.path, 0)
        if model.max_input_bytes is not None and size > model.max_input_bytes:
            out.append(
                (
                    "references",
                    f"reference image {ref.path!r} is {size:,} bytes; the limit is {model.max_input_bytes:,}",
                )
            )
        pixels = (reference_pixels or {}).get(ref.path, 0)
        if model.max_input_pixels is not None and pixels > model.max_input_pixels:
            out.append(
                (
                    "references",
                    f"reference image {ref.path!r} has {pixels:,} pixels; the limit is {model.max_input_pixels:,}",
                )
            )
    return out


def make_request(
    asset: Asset,
    *,
    prompt: str,
    negative_prompt: str | None,
    persona_traits: Mapping[str, str],
    provider: str,
    template_sha256: str = "",
    persona_evidence: tuple[SourceRef, ...] = (),
) -> ImageRequest:
    """The normalized request for `asset` with its rendered prompt, hashed.

    The mode follows the shot: reference images make it an edit, `max_images` an identity set;
    the endpoint key is the batch model's family in that mode."""
    batch, shot = asset.batch, asset.shot
    declared = get_model(asset.model or batch.model)
    mode = mode_for(edit=bool(shot.references) or declared.edits, sequential=shot.max_images > 1 or declared.sequential)
    model = get_model(endpoint_key(declared.family, mode))
    tier = model.tiers[batch.quality]
    fields: dict[str, Any] = {
        "asset_id": asset.id,
        "batch": batch.id,
        "shot": shot.id,
        "need": shot.need,
        "purpose": batch.purpose,
        "persona": batch.persona,
        "persona_traits": persona_traits,
        "source_basis": batch.source_basis,
        "fixed": asset.fixed,
        "vary": asset.vary,
        "variant_test": asset.variant.id if asset.variant else None,
        "template": shot.template or "inline",
        "prompt": prompt,
        "negative_prompt": negative_prompt,
        "prompt_hash": sha256_text(prompt),
        "model": model.key,
        "provider": provider,
        "provider_model": model.provider_model(provider),
        "mode": model.mode,
        "aspect_ratio": batch.aspect_ratio,
        "size": model.size(batch.quality, batch.aspect_ratio),
        "output_format": batch.output_format,
        "quality": batch.quality,
        "quality_reason": batch.quality_reason,
        "quality_settings": MappingProxyType(dict(tier.settings)),
        "references": tuple(Reference(r.path, r.sha256, "reference") for r in shot.references),
        "max_images": shot.max_images,
        "candidates": shot.candidates,
        "editable": shot.editable,
        "asset_dir": (PurePosixPath(batch.output) / asset.id).as_posix(),
        "template_sha256": template_sha256,
        "persona_evidence": persona_evidence,
    }
    fields["request_hash"] = request_hash(fields)
    return ImageRequest(**fields)


def request_from_record(record: Mapping[str, Any]) -> tuple[ImageRequest | None, list[tuple[str, str]]]:
    """The ImageRequest a normalized record (``ImageRequest.record()``, or one written by hand and
    validated by schemas/request.schema.json) describes, and (field, message) problems; None
    when the model, provider or quality is unknown. A request with problems must not be called.

    Fields left out get what a build would give them; the derived ones (`mode`, `provider_model`,
    `quality_settings`, `prompt_hash`, `request_hash`) must agree with the registry and the
    request when given, so a hand edit cannot record a call under another request's hash."""
    problems: list[tuple[str, str]] = []
    try:
        model = get_model(record["model"])
    except KeyError:
        return None, [("model", f"unknown model {record['model']!r} (docs/models.md lists them)")]
    provider = record["provider"]
    if provider not in model.provider_models:
        return None, [("provider", f"{record['model']!r} is not served by provider {provider!r}")]
    quality = record.get("quality") or {}
    tier_name = quality.get("tier", "max")
    tier = model.tiers.get(tier_name)
    if tier is None:
        return None, [("quality.tier", f"unknown quality {tier_name!r} (known: {', '.join(model.tiers)})")]
    persona = record.get("persona") or {}
    attributes = record.get("attributes") or {}
    asset_id = record["asset_id"]

    def sources(items: Any) -> tuple[SourceRef, ...]:
        return tuple(SourceRef(s["path"], s.get("anchor"), None, s["sha256"]) for s in items or ())

    derived: dict[str, Any] = {
        "mode": model.mode,
        "provider_model": model.provider_model(provider),
        "quality_settings": dict(tier.settings),
        "prompt_hash": sha256_text(record["prompt"]),
    }
    for name, value in derived.items():
        if name in record and record[name] != value:
            problems.append((name, f"{record[name]!r} does not follow from the request (it would be {value!r})"))
    fields: dict[str, Any] = {
        "asset_id": asset_id,
        "batch": record.get("batch", asset_id.split(".", 1)[0]),
        "shot": record.get("shot", ""),
        "need": record.get("need", ""),
        "purpose": record.get("purpose", ""),
        "persona": persona.get("id", ""),
        "persona_traits": MappingProxyType(dict(persona.get("traits") or {})),
        "source_basis": sources(record.get("source_basis")),
        "fixed": MappingProxyType(dict(attributes.get("fixed") or {})),
        "vary": MappingProxyType(dict(attributes.get("vary") or {})),
        "variant_test": record.get("variant_test"),
        "template": record.get("template", "inline"),
        "prompt": record["prompt"],
        "negative_prompt": record.get("negative_prompt"),
        "prompt_hash": derived["prompt_hash"],
        "model": model.key,
        "provider": provider,
        "provider_model": derived["provider_model"],
        "mode": derived["mode"],
        "aspect_ratio": record["aspect_ratio"],
        "size": record["size"],
        "output_format": record["output_format"],
        "quality": tier_name,
        "quality_reason": quality.get("reason"),
        "quality_settings": MappingProxyType(derived["quality_settings"]),
        "references": tuple(
            Reference(r["path"], r["sha256"], r.get("role", "reference")) for r in record.get("references") or ()
        ),
        "max_images": record.get("max_images", 1),
        "candidates": record.get("candidates", 1),
        "editable": tuple(record.get("editable") or ()),
        "asset_dir": record["asset_dir"],
        "template_sha256": record.get("template_sha256", ""),
        "edit": MappingProxyType(dict(record["edit"])) if record.get("edit") else None,
        "persona_evidence": sources(persona.get("evidence")),
    }
    fields["request_hash"] = request_hash(fields)
    given = record.get("request_hash")
    if given is not None and given != fields["request_hash"]:
        problems.append(
            (
                "request_hash",
                f"{given[:16]}… does not match the request's fields ({fields['request_hash'][:16]}…):"
                " the request was edited; leave request_hash out to have it computed",
            )
        )
    return ImageRequest(**fields), problems
