"""Prompt rendering: Jinja in its sandbox, StrictUndefined, errors located in the template.

Templates come from files in templates/ or inline from the manifest. A rendered prompt is
normalized (runs of white space folded to one space) so that re-wrapping a template's lines does
not change any request.

Each render also reports which attributes the templates read (`RenderedPrompt.attributes_read`):
`attrs` is a dict that notes every name looked up in it, so what counts is what the rendering
actually did — through includes, macros and the branches of conditionals that ran — rather than
what a scan of the template source would guess. imgbuild.attribute_use turns that into messages.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from imgbuild.errors import Problem
from imgbuild.models import get_model
from imgbuild.spec.expand import Asset
from imgbuild.spec.files import ConfinedTemplateLoader, UnsafeInput, read_input
from imgbuild.spec.model import Persona

__all__ = ["PromptRenderer", "RenderError", "RenderLimit", "RenderedPrompt", "normalize_prompt"]


def normalize_prompt(text: str) -> str:
    """Fold white space: the model sees the same prompt however the template is wrapped."""
    return " ".join(text.split())


class RenderError(Exception):
    """A template failed for one asset; carries the located problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


@dataclass(frozen=True)
class RenderedPrompt:
    """An asset's prompt and negative prompt, normalized, and the attributes read to make them."""

    prompt: str
    negative: str | None
    attributes_read: frozenset[str]  # names looked up in `attrs` by the prompt or negative template


class _TrackedAttributes(dict[str, str]):
    """An asset's `attrs` that notes the name of every attribute a template reads.

    A dict subclass, not a Mapping, so that filters wanting a real dict (`tojson`, `dictsort`)
    keep working. Every way to a value goes through one of these methods; the ones that reach all
    values at once (iterating, `items()`, printing the whole mapping) count every attribute as read,
    which can only hide a warning, never invent one. Lookups of absent names are noted too."""

    __slots__ = ("_read",)

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values)
        # Underscored, like every name here that is not dict's own: the sandbox hides it from
        # templates, and `attrs.<name>` keeps meaning the attribute <name>.
        self._read: set[str] = set()

    def _read_all(self) -> None:
        self._read.update(super().keys())

    def __getitem__(self, key: str) -> str:
        self._read.add(key)
        return dict.__getitem__(self, key)  # not super(): this runs for every `attrs.x` rendered

    def get(self, key: str, default: object = None, /) -> object:  # type: ignore[override]
        self._read.add(key)
        return super().get(key, default)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self._read.add(key)  # `{% if 'mood' in attrs %}` makes the prompt depend on it
        return super().__contains__(key)

    def __iter__(self) -> Iterator[str]:
        self._read_all()
        return super().__iter__()

    def keys(self) -> Any:
        self._read_all()
        return super().keys()

    def values(self) -> Any:
        self._read_all()
        return super().values()

    def items(self) -> Any:
        self._read_all()
        return super().items()

    def copy(self) -> dict[str, str]:
        self._read_all()
        return dict(super().items())

    def __eq__(self, other: object) -> bool:
        self._read_all()
        return super().__eq__(other)

    __hash__ = None  # as for dict: defining __eq__ must not make it hashable

    def __repr__(self) -> str:
        self._read_all()
        return repr(dict(super().items()))


# Bounds on one rendering, whatever the template does (a prompt is a paragraph, not a program).
RENDER_SECONDS = 2.0  # wall time for one asset's prompt and negative prompt
MAX_RENDERED_CHARS = 256 * 1024  # raw output, before white space is folded and the model's cap applies
MAX_NUMBER_ARGUMENT = 100_000  # the largest int a filter or call may take (widths, counts)
_BIG_WIDTH = re.compile(r"\d{6,}")  # a format width of a million or more


class RenderLimit(Exception):
    """A template went past one of the rendering bounds."""


