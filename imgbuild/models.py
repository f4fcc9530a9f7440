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
    "ModelSpec",
    "Tier",
    "aspect_ratios",
    "get_model",
    "model_keys",
]

DEFAULT_MODEL = "image-seedream-v5-lite-text"
QUALITY_TIERS = ("draft", "standard", "high", "max")
MODES = ("text", "edit", "sequential", "edit-sequential")


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
    min_pixels: int
    max_pixels: int
    min_aspect: float
    max_aspect: float
    max_input_bytes: int
    price_per_image: float

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
            min_pixels=fam["pixels"][0],
            max_pixels=fam["pixels"][1],
            min_aspect=fam["aspect"][0],
            max_aspect=fam["aspect"][1],
            max_input_bytes=fam["max_input_bytes"],
            price_per_image=fam["price_per_image"],
        )
    return out


def model_keys() -> list[str]:
    """Every endpoint key, sorted."""
    return sorted(_models())


def get_model(key: str) -> ModelSpec:
    """The spec of an endpoint key (KeyError when unknown; the schema catches that earlier)."""
    return _models()[key]


def aspect_ratios() -> list[str]:
    """The aspect ratios every model family has a size table for."""
    return list(_registry()["aspect_ratios"])
