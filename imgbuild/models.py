"""The model registry: endpoint keys, their modes, limits, quality tiers and prices — as data.

The facts live in ``imgbuild/data/models.json``; this module turns them into frozen objects once.
Adding a model is one JSON entry; the batch schema's ``model`` enum is generated from this list.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

__all__ = [
    "DEFAULT_MODEL",
    "MODES",
    "QUALITY_TIERS",
    "Limits",
    "ModelSpec",
    "Tier",
    "aspect_ratios",
    "endpoint_key",
    "get_model",
    "mode_for",
    "model_keys",
]

DEFAULT_MODEL = "image-seedream-v5-lite-text"
QUALITY_TIERS = ("draft", "standard", "high", "max")
MODES = ("text", "edit", "sequential", "edit-sequential")


def mode_for(*, edit: bool, sequential: bool) -> str:
    """The mode of a call that does / does not take reference images and make an identity set."""
    return {(False, False): "text", (True, False): "edit", (False, True): "sequential"}.get(
        (edit, sequential), "edit-sequential"
    )


@dataclass(frozen=True)
class Limits:
    """What one provider accepts for one model family, checked before any call."""

    max_references: int  # reference images per call
    max_images: int  # images per sequential call
    max_outputs_with_references: int  # references + images per call
    output_formats: tuple[str, ...]


@dataclass(frozen=True)
class Tier:
    """What a quality tier resolves to for one model family."""

    name: str
    size_tier: str  # "2K", "3K", ...
    settings: MappingProxyType[str, Any]


@dataclass(frozen=True)
class ModelSpec:
    """One endpoint key with everything a request needs to know about it."""

    key: str
    family: str
    mode: str
    provider_models: MappingProxyType[str, str]
    tiers: MappingProxyType[str, Tier]
    output_formats: tuple[str, ...]
    max_references: int
    max_images: int
    max_outputs_with_references: int
    min_pixels: int
    max_pixels: int
    min_aspect: float
    max_aspect: float
    max_input_bytes: int
    price_per_image: float
    provider_limits: MappingProxyType[str, Limits]
    max_prompt_chars: int = 4000  # the longest prompt (after white space is folded) the APIs take

    @property
    def edits(self) -> bool:
        return self.mode.startswith("edit")

    @property
    def sequential(self) -> bool:
        return self.mode.endswith("sequential")

    def limits(self, provider: str) -> Limits:
        """The family's limits, narrowed where `provider` accepts less."""
        return self.provider_limits.get(provider) or Limits(
            self.max_references, self.max_images, self.max_outputs_with_references, self.output_formats
        )

    def provider_model(self, provider: str) -> str:
        """The provider's own id for this model (KeyError when the provider does not serve it)."""
        return self.provider_models[provider]

    def size(self, tier: str, aspect_ratio: str) -> str:
        """``"WxH"`` for a quality tier and aspect ratio."""
        return _registry()["sizes"][self.tiers[tier].size_tier][aspect_ratio]


@cache
def _registry() -> dict[str, Any]:
    text = resources.files("imgbuild").joinpath("data/models.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


@cache
def _models() -> dict[str, ModelSpec]:
    data = _registry()
    out = {}
    for key, entry in data["models"].items():
        fam = data["families"][entry["family"]]
        out[key] = ModelSpec(
            key=key,
            family=entry["family"],
            mode=entry["mode"],
            provider_models=MappingProxyType(dict(fam["provider_models"])),
            tiers=MappingProxyType(
                {name: Tier(name, t["size"], MappingProxyType(dict(t["settings"]))) for name, t in fam["tiers"].items()}
            ),
            output_formats=tuple(fam["output_formats"]),
            max_references=fam["max_references"],
            max_images=fam["max_images"],
            max_outputs_with_references=fam["max_outputs_with_references"],
            min_pixels=fam["pixels"][0],
            max_pixels=fam["pixels"][1],
            min_aspect=fam["aspect"][0],
            max_aspect=fam["aspect"][1],
            max_input_bytes=fam["max_input_bytes"],
            price_per_image=fam["price_per_image"],
            max_prompt_chars=fam.get("max_prompt_chars", 4000),
            provider_limits=MappingProxyType(
                {
                    name: Limits(
                        lim.get("max_references", fam["max_references"]),
                        lim.get("max_images", fam["max_images"]),
                        lim.get("max_outputs_with_references", fam["max_outputs_with_references"]),
                        tuple(lim.get("output_formats", fam["output_formats"])),
                    )
                    for name, lim in fam.get("provider_limits", {}).items()
                }
            ),
        )
    return out


def model_keys() -> list[str]:
    """Every endpoint key, sorted."""
    return sorted(_models())


def get_model(key: str) -> ModelSpec:
    """The spec of an endpoint key (KeyError when unknown; the schema catches that earlier)."""
    return _models()[key]


def endpoint_key(family: str, mode: str) -> str:
    """The endpoint key of `family` in `mode` (every family has all four modes)."""
    return next(m.key for m in _models().values() if m.family == family and m.mode == mode)


def aspect_ratios() -> list[str]:
    """The aspect ratios every model family has a size table for."""
    return list(_registry()["aspect_ratios"])
