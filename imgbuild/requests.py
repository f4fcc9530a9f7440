"""The normalized request record and its hashes: the stable local truth, whatever the provider.

`request_hash` covers everything that affects the pixels and nothing else (not run ids, times,
paths, evidence provenance or secrets): an unchanged hash means there is nothing to regenerate.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from types import MappingProxyType
from typing import Any

from imgbuild.models import get_model
from imgbuild.spec.expand import Asset
from imgbuild.spec.model import SourceRef

__all__ = ["HASHED_FIELDS", "ImageRequest", "canonical_json", "make_request", "sha256_text"]

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
    references: tuple[str, ...]
    max_images: int
    candidates: int
    editable: tuple[str, ...]
    asset_dir: str  # project-relative
    request_hash: str

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
            "persona": {"id": self.persona, "traits": dict(self.persona_traits)},
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
            "references": list(self.references),
            "max_images": self.max_images,
            "candidates": self.candidates,
            "editable": list(self.editable),
            "asset_dir": self.asset_dir,
            "request_hash": self.request_hash,
        }


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def make_request(
    asset: Asset,
    *,
    prompt: str,
    negative_prompt: str | None,
    persona_traits: Mapping[str, str],
    provider: str,
) -> ImageRequest:
    """The normalized request for `asset` with its rendered prompt, hashed."""
    batch, shot = asset.batch, asset.shot
    model = get_model(batch.model)
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
        "references": (),
        "max_images": 1,
        "candidates": shot.candidates,
        "editable": shot.editable,
        "asset_dir": (PurePosixPath(batch.output) / asset.id).as_posix(),
    }
    hashed = {name: _plain(fields[name]) for name in HASHED_FIELDS}
    fields["request_hash"] = sha256_text(canonical_json(hashed))
    return ImageRequest(**fields)
