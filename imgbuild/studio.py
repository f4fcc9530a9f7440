"""The review studio: `imgbuild review`, a local web app for choosing, approving and comparing
candidates (Starlette on uvicorn, bound to 127.0.0.1).

It reads the records through the same views as the gallery (imgbuild.gallery) and the same state
module (imgbuild.state), renders from the same Jinja templates (imgbuild.pages), and records every
decision through :func:`imgbuild.decisions.decide`, the code behind `imgbuild approve` /
`reject`, so the checklist rules, the reviewer identity and the files written are the CLI's.

Safety, in one place each:

- **Only files the records know are served.** A page can link only what it rendered from the
  records (candidate images, approved copies, references, thumbnails, record files); each such
  path is remembered when it is rendered, and ``/files/`` answers those exact paths and nothing
  else: no normalization, so ``..``, absolute paths and anything not rendered are refused, and a
  path whose real location differs from its spelled one (a symbolic link on the way) is refused.
- **Every change needs the session's token** (random, in the page, sent back in a header that a
  page of another origin cannot set without a CORS preflight this server never grants), a JSON
  body, and a Host of 127.0.0.1 or localhost (so a DNS-rebound name is refused).
- **Nothing is written but review records** (and the thumbnail cache under ``.imgbuild/``).
"""

from __future__ import annotations

import hmac
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from imgbuild.decisions import Decided, decide, reviewer, undo
from imgbuild.errors import EXIT_INVALID, FatalError
from imgbuild.gallery import AssetView, read_asset
from imgbuild.pages import render
from imgbuild.records import AssetStore
from imgbuild.requests import ImageRequest
from imgbuild.resolve import Resolution, resolve
from imgbuild.review import APPROVE, CHECKLIST, DECISIONS
from imgbuild.state import APPROVED, REJECTED, STALE, UNREVIEWED, StateIndex, assess, assess_reviews, describe_changes
from imgbuild.state import estimate as estimate_cost
from imgbuild.thumbs import Thumb, Thumbnails

__all__ = ["FILTER_STATES", "Filters", "QueueItem", "Queued", "StudioServer", "build_queue", "create_app", "load_cards"]

HOST = "127.0.0.1"
TOKEN_HEADER = "X-Imgbuild-Token"
VARIANT_TEST, INTERRUPTED = "variant-test", "interrupted"
FILTER_STATES = (UNREVIEWED, STALE, APPROVED, REJECTED, VARIANT_TEST, INTERRUPTED)
# The queue: what still needs a decision first, then what was rejected, then what is approved.
_QUEUE_RANK = {UNREVIEWED: 0, STALE: 0, REJECTED: 1, APPROVED: 2}
_LARGE_EDGE = 1024  # the asset pane's images: enough to judge a face, a fraction of the original
FIRST_CARDS = 40  # queue cards sent with the page: more than a screen holds
MORE_CARDS = 200  # cards per later request, fetched by the script once the page is interactive


@dataclass(frozen=True)
class Filters:
    """What the queue shows: batches named on the command line or picked on the page, a shot,
    a state (FILTER_STATES) and vary values (``attribute=value``)."""

    batches: tuple[str, ...] = ()
    shot: str | None = None
    state: str | None = None
    vary: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_query(cls, query: Mapping[str, str], vary: Sequence[str], batches: tuple[str, ...]) -> Filters:
        batch = query.get("batch") or None
        pairs = tuple((k, v) for k, _, v in (item.partition("=") for item in vary) if k and v)
        state = query.get("state") or None
        return cls((batch,) if batch else batches, query.get("shot") or None, state, pairs)

    def keeps(self, req: ImageRequest, tags: Sequence[str]) -> bool:
        """Whether the asset of `req`, matching the state filters `tags`, is shown."""
        if self.batches and req.batch not in self.batches:
            return False
        if self.shot and req.shot != self.shot:
            return False
        if any(req.vary.get(k, req.fixed.get(k)) != v for k, v in self.vary):
            return False
        return self.state is None or self.state in tags

    def query(self, **changes: str | None) -> str:
        """This filter as a query string, with `changes` applied (for the page's links)."""
        pairs: list[tuple[str, str]] = []
        values = {"batch": self.batches[0] if len(self.batches) == 1 else None, "shot": self.shot, "state": self.state}
        values.update(changes)
        pairs += [(k, v) for k, v in values.items() if v]
        pairs += [("vary", f"{k}={v}") for k, v in self.vary]
        return urlencode(pairs)


