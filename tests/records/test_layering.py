"""records/ is the bottom layer: it imports nothing from the rest of imgbuild (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import imgbuild.records

RECORDS = Path(imgbuild.records.__file__).parent


def imports_in(source: str, package: str = "imgbuild.records") -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in `source`, a module of `package`; relative
    imports resolved, imports inside functions and `if TYPE_CHECKING:` included."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append((node.lineno, module))
    return out


def test_records_import_nothing_from_the_rest_of_imgbuild() -> None:
    files = sorted(RECORDS.glob("*.py"))
    assert len(files) >= 7
    outside = [
        f"{path.name}:{line}: imports {module}"
        for path in files
        for line, module in imports_in(path.read_text(encoding="utf-8"))
        if (module == "imgbuild" or module.startswith("imgbuild."))
        and not (module == "imgbuild.records" or module.startswith("imgbuild.records."))
    ]
    assert outside == []


def test_relative_imports_are_resolved() -> None:
    """The check itself: a relative import that climbs out of records/ names imgbuild."""
    source = "from .. import errors\nfrom ..spec import load\nfrom .store import x\nfrom . import model\n"
    assert [m for _, m in imports_in(source)] == [
        "imgbuild",
        "imgbuild.spec",
        "imgbuild.records.store",
        "imgbuild.records",
    ]
