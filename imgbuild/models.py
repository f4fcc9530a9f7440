"""The model registry: endpoint keys, their modes, capabilities, limits, tiers and prices — as data.

The facts live in ``imgbuild/data/models.json``; this module turns them into frozen objects once.
Adding a model is one JSON entry; the batch schema's ``model`` enum is generated from this list and
docs/models.md from the whole registry (``python -m imgbuild.modeldoc``).

A family's ``takes`` names the optional request fields it accepts (``sequential``,
``output_format``, ``watermark``, ``optimize_prompt``, ``seed``): a provider puts a field in a body
only when the family takes it, since the newer Seedream models answer 400 to a field they do not
know, even one that says "disabled". Every limit and price cites a source and the date it was
checked (``Fact``); a price that is not known is ``None``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

__all__ = [
    "CAPABILITIES",
    "DEFAULT_MODEL",
    "MODES",
    "QUALITY_TIERS",
    "Fact",
    "Limits",
    "ModelSpec",
    "Price",
    "Pricing",
    "Tier",
    "aspect_ratios",
    "endpoint_key",
    "families",
    "get_model",
    "mode_for",
    "model_keys",
    "route_of",
    "sources",
]

DEFAULT_MODEL = "image-seedream-v5-lite-text"
QUALITY_TIERS = ("draft", "standard", "high", "max")
MODES = ("text", "edit", "sequential", "edit-sequential")
CAPABILITIES = ("sequential", "output_format", "watermark", "optimize_prompt", "seed")


def mode_for(*, edit: bool, sequential: bool) -> str:
    """The mode of a call that does / does not take reference images and make an identity set."""
    return {(False, False): "text", (True, False): "edit", (False, True): "sequential"}.get(
        (edit, sequential), "edit-sequential"
    )


def route_of(provider: str, settings: Mapping[str, Any]) -> str:
    """The route a provider's settings call: ``ark@cn-beijing`` for a region, else the provider.

    Prices and model ids may differ per route; a lookup falls back from the region to the provider."""
    region = settings.get("region")
    return f"{provider}@{region}" if region else provider


@dataclass(frozen=True)
class Fact:
    """Where a limit or price comes from and when it was checked against that source."""

    source: str  # a key of the registry's `sources`
    checked: str  # ISO date
    note: str = ""


@dataclass(frozen=True)
class Price:
    """What one generated image costs on one route, in the route's currency.

    `per_image` is ``((max_pixels | None, amount), ...)``: the first band whose ``max_pixels`` holds
    the image's pixels (``None``: any size). `per_reference` is added for each input image."""

    currency: str
    per_image: tuple[tuple[int | None, float], ...]
    per_reference: float
    fact: Fact

    def amount(self, pixels: int, references: int) -> float:
        """The price of one image of `pixels` pixels made from `references` input images."""
        band = next(amount for limit, amount in self.per_image if limit is None or pixels <= limit)
        return band + self.per_reference * references

    def label(self) -> str:
        """``$0.035``, ``¥0.30-0.60 by size``, ``$0.020-0.035 by size + $0.008 per reference``."""
        sign = {"USD": "$", "CNY": "¥"}.get(self.currency, f"{self.currency} ")
        amounts = [amount for _, amount in self.per_image]
        low, high = _money(min(amounts)), _money(max(amounts))
        text = f"{sign}{low}" if low == high else f"{sign}{low}-{high} by size"
        return text + (f" + {sign}{_money(self.per_reference)} per reference" if self.per_reference else "")


def _money(amount: float) -> str:
    """0.035 -> "0.035", 0.0675 -> "0.0675": three places, or more where the price has them."""
    return f"{amount:.3f}" if round(amount, 3) == amount else f"{amount:.4f}"