class _BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox with bounds on time and size.

    Every way a template does much work passes a check: `range` (smaller than Jinja's own cap,
    and its loops watch the clock), the operators that multiply text (``*``, ``**``, ``%``), every
    call (number arguments capped, the clock checked), every filter (number arguments capped),
    and the output stream (capped while it is produced, the clock checked). A template over a
    bound is an input error for its asset."""

    MAX_RANGE = 10_000
    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._deadline = threading.local()
        self.filters = {name: self._bounded(f) for name, f in self.filters.items()}
        self.globals["range"] = self._range

    def start(self) -> None:
        self._deadline.at = time.monotonic() + RENDER_SECONDS

    def tick(self) -> None:
        at = getattr(self._deadline, "at", None)
        if at is not None and time.monotonic() > at:
            raise RenderLimit(f"rendering took over {RENDER_SECONDS:g} s — the template does too much work")

    def _range(self, *args: int) -> Iterator[int]:
        _check_numbers(args)
        numbers = range(*args)
        if len(numbers) > self.MAX_RANGE:
            raise RenderLimit(f"range of {len(numbers)} items is over the cap of {self.MAX_RANGE}")
        for n in numbers:
            self.tick()
            yield n

    def _bounded(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)  # keeps Jinja's pass_context / pass_environment marks
        def bounded(*args: Any, **kwargs: Any) -> Any:
            if len(args) > 1 or kwargs:  # a filter with arguments: a width, a count, a length
                _check_numbers((*args[1:], *kwargs.values()))
            return function(*args, **kwargs)

        return bounded

    def call(self, context: jinja2.runtime.Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.tick()
        _check_numbers((*args, *kwargs.values()))
        return super().call(context, obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)  # str.format / format_map, wrapped on access
        if wrapped is not None:
            _check_format(value.__self__)
        return wrapped

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        self.tick()
        if operator == "**" and isinstance(right, int) and abs(right) > 64:
            raise RenderLimit(f"{left!r} ** {right} is over the bounds of a prompt")
        if operator == "*":
            count, item = (right, left) if isinstance(right, int) else (left, right)
            if (
                isinstance(count, int)
                and isinstance(item, str | list | tuple)
                and len(item) * count > MAX_RENDERED_CHARS
            ):
                raise RenderLimit(f"repeating a value {count} times is over the {MAX_RENDERED_CHARS}-character bound")
        if operator == "%" and isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)


def _check_numbers(values: Iterable[Any]) -> None:
    for value in values:
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > MAX_NUMBER_ARGUMENT:
            raise RenderLimit(f"the number {value} is over the cap of {MAX_NUMBER_ARGUMENT} for a template argument")


def _check_format(text: str) -> None:
    if _BIG_WIDTH.search(text) and ("%" in text or "{" in text):
        raise RenderLimit("a format width of a million characters or more is over the bounds of a prompt")


def _render_bounded(env: _BoundedSandbox, template: jinja2.Template, context: dict[str, Any]) -> str:
    """Render, stopping as soon as the output passes its bound."""
    parts: list[str] = []
    size = 0
    for chunk in template.generate(context):
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise RenderLimit(f"the rendered prompt is over {MAX_RENDERED_CHARS} characters")
        parts.append(chunk)
        if len(parts) % 64 == 0:  # loops, calls and filters check the clock too: this is the backstop
            env.tick()
    return "".join(parts)


class PromptRenderer:
    """Renders the prompt and negative prompt of assets, caching compiled templates."""

    def __init__(self, templates_dir: Path, display_dir: str, root: Path | None = None) -> None:
        self._env = _BoundedSandbox(
            loader=ConfinedTemplateLoader(root or templates_dir, templates_dir),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )
        self._display_dir = display_dir
        self._inline: dict[tuple[str, str, str], jinja2.Template] = {}
        self._source_hashes: dict[tuple[str, int], str] = {}

    def source_hash(self, asset: Asset) -> str:
        """sha256 of the shot's prompt source (template file or inline text) and negative prompt.

        Tells an edited template from a changed attribute value (only the latter may be an edit
        of an approved image). Files a template includes are not covered."""
        key = (asset.batch.file, asset.shot.index)
        if key not in self._source_hashes:
            shot = asset.shot
            if shot.template is not None:
                loader = self._env.loader
                assert loader is not None
                source = loader.get_source(self._env, shot.template)[0]
            else:
                source = shot.prompt or ""
            text = f"{source}\0{shot.negative or ''}"
            self._source_hashes[key] = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self._source_hashes[key]

    def render(self, asset: Asset, persona: Persona) -> RenderedPrompt:
        """The prompt and negative prompt of `asset`, normalized, and the attributes they read.

        Raises RenderError."""
        attributes = _TrackedAttributes(asset.attributes)
        context = _context(asset, persona, attributes)
        self._env.start()
        shot = asset.shot
        if shot.template is not None:
            prompt = self._render_file(shot.template, context, asset)
        else:
            assert shot.prompt is not None
            prompt = self._render_inline(shot.prompt, context, asset, "prompt")
        negative = None
        if shot.negative:
            negative = normalize_prompt(self._render_inline(shot.negative, context, asset, "negative"))
        prompt = normalize_prompt(prompt)
        cap = get_model(asset.batch.model).max_prompt_chars
        total = len(prompt) + (len(negative) + len(" Avoid: ") if negative else 0)
        if total > cap:
            where = f"{self._display_dir}/{shot.template}" if shot.template else asset.batch.file
            raise RenderError(
                Problem(
                    where,
                    None if shot.template else asset.batch.line("shots", shot.index, "prompt"),
                    "" if shot.template else f"shots[{shot.index}].prompt",
                    f"the prompt of asset {asset.id} is {total} characters; {asset.batch.model} takes at most {cap}",
                )
            )
        return RenderedPrompt(prompt, negative, frozenset(attributes._read))

    def _render_file(self, name: str, context: dict[str, Any], asset: Asset) -> str:
        shown = f"{self._display_dir}/{name}"
        used_by = f" (template of {asset.batch.file} shots[{asset.shot.index}])"
        try:
            template = self._env.get_template(name)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(Problem(shown, exc.lineno, "", f"{_describe(exc)}{used_by}")) from exc
        try:
            return _render_bounded(self._env, template, context)
        except jinja2.TemplateSyntaxError as exc:  # an {% include %}d template is broken
            where = _display_of(exc, self._display_dir) or shown
            raise RenderError(Problem(where, exc.lineno, "", f"{_describe(exc)}{used_by}")) from exc
        except Exception as exc:  # undefined names, sandbox refusals, missing includes, 1/0 ...
            line = _template_line(exc, template.filename)
            source = _source_line(template.filename, line)
            message = f"{_describe(exc, source, context)} for asset {asset.id}{used_by}"
            raise RenderError(Problem(shown, line, "", message)) from exc

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
            return _render_bounded(self._env, template, context)
        except jinja2.TemplateSyntaxError as exc:
            line = first_line + (exc.lineno or 1) - 1
            raise RenderError(Problem(batch.file, line, path, _describe(exc))) from exc
        except Exception as exc:
            inner = _template_line(exc, "<template>")
            line = first_line + inner - 1 if inner is not None else base
            lines = source.splitlines()
            text = lines[inner - 1] if inner is not None and 0 < inner <= len(lines) else source
            message = f"{_describe(exc, text, context)} for asset {asset.id}"
            raise RenderError(Problem(batch.file, line, path, message)) from exc


def _context(asset: Asset, persona: Persona, attributes: Mapping[str, str]) -> dict[str, Any]:
    batch = asset.batch
    return {
        "persona": {"id": persona.id, "name": persona.name, "traits": dict(persona.traits)},
        "batch": {"id": batch.id, "purpose": batch.purpose, "aspect_ratio": batch.aspect_ratio},
        "shot": {"id": asset.shot.id, "need": asset.shot.need},
        "attrs": attributes,
        "variant": None if asset.variant is None else {"id": asset.variant.id, "reason": asset.variant.reason},
        "aspect_ratio": batch.aspect_ratio,
    }


_ATTRIBUTE = re.compile(r"has no attribute '([^']+)'")


def _describe(exc: BaseException, source_line: str = "", context: dict[str, Any] | None = None) -> str:
    """A render failure in the template author's terms."""
    if isinstance(exc, jinja2.TemplateNotFound):
        return f"template {exc.name!r} not found (included here)"
    if isinstance(exc, jinja2.TemplateAssertionError):  # e.g. an unknown filter or test
        return f"Jinja error: {exc.message}"
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return f"Jinja syntax error: {exc.message}"
    if isinstance(exc, jinja2.UndefinedError):
        return _describe_undefined(str(exc.message), source_line, context or {})
    if isinstance(exc, RenderLimit):
        return f"over a rendering bound: {exc}"
    if isinstance(exc, RecursionError):
        return "over a rendering bound: the template recurses too deeply"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"refused by the template sandbox: {str(exc).rstrip('.')}"
    return f"template error: {type(exc).__name__}: {exc}"


