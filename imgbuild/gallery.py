"""The gallery: one static, self-contained HTML contact sheet per batch, opened from disk.

A page shows each shot of a batch as a grid over two varying attributes (rows × columns), one
card per asset in its cell, and on each card the candidates made for the asset's *current*
request with their review state, the prompt, the request hash, the review checklist and
relative links to the records. It needs no server and no JavaScript: every link is relative to
the page, so the gallery folder and the project open together over file://.

This module reads records into views and lays out the grid; the markup is in the Jinja templates
it shares with the review studio (imgbuild/templates/, imgbuild.pages); writing the pages is the
command's job (imgbuild.commands.gallery).
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote

from imgbuild.errors import EXIT_INVALID, FatalError
from imgbuild.pages import render
from imgbuild.records import Approval, AssetStore, Candidate
from imgbuild.records import Review as RecordedReview
from imgbuild.requests import ImageRequest
from imgbuild.review import CHECKLIST
from imgbuild.spec.model import Batch, Shot
from imgbuild.state import REJECTED, STALE, UNREVIEWED, candidate_reviews
from imgbuild.thumbs import Thumb, Thumbnails

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
    """Every attribute that varies within `batch`: the batch's own `vary` in manifest order, then
    those only its shots vary, then those only its variant tests vary."""
    names: dict[str, None] = dict.fromkeys(batch.vary)
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
    sha256: str = ""
    thumb: Thumb | None = None  # its thumbnail, when the page shows thumbnails

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


def read_asset(store: AssetStore, req: ImageRequest, thumbnails: Thumbnails | None = None) -> AssetView:
    """The card of `req`, from its asset.json (an asset not built yet has no candidates); the
    review states come from imgbuild.state, the one place that decides them. With `thumbnails`,
    each existing candidate image gets its thumbnail (made now if it is not cached)."""
    record = store.read_asset(req.asset_dir)
    if record is None:
        return AssetView(req, False, (), (), None, None, None, len(store.pending(req.asset_dir)))
    current: list[CandidateView] = []
    earlier: list[CandidateView] = []
    for item in candidate_reviews(record, req.request_hash):
        view = _candidate(store, req, item.candidate, item.state, _review(item.review) if item.review else None)
        if thumbnails is not None and view.exists:
            view = replace(view, thumb=thumbnails.ensure(view.file, view.sha256 or None, (view.width, view.height)))
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
        sha256=cand.sha256,
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


@dataclass(frozen=True)
class _Head:
    """A row or column header of a shot's grid: an axis value (None: the asset has none)."""

    value: str | None
    variant_only: bool  # only variant tests use this value


@dataclass(frozen=True)
class _Cell:
    col: str | None
    views: tuple[AssetView, ...]


@dataclass(frozen=True)
class _Row:
    value: str | None
    variant_only: bool
    cells: tuple[_Cell, ...]


@dataclass(frozen=True)
class _Section:
    """One shot of the page: its grid (rows × columns of cards), or a flat list without axes."""

    shot: Shot
    count: int
    shown: frozenset[str]  # the attributes on the axes, not repeated on each card
    rows_axis: str | None
    corner: str
    cols: tuple[_Head, ...] | None  # None: no column axis
    rows: tuple[_Row, ...]
    flat: tuple[AssetView, ...] | None  # set when the batch varies nothing


def build_page(
    root: Path,
    batch: Batch,
    requests: Sequence[ImageRequest],
    axes: Axes,
    page_dir: Path,
    thumbnails: Thumbnails | None = None,
) -> BatchPage:
    """The HTML page of `batch`, with links relative to `page_dir` (where it will be written).

    With `thumbnails`, each candidate is shown by its thumbnail (made now if missing) and links
    to the full image; without, by the full image."""
    store = AssetStore(root)
    views = [read_asset(store, req, thumbnails) for req in requests]
    states = [c.state for v in views for c in v.current]
    counts = {
        "assets": len(views),
        "candidates": len(states),
        "approved": sum(1 for v in views if v.approval_state == "current"),
        "stale": sum(1 for v in views if v.approval_state == STALE),
        "rejected": states.count(REJECTED),
        "unreviewed": states.count(UNREVIEWED),
        "variant_tests": sum(1 for v in views if v.request.variant_test),
        "not_built": sum(1 for v in views if not v.current),
    }
    sections = []
    for shot in batch.shots:
        shot_views = [v for v in views if v.request.shot == shot.id]
        if shot_views:
            sections.append(_section(shot, shot_views, axes))
    page = render(
        "gallery.html",
        batch=batch,
        axes=axes,
        counts=counts,
        # The endpoint keys really called (an edit's, an identity set's), not the batch's declared key.
        models=", ".join(sorted({v.request.model for v in views})) or batch.model,
        manifest=Path(os.path.relpath(batch.path, root)).as_posix(),
        checklist=CHECKLIST,
        sections=sections,
        href=_Links(root, page_dir).href,
    )
    return BatchPage(
        batch=batch.id,
        html=page,
        assets=counts["assets"],
        candidates=counts["candidates"],
        approved=counts["approved"],
        stale=counts["stale"],
        rejected=counts["rejected"],
        unreviewed=counts["unreviewed"],
    )


class _Links:
    """Page-relative URLs of project files, so the page works from disk (file://) wherever the
    project folder is, as long as the gallery folder keeps its place beside it."""

    def __init__(self, root: Path, page_dir: Path) -> None:
        self._prefix = Path(os.path.relpath(root, page_dir)).as_posix()

    def href(self, project_relative: str) -> str:
        return quote(posixpath.normpath(posixpath.join(self._prefix, project_relative)), safe="/")


def _value_of(req: ImageRequest, axis: str | None) -> str | None:
    if axis is None:
        return None
    return req.vary.get(axis, req.fixed.get(axis))


def _axis_values(views: Sequence[AssetView], axis: str | None) -> list[_Head]:
    """The header values of `axis` in a shot, marking those only variant tests use.

    Expansion walks each attribute's values in manifest order, so first appearance is manifest
    order; values only variant tests use come after the others."""
    if axis is None:
        return [_Head(None, False)]
    plain = dict.fromkeys(_value_of(v.request, axis) for v in views if not v.request.variant_test)
    variant_only = dict.fromkeys(_value_of(v.request, axis) for v in views if v.request.variant_test)
    for value in plain:
        variant_only.pop(value, None)
    return [*(_Head(v, False) for v in plain), *(_Head(v, True) for v in variant_only)]


def _section(shot: Shot, views: Sequence[AssetView], axes: Axes) -> _Section:
    shown = frozenset(a for a in (axes.rows, axes.cols) if a)
    if axes.rows is None and axes.cols is None:
        return _Section(shot, len(views), shown, None, "", None, (), tuple(views))
    cells: dict[tuple[str | None, str | None], list[AssetView]] = {}
    for view in views:
        cells.setdefault((_value_of(view.request, axes.rows), _value_of(view.request, axes.cols)), []).append(view)
    cols = _axis_values(views, axes.cols)
    rows = tuple(
        _Row(r.value, r.variant_only, tuple(_Cell(c.value, tuple(cells.get((r.value, c.value), ()))) for c in cols))
        for r in _axis_values(views, axes.rows)
    )
    corner = (f"{axes.rows} ╲ {axes.cols}" if axes.rows else axes.cols or "") if axes.cols else ""
    return _Section(shot, len(views), shown, axes.rows, corner, tuple(cols) if axes.cols else None, rows, None)
