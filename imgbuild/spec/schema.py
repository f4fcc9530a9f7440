"""JSON Schema validation of parsed YAML documents, with errors a person can act on.

The schemas in ``schemas/`` are the source of truth (editors use them too). Enums that name
registered things (models, providers) are replaced at load time by the registries' own lists, so
a registry entry is the one place a model or provider is declared; a test keeps the files in step.
"""

from __future__ import annotations

import difflib
import json
import logging
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from imgbuild.errors import Problem
from imgbuild.yamlio import Document

__all__ = ["SCHEMA_NAMES", "load_schema", "schema_dir", "validate"]

log = logging.getLogger("imgbuild")

SCHEMA_NAMES = ("batch", "persona", "project")


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

        schema["properties"]["model"]["enum"] = model_keys()
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
    problems = []
    schema = load_schema(schema_name)
    for error in _validator(schema_name).iter_errors(doc.data):
        path = tuple(error.absolute_path)
        if error.validator == "additionalProperties":
            _warn_unknown_keys(doc, path, error)
            continue
        problems.append(doc.problem(path, _message(error, schema)))
    return problems


def _warn_unknown_keys(doc: Document, path: tuple[Any, ...], error: Any) -> None:
    known = list(error.schema.get("properties", {}))
    for key in sorted(set(error.instance) - set(known)):
        hint = difflib.get_close_matches(key, known, n=1)
        suggestion = f" — did you mean {hint[0]!r}?" if hint else f" (known keys: {', '.join(known)})"
        log.warning("%s: unknown key, ignored%s", doc.problem((*path, key), repr(key)), suggestion)


def _message(error: Any, root_schema: dict[str, Any]) -> str:
    kind = error.validator
    if kind == "required":
        missing = error.message.split("'")[1]
        description = error.schema.get("properties", {}).get(missing, {}).get("description")
        if description is None:
            description = root_schema.get("properties", {}).get(missing, {}).get("description", "")
        text = f"missing required key {missing!r}"
        return f"{text} — {description[0].lower()}{description[1:]}" if description else text
    if kind == "enum":
        allowed = ", ".join(repr(v) for v in error.validator_value)
        return f"{error.instance!r} is not one of {allowed}"
    if kind == "type" and isinstance(error.instance, bool):
        return (
            f"{error.instance!r} is a YAML boolean, expected {error.validator_value}"
            " — quote the value (YAML reads yes/no/on/off as booleans)"
        )
    if kind == "pattern":
        return f"{error.instance!r} must be lowercase letters, digits, '-' or '_' (starting with a letter or digit)"
    return str(error.message)


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
