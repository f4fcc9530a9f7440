"""Prompt rendering: Jinja in its sandbox, StrictUndefined, errors located in the template.

Templates come from files in templates/ or inline from the manifest. A rendered prompt is
normalized (runs of white space folded to one space) so that re-wrapping a template's lines does
not change any request.
"""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from imgbuild.errors import Problem
from imgbuild.spec.expand import Asset
from imgbuild.spec.model import Persona

__all__ = ["PromptRenderer", "RenderError", "normalize_prompt"]


def normalize_prompt(text: str) -> str:
    """Fold white space: the model sees the same prompt however the template is wrapped."""
    return " ".join(text.split())


class RenderError(Exception):
    """A template failed for one asset; carries the located problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


class PromptRenderer:
    """Renders the prompt and negative prompt of assets, caching compiled templates."""

    def __init__(self, templates_dir: Path, display_dir: str) -> None:
        self._env = ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._display_dir = display_dir
        self._inline: dict[tuple[str, str, str], jinja2.Template] = {}

    def render(self, asset: Asset, persona: Persona) -> tuple[str, str | None]:
        """(prompt, negative prompt) of `asset`, normalized. Raises RenderError."""
        context = _context(asset, persona)
        shot = asset.shot
        if shot.template is not None:
            prompt = self._render_file(shot.template, context, asset)
        else:
            assert shot.prompt is not None
            prompt = self._render_inline(shot.prompt, context, asset, "prompt")
        negative = None
        if shot.negative:
            negative = normalize_prompt(self._render_inline(shot.negative, context, asset, "negative"))
        return normalize_prompt(prompt), negative

    def _render_file(self, name: str, context: dict[str, Any], asset: Asset) -> str:
        shown = f"{self._display_dir}/{name}"
        used_by = f" (template of {asset.batch.file} shots[{asset.shot.index}])"
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(Problem(shown, exc.lineno, "", f"Jinja syntax error: {exc.message}{used_by}")) from exc
        try:
            return template.render(context)
        except jinja2.TemplateSyntaxError as exc:  # from an {% include %} of a broken template
            raise RenderError(Problem(shown, exc.lineno, "", f"Jinja syntax error: {exc.message}{used_by}")) from exc
        except (jinja2.UndefinedError, jinja2.exceptions.SecurityError, TypeError) as exc:
            line = _template_line(exc, template.filename)
            raise RenderError(Problem(shown, line, "", f"{_describe(exc)} for asset {asset.id}{used_by}")) from exc

    def _render_inline(self, source: str, context: dict[str, Any], asset: Asset, key: str) -> str:
        batch, shot = asset.batch, asset.shot
        path = f"shots[{shot.index}].{key}"
        base = batch.line("shots", shot.index, key) or 1
        # A block scalar (`prompt: |`) starts on the line after its key.
        first_line = base + 1 if "\n" in source.rstrip("\n") else base
        cache_key = (batch.file, path, source)
        try:
            template = self._inline.get(cache_key)
            if template is None:
                template = self._env.from_string(source)
                self._inline[cache_key] = template
            return template.render(context)
        except jinja2.TemplateSyntaxError as exc:
            line = first_line + (exc.lineno or 1) - 1
            raise RenderError(Problem(batch.file, line, path, f"Jinja syntax error: {exc.message}")) from exc
        except (jinja2.UndefinedError, jinja2.exceptions.SecurityError, TypeError) as exc:
            inner = _template_line(exc, "<template>")
            line = first_line + inner - 1 if inner is not None else base
            raise RenderError(Problem(batch.file, line, path, f"{_describe(exc)} for asset {asset.id}")) from exc


def _context(asset: Asset, persona: Persona) -> dict[str, Any]:
    batch = asset.batch
    return {
        "persona": {"id": persona.id, "name": persona.name, "traits": dict(persona.traits)},
        "batch": {"id": batch.id, "purpose": batch.purpose, "aspect_ratio": batch.aspect_ratio},
        "shot": {"id": asset.shot.id, "need": asset.shot.need},
        "attrs": asset.attributes,
        "variant": None if asset.variant is None else {"id": asset.variant.id, "reason": asset.variant.reason},
        "aspect_ratio": batch.aspect_ratio,
    }


def _describe(exc: BaseException) -> str:
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined variable: {exc.message}"
    return f"template error: {exc}"


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    """The template line a render error happened on (Jinja rewrites tracebacks to point there)."""
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
