"""The gallery: one static, self-contained HTML contact sheet per batch, opened from disk.

A page shows each shot of a batch as a grid over two varying attributes (rows × columns), one
card per asset in its cell, and on each card the candidates made for the asset's *current*
request with their review state, the prompt, the request hash, the review checklist and
relative links to the records. It needs no server and no JavaScript: every link is relative to
the page, so the gallery folder and the project open together over file://.

This module reads records and builds HTML; writing the pages is the command's job
(imgbuild.commands.gallery).
"""

from __future__ import annotations

import html
import os
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from imgbuild.errors import EXIT_INVALID, FatalError
from imgbuild.models import get_model
from imgbuild.records import Approval, AssetStore, Candidate
from imgbuild.records import Review as RecordedReview
from imgbuild.requests import ImageRequest
from imgbuild.review import CHECKLIST
from imgbuild.spec.model import Batch, Shot
from imgbuild.state import APPROVED, REJECTED, STALE, SUPERSEDED, UNREVIEWED, candidate_reviews

__all__ = [
    "CHECKLIST_ITEMS",
    "Axes",
    "BatchPage",
    "GalleryUsageError",
    "axis_problems",
    "batch_axes",
    "build_page",
    "choose_axes",
]

# The review checklist in the order a reviewer goes through it: asset.json stores a checklist with
# sorted keys, so the page takes its order from the review module; unknown items come after.
CHECKLIST_ITEMS = tuple(CHECKLIST)
MODEL_AXIS = "model"  # the grid axis of a batch built on several models (its values: the families)

# Candidate states (imgbuild.state), each shown as a badge with this class and text.
_BADGE_TEXT = {
    APPROVED: "approved",
    STALE: "stale approval",
    REJECTED: "rejected",
    UNREVIEWED: "unreviewed",
    SUPERSEDED: "approved before",
}

_NO_VALUE = "—"  # header of assets that have no value for an axis (e.g. a shot that drops it)


class GalleryUsageError(FatalError):
    """The command line names a batch or an axis that does not exist."""

    exit_code = EXIT_INVALID


@dataclass(frozen=True)
class Axes:
    """The attributes laid out along the rows and the columns of a batch's grid (None: not used)."""

    rows: str | None
    cols: str | None

    def describe(self) -> str:
        if self.rows is None and self.cols is None:
            return "no grid axes (the batch has no varying attribute)"
        return " · ".join(f"{label}: {name}" for label, name in (("rows", self.rows), ("columns", self.cols)) if name)


def batch_axes(batch: Batch) -> tuple[str, ...]:
    """Every attribute that varies within `batch`: ``model`` when it lists several models, the
    batch's own `vary` in manifest order, then those only its shots vary, then its variant tests'."""
    names: dict[str, None] = dict.fromkeys((MODEL_AXIS,) if batch.models else ())
    names.update(dict.fromkeys(batch.vary))
    for shot in batch.shots:
        names.update(dict.fromkeys(shot.vary))
    for variant in batch.variant_tests:
        names.update(dict.fromkeys(variant.vary))
    return tuple(names)


def axis_problems(batch: Batch, rows: str | None, cols: str | None) -> list[str]:
    """What is wrong with `--rows` / `--cols` for `batch`, as messages (empty: nothing)."""
    valid = batch_axes(batch)
    shown = ", ".join(valid) if valid else "none: it varies no attribute"
    problems = [
        f"--{flag} {name!r} is not a varying attribute of batch {batch.id!r} (valid: {shown})"
        for flag, name in (("rows", rows), ("cols", cols))
        if name is not None and name not in valid
    ]
    if rows is not None and rows == cols:
        problems.append(f"--rows and --cols both name {rows!r}: choose two different attributes")
    return problems