def _describe_undefined(message: str, source_line: str, context: dict[str, Any]) -> str:
    """Name the expression (`attrs.mood`) instead of Jinja's "'dict object' has no attribute"."""
    match = _ATTRIBUTE.search(message)
    if match is None:
        return f"undefined variable: {message}"
    name = match.group(1)
    found = re.search(
        rf"([A-Za-z_][\w.]*)\.{re.escape(name)}\b|([A-Za-z_][\w.]*)\[['\"]{re.escape(name)}['\"]\]", source_line
    )
    if found is None:
        return f"undefined variable: {message}"
    owner = found.group(1) or found.group(2)
    value: Any = context
    for part in owner.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    known = f" (it has: {', '.join(sorted(value))})" if isinstance(value, dict) and value else ""
    return f"undefined variable: {owner}.{name}{known}"


def _display_of(exc: jinja2.TemplateSyntaxError, display_dir: str) -> str | None:
    return f"{display_dir}/{exc.name}" if exc.name else None


def _source_line(filename: str | None, line: int | None) -> str:
    if filename is None or line is None:
        return ""
    try:
        return Path(filename).read_text(encoding="utf-8").splitlines()[line - 1]
    except (OSError, IndexError):
        return ""


def _template_line(exc: BaseException, filename: str | None) -> int | None:
    """The template line a render error happened on (Jinja rewrites tracebacks to point there)."""
    line = None
    tb: types.TracebackType | None = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == filename:
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def template_closure(root: Path, templates_dir: Path, names: Iterable[str]) -> tuple[dict[str, str | None], bool]:
    """(sha256 of each template `names` load, with the templates they include, import or extend;
    whether a name is computed at render time). A sha256 is None for a template that is missing,
    unreadable or not a file the project may read (the rendering then reports it). Read through
    the same confined reader as the templates themselves, so a FIFO or a link out of the project
    is never opened here either. A name computed at render time cannot be followed: then every
    file under `templates_dir` counts, and which files the folder holds matters, not only their
    bytes."""
    from jinja2 import meta

    env = jinja2.Environment()
    out: dict[str, str | None] = {}
    computed = False
    todo = list(names)
    while todo:
        name = todo.pop()
        if name in out:
            continue
        try:  # the loader's own rule: no "..", nothing outside the templates folder
            path = templates_dir.joinpath(*jinja2.loaders.split_template_path(name))
            source = read_input(root, path, shown=name).data.decode("utf-8")
        except (OSError, UnicodeDecodeError, UnsafeInput, jinja2.TemplateNotFound):
            out[name] = None
            continue
        out[name] = hashlib.sha256(source.encode("utf-8")).hexdigest()
        try:
            found = list(meta.find_referenced_templates(env.parse(source)))
        except jinja2.TemplateSyntaxError:
            continue  # the rendering reports it
        if None in found:
            computed = True
            todo += [p.relative_to(templates_dir).as_posix() for p in templates_dir.rglob("*") if p.is_file()]
        todo += [n for n in found if n is not None]
    return dict(sorted(out.items())), computed
