"""The provider interface: one shape for synchronous and asynchronous image APIs.

A build step drives a provider through four calls:

* ``request_body(call)`` — the exact body the provider will be sent; recorded (secrets are
  headers, never bodies) *before* anything is paid for;
* ``generate(call, on_job)`` — make the images. A synchronous provider answers directly. An
  asynchronous one calls ``on_job(job)`` as soon as it has a job id, *before* polling, so the id
  is on disk if the build dies while waiting;
* ``resume(call, job)`` — continue a job recorded by an earlier, interrupted build (no new job);
* ``download(call, output)`` — the bytes of one output, fetched at once (remote URLs expire).

An edit first makes its reference images reachable: ``upload(call, reference, data)`` returns a
URL the provider can read (a hosted file, or a data URL where the API takes those).

Every HTTP exchange of a call is appended to ``call.log`` (secrets redacted); the build writes it
to the run's http.json whatever the outcome.

``parse(call, raw)`` turns a saved raw response back into a Response: a build killed after the
answer was saved but before its images were kept finishes from response.json without a new call.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from imgbuild.errors import AssetFailed
from imgbuild.requests import ImageRequest, Reference

__all__ = [
    "MAX_IMAGE_BYTES",
    "Call",
    "ContentRejected",
    "Job",
    "Output",
    "Provider",
    "ProviderError",
    "Response",
    "Upload",
    "redact_body",
]


MAX_IMAGE_BYTES = 64 * 1024 * 1024  # the most an output image may weigh (downloads stop there)


@dataclass(frozen=True)
class Call:
    """One paid call: a request, the first candidate index it produces, and its run id."""

    request: ImageRequest
    candidate: int
    run_id: str
    reference_urls: tuple[str, ...] = ()
    log: list[dict[str, Any]] = field(default_factory=list, compare=False, repr=False)


@dataclass(frozen=True)
class Output:
    """One image in a provider's answer: a URL to fetch, inline bytes, or a per-image error."""

    index: int
    url: str | None = None
    data: bytes | None = field(default=None, repr=False)
    error: str | None = None


@dataclass(frozen=True)
class Response:
    """A provider's answer: the raw JSON as received (for response.json) and what it holds."""

    raw: dict[str, Any]
    outputs: tuple[Output, ...]
    usage: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Job:
    """An asynchronous job, recorded before polling so that a rerun resumes instead of paying again."""

    provider: str
    id: str
    urls: dict[str, str] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        return {"provider": self.provider, "id": self.id, "urls": dict(self.urls)}


@dataclass(frozen=True)
class Upload:
    """A reference image made reachable by the provider: its URL and the raw exchange."""

    url: str
    raw: dict[str, Any]
    expires: float | None = None  # UNIX time after which the URL may be gone; None: never / unknown


class ProviderError(AssetFailed):
    """A call failed for this asset only (the build goes on with the other assets)."""


class ContentRejected(ProviderError):
    """The provider's content filter refused this prompt or image: retrying will not help."""


class Provider(Protocol):
    """What every provider implements (see the module docstring for the order of calls)."""

    name: str

    def request_body(self, call: Call) -> dict[str, Any]: ...

    def generate(self, call: Call, on_job: Callable[[Job], None]) -> Response: ...

    def resume(self, call: Call, job: Job) -> Response: ...

    def parse(self, call: Call, raw: dict[str, Any]) -> Response: ...

    def download(self, call: Call, output: Output) -> bytes: ...

    def upload(self, call: Call, reference: Reference, data: bytes) -> Upload: ...

    def close(self) -> None: ...


_BASE64 = re.compile(r"[A-Za-z0-9+/]{64,}={0,2}")
# how an encoded image starts: PNG, JPEG, WebP (RIFF), GIF
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8", b"RIFF", b"GIF8")


def redact_body(value: Any) -> Any:
    """A JSON body as it may be recorded: images, as data URLs or as bare base64 (Gemini's
    ``inlineData``, BFL's ``input_image``), replaced by their size and hash."""
    if isinstance(value, str) and value.startswith("data:") and ";base64," in value:
        head, data = value.split(",", 1)
        raw = base64.b64decode(data)
        return f"{head},<{len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}>"
    if isinstance(value, str) and len(value) % 4 == 0 and _BASE64.fullmatch(value):
        raw = base64.b64decode(value)
        if raw.startswith(_IMAGE_MAGIC):
            return f"<base64 image, {len(raw)} bytes, sha256 {hashlib.sha256(raw).hexdigest()}>"
    if isinstance(value, dict):
        return {k: redact_body(v) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_body(v) for v in value]
    return value