def choose_axes(batch: Batch, rows: str | None, cols: str | None) -> Axes:
    """The grid axes of `batch` (valid choices assumed, see `axis_problems`).

    By default the rows are the batch's first varying attribute and the columns its second; with
    one attribute it is laid out as columns (a single row). A single chosen axis gets the first
    other attribute as its partner."""
    spare = [name for name in batch_axes(batch) if name not in (rows, cols)]
    if rows is None and cols is None and MODEL_AXIS in spare:  # one shot on several models: side by side
        others = [name for name in spare if name != MODEL_AXIS]
        return Axes(rows=others[0] if others else None, cols=MODEL_AXIS)
    if rows is None and cols is None:
        if len(spare) == 1:
            return Axes(rows=None, cols=spare[0])
        return Axes(rows=spare[0] if spare else None, cols=spare[1] if len(spare) > 1 else None)
    if rows is None:
        return Axes(rows=spare[0] if spare else None, cols=cols)
    if cols is None:
        return Axes(rows=rows, cols=spare[0] if spare else None)
    return Axes(rows=rows, cols=cols)


# -- reading one asset's records ------------------------------------------------------------------


@dataclass(frozen=True)
class CheckItem:
    """One item of a review checklist: its name, result ("pass", "fail", ...) and note."""

    name: str
    result: str
    note: str | None


@dataclass(frozen=True)
class Review:
    """One review decision, or an approval, as far as the page shows it."""

    decision: str
    by: str | None
    at: str | None
    checklist: tuple[CheckItem, ...]
    override: bool
    note: str | None
    request_hash: str | None


@dataclass(frozen=True)
class CandidateView:
    """One image of one candidate, with its review state."""

    candidate: int
    image: int | None
    run: str
    file: str  # project-relative
    exists: bool
    width: int
    height: int
    request_hash: str
    state: str  # one of APPROVED, STALE, REJECTED, UNREVIEWED, SUPERSEDED
    review: Review | None  # the newest decision about this image

    @property
    def label(self) -> str:
        """How the CLI names it: ``2``, or ``2.3`` for image 3 of a sequential set."""
        return f"{self.candidate}" if self.image is None else f"{self.candidate}.{self.image}"


@dataclass(frozen=True)
class AssetView:
    """One card: an asset's current request, its candidates and its approval."""

    request: ImageRequest
    recorded: bool  # asset.json exists
    current: tuple[CandidateView, ...]  # made for the current request hash
    earlier: tuple[CandidateView, ...]  # made for earlier requests, newest first
    approval: Review | None
    approval_label: str | None
    approval_file: str | None  # project-relative
    pending: int

    @property
    def approval_state(self) -> str:
        if self.approval is None:
            return "none"
        return "current" if self.approval.request_hash == self.request.request_hash else STALE


def read_asset(store: AssetStore, req: ImageRequest) -> AssetView:
    """The card of `req`, from its asset.json (an asset not built yet has no candidates); the
    review states come from imgbuild.state, the one place that decides them."""
    record = store.read_asset(req.asset_dir)
    if record is None:
        return AssetView(req, False, (), (), None, None, None, len(store.pending(req.asset_dir)))
    current: list[CandidateView] = []
    earlier: list[CandidateView] = []
    for item in candidate_reviews(record, req.request_hash):
        view = _candidate(store, req, item.candidate, item.state, _review(item.review) if item.review else None)
        (current if view.request_hash == req.request_hash else earlier).append(view)
    current.sort(key=lambda c: (c.candidate, c.image or 0, c.run))
    earlier.sort(key=_newest_request_first(earlier))
    approval = record.approval
    return AssetView(
        request=req,
        recorded=True,
        current=tuple(current),
        earlier=tuple(earlier),
        approval=_review(approval, "approve") if approval else None,
        approval_label=approval.label if approval else None,
        approval_file=_join(req.asset_dir, approval.file) if approval else None,
        pending=len(store.pending(req.asset_dir)),
    )