@dataclass(frozen=True)
class Pricing:
    """How a build's images are priced: its route, and the USD value of other currencies.

    The budget and every total are in USD. A route whose price is not known is estimated at the
    family's USD list price on another route; a CNY price needs ``usd_per_cny`` to count."""

    route: str
    usd_per: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @classmethod
    def of(cls, provider: str, settings: Mapping[str, Any]) -> Pricing:
        rates = {k.removeprefix("usd_per_").upper(): float(v) for k, v in settings.items() if k.startswith("usd_per_")}
        return cls(route_of(provider, settings), MappingProxyType(rates))

    def describe(self, model: ModelSpec) -> str:
        """The price a plan shows for `model` on this route, saying where an estimate stands in."""
        price = model.price(self.route)
        if price is not None and (price.currency == "USD" or price.currency in self.usd_per):
            rate = self.usd_per.get(price.currency)
            return price.label() + (f" (at {rate} USD per {price.currency})" if rate else "")
        fallback = model.list_price_usd()
        known = f"{price.label()} with no usd_per_{price.currency.lower()}" if price else "not known"
        stand_in = f"; estimated at {fallback.label()}, a list price on another route" if fallback else "; counted as 0"
        return f"{self.route}: {known}{stand_in}"

    def usd(self, model: ModelSpec, pixels: int, references: int) -> float:
        """The USD estimate of one image (0.0 when no price of the family is known at all)."""
        price = model.price(self.route)
        rate = None if price is None else (1.0 if price.currency == "USD" else self.usd_per.get(price.currency))
        if price is None or rate is None:
            price, rate = model.list_price_usd(), 1.0
        return price.amount(pixels, references) * rate if price is not None else 0.0


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
    label: str
    mode: str
    takes: frozenset[str]
    provider_models: MappingProxyType[str, str]
    regions: MappingProxyType[str, MappingProxyType[str, str]]  # provider -> region -> model id
    tiers: MappingProxyType[str, Tier]
    output_formats: tuple[str, ...]
    max_references: int
    max_images: int
    max_outputs_with_references: int
    min_pixels: int
    max_pixels: int
    min_aspect: float
    max_aspect: float
    max_input_bytes: int | None  # None: no limit documented
    max_input_pixels: int | None
    prices: MappingProxyType[str, Price | None]  # route -> price; None: not known
    provider_limits: MappingProxyType[str, Limits]
    facts: MappingProxyType[str, Fact]
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

    def region_model(self, provider: str, region: str) -> str | None:
        """The model id in a provider's region; None when the region does not serve the family.

        A provider without regions in the registry serves its id everywhere."""
        by_region = self.regions.get(provider)
        if by_region is None:
            return self.provider_models.get(provider)
        return by_region.get(region)

    def price(self, route: str) -> Price | None:
        """The price on `route` (``ark@cn-beijing`` falls back to ``ark``); None when not known."""
        if route in self.prices:
            return self.prices[route]
        return self.prices.get(route.split("@")[0])

    def list_price_usd(self) -> Price | None:
        """A USD price of the family on any route, for estimates where the route's price is unknown."""
        return next((p for p in self.prices.values() if p is not None and p.currency == "USD"), None)

    def size(self, tier: str, aspect_ratio: str) -> str:
        """``"WxH"`` for a quality tier and aspect ratio."""
        return _registry()["sizes"][self.tiers[tier].size_tier][aspect_ratio]


@cache
def _registry() -> dict[str, Any]:
    text = resources.files("imgbuild").joinpath("data/models.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _fact(raw: Mapping[str, Any]) -> Fact:
    return Fact(raw["source"], raw["checked"], raw.get("note", ""))


def _price(raw: Mapping[str, Any]) -> Price | None:
    bands = raw["per_image"]
    if bands is None:  # not known: the entry still says where we looked, and when
        return None
    per_image = tuple((b[0], b[1]) for b in bands) if isinstance(bands, list) else ((None, bands),)
    return Price(raw["currency"], per_image, raw.get("per_reference", 0.0), _fact(raw))


@cache
def _models() -> dict[str, ModelSpec]:
    data = _registry()
    out = {}
    for key, entry in data["models"].items():
        fam = data["families"][entry["family"]]
        out[key] = ModelSpec(
            key=key,
            family=entry["family"],
            label=fam["label"],
            mode=entry["mode"],
            takes=frozenset(fam["takes"]),
            provider_models=MappingProxyType(dict(fam["provider_models"])),
            regions=MappingProxyType(
                {name: MappingProxyType(dict(ids)) for name, ids in fam.get("regions", {}).items()}
            ),
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
            max_input_pixels=fam["max_input_pixels"],
            prices=MappingProxyType({route: _price(raw) for route, raw in fam["prices"].items()}),
            facts=MappingProxyType(
                {name: _fact(raw) for name, raw in fam["facts"].items()}
                | {f"prices.{route}": _fact(raw) for route, raw in fam["prices"].items() if raw["per_image"] is None}
            ),
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
    """The endpoint key of `family` in `mode`; a family that takes no sequential field has only
    the text and edit modes, and a sequential mode falls back to its one-image mode (the limit
    check then says that the family makes no identity sets)."""
    keys = {m.mode: m.key for m in _models().values() if m.family == family}
    return keys.get(mode) or keys[mode.removesuffix("-sequential").replace("sequential", "text")]


def families() -> list[str]:
    """Every model family, in registry order."""
    return list(_registry()["families"])


def sources() -> dict[str, dict[str, str]]:
    """The registry's sources: key -> title, url, kind (1P first-party, 3P third-party)."""
    return {key: dict(value) for key, value in _registry()["sources"].items()}


def aspect_ratios() -> list[str]:
    """The aspect ratios every model family has a size table for."""
    return list(_registry()["aspect_ratios"])
