"""The Jinja environment of imgbuild's HTML: the static gallery and the review studio render
their pages from the same templates (imgbuild/templates/), with autoescape on, so every value
reaches the page as text and never as markup."""

from __future__ import annotations

from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

__all__ = ["render", "when"]


def when(at: str | None) -> str:
    """A record time as a person reads it: ``2026-11-25T12:00:00.000Z`` → ``2026-11-25 12:00 UTC``."""
    if at is None:
        return ""
    if len(at) >= 16 and at[10] == "T" and at.endswith("Z"):
        return f"{at[:10]} {at[11:16]} UTC"
    return at


@cache
def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("imgbuild", "templates"),
        autoescape=select_autoescape(["html", "css", "js"], default_for_string=True, default=True),
        undefined=StrictUndefined,  # a misspelt field is a bug to see, not an empty string
        extensions=["jinja2.ext.do"],
        trim_blocks=False,
        lstrip_blocks=False,
    )
    env.filters["when"] = when
    return env


def render(template: str, **context: Any) -> str:
    """The page `template` rendered with `context`."""
    return _environment().get_template(template).render(**context)