def _newest_request_first(views: Sequence[CandidateView]) -> Callable[[CandidateView], tuple[int, int, int]]:
    """Sort key for earlier candidates: by request, the newest first (run ids start with their
    time), then by candidate number. Runs of one build may finish in any order, so the run id
    alone would not order the candidates of one request."""
    newest: dict[str, str] = {}
    for view in views:
        newest[view.request_hash] = max(newest.get(view.request_hash, ""), view.run)
    rank = {h: i for i, h in enumerate(sorted(newest, key=lambda h: newest[h], reverse=True))}
    return lambda c: (rank[c.request_hash], c.candidate, c.image or 0)


def _candidate(
    store: AssetStore, req: ImageRequest, cand: Candidate, state: str, review: Review | None
) -> CandidateView:
    file = _join(req.asset_dir, cand.file)
    width, height = cand.width, cand.height
    if width <= 0 or height <= 0:
        width, height = _size_of(req.size)
    return CandidateView(
        candidate=cand.candidate,
        image=cand.image,
        run=cand.run,
        file=file,
        exists=store.exists(file),
        width=width,
        height=height,
        request_hash=cand.request_hash,
        state=state,
        review=review,
    )


def _review(data: RecordedReview | Approval, decision: str | None = None) -> Review:
    names = [i.item for i in data.checklist]
    order = [*[n for n in CHECKLIST_ITEMS if n in names], *sorted(n for n in names if n not in CHECKLIST_ITEMS)]
    by_name = {i.item: i for i in data.checklist}
    return Review(
        decision=decision or (data.decision if isinstance(data, RecordedReview) else "approve"),
        by=data.by,
        at=data.at,
        checklist=tuple(CheckItem(n, by_name[n].result, by_name[n].note) for n in order),
        override=data.override,
        note=data.note,
        request_hash=data.request_hash,
    )


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _size_of(size: str) -> tuple[int, int]:
    """Width and height from a request's size (``2048x2048``); a square when it names none."""
    try:
        width, height = (int(part) for part in size.lower().split("x"))
    except ValueError:
        return 1024, 1024
    return width, height


def _join(asset_dir: str, relative: str) -> str:
    return posixpath.join(asset_dir, relative)


# -- the page --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchPage:
    """A rendered page and what is on it."""

    batch: str
    html: str
    assets: int
    candidates: int
    approved: int
    stale: int
    rejected: int
    unreviewed: int

    def summary(self) -> str:
        return (
            f"{self.assets} assets, {self.candidates} candidates ({self.approved} approved, "
            f"{self.stale} stale approval{'' if self.stale == 1 else 's'}, {self.rejected} rejected, "
            f"{self.unreviewed} unreviewed)"
        )


def build_page(root: Path, batch: Batch, requests: Sequence[ImageRequest], axes: Axes, page_dir: Path) -> BatchPage:
    """The HTML page of `batch`, with links relative to `page_dir` (where it will be written)."""
    store = AssetStore(root)
    views = [read_asset(store, req) for req in requests]
    links = _Links(root, page_dir)
    states = [c.state for v in views for c in v.current]
    body = [_header(batch, axes, views, links, Path(os.path.relpath(batch.path, root)).as_posix())]
    for shot in batch.shots:
        shot_views = [v for v in views if v.request.shot == shot.id]
        if shot_views:
            body.append(_shot_section(shot, shot_views, axes, links))
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(batch.id)} — imgbuild gallery</title><style>{_CSS}</style></head>\n"
        f'<body data-batch="{_e(batch.id)}" data-rows="{_e(axes.rows or "")}" data-cols="{_e(axes.cols or "")}">\n'
        + "".join(body)
        + "</body></html>\n"
    )
    return BatchPage(
        batch=batch.id,
        html=page,
        assets=len(views),
        candidates=len(states),
        approved=sum(1 for v in views if v.approval_state == "current"),
        stale=sum(1 for v in views if v.approval_state == STALE),
        rejected=states.count(REJECTED),
        unreviewed=states.count(UNREVIEWED),
    )


