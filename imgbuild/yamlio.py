"""YAML loading that remembers where every value came from.

`yaml.safe_load` forgets line numbers, and people need them: every problem we report names
``file:line``. We compose the node graph with the (C, when available) safe loader and build the
plain Python value ourselves, recording the line of each value by its path.
"""

from __future__ import annotations

import math
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


# Bounds on what one YAML file may build: aliases make a small file a huge value ("billion
# laughs"), and a deep nest exhausts the stack. Counted while the value is built.
MAX_VALUES = 200_000
MAX_DEPTH = 64


class _TooBig(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def load_yaml(text: str, file: str) -> tuple[Document | None, list[Problem]]:
    """Parse `text` (the contents of `file`). Returns the document, or None and the problems.

    Every failure is a Problem with a line: parser and constructor errors (unknown tags, bad
    dates, a merge of a scalar), NUL bytes, values that are not finite numbers, and a value over
    the bounds (MAX_VALUES after alias expansion, MAX_DEPTH levels)."""
    nul = text.find("\0")
    if nul >= 0:
        line = text.count("\n", 0, nul) + 1
        return None, [Problem(file, line, "", "a NUL byte — this is not a text file")]
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
    builder = _Builder(doc, problems)
    try:
        doc.data = builder.build(node, (), 0)
    except _TooBig as exc:
        return None, [Problem(file, exc.line, "", str(exc))]
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


class _Builder:
    """Builds the plain value of a node graph, locating values and counting them as it goes."""

    def __init__(self, doc: Document, problems: list[Problem]) -> None:
        self.doc = doc
        self.problems = problems
        self.ctor = _Constructor()
        self.count = 0
        self.open: set[int] = set()  # the nodes being built: an alias back to one is a cycle

    def problem(self, node: yaml.Node, path: Path, message: str) -> None:
        self.problems.append(Problem(self.doc.file, node.start_mark.line + 1, format_path(path), message))

    def build(self, node: yaml.Node, path: Path, depth: int) -> Any:
        line = node.start_mark.line + 1
        self.count += 1
        if self.count > MAX_VALUES:
            raise _TooBig(line, f"over {MAX_VALUES} values (aliases expanding too far?) — this is not a manifest")
        if depth > MAX_DEPTH:
            raise _TooBig(line, f"nested over {MAX_DEPTH} levels deep")
        if id(node) in self.open:
            raise _TooBig(line, "an alias refers to a value that contains it (a cycle)")
        self.doc.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            self.open.add(id(node))
            try:
                if isinstance(node, yaml.SequenceNode):
                    return [self.build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
                return self._mapping(node, path, depth)
            finally:
                self.open.discard(id(node))
        return self._scalar(node, path)

    def _scalar(self, node: yaml.Node, path: Path, *, key: bool = False) -> Any:
        try:
            value = self.ctor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:  # !!python/..., 2024-13-45
            self.problem(node, path, f"cannot read this value: {_reason(exc)}")
            return None
        if isinstance(value, float) and not math.isfinite(value):
            self.problem(node, path, f"{node.value!r} is not a finite number")
            return None
        if value is not None and not isinstance(value, str) and not key:
            self.doc.raw_scalars[path] = str(node.value)
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path, depth: int) -> dict[Any, Any]:
        doc = self.doc
        try:
            self.ctor.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
        except yaml.YAMLError as exc:  # a merge of a scalar
            self.problem(node, path, f"cannot merge here: {_reason(exc)}")
            return {}
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a mapping key must be a plain value")
                continue
            key = self._scalar(key_node, path, key=True)
            if key is None and key_node.value not in ("", "~", "null", "Null", "NULL"):
                continue  # could not be read: reported
            key = str(key) if not isinstance(key, str) else key
            if key in result:
                self.problem(
                    key_node,
                    (*path, key),
                    f"duplicate key {key!r} (the one on line {doc.lines[(*path, key)]} would be silently lost)",
                )
                continue
            doc.lines[(*path, key)] = key_node.start_mark.line + 1
            result[key] = self.build(value_node, (*path, key), depth + 1)
        return result


def _reason(exc: BaseException) -> str:
    if isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(x) for x in (exc.context, exc.problem) if x) or type(exc).__name__
    return str(exc) or type(exc).__name__
