"""JSON Schema validation of parsed YAML documents, with errors a person can act on.

The schemas in ``schemas/`` are the source of truth (editors use them too). Enums that name
registered things (models, providers) are replaced at load time by the registries' own lists, so
a registry entry is the one place a model or provider is declared; a test keeps the files in step.
"""

from __future__ import annotations

import datetime
import difflib
import json
import logging
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imgbuild.errors import Problem

if TYPE_CHECKING:
    from imgbuild.yamlio import Document

__all__ = ["SCHEMA_NAMES", "load_schema", "schema_dir", "validate"]

log = logging.getLogger("imgbuild")

SCHEMA_NAMES = ("batch", "persona", "project", "request")


def schema_dir() -> Path:
    """The folder holding the JSON Schemas: inside the installed wheel, or the repository's top."""
    packaged = resources.files("imgbuild").joinpath("schemas")
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[2] / "schemas"


@cache
def load_schema(name: str) -> dict[str, Any]:
    """The named schema, with registry-backed enums filled in from the registries."""
    schema: dict[str, Any] = json.loads((schema_dir() / f"{name}.schema.json").read_text("utf-8"))
    if name == "batch":
        from imgbuild.models import model_keys

        model = schema["properties"]["model"]  # one key, or a list of keys
        model["then"]["enum"] = model["items"]["enum"] = model_keys()
    elif name == "project":
        from imgbuild.providers import provider_names

        schema["properties"]["provider"]["enum"] = provider_names()
    return schema


@cache
def _validator(name: str) -> Any:
    import jsonschema  # imported lazily: the no-op build path never validates

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


def validate(doc: Document, schema_name: str) -> list[Problem]:
    """Every schema violation in `doc`, as Problems. Unknown keys are logged as warnings."""
    return validate_paths(doc, schema_name)[0]


def validate_paths(doc: Document, schema_name: str) -> tuple[list[Problem], list[tuple[Any, ...]]]:
    """Like validate(), and also the path of every invalid value (to check the rest regardless)."""
    problems = []
    bad_paths = []
    schema = load_schema(schema_name)
    for error in _validator(schema_name).iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            _warn_unknown_keys(doc, path, error)
            continue
        bad_paths.append(path)
        # A conditional requirement (`then`) is best shown at the key that triggered it.
        at = error.schema.get("x-imgbuild-at") if isinstance(error.schema, dict) else None
        if at is not None:
            path = (*path, at)
        problems.append(doc.problem(path, _message(error, schema, doc, path)))
    return problems, bad_paths


def without_invalid(data: Any, bad_paths: list[tuple[Any, ...]]) -> Any:
    """A copy of `data` with every invalid value taken out: a mapping entry is removed, a list
    item becomes None (so the other items keep their index, and their line numbers)."""
    import copy

    clean = copy.deepcopy(data)
    for path in sorted(bad_paths, key=len, reverse=True):
        if not path:
            continue
        parent = clean
        for part in path[:-1]:
            try:
                parent = parent[part]
            except (KeyError, IndexError, TypeError):
                parent = None
                break
        if isinstance(parent, dict):
            parent.pop(path[-1], None)
        elif isinstance(parent, list) and isinstance(path[-1], int) and path[-1] < len(parent):
            parent[path[-1]] = None
    return clean


def _warn_unknown_keys(doc: Document, path: tuple[Any, ...], error: Any) -> None:
    known = list(error.schema.get("properties", {}))
    for key in sorted(set(error.instance) - set(known)):
        warn_unknown(doc, (*path, key), key, known)


def warn_unknown(
    doc: Document, path: tuple[Any, ...], name: str, known: list[str], what: str = "unknown key, ignored"
) -> None:
    """Log a warning for an unknown name, with the closest known one as a hint."""
    hint = difflib.get_close_matches(name, known, n=1)
    suggestion = f" — did you mean {hint[0]!r}?" if hint else f" (known: {', '.join(known)})" if known else ""
    problem = doc.problem(path, "")
    where = problem.file if problem.line is None else f"{problem.file}:{problem.line}"
    log.warning("%s %s: %s%s", where, problem.path, what, suggestion)