def _header(batch: Batch, axes: Axes, views: Sequence[AssetView], links: _Links, manifest: str) -> str:
    states = [c.state for v in views for c in v.current]
    approved = sum(1 for v in views if v.approval_state == "current")
    stale = sum(1 for v in views if v.approval_state == STALE)
    variant_tests = sum(1 for v in views if v.request.variant_test)
    not_built = sum(1 for v in views if not v.current)
    summary = [
        f"{len(views)} assets · {len(states)} current candidates ·",
        f'<span class="badge approved">{approved} approved</span>',
        f'<span class="badge stale">{stale} stale approval{"s" if stale != 1 else ""}</span>',
        f'<span class="badge rejected">{states.count(REJECTED)} rejected</span>',
        f'<span class="badge unreviewed">{states.count(UNREVIEWED)} unreviewed</span>',
    ]
    if variant_tests:
        summary.append(f'· <span class="variant-tag">{variant_tests} variant-test assets</span>')
    if not_built:
        summary.append(f"· {not_built} not built for the current request")
    legend = "".join(f"<dt>{_e(name)}</dt><dd>{_e(text)}</dd>" for name, text in CHECKLIST.items())
    # The endpoint keys really called (an edit's, an identity set's), not the batch's declared key.
    models = ", ".join(sorted({v.request.model for v in views})) or batch.model
    return (
        f'<header><h1>{_e(batch.id)}</h1><p class="purpose">{_e(batch.purpose)}</p>'
        f'<p class="summary">{" ".join(summary)}</p>'
        f'<p class="axes">{_e(axes.describe())} · model {_e(models)} · '
        f'<a href="{links.href(manifest)}">{_e(manifest)}</a></p>'
        f'<details class="legend"><summary>review checklist</summary><dl>{legend}</dl></details></header>\n'
    )


class _Links:
    """Page-relative URLs of project files, so the page works from disk (file://) wherever the
    project folder is, as long as the gallery folder keeps its place beside it."""

    def __init__(self, root: Path, page_dir: Path) -> None:
        self._prefix = Path(os.path.relpath(root, page_dir)).as_posix()

    def href(self, project_relative: str) -> str:
        path = posixpath.normpath(posixpath.join(self._prefix, project_relative))
        return _e(quote(path, safe="/"))


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _value_of(req: ImageRequest, axis: str | None) -> str | None:
    if axis is None:
        return None
    if axis == MODEL_AXIS:
        return get_model(req.model).label
    return req.vary.get(axis, req.fixed.get(axis))


def _axis_values(views: Sequence[AssetView], axis: str | None) -> tuple[list[str | None], set[str | None]]:
    """The header values of `axis` in a shot, and those of them that only variant tests use.

    Expansion walks each attribute's values in manifest order, so first appearance is manifest
    order; values only variant tests use come after the others."""
    if axis is None:
        return [None], set()
    plain = dict.fromkeys(_value_of(v.request, axis) for v in views if not v.request.variant_test)
    variant_only = dict.fromkeys(_value_of(v.request, axis) for v in views if v.request.variant_test)
    for value in plain:
        variant_only.pop(value, None)
    return [*plain, *variant_only], set(variant_only)


