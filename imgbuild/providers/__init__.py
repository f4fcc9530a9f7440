"""The provider registry. A provider module announces itself with ``@register("name")``;
the project schema's provider enum is ``provider_names()``, never a second list."""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from imgbuild.providers.base import Call, ContentRejected, Job, Output, Provider, ProviderError, Response, Upload

__all__ = [
    "Call",
    "ContentRejected",
    "Job",
    "Output",
    "Provider",
    "ProviderError",
    "Response",
    "Upload",
    "create_provider",
    "missing_key",
    "provider_names",
    "register",
]

ProviderFactory = Callable[[Path, Mapping[str, Any]], "Provider"]
_BASE = frozenset({"Call", "ContentRejected", "Job", "Output", "Provider", "ProviderError", "Response", "Upload"})


def __getattr__(name: str) -> Any:
    """The provider interface (imgbuild.providers.base), loaded when first asked for (PEP 562):
    validating a project asks only for `provider_names`, which needs none of it."""
    if name in _BASE:
        import imgbuild.providers.base as base

        return getattr(base, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_REGISTRY: dict[str, ProviderFactory] = {}


def register(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Class or factory decorator: make a provider available under `name`."""

    def decorate(factory: ProviderFactory) -> ProviderFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


# Built-in providers, imported when first used: a preview build needs no HTTP client.
_BUILTIN = {
    name: f"imgbuild.providers.{name}" for name in ("ark", "bfl", "fal", "gemini", "openai", "preview", "replicate")
}


def provider_names() -> list[str]:
    """Every registered provider, sorted."""
    return sorted(set(_REGISTRY) | set(_BUILTIN))


def _factory(name: str) -> ProviderFactory:
    if name not in _REGISTRY and name in _BUILTIN:
        importlib.import_module(_BUILTIN[name])  # registers itself
    return _REGISTRY[name]


def missing_key(name: str) -> str | None:
    """The environment variable provider `name` reads its API key from, when it is not set
    (None when it is, or when the provider needs no key). Nothing is called."""
    env_var = getattr(_factory(name), "key_env", None)
    return env_var if env_var and not os.environ.get(env_var, "").strip() else None


def create_provider(name: str, project_root: Path, settings: Mapping[str, Any] | None = None) -> Provider:
    """A ready provider instance (KeyError for an unknown name; resolve() reports that earlier).

    `settings` is the provider's section of imgbuild.yaml. A hosted provider without its key
    raises ProviderRefused here, before any call."""
    return _factory(name)(project_root, settings or {})