def _lower_first(text: str) -> str:
    return f"{text[0].lower()}{text[1:]}" if text else text


def _message(error: Any, root_schema: dict[str, Any], doc: Document, path: tuple[Any, ...]) -> str:
    kind = error.validator
    if kind == "required":
        missing = error.message.split("'")[1]
        description = error.schema.get("properties", {}).get(missing, {}).get("description")
        if description is None:
            description = root_schema.get("properties", {}).get(missing, {}).get("description", "")
        if error.schema.get("x-imgbuild-at"):
            return f"{doc.data.get(path[-1])!r} needs {missing!r} — {_lower_first(description)}"
        text = f"missing required key {missing!r}"
        return f"{text} — {_lower_first(description)}" if description else text
    typed = doc.raw_scalars.get(tuple(error.absolute_path))
    if typed is not None and _expects_text(error) and not _plain_number(error.instance, typed):
        expected = (
            f"one of {', '.join(repr(v) for v in error.validator_value)}" if kind == "enum" else error.validator_value
        )
        return f"YAML reads {typed} as {_read_as(error.instance, typed)}, expected {expected} — quote it: '{typed}'"
    if kind == "enum":
        options = [str(v) for v in error.validator_value]
        hint = difflib.get_close_matches(str(error.instance), options, n=1)
        if hint:
            return f"{error.instance!r} is not a known value — did you mean {hint[0]!r}?"
        return f"{error.instance!r} is not one of {', '.join(repr(v) for v in options)}"
    if kind == "type" and error.instance is None:
        description = error.schema.get("description", "")
        return "no value given" + (f" — {_lower_first(description)}" if description else "")
    if kind == "pattern":
        said = error.schema.get("x-imgbuild-pattern") if isinstance(error.schema, dict) else None
        if isinstance(said, str):  # what the pattern means, where it is not an id
            return f"{error.instance!r} {said}"
        return f"{error.instance!r} must be lowercase letters, digits, '-' or '_' (starting with a letter or digit)"
    return str(error.message)


def _expects_text(error: Any) -> bool:
    """Whether the schema wanted text where YAML made an unquoted value something else."""
    if isinstance(error.instance, str):
        return False
    wanted = error.validator_value
    if error.validator == "type":
        return wanted == "string" or (isinstance(wanted, list) and "string" in wanted)
    return error.validator == "enum" and any(isinstance(v, str) for v in wanted)


def _plain_number(value: Any, typed: str) -> bool:
    """A number written as itself (``5``): quoting it is not the likely fix."""
    return isinstance(value, int | float) and not isinstance(value, bool) and str(value) == typed


def _read_as(value: Any, typed: str) -> str:
    """What YAML made of an unquoted value, in words: 'the boolean false', 'the number 556'."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value}" + (" (base 60)" if ":" in typed else "")
    if isinstance(value, datetime.date):
        return f"the date {value.isoformat()}"
    return f"a {type(value).__name__}"


def install_editor_schemas(root: Path) -> None:
    """Copy the schemas to ``.imgbuild/schemas/`` for editors (the manifests' $schema lines point
    there). Rewritten only when missing or from another imgbuild version: one stat per run."""
    from imgbuild import __version__
    from imgbuild.records.atomic import atomic_write_bytes

    target = root / ".imgbuild" / "schemas"
    stamp = target / "VERSION"
    try:
        if stamp.read_text(encoding="utf-8") == __version__:
            return
    except OSError:
        pass
    for name in SCHEMA_NAMES:
        source = schema_dir() / f"{name}.schema.json"
        atomic_write_bytes(target / source.name, source.read_bytes())
    atomic_write_bytes(stamp, __version__.encode())