@dataclass(frozen=True)
class Queued:
    """One asset's place in the queue: where it stands in review, known without its asset.json
    (the lock entry says it while it is current)."""

    request: ImageRequest
    review_state: str  # UNREVIEWED, STALE, REJECTED, APPROVED (imgbuild.state)
    interrupted: bool

    @property
    def to_review(self) -> bool:
        return _QUEUE_RANK[self.review_state] == 0

    @property
    def tags(self) -> tuple[str, ...]:
        """Every state filter this asset matches."""
        return (
            self.review_state,
            *((VARIANT_TEST,) * bool(self.request.variant_test)),
            *((INTERRUPTED,) * self.interrupted),
        )


@dataclass(frozen=True)
class QueueItem:
    """One asset's card in the queue: its place and its candidates."""

    queued: Queued
    view: AssetView

    @property
    def request(self) -> ImageRequest:
        return self.queued.request

    @property
    def review_state(self) -> str:
        return self.queued.review_state

    @property
    def interrupted(self) -> bool:
        return self.queued.interrupted

    @property
    def tags(self) -> tuple[str, ...]:
        return self.queued.tags


def build_queue(resolution: Resolution, filters: Filters) -> tuple[list[Queued], list[ImageRequest]]:
    """(the queue, in review order: to review first, then rejected, then approved, each in
    manifest order; every request of the batches in view, for the filter menus)."""
    requests = [r for r in resolution.all_requests() if not filters.batches or r.batch in filters.batches]
    index = StateIndex(resolution)
    reviews = assess_reviews(resolution, index, requests)
    interrupted = {s.request.asset_id for s in assess(resolution, index, requests) if s.status == INTERRUPTED}
    queue = [
        queued
        for req, review in zip(requests, reviews, strict=True)
        if filters.keeps(req, (queued := Queued(req, review.status, req.asset_id in interrupted)).tags)
    ]
    queue.sort(key=lambda q: _QUEUE_RANK[q.review_state])  # stable: manifest order within a rank
    return queue, requests


def load_cards(resolution: Resolution, queued: Iterable[Queued], thumbnails: Thumbnails | None) -> list[QueueItem]:
    """The cards of `queued`, read from their records (thumbnails made if missing)."""
    store = AssetStore(resolution.root)
    return [QueueItem(q, read_asset(store, q.request, thumbnails)) for q in queued]


# -- the app ----------------------------------------------------------------------------------------


@dataclass
class _Session:
    """One `imgbuild review` run: its project, token, reviewer and what it has shown and done."""

    root: Path
    batches: tuple[str, ...]
    by: str | None
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    known: set[str] = field(default_factory=set)  # project-relative paths the pages have linked
    done: list[Decided] = field(default_factory=list)  # this session's decisions, for undo
    write_lock: threading.Lock = field(default_factory=threading.Lock)

    def href(self, relative: str) -> str:
        """The URL of a project file a page links, which makes it one the server may send."""
        self.known.add(relative)
        return "/files/" + quote(relative, safe="/")