def _shot_section(shot: Shot, views: Sequence[AssetView], axes: Axes, links: _Links) -> str:
    row_values, variant_rows = _axis_values(views, axes.rows)
    col_values, variant_cols = _axis_values(views, axes.cols)
    cells: dict[tuple[str | None, str | None], list[AssetView]] = {}
    for view in views:
        cells.setdefault((_value_of(view.request, axes.rows), _value_of(view.request, axes.cols)), []).append(view)
    shown = {a for a in (axes.rows, axes.cols) if a}
    out = [
        f'<section class="shot" data-shot="{_e(shot.id)}"><h2>shot {_e(shot.id)}'
        f' <span class="need">— {_e(shot.need)}</span> <span class="count">({len(views)} assets)</span></h2>\n'
    ]
    if axes.rows is None and axes.cols is None:
        out.append('<div class="flat">')
        out.extend(_card(v, shown, links) for v in views)
        out.append("</div></section>\n")
        return "".join(out)

    def head(value: str | None, kind: str) -> str:
        text = _NO_VALUE if value is None else value
        extra = " variant-value" if value in (variant_rows if kind == "row-head" else variant_cols) else ""
        tag = '<span class="variant-tag">variant test</span>' if extra else ""
        scope = "row" if kind == "row-head" else "col"
        return f'<th class="{kind}{extra}" scope="{scope}" data-value="{_e(value or "")}">{_e(text)}{tag}</th>'

    out.append('<div class="scroll"><table class="grid">')
    if axes.cols is not None:
        corner = f"{axes.rows} ╲ {axes.cols}" if axes.rows else axes.cols
        out.append(f"<thead><tr>{f'<th class=corner>{_e(corner)}</th>' if axes.rows else ''}")
        out.extend(head(c, "col-head") for c in col_values)
        out.append("</tr></thead>")
    out.append("<tbody>\n")
    for r in row_values:
        out.append(f'<tr data-row="{_e(r or "")}">')
        if axes.rows is not None:
            out.append(head(r, "row-head"))
        for c in col_values:
            out.append(f'<td data-row="{_e(r or "")}" data-col="{_e(c or "")}">')
            out.extend(_card(v, shown, links) for v in cells.get((r, c), ()))
            out.append("</td>")
        out.append("</tr>\n")
    out.append("</tbody></table></div></section>\n")
    return "".join(out)


def _card(view: AssetView, on_axes: Iterable[str], links: _Links) -> str:
    req = view.request
    classes = "card variant-test" if req.variant_test else "card"
    attrs = f' data-variant-test="{_e(req.variant_test)}"' if req.variant_test else ""
    out = [
        f'<article class="{classes}" id="{_e(req.asset_id)}" data-asset="{_e(req.asset_id)}"'
        f' data-approval="{view.approval_state}" data-request-hash="{_e(req.request_hash)}"{attrs}>'
    ]
    if req.variant_test:
        out.append(f'<div class="ribbon">variant test: {_e(req.variant_test)}</div>')
    out.append(
        f'<h3><a href="#{_e(req.asset_id)}" class="self">¶</a> '
        f'<a href="{links.href(_join(req.asset_dir, "asset.json"))}">{_e(req.asset_id)}</a></h3>'
    )
    others = [f"{k}: {v}" for k, v in sorted(req.vary.items()) if k not in set(on_axes)]
    if others:
        out.append(f'<p class="attrs">{_e(" · ".join(others))}</p>')
    if view.approval_state == STALE:
        out.append(
            f'<p class="stale-note"><span class="badge stale">stale approval</span> candidate '
            f"{_e(view.approval_label or '?')} was approved for an earlier request"
            + (f' (<a href="{links.href(view.approval_file)}">approved image</a>)' if view.approval_file else "")
            + "</p>"
        )
    if view.current:
        out.append('<div class="cands current">')
        out.extend(_figure(c, links, req.asset_dir) for c in view.current)
        out.append("</div>")
    else:
        why = "not built yet" if not view.recorded else "no candidate for the current request yet"
        out.append(f'<p class="empty">{why} — run <code>doit</code></p>')
    if view.pending:
        out.append(f'<p class="pending">{view.pending} call{"s" if view.pending != 1 else ""} in flight</p>')
    out.append(_checklist(view))
    out.append(f'<p class="prompt">{_e(req.prompt)}</p>')
    if req.negative_prompt:
        out.append(f'<p class="negative">not: {_e(req.negative_prompt)}</p>')
    out.append(
        f'<p class="hashes">request <code title="{_e(req.request_hash)}">{_e(req.request_hash[:12])}</code>'
        f' · prompt <code title="{_e(req.prompt_hash)}">{_e(req.prompt_hash[:12])}</code></p>'
    )
    if view.earlier:
        summary = f"{len(view.earlier)} earlier candidate{'s' if len(view.earlier) != 1 else ''}"
        out.append(f'<details class="earlier"><summary>{summary}</summary><div class="cands older">')
        out.extend(_figure(c, links, req.asset_dir, records=("request",)) for c in view.earlier)
        out.append("</div></details>")
    out.append("</article>")
    return "".join(out)


