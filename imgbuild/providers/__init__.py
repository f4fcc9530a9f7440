"""The provider registry. A provider module announces itself with ``@register("name")``;
the project schema's provider enum is ``provider_names()``, never a second list."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from imgbuild.providers.base import Call, ContentRejected, Job, Output, Provider, ProviderError, Response

__all__ = [
    "Call",
    "ContentRejected",
    "Job",
    "Output",
    "Provider",
    "ProviderError",
    "Response",
    "create_provider",
    "provider_names",
    "register",
]

ProviderFactory = Callable[[Path], Provider]
_REGISTRY: dict[str, ProviderFactory] = {}


def register(name: str) -> Callable[[ProviderFactory], ProviderFactory]:
    """Class or factory decorator: make a provider available under `name`."""

    def decorate(factory: ProviderFactory) -> ProviderFactory:
        _REGISTRY[name] = factory
        return factory

    return decorate


def _load_builtin() -> None:
    from imgbuild.providers import preview  # noqa: F401  (registers itself)


def provider_names() -> list[str]:
    """Every registered provider, sorted."""
    _load_builtin()
    return sorted(_REGISTRY)


def create_provider(name: str, project_root: Path) -> Provider:
    """A ready provider instance (KeyError for an unknown name; resolve() reports that earlier)."""
    _load_builtin()
    return _REGISTRY[name](project_root)