def create_app(root: Path, batches: Sequence[str] = (), *, by: str | None = None) -> Starlette:
    """The studio's ASGI app for the project at `root` (showing `batches`, default all)."""
    resolution = resolve(root)
    known_batches = [b.id for b in resolution.project.batches]
    unknown = [b for b in batches if b not in known_batches]
    if unknown:
        raise StudioUsageError(
            f"unknown batch{'es' if len(unknown) != 1 else ''} {', '.join(map(repr, unknown))}"
            f" (batches: {', '.join(known_batches) or 'none'})"
        )
    session = _Session(resolution.root, tuple(dict.fromkeys(batches)), by)
    project = os.path.realpath(session.root)
    small, large = Thumbnails(resolution.root), Thumbnails(resolution.root, _LARGE_EDGE)

    def page(request: Request) -> Response:
        resolution = resolve(session.root)
        filters = Filters.from_query(request.query_params, request.query_params.getlist("vary"), session.batches)
        queue, requests = build_queue(resolution, filters)
        wanted = request.query_params.get("asset")
        current = next((i for i, q in enumerate(queue) if q.request.asset_id == wanted), None)
        if current is None:  # resume: the first asset still to review
            current = next((i for i, q in enumerate(queue) if q.to_review), 0 if queue else None)
        pane = _asset_pane(resolution, queue[current].request, large) if current is not None else None
        # The first screen's cards come with the page; the script fetches the rest once it is up.
        first = max(FIRST_CARDS, (current or 0) + FIRST_CARDS // 2)
        html = render(
            "studio.html",
            token=session.token,
            reviewer=reviewer(session.root, session.by),
            cards=load_cards(resolution, queue[:first], small),
            total=len(queue),
            more=filters.query(offset=str(first)) if first < len(queue) else "",
            current=current,
            pane=pane,
            filters=filters,
            menus=_menus(resolution, requests, session.batches),
            states=FILTER_STATES,
            counts=_counts(queue),
            checklist=CHECKLIST,
            href=session.href,
        )
        return HTMLResponse(html, headers=_NO_STORE)

    def more_cards(request: Request) -> Response:
        resolution = resolve(session.root)
        filters = Filters.from_query(request.query_params, request.query_params.getlist("vary"), session.batches)
        try:
            offset = max(0, int(request.query_params.get("offset", "0")))
        except ValueError:
            return _refused(400, "offset: a number of cards")
        queue, _ = build_queue(resolution, filters)
        end = offset + MORE_CARDS
        html = render("studio_cards.html", cards=load_cards(resolution, queue[offset:end], small), href=session.href)
        headers = {**_NO_STORE, "X-Imgbuild-More": filters.query(offset=str(end)) if end < len(queue) else ""}
        return HTMLResponse(html, headers=headers)

    def asset(request: Request) -> Response:
        resolution = resolve(session.root)
        req = _find(resolution, request.path_params["asset_id"])
        if req is None:
            return _refused(404, f"no asset {request.path_params['asset_id']!r} in this project")
        item, pane = _queue_item(resolution, req, small), _asset_pane(resolution, req, large)
        html = render("studio_asset.html", item=item, pane=pane, checklist=CHECKLIST, href=session.href)
        return HTMLResponse(html, headers=_NO_STORE)

    def files(request: Request) -> Response:
        relative = request.path_params["path"]
        if relative not in session.known:
            return _refused(404, "not a file the records know")
        # Rendered paths are plain project-relative ones, so a file reached through a link on the
        # way has a real path other than the one spelled (wherever the project itself lives).
        real = os.path.realpath(os.path.join(project, relative))
        if real != os.path.join(project, relative):
            return _refused(403, "a link: only files inside the project, by their own path, are served")
        if not os.path.isfile(real):
            return _refused(404, "no such file (any more)")
        return FileResponse(real, headers={"Cache-Control": "no-cache"})

    async def decision(request: Request) -> Response:
        body = await _checked_json(request, session)
        if isinstance(body, Response):
            return body
        return await _in_thread(lambda: _decide(session, body))

    async def take_back(request: Request) -> Response:
        body = await _checked_json(request, session)
        if isinstance(body, Response):
            return body
        return await _in_thread(lambda: _undo(session))

    routes = [
        Route("/", page),
        Route("/queue", more_cards),
        Route("/asset/{asset_id}", asset),
        Route("/files/{path:path}", files),
        Route("/api/decide", decision, methods=["POST"]),
        Route("/api/undo", take_back, methods=["POST"]),
    ]
    middleware = [Middleware(TrustedHostMiddleware, allowed_hosts=[HOST, "localhost"])]
    app = Starlette(routes=routes, middleware=middleware, exception_handlers={FatalError: _project_error})
    app.state.session = session
    return app


class StudioUsageError(FatalError):
    """`imgbuild review` names a batch that does not exist."""

    exit_code = EXIT_INVALID


_NO_STORE = {"Cache-Control": "no-store"}  # a decision made in the CLI shows on the next view


async def _project_error(request: Request, exc: Exception) -> Response:
    """The project cannot be read as it is now (a manifest edited into bad YAML while the page is
    open, a broken record): the message the CLI would print, on the page, until it is fixed."""
    return PlainTextResponse(f"imgbuild: error: {exc}\n", status_code=500, headers=_NO_STORE)


def _refused(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


async def _checked_json(request: Request, session: _Session) -> dict[str, Any] | Response:
    """The body of a change, or the refusal: no token, a wrong one, another origin, not JSON."""
    sent = request.headers.get(TOKEN_HEADER, "")
    if not hmac.compare_digest(sent.encode(), session.token.encode()):
        return _refused(403, f"missing or wrong {TOKEN_HEADER}: changes come only from this session's page")
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        return _refused(403, f"a change from another origin ({origin}) is refused")
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        return _refused(415, "a change is a JSON body")
    try:
        body = await request.json()
    except ValueError:
        return _refused(400, "the body is not JSON")
    if not isinstance(body, dict):
        return _refused(400, "the body is not a JSON object")
    return body


async def _in_thread(work: Callable[[], Response]) -> Response:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(work)


def _decide(session: _Session, body: Mapping[str, Any]) -> Response:
    """One decision from the page, through the CLI's code. The page sends the checklist as
    ``{item: {"result": "pass"|"fail", "note": ...}}``, which becomes ``--pass`` / ``--fail``."""
    kind, asset_id, candidate = body.get("decision"), body.get("asset"), body.get("candidate")
    checklist = body.get("checklist") or {}
    if kind not in DECISIONS or not isinstance(asset_id, str) or not isinstance(candidate, str):
        return _refused(400, f"a decision names its asset, candidate and decision ({' or '.join(DECISIONS)})")
    if not isinstance(checklist, dict):
        return _refused(400, "checklist: an object of item → {result, note}")
    passed: list[str] = []
    failed: list[str] = []
    for item, stated in checklist.items():
        result, note = (stated.get("result"), stated.get("note")) if isinstance(stated, dict) else (None, None)
        if result not in ("pass", "fail"):
            continue  # not stated
        text = f"{item}={note.strip()}" if isinstance(note, str) and note.strip() else str(item)
        (passed if result == "pass" else failed).append(text)
    note = body.get("note") if isinstance(body.get("note"), str) else None
    with session.write_lock:
        try:
            done = decide(
                session.root,
                kind,
                asset_id,
                candidate,
                passed=passed,
                failed=failed,
                note=note,
                by=session.by,
                override=bool(body.get("override")) and kind == APPROVE,
            )
        except FatalError as exc:
            return _refused(409, str(exc))
        session.done.append(done)
    return JSONResponse({"ok": True, "asset": done.asset_id, "message": "\n".join(done.lines)})


def _undo(session: _Session) -> Response:
    with session.write_lock:
        if not session.done:
            return _refused(409, "nothing to undo: this session has made no decision")
        try:
            message = undo(session.root, session.done[-1])
        except FatalError as exc:
            return _refused(409, str(exc))
        done = session.done.pop()
    return JSONResponse({"ok": True, "asset": done.asset_id, "message": message})


# -- what the pages show ------------------------------------------------------------------------------


def _find(resolution: Resolution, asset_id: str) -> ImageRequest | None:
    return next((r for r in resolution.all_requests() if r.asset_id == asset_id), None)


def _queue_item(resolution: Resolution, req: ImageRequest, thumbnails: Thumbnails) -> QueueItem:
    index = StateIndex(resolution)
    review = assess_reviews(resolution, index, [req])[0]
    interrupted = assess(resolution, index, [req])[0].status == INTERRUPTED
    return load_cards(resolution, [Queued(req, review.status, interrupted)], thumbnails)[0]


@dataclass(frozen=True)
class ReferenceView:
    """A reference image shown beside the candidates: one the shot names, or the approved image an
    edit is made from (role ``approved``)."""

    path: str  # project-relative
    role: str
    thumb: Thumb | None  # None: the file is missing


@dataclass(frozen=True)
class AssetPane:
    """Everything the asset pane shows: large candidates, references, what changed since the
    approved request, the cost, the records."""

    view: AssetView
    attributes: Mapping[str, str]
    changes: tuple[str, ...]  # since the approved request, when the approval is stale
    references: tuple[ReferenceView, ...]
    edit: Mapping[str, Any] | None
    cost: float  # at list prices, for every image of the asset's candidates
    images: int
    records: tuple[str, ...]  # project-relative record files


def _asset_pane(resolution: Resolution, req: ImageRequest, large: Thumbnails) -> AssetPane:
    store = AssetStore(resolution.root)
    view = read_asset(store, req, large)
    record = store.read_asset(req.asset_dir)
    approval = record.approval if record else None
    changes: list[str] = []
    if approval is not None and approval.request_hash != req.request_hash and approval.request is not None:
        changes = describe_changes(approval.request, req.record())
    references = tuple(
        ReferenceView(ref.path, ref.role, large.ensure(ref.path, ref.sha256) if store.exists(ref.path) else None)
        for ref in req.references
    )
    images, cost, _ = estimate_cost([(req, range(1, req.candidates + 1))])
    records = tuple(
        path for path in (f"{req.asset_dir}/asset.json", f"{req.asset_dir}/index.json") if store.exists(path)
    )
    return AssetPane(view, {**req.fixed, **req.vary}, tuple(changes), references, req.edit, cost, images, records)


def _menus(resolution: Resolution, requests: Iterable[ImageRequest], batches: tuple[str, ...]) -> dict[str, Any]:
    vary: dict[str, dict[str, None]] = {}
    shots: dict[str, None] = {}
    for req in requests:
        shots.setdefault(req.shot)
        for k, v in req.vary.items():
            vary.setdefault(k, {}).setdefault(v)
    return {
        "batches": list(batches) or [b.id for b in resolution.project.batches],
        "shots": list(shots),
        "vary": {k: list(v) for k, v in vary.items()},
    }


def _counts(queue: Sequence[Queued]) -> dict[str, int]:
    counts = dict.fromkeys(FILTER_STATES, 0)
    for item in queue:
        for tag in item.tags:
            counts[tag] += 1
    return counts


# -- serving ----------------------------------------------------------------------------------------------


class StudioServer:
    """uvicorn serving the studio on 127.0.0.1, on `port` (0: a free one). `start()` runs it in a
    thread (tests, benchmarks); `serve()` in the calling thread until Ctrl-C (the command)."""

    def __init__(self, app: Starlette, port: int = 0) -> None:
        self.app = app
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((HOST, port))
        # Listen now: the address is printed before uvicorn starts, and a browser (or a script)
        # that connects at once must wait in the backlog, not be refused.
        self._socket.listen(128)
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self._socket.getsockname()[1]}/"

    def serve(self) -> None:
        self._server.run(sockets=[self._socket])

    def start(self) -> StudioServer:
        self._thread = threading.Thread(target=self.serve, name="imgbuild-review", daemon=True)
        self._thread.start()
        while not self._server.started and self._thread.is_alive():
            threading.Event().wait(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._socket.close()