def _figure(
    cand: CandidateView, links: _Links, asset_dir: str, records: Sequence[str] = ("request", "manifest")
) -> str:
    src = links.href(cand.file)
    run = _join(asset_dir, f"runs/image/{cand.run}")
    record_links = " ".join(f'<a href="{links.href(f"{run}/{name}.json")}">{name}</a>' for name in records)
    if cand.exists:
        picture = (
            f'<a href="{src}"><img src="{src}" loading="lazy" decoding="async" width="{cand.width}"'
            f' height="{cand.height}" alt="candidate {cand.label}"></a>'
        )
    else:
        picture = f'<div class="missing" style="aspect-ratio:{cand.width}/{cand.height}">image file missing</div>'
    why = ""
    if cand.review is not None and cand.state in (REJECTED, SUPERSEDED):
        failed = [f"{i.name} ({i.note})" if i.note else i.name for i in cand.review.checklist if i.result != "pass"]
        parts = [f"by {cand.review.by}"] if cand.review.by else []
        parts += [f"failed: {', '.join(failed)}"] if failed else []
        parts += [cand.review.note] if cand.review.note else []
        why = f'<p class="why">{_e("; ".join(parts))}</p>' if parts else ""
    return (
        f'<figure class="cand {cand.state}" data-candidate="{cand.label}" data-run="{_e(cand.run)}"'
        f' data-state="{cand.state}">{picture}<figcaption>'
        f'<span class="badge {cand.state}">{_BADGE_TEXT[cand.state]}</span> <b>#{cand.label}</b> '
        f'<span class="links">{record_links}</span>{why}</figcaption></figure>'
    )


def _checklist(view: AssetView) -> str:
    """The review checklist: the approval's answers, or the items still to check."""
    approval = view.approval
    if approval is None:
        items = "".join(f'<li class="open">{_e(name)}</li>' for name in CHECKLIST)
        return f'<div class="review none"><span class="label">checklist (not approved):</span> <ul>{items}</ul></div>'
    items = "".join(_check_item(item) for item in approval.checklist)
    who = " ".join(p for p in (f"by {approval.by}" if approval.by else "", _when(approval.at)) if p)
    flags = '<span class="badge override">override</span> ' if approval.override else ""
    note = f'<p class="note">{_e(approval.note)}</p>' if approval.note else ""
    state, earlier = (STALE, " for an earlier request") if view.approval_state == STALE else (APPROVED, "")
    return (
        f'<div class="review {state}"><span class="label">{flags}#{_e(view.approval_label or "?")} '
        f"approved {_e(who)}{earlier}:</span> <ul>{items}</ul>{note}</div>"
    )


def _check_item(item: CheckItem) -> str:
    mark = {"pass": "✓", "fail": "✗"}.get(item.result, "·")
    title = f' title="{_e(item.note)}"' if item.note else ""
    return f'<li class="{_e(item.result)}"{title}>{mark} {_e(item.name)}</li>'


def _when(at: str | None) -> str:
    """A record time as a person reads it: ``2026-11-25T12:00:00.000Z`` → ``2026-11-25 12:00 UTC``."""
    if at is None:
        return ""
    if len(at) >= 16 and at[10] == "T" and at.endswith("Z"):
        return f"{at[:10]} {at[11:16]} UTC"
    return at


