"""YAML loading that remembers where every value came from.

`yaml.safe_load` forgets line numbers, and people need them: every problem we report names
``file:line``. We compose the node graph with the (C, when available) safe loader and build the
plain Python value ourselves, recording the line of each value by its path.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from imgbuild.errors import Problem, format_path

__all__ = ["Document", "Path", "load_yaml"]

Path = tuple[str | int, ...]

_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class Document:
    """A parsed YAML file: its data and the line (1-based) of every value, keyed by path."""

    file: str
    data: Any
    lines: dict[Path, int] = field(default_factory=dict)
    # What was typed, where YAML read an unquoted value as something other than text (a bool, a
    # number such as 9:16 = 556 in base 60, a date), so a message can say to quote it.
    raw_scalars: dict[Path, str] = field(default_factory=dict)

    def line(self, path: Path) -> int | None:
        """The line of the value at `path`, or of its nearest located parent."""
        while True:
            found = self.lines.get(path)
            if found is not None or not path:
                return found
            path = path[:-1]

    def problem(self, path: Path, message: str) -> Problem:
        """A Problem located at `path` in this document."""
        return Problem(self.file, self.line(path), format_path(path), message)


def load_yaml(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse `text` (the contents of `file`). Returns the document, or None and the problems."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        return None, [Problem(file, *_describe_yaml_error(exc, text))]
    except yaml.YAMLError as exc:
        return None, [Problem(file, None, "", f"not valid YAML: {exc}")]
    finally:
        loader.dispose()
    doc = Document(file, None)
    if node is None:
        return doc, []
    problems: list[Problem] = []
    doc.data = _build(node, (), doc, problems, _Constructor())
    return doc, problems


def _describe_yaml_error(exc: yaml.MarkedYAMLError, text: str) -> tuple[int | None, str, str]:
    """(line, path, message) for a parser error, in words a person can act on."""
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    problem = str(exc.problem or "")
    if mark is not None and "cannot start any token" in problem:
        source_lines = text.splitlines()
        culprit = source_lines[mark.line][mark.column : mark.column + 1] if mark.line < len(source_lines) else ""
        if culprit == "\t":
            return line, "", "not valid YAML: a tab character — YAML indents with spaces only"
    message = f"not valid YAML: {problem}"
    context = exc.context_mark
    if exc.context and context is not None and context.line + 1 != line:
        # e.g. "while parsing a flow sequence": say where the unclosed thing was opened
        message += f" ({exc.context.removeprefix('while parsing ')} opened on line {context.line + 1})"
    elif exc.context:
        message = f"not valid YAML: {exc.context} {problem}"
    return line, "", message


class _Constructor(yaml.constructor.SafeConstructor):
    """Builds scalars exactly as safe_load would (ints, floats, bools, nulls, timestamps)."""


def _build(node: yaml.Node, path: Path, doc: Document, problems: list[Problem], ctor: _Constructor) -> Any:
    doc.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        ctor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = ctor.construct_object(key_node, deep=True)
            if not isinstance(key, str | int | float | bool) and key is not None:
                problems.append(
                    Problem(
                        doc.file, key_node.start_mark.line + 1, format_path(path), "a mapping key must be a plain value"
                    )
                )
                continue
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                problems.append(
                    Problem(
                        doc.file,
                        key_node.start_mark.line + 1,
                        format_path((*path, key)),
                        f"duplicate key {key!r} (the one on line {doc.lines[(*path, key)]} would be silently lost)",
                    )
                )
                continue
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = _build(value_node, (*path, key), doc, problems, ctor)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), doc, problems, ctor) for i, item in enumerate(node.value)]
    value = ctor.construct_object(node, deep=True)
    if value is not None and not isinstance(value, str):
        doc.raw_scalars[path] = str(node.value)
    return value
