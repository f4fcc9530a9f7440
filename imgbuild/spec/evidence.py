"""Whether a cited evidence file can ground anything: it has content, and its anchor is in it.

The fact rule trusts a persona's `allowed` values because evidence backs them; a citation of an
empty file, or of a section the file does not have, backs nothing and is bad input.

Anchors of Markdown files name a heading, as GitHub links to it (``## Wardrobe, lighting`` is
``#wardrobe-lighting``; a repeated heading is ``#name-1``, ``#name-2``...), or an explicit
``{#id}`` / ``<a id="id">``. Headings are read with markdown-it-py, so a ``#`` line inside a code
block is no heading. In other text files the anchor (without its ``#``) must occur in the text.
A file that is not UTF-8 text (a PDF, an image) cannot be searched: its anchor is not checked.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

__all__ = ["MARKDOWN", "anchors", "ungrounded"]

MARKDOWN = (".md", ".markdown")
_EXPLICIT = re.compile(r"""\{#([^\s}]+)\}|<a\s[^>]*\b(?:id|name)\s*=\s*["']([^"']+)["']""", re.IGNORECASE)


def ungrounded(data: bytes, relative: str, anchor: str | None) -> tuple[str, str] | None:
    """(field, message) when the evidence file cited as `relative`, holding `data` (read through
    the confined reader, imgbuild.spec.files), cannot ground anything: it is empty, or `anchor` is
    not in it. None when it can."""
    if not data.strip():
        return "path", f"evidence file {relative!r} is empty: an empty file backs nothing (write down what it shows)"
    if not anchor:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None  # not text: nothing to search
    wanted = anchor.removeprefix("#")
    if Path(relative).suffix.lower() in MARKDOWN:
        known = anchors(text)
        if wanted.lower() in known:
            return None
        listed = ", ".join(f"'#{a}'" for a in known) or "none"
        return "anchor", f"{anchor!r} is not a heading of {relative} (its anchors: {listed})"
    if wanted.lower() in text.lower():
        return None
    return "anchor", f"{anchor!r} does not occur in {relative}"


def anchors(markdown: str) -> list[str]:
    """The anchors of a Markdown text, in order: GitHub's heading slugs, then explicit ids."""
    from markdown_it import MarkdownIt  # only for an anchor into Markdown: most evidence cites none

    tokens = MarkdownIt("commonmark").parse(markdown)
    seen: dict[str, int] = {}
    out = []
    for opening, inline in itertools.pairwise(tokens):
        if opening.type != "heading_open":
            continue
        base = _github_slug("".join(child.content for child in inline.children or () if child.type != "html_inline"))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.append(base if count == 0 else f"{base}-{count}")
    out += [(a or b).lower() for a, b in _EXPLICIT.findall(markdown)]
    return out


def _github_slug(title: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, each space a hyphen."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")