# Kept inline so each page is self-contained: a page can be mailed or opened on its own.
_CSS = """
:root{--ok:#1a7f37;--bad:#c62828;--warn:#b26a00;--mute:#6b7280;--line:#d9dce1;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;padding:16px 20px;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"Liberation Sans",sans-serif;
color:#1f2328;background:var(--bg)}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:2px 0;color:#374151}
h2{font-size:17px;margin:22px 0 8px}
h2 .need,h2 .count{font-weight:normal;color:var(--mute)}
a{color:#0b57d0}
.scroll{overflow:auto;width:max-content;max-width:100%;max-height:calc(100vh - 40px);border:1px solid var(--line);
background:#fff}
table.grid{border-collapse:separate;border-spacing:0}
table.grid th,table.grid td{border-right:1px solid var(--line);border-bottom:1px solid var(--line);vertical-align:top;
padding:6px}
table.grid thead th{position:sticky;top:0;background:#eef0f3;z-index:2;text-align:left}
table.grid th.row-head{position:sticky;left:0;background:#eef0f3;z-index:1;text-align:left;max-width:160px}
table.grid th.corner{left:0;z-index:3;color:var(--mute);font-weight:normal}
th.variant-value{background:#fff4e5!important}
.flat{display:flex;flex-wrap:wrap;gap:10px}
.card{position:relative;width:min-content;min-width:250px;background:#fff;border:1px solid var(--line);
border-radius:6px;padding:8px;margin:0 0 8px;overflow:hidden}
.card.variant-test{border:2px dashed var(--warn);background:#fffaf2}
.ribbon{background:var(--warn);color:#fff;font-weight:600;font-size:12px;padding:2px 8px;margin:-8px -8px 6px}
.card h3{margin:0 0 4px;font-size:13px;overflow-wrap:anywhere}
.card h3 .self{color:var(--mute);text-decoration:none}
.cands{display:flex;gap:6px}
figure.cand{margin:0;width:140px}
figure.cand img,.missing{display:block;width:140px;height:auto;background:#e5e7eb;border:3px solid transparent}
figure.approved img{border-color:var(--ok)}
figure.rejected img{border-color:var(--bad);opacity:.55}
figure.stale img{border-color:var(--warn)}
.missing{font-size:12px;color:var(--bad);display:flex;align-items:center;justify-content:center}
figcaption{font-size:12px}
figcaption .links{display:block}figcaption .links a{color:var(--mute);margin-right:4px}
.badge{display:inline-block;padding:0 6px;border-radius:9px;font-size:11px;font-weight:600;color:#fff;
background:var(--mute)}
.badge.approved{background:var(--ok)}.badge.rejected{background:var(--bad)}.badge.stale{background:var(--warn)}
.badge.unreviewed{background:#9ca3af}.badge.superseded{background:#5b7c99}.badge.override{background:#7c3aed}
.variant-tag{display:inline-block;margin-left:4px;padding:0 5px;border-radius:3px;font-size:11px;background:var(--warn);
color:#fff}
.prompt{margin:6px 0 2px;font-size:12px;max-height:5.6em;overflow:auto;color:#374151}
.negative,.attrs,.hashes,.why,.pending,.stale-note,.note{margin:2px 0;font-size:12px;color:var(--mute)}
.why{color:var(--bad)}
.empty{color:var(--mute);font-style:italic}
.review{font-size:12px;margin-top:4px}
.review ul{display:inline;list-style:none;margin:0;padding:0}
.review li{display:inline-block;margin:0 6px 0 0}
.review li.pass{color:var(--ok)}.review li.fail{color:var(--bad)}.review li.open{color:var(--mute)}
.review.stale .label{color:var(--warn)}
details.earlier summary,details.legend summary{cursor:pointer;font-size:12px;color:var(--mute)}
details.legend dl{display:grid;grid-template-columns:max-content auto;gap:2px 10px;margin:4px 0;font-size:12px}
details.legend dt{font-weight:600}details.legend dd{margin:0}
code{font-size:11px}
""".replace("\n", "")
