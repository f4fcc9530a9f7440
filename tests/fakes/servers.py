"""A loopback fake of the three hosted Seedream APIs: Ark (BytePlus/Volcengine), Replicate and fal.

``FakeProviders`` serves all three from one threading HTTP server on 127.0.0.1: Ark's synchronous
``images/generations``, Replicate predictions (create, poll, cancel, ``Prefer: wait``, file
uploads), the fal queue (submit, status, result, cancel, storage uploads) and the generated images.
Request and answer shapes follow the provider research notes (docs/models.md names the sources).

It is realistic where a client can go wrong: wrong keys, throttling with ``Retry-After``, server
errors, connections dropped before an answer, downloads cut short, content filters, per-image
failures in multi-image calls, jobs that outlive the client that created them, signed download
URLs that break when re-escaped. Everything received is recorded (``requests``), and every
accepted, paid-for call is counted (``billed``), so a test can assert that nothing was paid twice.

Faults are injected before any work is done: a faulted create creates nothing and bills nothing.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import email.message
import hashlib
import io
import json
import random
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Literal, cast
from urllib.parse import parse_qsl, quote, urlsplit

from PIL import Image, ImageDraw
from PIL.PngImagePlugin import PngInfo

__all__ = [
    "ARK_MODELS",
    "DEFAULT_KEYS",
    "FAL_MODELS",
    "FAULTS",
    "REPLICATE_MODELS",
    "FakeProviders",
    "RecordedRequest",
    "Upload",
]

DEFAULT_KEYS: Final[dict[str, str]] = {
    "ark": "ark-fake-key",
    "replicate": "r8_fake_token",
    "fal": "fal-fake-id:fal-fake-secret",
}
FAULTS: Final = ("429", "500", "drop")
"""The faults drawn for an API call: throttled, server error, connection closed without an answer."""

# Calls that count as API calls for fault injection (downloads get `cut_rate` instead).
_API_KINDS: Final = frozenset({"create", "poll", "status", "result", "cancel", "upload", "file"})

# Recommended WxH per size tier and aspect ratio (imgbuild/data/models.json holds the same table).
_SIZES: Final[dict[str, dict[str, tuple[int, int]]]] = {
    "1K": {
        "1:1": (1024, 1024), "4:3": (1152, 864), "3:4": (864, 1152), "16:9": (1280, 720),
        "9:16": (720, 1280), "3:2": (1248, 832), "2:3": (832, 1248), "21:9": (1512, 648),
    },
    "2K": {
        "1:1": (2048, 2048), "4:3": (2304, 1728), "3:4": (1728, 2304), "16:9": (2848, 1600),
        "9:16": (1600, 2848), "3:2": (2496, 1664), "2:3": (1664, 2496), "21:9": (3136, 1344),
    },
    "3K": {
        "1:1": (3072, 3072), "4:3": (3456, 2592), "3:4": (2592, 3456), "16:9": (4096, 2304),
        "9:16": (2304, 4096), "3:2": (3744, 2496), "2:3": (2496, 3744), "21:9": (4704, 2016),
    },
    "4K": {
        "1:1": (4096, 4096), "4:3": (4704, 3520), "3:4": (3520, 4704), "16:9": (5504, 3040),
        "9:16": (3040, 5504), "3:2": (4992, 3328), "2:3": (3328, 4992), "21:9": (6240, 2656),
    },
}  # fmt: skip


@dataclass(frozen=True)
class _ArkFamily:
    tiers: tuple[str, ...]
    pixels: tuple[int, int]
    png: bool  # the 5.0 family and 5.5 honour output_format; 4.x always answers JPEG
    max_references: int = 14
    sequential: bool = True  # 5.0 Pro / Flash and 5.5 answer 400 to any sequential or stream field
    default_png: bool = False  # 5.5 answers PNG when output_format is not given


_ARK_5_LITE: Final = _ArkFamily(("2K", "3K"), (3_686_400, 10_404_496), png=True)
_ARK_4_5: Final = _ArkFamily(("2K", "4K"), (3_686_400, 16_777_216), png=False)
_ARK_4_0: Final = _ArkFamily(("1K", "2K", "4K"), (921_600, 16_777_216), png=False, max_references=10)
_ARK_5_PRO: Final = _ArkFamily(("1K", "2K"), (921_600, 4_194_304), png=True, max_references=10, sequential=False)
_ARK_5_FLASH: Final = _ArkFamily(("1K", "2K"), (921_600, 4_194_304), png=True, max_references=10, sequential=False)
_ARK_5_5: Final = _ArkFamily(
    ("1K", "2K"), (921_600, 4_556_800), png=True, max_references=10, sequential=False, default_png=True
)

ARK_MODELS: Final[dict[str, _ArkFamily]] = {
    "seedream-5-0-260128": _ARK_5_LITE,
    "seedream-5-0-lite-260128": _ARK_5_LITE,
    "doubao-seedream-5-0-260128": _ARK_5_LITE,
    "doubao-seedream-5-0-lite-260128": _ARK_5_LITE,
    "seedream-4-5-251128": _ARK_4_5,
    "doubao-seedream-4-5-251128": _ARK_4_5,
    "seedream-4-0-250828": _ARK_4_0,
    "doubao-seedream-4-0-250828": _ARK_4_0,
    "seedream-5-0-pro-260628": _ARK_5_PRO,
    "doubao-seedream-5-0-pro-260628": _ARK_5_PRO,
    "seedream-5-0-flash-260915": _ARK_5_FLASH,
    "seedream-5-5-261028": _ARK_5_5,
    "dola-seedream-5-5-261028": _ARK_5_5,
    "doubao-seedream-5-5-261028": _ARK_5_5,
}
"""Ark model ids the fake knows; any other id (endpoint ids `ep-…` included) answers 404."""


@dataclass(frozen=True)
class _ReplicateModel:
    sizes: tuple[str, ...]
    max_references: int
    png: bool  # only the 5.0 models have output_format (png by default); 4 / 4.5 answer JPEG
    sequential: bool = True  # seedream-5-pro has no sequential_image_generation / max_images


REPLICATE_MODELS: Final[dict[str, _ReplicateModel]] = {
    "bytedance/seedream-4": _ReplicateModel(("1K", "2K", "4K", "custom"), 10, png=False),
    "bytedance/seedream-4.5": _ReplicateModel(("2K", "4K", "custom"), 14, png=False),
    "bytedance/seedream-5-lite": _ReplicateModel(("2K", "3K"), 14, png=True),
    "bytedance/seedream-5-pro": _ReplicateModel(("1K", "2K"), 10, png=True, sequential=False),
}

FAL_MODELS: Final[frozenset[str]] = frozenset(
    f"fal-ai/bytedance/seedream/{version}/{mode}"
    for version in ("v4", "v4.5", "v5/lite", "v5/pro", "v5/flash")
    for mode in ("text-to-image", "edit")
)
_FAL_SINGLE: Final = ("fal-ai/bytedance/seedream/v5/pro/", "fal-ai/bytedance/seedream/v5/flash/")
"""fal models that make one image per generation: `max_images` is not one of their inputs."""
"""fal model ids (endpoint paths) the fake knows; `…/edit` ones require `image_urls`."""

_FAL_PRESETS: Final[dict[str, tuple[int, int]]] = {
    "square_hd": (1024, 1024),
    "square": (512, 512),
    "portrait_4_3": (768, 1024),
    "portrait_16_9": (576, 1024),
    "landscape_4_3": (1024, 768),
    "landscape_16_9": (1024, 576),
    "auto": (2048, 2048),
    "auto_2K": (2048, 2048),
    "auto_3K": (3072, 3072),
    "auto_4K": (4096, 4096),
}
_ASPECT_RATIOS: Final = ("match_input_image", *_SIZES["2K"])

_E005: Final = "The input or output was flagged as sensitive. Please try again with different inputs. (E005)"
_FAL_CONTENT_POLICY: Final = (
    "The content could not be processed because it contained material flagged by a content checker."
)


@dataclass
class RecordedRequest:
    """One request as the fake received it (faulted ones included)."""

    method: str
    target: str  # the request target as sent: path and raw query
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lowercased names
    body: bytes = field(repr=False)
    json: Any  # the parsed body when it is JSON, else None
    provider: str | None  # "ark", "replicate", "fal"; for downloads the provider that made the file
    kind: str  # create, poll, status, result, cancel, upload, file, download, other
    fault: str | None  # "429", "500", "drop" (API calls) or "cut" (downloads); None when answered normally
    received: float  # time.monotonic() on arrival
    status: int | None = None  # the answer's status; None while being answered or when dropped


@dataclass(frozen=True)
class Upload:
    """Bytes a client uploaded (Replicate files API, fal storage)."""

    provider: str
    data: bytes = field(repr=False)
    content_type: str
    file_name: str
    url: str


@dataclass(frozen=True)
class _Incoming:
    method: str
    target: str
    path: str
    raw_query: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False  # close the connection without answering
    cut: bool = False  # full Content-Length, half the body, then close


@dataclass(frozen=True)
class _File:
    data: bytes
    content_type: str
    provider: str
    signed_query: str = ""  # when set, a download must carry exactly this query (signed URL)


@dataclass(frozen=True)
class _Image:
    url: str
    width: int  # the size the real API would have produced; the served file is tiny
    height: int
    content_type: str
    file_name: str
    file_size: int
    data: bytes = field(repr=False)


@dataclass
class _Job:
    """A Replicate prediction or a fal request: done `latency` seconds after creation."""

    provider: str
    id: str
    model: str
    input: dict[str, Any]
    created: float  # monotonic
    created_at: datetime
    done_at: float  # monotonic
    images: list[_Image]
    failure: Any = None  # Replicate: error message; fal: the 422 `detail` list
    canceled_at: float | None = None
    seed: int = 0

    def phase(self, now: float) -> Literal["queued", "running", "done", "canceled"]:
        if self.canceled_at is not None:
            return "canceled"
        if now >= self.done_at:
            return "done"
        return "running" if now >= (self.created + self.done_at) / 2 else "queued"

    def wall(self, at: float) -> datetime:
        return self.created_at + timedelta(seconds=at - self.created)


Action = Callable[[_Incoming], _Reply]


def _json_reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> _Reply:
    return _Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


def _try_json(body: bytes) -> Any:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _ark_request_id() -> str:
    return "0217" + secrets.token_hex(16)


def _ark_error(status: int, code: str, message: str, param: str = "", request_id: str | None = None) -> _Reply:
    request_id = request_id or _ark_request_id()
    kind = {400: "BadRequest", 401: "Unauthorized", 404: "NotFound", 429: "TooManyRequests"}.get(
        status, "InternalServerError"
    )
    payload = {"error": {"code": code, "message": f"{message} Request id: {request_id}", "param": param, "type": kind}}
    return _json_reply(status, payload, {"X-Request-Id": request_id})


def _replicate_error(status: int, title: str, detail: str, **extra: Any) -> _Reply:
    payload = {"title": title, "detail": detail, "status": status, **extra}
    return _Reply(status, json.dumps(payload).encode(), {"Content-Type": "application/problem+json"})


def _fal_invalid(loc: str, msg: str, kind: str = "value_error") -> dict[str, Any]:
    return {"loc": ["body", loc], "msg": msg, "type": kind}


def render_image(label: str, width: int, height: int, fmt: str) -> bytes:
    """A tiny decodable PNG or JPEG with the aspect of `width`x`height`, coloured by `label`.

    The label (job id and image index) is also stored in the file: PNG text `fake`, JPEG comment.
    """
    scale = 64 / max(width, height, 1)
    size = (max(8, round(width * scale)), max(8, round(height * scale)))
    digest = hashlib.sha256(label.encode()).digest()
    image = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    ImageDraw.Draw(image).rectangle((0, 0, size[0] // 2, size[1] // 3), fill=(digest[3], digest[4], digest[5]))
    buffer = io.BytesIO()
    if fmt == "png":
        info = PngInfo()
        info.add_text("fake", label)
        image.save(buffer, "PNG", pnginfo=info)
    else:
        image.save(buffer, "JPEG", quality=90, comment=label.encode())
    return buffer.getvalue()


def _multipart(content_type: str, body: bytes) -> list[tuple[str, str | None, str | None, bytes]]:
    """(name, filename, content type, bytes) of each part of a multipart/form-data body."""
    header = email.message.Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        raise ValueError("not multipart/form-data with a boundary")
    parts = []
    delimiter = b"\r\n--" + boundary.encode()
    for section in (b"\r\n" + body).split(delimiter)[1:]:
        if section.startswith(b"--"):
            break
        head, separator, content = section.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        if not separator:
            raise ValueError("a part without a header block")
        headers = message_from_bytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if not isinstance(name, str):
            raise ValueError("a part without a name")
        part_type = headers.get("Content-Type")
        parts.append((name, headers.get_filename(), str(part_type) if part_type else None, content))
    return parts


def _int_in(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


class FakeProviders:
    """Ark, Replicate and fal on one loopback server; use as a context manager (or start()/close()).

    Attributes may be changed while it runs (`latency`, `fault_rate`, `cut_rate`, `keys`, `filtered`); jobs keep
    the latency they were created with. Jobs and files stay in memory whoever disconnects, so a
    new client can resume polling a job that a killed one created.
    """

    def __init__(
        self,
        *,
        keys: dict[str, str] | None = None,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        cut_rate: float = 0.0,
        seed: int = 0,
        faults: tuple[str, ...] = FAULTS,
    ) -> None:
        self.keys: dict[str, str] = {**DEFAULT_KEYS, **(keys or {})}
        self.latency = latency
        self.fault_rate = fault_rate
        self.cut_rate = cut_rate
        self.faults = faults
        self.retry_after = "0"  # the Retry-After of a 429
        self.filtered = 0  # the next N accepted Ark creates answer with every output filtered (not billed)
        self.requests: list[RecordedRequest] = []
        self.billed: Counter[str] = Counter()  # accepted creates per provider
        self.billed_images: Counter[str] = Counter()  # images delivered per provider
        self.downloads: Counter[str] = Counter()  # image GETs per path (cut ones included)
        self.uploads: list[Upload] = []
        self._random = random.Random(seed)
        self._cut_credit = 0.5
        self._lock = threading.Lock()
        self._files: dict[str, _File] = {}  # served under /files/…, keyed by path
        self._replicate_files: dict[str, dict[str, Any]] = {}
        self._fal_pending: dict[str, tuple[str, str]] = {}  # upload token -> content type, file name
        self._jobs: dict[str, _Job] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._url: str | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FakeProviders:
        """Start serving in a daemon thread (idempotent)."""
        if self._server is None:
            self._server = _Server(self)
            self._url = f"http://127.0.0.1:{self._server.server_address[1]}"
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="fake-providers", daemon=True
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and end open connections; jobs and records stay readable."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server.close_connections()
            if self._thread is not None:
                self._thread.join()
            self._server = self._thread = None

    def __enter__(self) -> FakeProviders:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def url(self) -> str:
        """`http://127.0.0.1:PORT` (the server must have been started)."""
        if self._url is None:
            raise RuntimeError("FakeProviders is not running: use it as a context manager or call start()")
        return self._url

    @property
    def base_urls(self) -> dict[str, str]:
        """API bases to give the clients: ark, replicate, fal (queue) and fal_storage."""
        return {
            "ark": f"{self.url}/ark/api/v3",
            "replicate": f"{self.url}/replicate/v1",
            "fal": f"{self.url}/fal",
            "fal_storage": f"{self.url}/fal-rest",
        }

    # -- what tests read -----------------------------------------------------------------------

    def creates(self, provider: str) -> list[RecordedRequest]:
        """The create requests for `provider` that were not faulted (whatever they were answered)."""
        with self._lock:
            return [r for r in self.requests if r.provider == provider and r.kind == "create" and r.fault is None]

    def bodies(self, provider: str) -> list[Any]:
        """The JSON bodies of creates(provider) (Replicate: the whole `{"input": …}` body)."""
        return [r.json for r in self.creates(provider)]

    def calls(self, provider: str | None = None, kind: str | None = None) -> list[RecordedRequest]:
        """Recorded requests, optionally only one provider's and/or one kind's."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (provider is None or r.provider == provider) and (kind is None or r.kind == kind)
            ]

    def job_status(self, job_id: str) -> str:
        """A Replicate prediction's or fal request's phase now: queued, running, done or canceled."""
        with self._lock:
            return self._jobs[job_id].phase(time.monotonic())

    # -- dispatch --------------------------------------------------------------------------------

    def _handle(self, incoming: _Incoming) -> _Reply:
        provider, kind, action, needs_auth = self._route(incoming)
        fault = self._draw_fault(kind)
        record = RecordedRequest(
            method=incoming.method,
            target=incoming.target,
            path=incoming.path,
            query=incoming.query,
            headers=incoming.headers,
            body=incoming.body,
            json=_try_json(incoming.body),
            provider=provider,
            kind=kind,
            fault=fault,
            received=time.monotonic(),
        )
        with self._lock:
            self.requests.append(record)
        if fault in ("429", "500", "drop"):
            reply = self._fault_reply(provider, fault)
        elif needs_auth and provider is not None and not self._authorized(provider, incoming.headers):
            reply = self._unauthorized(provider)
        else:
            reply = action(incoming)
            if fault == "cut":
                if reply.status == 200:
                    reply.cut = True
                else:
                    record.fault = None
        record.status = None if reply.drop else reply.status
        return reply

    def _draw_fault(self, kind: str) -> str | None:
        with self._lock:
            if kind in _API_KINDS and self.fault_rate > 0 and self._random.random() < self.fault_rate:
                return self._random.choice(self.faults)
            if kind == "download" and self.cut_rate > 0:
                # Spread evenly, not drawn: exactly `cut_rate` of the downloads are cut (1 in 20 at 5%),
                # so a test of a few dozen downloads always meets some.
                self._cut_credit += self.cut_rate
                if self._cut_credit >= 1.0:
                    self._cut_credit -= 1.0
                    return "cut"
        return None

    def _route(self, req: _Incoming) -> tuple[str | None, str, Action, bool]:
        method, path = req.method, req.path
        if path.startswith("/ark/"):
            if method == "POST" and path == "/ark/api/v3/images/generations":
                return "ark", "create", self._ark_create, True
            return "ark", "other", lambda _: _ark_error(404, "NotFound", "The requested resource was not found."), True
        if path.startswith("/replicate/"):
            routes: list[tuple[str, str, str, Callable[..., _Reply]]] = [
                ("POST", r"/replicate/v1/models/([^/]+)/([^/]+)/predictions", "create", self._replicate_create),
                ("GET", r"/replicate/v1/predictions/([^/]+)", "poll", self._replicate_poll),
                ("POST", r"/replicate/v1/predictions/([^/]+)/cancel", "cancel", self._replicate_cancel),
                ("POST", r"/replicate/v1/files", "upload", self._replicate_upload),
                ("GET", r"/replicate/v1/files/([^/]+)", "file", self._replicate_file),
            ]
            for verb, pattern, kind, handler in routes:
                match = re.fullmatch(pattern, path)
                if match and method == verb:
                    return "replicate", kind, partial(handler, *match.groups()), True
            return "replicate", "other", lambda _: _json_reply(404, {"detail": "Not found."}), True
        if path.startswith("/fal/"):
            match = re.fullmatch(r"/fal/([^/]+)/([^/]+)/requests/([^/]+)(/status|/cancel)?", path)
            if match and method in ("GET", "PUT"):
                owner_app, request_id, tail = f"{match[1]}/{match[2]}", match[3], match[4] or ""
                if method == "GET" and tail == "/status":
                    return "fal", "status", partial(self._fal_status, owner_app, request_id), True
                if method == "GET" and not tail:
                    return "fal", "result", partial(self._fal_result, owner_app, request_id), True
                if method == "PUT" and tail == "/cancel":
                    return "fal", "cancel", partial(self._fal_cancel, owner_app, request_id), True
            if method == "POST":
                return "fal", "create", partial(self._fal_create, path.removeprefix("/fal/")), True
            return "fal", "other", lambda _: _json_reply(404, {"detail": "Not Found"}), True
        if method == "POST" and path == "/fal-rest/storage/upload/initiate":
            return "fal", "upload", self._fal_initiate, True
        if method == "PUT" and path.startswith("/fal-upload/"):
            # A presigned upload URL: no Authorization header, like the storage bucket it stands for.
            return "fal", "upload", partial(self._fal_put, path.removeprefix("/fal-upload/")), False
        if method == "GET" and path.startswith("/files/"):
            with self._lock:
                stored = self._files.get(path)
            return (stored.provider if stored else None), "download", self._download, False
        return None, "other", lambda _: _json_reply(404, {"detail": "Not Found"}), False

    def _authorized(self, provider: str, headers: dict[str, str]) -> bool:
        key = self.keys.get(provider)
        given = headers.get("authorization", "")
        if not key:
            return False
        if provider == "fal":
            return given == f"Key {key}"
        if provider == "replicate":
            return given in (f"Bearer {key}", f"Token {key}")
        return given == f"Bearer {key}"

    @staticmethod
    def _unauthorized(provider: str) -> _Reply:
        if provider == "ark":
            return _ark_error(401, "AuthenticationError", "The API key in the request is missing or invalid.")
        if provider == "replicate":
            return _replicate_error(401, "Unauthenticated", "You did not pass a valid authentication token")
        return _json_reply(401, {"detail": "Invalid key"})

    def _fault_reply(self, provider: str | None, fault: str) -> _Reply:
        if fault == "drop":
            return _Reply(0, drop=True)
        if fault == "429":
            retry = {"Retry-After": self.retry_after}
            if provider == "ark":
                reply = _ark_error(
                    429,
                    "RateLimitExceeded.EndpointRPMExceeded",
                    "The request has exceeded the requests per minute (RPM) limit of the endpoint. Please try again"
                    " later.",
                )
                reply.headers.update(retry)
                return reply
            if provider == "replicate":
                return _json_reply(429, {"detail": "Request was throttled. Your rate limit resets in ~1s."}, retry)
            return _json_reply(429, {"detail": "Too many requests: concurrency limit reached, retry later."}, retry)
        if provider == "ark":
            return _ark_error(500, "InternalServiceError", "The service encountered an unexpected internal error.")
        if provider == "replicate":
            return _replicate_error(500, "Internal Server Error", "An unexpected error occurred.")
        return _json_reply(500, {"detail": "Internal server error"})

    # -- shared pieces ---------------------------------------------------------------------------

    def _store_image(
        self, provider: str, path: str, label: str, size: tuple[int, int], fmt: str, query: str = ""
    ) -> _Image:
        data = render_image(label, size[0], size[1], fmt)
        content_type = "image/png" if fmt == "png" else "image/jpeg"
        with self._lock:
            self._files[path] = _File(data, content_type, provider, query)
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        return _Image(url, size[0], size[1], content_type, path.rsplit("/", 1)[-1], len(data), data)

    def _reference_problem(self, ref: Any) -> str | None:
        """Why a reference image (URL or data URL) would not load, or None when it would."""
        if not isinstance(ref, str):
            return "is not a string"
        if ref.startswith("data:"):
            match = re.fullmatch(r"data:image/([A-Za-z0-9.+-]+);base64,(.*)", ref, re.DOTALL)
            if not match:
                return "is not a base64 image data URL (data:image/<format>;base64,...)"
            if match[1] != match[1].lower():
                return "has an upper-case image format in its data URL"
            try:
                data = base64.b64decode(match[2], validate=True)
            except binascii.Error:
                return "has invalid base64 data"
            try:
                with Image.open(io.BytesIO(data)) as image:
                    image.verify()
            except Exception:
                return "does not decode as an image"
            return None
        if ref.startswith(f"{self.url}/"):
            path = urlsplit(ref).path
            replicate_file = re.fullmatch(r"/replicate/v1/files/([^/]+)", path)
            with self._lock:
                known = path in self._files or bool(replicate_file and replicate_file[1] in self._replicate_files)
            return None if known else "could not be downloaded (404)"
        if ref.startswith(("http://", "https://")):
            return None
        return "is neither an http(s) URL nor a data URL"

    def _new_job(
        self, provider: str, job_id: str, model: str, inputs: dict[str, Any], images: list[_Image], failure: Any
    ) -> _Job:
        now = time.monotonic()
        job = _Job(provider, job_id, model, inputs, now, datetime.now(UTC), now + self.latency, images, failure)
        job.seed = inputs["seed"] if _int_in(inputs.get("seed"), 0, 2**32) else secrets.randbelow(2**31)
        with self._lock:
            self._jobs[job_id] = job
            self.billed[provider] += 1
            if failure is None:
                self.billed_images[provider] += len(images)
        return job

    def _job(self, provider: str, job_id: str) -> _Job | None:
        with self._lock:
            job = self._jobs.get(job_id)
        return job if job is not None and job.provider == provider else None

    # -- Ark -------------------------------------------------------------------------------------

    def _ark_create(self, req: _Incoming) -> _Reply:
        request_id = _ark_request_id()

        def invalid(param: str, message: str, code: str = "InvalidParameter") -> _Reply:
            text = f"The parameter `{param}` specified in the request is not valid: {message}."
            if code == "MissingParameter":
                text = f"The request failed because it is missing one or multiple required parameters: {param}."
            return _ark_error(400, code, text, param, request_id)

        body = _try_json(req.body)
        if not isinstance(body, dict):
            return invalid("body", "the request body must be a JSON object")
        model, prompt = body.get("model"), body.get("prompt")
        if not isinstance(model, str) or not model:
            return invalid("model", "", "MissingParameter")
        family = ARK_MODELS.get(model)
        if family is None:
            message = f"The model or endpoint {model} does not exist or you do not have access to it."
            return _ark_error(404, "InvalidEndpointOrModel.NotFound", message, "model", request_id)
        if not isinstance(prompt, str) or not prompt:
            return invalid("prompt", "", "MissingParameter")
        if not family.sequential:
            for param in ("stream", "sequential_image_generation", "sequential_image_generation_options"):
                if param in body:  # even "disabled" / false: these models do not know the field
                    return invalid(param, "this model does not support this parameter")
        if body.get("stream"):
            return invalid("stream", "streaming is not supported by this fake")
        size_or_error = self._ark_size(family, body.get("size", "2048x2048"))
        if isinstance(size_or_error, str):
            return invalid("size", size_or_error)
        size = size_or_error
        response_format = body.get("response_format", "url")
        if response_format not in ("url", "b64_json"):
            return invalid("response_format", "must be url or b64_json")
        if "watermark" in body and not isinstance(body["watermark"], bool):
            return invalid("watermark", "must be a boolean")
        output_format = body.get("output_format", "png" if family.default_png else "jpeg")
        if output_format not in ("png", "jpeg"):
            return invalid("output_format", "must be png or jpeg")
        fmt = output_format if family.png else "jpeg"
        sequential = body.get("sequential_image_generation", "disabled")
        if sequential not in ("auto", "disabled"):
            return invalid("sequential_image_generation", "must be auto or disabled")
        options = body.get("sequential_image_generation_options") or {}
        max_images = options.get("max_images", 15) if isinstance(options, dict) else None
        if not _int_in(max_images, 1, 15):
            return invalid("sequential_image_generation_options.max_images", "must be an integer in [1, 15]")
        image = body.get("image")
        references = [] if image is None else image if isinstance(image, list) else [image]
        if len(references) > family.max_references:
            return invalid("image", f"at most {family.max_references} reference images are supported")
        for ref in references:
            problem = self._reference_problem(ref)
            if problem:
                return invalid("image", f"the image {problem}")
        if "FORBIDDEN" in prompt:
            message = "The request failed because the input text may contain sensitive information."
            return _ark_error(400, "InputTextSensitiveContentDetected", message, "prompt", request_id)

        count = min(cast(int, max_images), 15 - len(references)) if sequential == "auto" else 1
        with self._lock:
            filtered, self.filtered = self.filtered > 0, max(0, self.filtered - 1)
        if self.latency:
            time.sleep(self.latency)
        data: list[dict[str, Any]] = []
        stamp = datetime.now(UTC)
        for index in range(count):
            if filtered or ("PARTIAL" in prompt and count > 1 and index == count - 1):
                message = "The request failed because the output image may contain sensitive information."
                data.append({"error": {"code": "OutputImageSensitiveContentDetected", "message": message}})
                continue
            name = f"{request_id}-{index}"
            query = (
                "X-Tos-Algorithm=TOS4-HMAC-SHA256"
                f"&X-Tos-Credential=AKLTfake%2F{stamp:%Y%m%d}%2Fap-southeast-1%2Ftos%2Frequest"
                f"&X-Tos-Date={stamp:%Y%m%dT%H%M%SZ}&X-Tos-Expires=86400"
                f"&X-Tos-Signature={hashlib.sha256(name.encode()).hexdigest()}&X-Tos-SignedHeaders=host"
            )
            stored = self._store_image("ark", f"/files/ark/{name}.{fmt}", f"ark:{name}", size, fmt, query)
            item: dict[str, Any] = {"size": f"{size[0]}x{size[1]}"}
            if response_format == "b64_json":
                item = {"b64_json": base64.b64encode(stored.data).decode(), **item}
            else:
                item = {"url": stored.url, **item}
            data.append(item)
        generated = sum(1 for item in data if "error" not in item)
        tokens = round(generated * size[0] * size[1] / 256)
        answer = {
            "model": model,
            "created": int(time.time()),
            "data": data,
            "usage": {"generated_images": generated, "output_tokens": tokens, "total_tokens": tokens},
        }
        with self._lock:
            self.billed["ark"] += 1
            self.billed_images["ark"] += generated
        return _json_reply(200, answer, {"X-Request-Id": request_id})

    @staticmethod
    def _ark_size(family: _ArkFamily, size: Any) -> tuple[int, int] | str:
        if not isinstance(size, str):
            return "must be a string"
        if size.upper() in _SIZES:
            if size.upper() not in family.tiers:
                return f"this model supports the sizes {', '.join(family.tiers)} or WxH"
            return _SIZES[size.upper()]["1:1"]
        match = re.fullmatch(r"(\d+)x(\d+)", size)
        if not match:
            return "must be a size tier such as 2K or WIDTHxHEIGHT"
        width, height = int(match[1]), int(match[2])
        low, high = family.pixels
        if not low <= width * height <= high:
            return f"the image must have between {low} and {high} pixels"
        if not 1 / 16 <= width / max(height, 1) <= 16:
            return "the aspect ratio must be between 1/16 and 16"
        return width, height

    # -- Replicate -------------------------------------------------------------------------------

    def _replicate_base(self) -> str:
        return f"{self.url}/replicate/v1"

    def _replicate_create(self, owner: str, name: str, req: _Incoming) -> _Reply:
        model = f"{owner}/{name}"
        spec = REPLICATE_MODELS.get(model)
        if spec is None:
            return _json_reply(404, {"detail": "Not found."})
        body = _try_json(req.body)
        inputs = body.get("input") if isinstance(body, dict) else None
        if isinstance(inputs, dict):
            invalid = self._replicate_invalid(spec, inputs)
        else:
            invalid = [{"type": "required", "field": "input", "description": "input is required"}]
        if invalid or not isinstance(inputs, dict):
            return _replicate_error(
                422,
                "Input validation failed",
                "\n".join(f"- {f['field']}: {f['description']}" for f in invalid),
                invalid_fields=invalid,
            )
        references = list(inputs.get("image_input") or [])
        count = min(inputs.get("max_images", 1), 15 - len(references))
        count = max(count, 1) if inputs.get("sequential_image_generation") == "auto" else 1
        failure = None
        if "FORBIDDEN" in inputs["prompt"]:
            failure = _E005
        for ref in references:
            problem = self._reference_problem(ref)
            if problem:
                failure = f"Failed to load image_input {ref[:80]!r}: it {problem}"
        if "PARTIAL" in inputs["prompt"] and count > 1:
            count -= 1
        fmt = inputs.get("output_format", "png") if spec.png else "jpeg"
        size = self._replicate_dimensions(inputs)
        prediction_id = base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]
        images = []
        for index in range(0 if failure else count):
            path = f"/files/replicate/{prediction_id}/out-{index}.{fmt}"
            images.append(self._store_image("replicate", path, f"replicate:{prediction_id}:{index}", size, fmt))
        job = self._new_job("replicate", prediction_id, model, inputs, images, failure)
        wait = re.fullmatch(r"\s*wait(?:\s*=\s*(\d+))?\s*", req.headers.get("prefer", ""))
        if wait:
            seconds = min(max(int(wait[1] or 60), 1), 60)
            remaining = min(job.done_at, job.created + seconds) - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)
        prediction = self._prediction(job)
        return _json_reply(201, prediction, {"Location": prediction["urls"]["get"]})

    @staticmethod
    def _replicate_invalid(spec: _ReplicateModel, inputs: dict[str, Any]) -> list[dict[str, str]]:
        problems: list[dict[str, str]] = []

        def bad(kind: str, name: str, description: str) -> None:
            problems.append({"type": kind, "field": f"input.{name}", "description": description})

        if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"]:
            bad("required", "prompt", "prompt is required")
        if not spec.sequential:
            for name in ("sequential_image_generation", "max_images"):
                if name in inputs:
                    bad("additional_property_not_allowed", name, f"Additional property {name} is not allowed")
        enums = {
            "size": spec.sizes,
            "aspect_ratio": _ASPECT_RATIOS,
            "sequential_image_generation": ("disabled", "auto"),
            **({"output_format": ("png", "jpeg")} if spec.png else {}),
        }
        for name, allowed in enums.items():
            if name in inputs and inputs[name] not in allowed:
                bad("enum", name, f"{name} must be one of the following: " + ", ".join(f'"{a}"' for a in allowed))
        if "max_images" in inputs and not _int_in(inputs["max_images"], 1, 15):
            bad("number_one_of", "max_images", "Must be an integer between 1 and 15")
        for name in ("width", "height"):
            if name in inputs and not _int_in(inputs[name], 1024, 4096):
                bad("number_one_of", name, "Must be an integer between 1024 and 4096")
        refs = inputs.get("image_input")
        if refs is not None:
            if not isinstance(refs, list) or not all(isinstance(r, str) for r in refs):
                bad("invalid_type", "image_input", "Invalid type. Expected: array of URI strings")
            elif len(refs) > spec.max_references:
                bad("array_max_items", "image_input", f"Array must have at most {spec.max_references} items")
        return problems

    @staticmethod
    def _replicate_dimensions(inputs: dict[str, Any]) -> tuple[int, int]:
        size = inputs.get("size", "2K")
        if size == "custom":
            return inputs.get("width", 2048), inputs.get("height", 2048)
        aspect = inputs.get("aspect_ratio", "match_input_image")
        return _SIZES[size].get(aspect, _SIZES[size]["1:1"])

    def _prediction(self, job: _Job) -> dict[str, Any]:
        now = time.monotonic()
        phase = job.phase(now)
        base = self._replicate_base()
        status = {"queued": "starting", "running": "processing", "canceled": "canceled"}.get(
            phase, "failed" if job.failure else "succeeded"
        )
        started = (job.created + job.done_at) / 2
        prediction: dict[str, Any] = {
            "id": job.id,
            "model": job.model,
            "version": hashlib.sha256(job.model.encode()).hexdigest(),
            "input": job.input,
            "logs": "" if phase == "queued" else "Generating images...\n",
            "output": None,
            "data_removed": False,
            "error": None,
            "source": "api",
            "status": status,
            "created_at": _iso(job.created_at),
            "urls": {
                "cancel": f"{base}/predictions/{job.id}/cancel",
                "get": f"{base}/predictions/{job.id}",
                "web": f"https://replicate.com/p/{job.id}",
            },
        }
        if phase in ("running", "done") or (phase == "canceled" and cast(float, job.canceled_at) >= started):
            prediction["started_at"] = _iso(job.wall(started))
        if phase == "canceled":
            prediction["completed_at"] = _iso(job.wall(cast(float, job.canceled_at)))
        if phase == "done":
            prediction["completed_at"] = _iso(job.wall(job.done_at))
            if job.failure:
                prediction["error"] = job.failure
            else:
                prediction["output"] = [image.url for image in job.images]
                prediction["metrics"] = {
                    "predict_time": round(job.done_at - started, 6),
                    "total_time": round(job.done_at - job.created, 6),
                    "image_count": len(job.images),
                }
        return prediction

    def _replicate_poll(self, prediction_id: str, req: _Incoming) -> _Reply:
        job = self._job("replicate", prediction_id)
        if job is None:
            return _json_reply(404, {"detail": "Not found."})
        return _json_reply(200, self._prediction(job))

    def _replicate_cancel(self, prediction_id: str, req: _Incoming) -> _Reply:
        job = self._job("replicate", prediction_id)
        if job is None:
            return _json_reply(404, {"detail": "Not found."})
        with self._lock:
            now = time.monotonic()
            if job.phase(now) in ("queued", "running"):
                job.canceled_at = now
        return _json_reply(200, self._prediction(job))

    def _replicate_upload(self, req: _Incoming) -> _Reply:
        try:
            parts = _multipart(req.headers.get("content-type", ""), req.body)
        except ValueError as exc:
            return _replicate_error(400, "Bad request", f"Expected a multipart/form-data body: {exc}")
        by_name = {name: (file_name, part_type, data) for name, file_name, part_type, data in parts}
        if "content" not in by_name:
            return _replicate_error(400, "Bad request", "The content field is required")
        file_name, part_type, data = by_name["content"]
        content_type = by_name["type"][2].decode() if "type" in by_name else part_type or "application/octet-stream"
        metadata: Any = {}
        if "metadata" in by_name:
            metadata = _try_json(by_name["metadata"][2])
            if metadata is None:
                return _replicate_error(400, "Bad request", "metadata must be valid JSON")
        file_id = base64.b32encode(secrets.token_bytes(20)).decode().lower()[:26]
        created = datetime.now(UTC)
        url = f"{self._replicate_base()}/files/{file_id}"
        description = {
            "id": file_id,
            "name": file_name or "file",
            "content_type": content_type,
            "size": len(data),
            "etag": hashlib.md5(data).hexdigest(),
            "checksums": {"sha256": hashlib.sha256(data).hexdigest(), "md5": hashlib.md5(data).hexdigest()},
            "metadata": metadata,
            "created_at": _iso(created),
            "expires_at": _iso(created + timedelta(days=1)),
            "urls": {"get": url},
        }
        with self._lock:
            self._replicate_files[file_id] = description
            self.uploads.append(Upload("replicate", data, content_type, file_name or "file", url))
        return _json_reply(201, description)

    def _replicate_file(self, file_id: str, req: _Incoming) -> _Reply:
        with self._lock:
            description = self._replicate_files.get(file_id)
        return _json_reply(200, description) if description else _json_reply(404, {"detail": "Not found."})

    # -- fal -------------------------------------------------------------------------------------

    def _fal_urls(self, model: str, request_id: str) -> dict[str, str]:
        owner_app = "/".join(model.split("/")[:2])
        base = f"{self.url}/fal/{owner_app}/requests/{request_id}"
        return {"status_url": f"{base}/status", "response_url": base, "cancel_url": f"{base}/cancel"}

    def _fal_create(self, model: str, req: _Incoming) -> _Reply:
        if model not in FAL_MODELS:
            return _json_reply(404, {"detail": f"Application '{model}' not found"})
        inputs = _try_json(req.body)
        if not isinstance(inputs, dict):
            return _json_reply(422, {"detail": [_fal_invalid("body", "Expected a JSON object", "type_error.dict")]})
        problems: list[dict[str, Any]] = []
        if not isinstance(inputs.get("prompt"), str) or not inputs["prompt"]:
            problems.append(_fal_invalid("prompt", "field required", "value_error.missing"))
        image_size = inputs.get("image_size", {"width": 2048, "height": 2048})
        if isinstance(image_size, str) and image_size in _FAL_PRESETS:
            size = _FAL_PRESETS[image_size]
        elif (
            isinstance(image_size, dict)
            and _int_in(image_size.get("width"), 1, 16384)
            and _int_in(image_size.get("height"), 1, 16384)
        ):
            size = (image_size["width"], image_size["height"])
        else:
            size = (0, 0)
            problems.append(_fal_invalid("image_size", "must be a preset name or {width, height}"))
        if model.startswith(_FAL_SINGLE) and "max_images" in inputs:
            problems.append(_fal_invalid("max_images", "extra fields not permitted", "value_error.extra"))
        for name in ("num_images", "max_images"):
            if name in inputs and not _int_in(inputs[name], 1, 6):
                problems.append(_fal_invalid(name, "ensure this value is between 1 and 6"))
        refs = inputs.get("image_urls")
        if model.endswith("/edit") and (
            not isinstance(refs, list) or not refs or not all(isinstance(r, str) for r in refs)
        ):
            problems.append(_fal_invalid("image_urls", "field required: a non-empty list of URLs"))
        if problems:
            return _json_reply(422, {"detail": problems})

        count = inputs.get("num_images", 1) * inputs.get("max_images", 1)
        if "PARTIAL" in inputs["prompt"] and count > 1:
            count -= 1
        failure = None
        if "FORBIDDEN" in inputs["prompt"]:
            failure = [_fal_invalid("prompt", _FAL_CONTENT_POLICY, "content_policy_violation")]
        elif model.endswith("/edit"):
            for ref in cast(list[str], refs)[-10:]:
                if self._reference_problem(ref):
                    message = f"Failed to download the file: {ref[:80]}"
                    failure = [_fal_invalid("image_urls", message, "file_download_error")]
                    break
        request_id = str(uuid.uuid4())
        images = []
        for index in range(0 if failure else count):
            token = secrets.token_hex(10)
            path = f"/files/{token}/{request_id[:8]}-{index}.png"
            images.append(self._store_image("fal", path, f"fal:{request_id}:{index}", size, "png"))
        self._new_job("fal", request_id, model, inputs, images, failure)
        answer = {
            "request_id": request_id,
            "gateway_request_id": str(uuid.uuid4()),
            "status": "IN_QUEUE",
            "queue_position": 0,
            **self._fal_urls(model, request_id),
        }
        return _json_reply(200, answer)

    def _fal_job(self, owner_app: str, request_id: str) -> _Job | None:
        job = self._job("fal", request_id)
        return job if job is not None and job.model.startswith(f"{owner_app}/") else None

    def _fal_status(self, owner_app: str, request_id: str, req: _Incoming) -> _Reply:
        job = self._fal_job(owner_app, request_id)
        if job is None:
            return _json_reply(404, {"detail": "Request not found"})
        phase = job.phase(time.monotonic())
        answer: dict[str, Any] = {"request_id": request_id, **self._fal_urls(job.model, request_id)}
        logs = [{"message": "Generating...", "level": "INFO", "source": "user"}] if req.query.get("logs") == "1" else []
        if phase == "queued":
            return _json_reply(202, {"status": "IN_QUEUE", "queue_position": 0, **answer})
        if phase == "running":
            return _json_reply(202, {"status": "IN_PROGRESS", "logs": logs, **answer})
        metrics = {"inference_time": round(job.done_at - job.created, 6)} if phase == "done" else {}
        return _json_reply(200, {"status": "COMPLETED", "logs": logs, "metrics": metrics, **answer})

    def _fal_result(self, owner_app: str, request_id: str, req: _Incoming) -> _Reply:
        job = self._fal_job(owner_app, request_id)
        if job is None:
            return _json_reply(404, {"detail": "Request not found"})
        phase = job.phase(time.monotonic())
        if phase in ("queued", "running"):
            return _json_reply(400, {"detail": "Request is still in progress"})
        if phase == "canceled":
            return _json_reply(400, {"detail": "Request was cancelled"})
        if job.failure:
            kind = job.failure[0]["type"]
            return _json_reply(422, {"detail": job.failure}, {"X-Fal-Error-Type": kind})
        images = [
            {
                "url": image.url,
                "content_type": image.content_type,
                "file_name": image.file_name,
                "file_size": image.file_size,
                "width": image.width,
                "height": image.height,
            }
            for image in job.images
        ]
        return _json_reply(200, {"images": images, "seed": job.seed})

    def _fal_cancel(self, owner_app: str, request_id: str, req: _Incoming) -> _Reply:
        job = self._fal_job(owner_app, request_id)
        if job is None:
            return _json_reply(404, {"status": "NOT_FOUND"})
        with self._lock:
            now = time.monotonic()
            phase = job.phase(now)
            if phase == "done":
                return _json_reply(400, {"status": "ALREADY_COMPLETED"})
            if phase != "canceled":
                job.canceled_at = now
        return _json_reply(202, {"status": "CANCELLATION_REQUESTED"})

    def _fal_initiate(self, req: _Incoming) -> _Reply:
        body = _try_json(req.body)
        if not isinstance(body, dict) or not isinstance(body.get("content_type"), str):
            return _json_reply(422, {"detail": [_fal_invalid("content_type", "field required", "value_error.missing")]})
        content_type: str = body["content_type"]
        file_name: str = body["file_name"] if isinstance(body.get("file_name"), str) else "upload.bin"
        token = secrets.token_hex(12)
        with self._lock:
            self._fal_pending[token] = (content_type, file_name)
        return _json_reply(
            200,
            {
                "upload_url": f"{self.url}/fal-upload/{token}",
                "file_url": f"{self.url}/files/{token}/{quote(file_name)}",
            },
        )

    def _fal_put(self, token: str, req: _Incoming) -> _Reply:
        with self._lock:
            pending = self._fal_pending.get(token)
            if pending is None:
                return _Reply(403, b"<Error><Code>AccessDenied</Code></Error>", {"Content-Type": "application/xml"})
            content_type, file_name = pending
            path = f"/files/{token}/{quote(file_name)}"
            self._files[path] = _File(req.body, content_type, "fal")
            self.uploads.append(Upload("fal", req.body, content_type, file_name, f"{self.url}{path}"))
        return _Reply(200)

    # -- downloads -------------------------------------------------------------------------------

    def _download(self, req: _Incoming) -> _Reply:
        with self._lock:
            stored = self._files.get(req.path)
            if stored is None:
                return _Reply(404, b"Not Found", {"Content-Type": "text/plain"})
            self.downloads[req.path] += 1
        if stored.signed_query and req.raw_query != stored.signed_query:
            body = b"<Error><Code>SignatureDoesNotMatch</Code><Message>The signature does not match</Message></Error>"
            return _Reply(403, body, {"Content-Type": "application/xml"})
        return _Reply(200, stored.data, {"Content-Type": stored.content_type})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, fake: FakeProviders) -> None:
        self.fake = fake
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """End kept-alive connections too, so that a closed fake answers nothing, like a server gone away."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks the host name up (getfqdn), which can be slow: not needed here.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = "127.0.0.1", self.server_address[1]

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # a client went away mid-answer (killed, timed out): expected, not a server bug
        super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the real APIs; every answer has a Content-Length
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests read `requests` instead

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _serve(self) -> None:
        fake = cast(_Server, self.server).fake
        try:
            body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            return
        split = urlsplit(self.path)
        incoming = _Incoming(
            method=self.command,
            target=self.path,
            path=split.path,
            raw_query=split.query,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        reply = fake._handle(incoming)
        if reply.drop:
            self.close_connection = True
            return
        try:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.cut:
                self.wfile.write(reply.body[: len(reply.body) // 2])
                self.wfile.flush()
                self.close_connection = True
            else:
                self.wfile.write(reply.body)
        except (ConnectionError, TimeoutError):
            self.close_connection = True
