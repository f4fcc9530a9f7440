"""The provider interface: one shape for synchronous and asynchronous image APIs.

A build step drives a provider through four calls:

* ``request_body(call)`` — the exact body the provider will be sent; recorded (secrets are
  headers, never bodies) *before* anything is paid for;
* ``generate(call, on_job)`` — make the images. A synchronous provider answers directly. An
  asynchronous one calls ``on_job(job)`` as soon as it has a job id, *before* polling, so the id
  is on disk if the build dies while waiting;
* ``resume(call, job)`` — continue a job recorded by an earlier, interrupted build (no new job);
* ``download(call, output)`` — the bytes of one output, fetched at once (remote URLs expire).

``parse(call, raw)`` turns a saved raw response back into a Response: a build killed after the
answer was saved but before its images were kept finishes from response.json without a new call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from imgbuild.errors import FatalError
from imgbuild.requests import ImageRequest

__all__ = [
    "Call",
    "ContentRejected",
    "Job",
    "Output",
    "Provider",
    "ProviderError",
    "Response",
]


@dataclass(frozen=True)
class Call:
    """One paid call: a request, the first candidate index it produces, and its run id."""

    request: ImageRequest
    candidate: int
    run_id: str
    reference_urls: tuple[str, ...] = ()


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


class ProviderError(FatalError):
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

    def close(self) -> None: ...
