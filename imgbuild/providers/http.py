"""The HTTP layer shared by the hosted providers: keys, retries, the first-call gate, records.

What a paid batch needs from it:

* **keys only from the environment**, sent as a header and never written anywhere: every exchange is
  recorded with the key redacted, and data URLs shortened to their size and hash;
* **retries that cannot pay twice by accident**: 429, 5xx and dropped connections are retried with
  jittered exponential backoff that honours ``Retry-After``, bounded in count and total time (a
  429 is bounded by the total time only: the call was neither made nor billed); create calls
  also tell the build's :class:`Pacer` (rate limit, concurrency that backs off on 429s);
  stable failures are not retried — auth, a missing model and an unreachable host stop the whole
  build (:class:`ProviderRefused`), a content-filter refusal fails only its asset;
* **one call first**: until the provider has answered one call, the other threads wait, so a wrong
  key costs one refused call, not one per thread. A provider that is still silent a while after the
  first request was sent has accepted the key (a refusal comes back at once; an image takes
  seconds), so the others go ahead then: the wait is a few round trips, not a whole generation.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import ipaddress
import json
import os
import random
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

import httpcore
import httpx

from imgbuild.errors import ProviderRefused
from imgbuild.providers.answers import BadAnswer
from imgbuild.providers.base import (
    MAX_IMAGE_BYTES,
    Call,
    ContentRejected,
    Job,
    Output,
    ProviderError,
    Response,
    Upload,
    redact_body,
)

__all__ = [
    "DEADLINE_SECONDS",
    "MAX_ANSWER_BYTES",
    "Exchange",
    "HostedProvider",
    "HttpApi",
    "Pacer",
    "PollClock",
    "RetryPolicy",
    "api_key",
    "base_url",
    "data_url",
    "default_client",
    "image_mime",
    "prompt_with_negative",
    "redact_body",
    "retry_policy",
    "same_site",
]

_MAX_RECORDED_TEXT = 64 * 1024
# The first-call gate opens early once the first request has gone unanswered this long: the
# larger of a floor and a number of round trips (a refused key is answered in about one).
GATE_GRACE_MIN = 0.25
GATE_GRACE_ROUND_TRIPS = 8
_RETRY_STATUSES = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
MAX_ANSWER_BYTES = 32 * 1024 * 1024  # a JSON answer (decoded); image bytes have their own cap
DEADLINE_SECONDS = 900.0  # one exchange, start to last byte: a server dripping bytes cannot hang a build
_MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_COALESCED = 64 * 1024  # bytes of a request held back to go out in one send (_DeadlineStream)


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


@contextlib.contextmanager
def _until(seconds: float) -> Iterator[None]:
    """Every socket read and write of this thread, meanwhile, ends by `seconds` from now."""
    outer = _deadline.at
    _deadline.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _deadline.at = outer


def _remaining(timeout: float | None) -> float | None:
    at = _deadline.at
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise httpcore.ReadTimeout("the exchange passed its overall deadline")
    return left if timeout is None else min(timeout, left)


class _DeadlineStream(httpcore.NetworkStream):
    """A connection whose every read and write is bounded by the exchange's overall deadline
    (httpx's timeouts bound one read each: a byte a second would never trip them).

    A request goes out in one send, not two: httpcore writes the head and then the body, and
    small writes wait here until the answer is read (or _COALESCED bytes are waiting). Each send
    costs a system call, a packet and, with delayed ACKs, possibly a round trip of waiting."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream
        self._unsent = bytearray()

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self._send(timeout)
        return self._stream.read(max_bytes, _remaining(timeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._unsent += buffer
        if len(self._unsent) >= _COALESCED:
            self._send(timeout)

    def _send(self, timeout: float | None) -> None:
        if self._unsent:
            data = bytes(self._unsent)
            self._unsent.clear()
            self._stream.write(data, _remaining(timeout))

    def close(self) -> None:
        self._unsent.clear()  # a request given up before its answer: nothing more goes out
        self._stream.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(self._stream.start_tls(ssl_context, server_hostname, _remaining(timeout)))

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class _DeadlineBackend(httpcore.SyncBackend):
    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        return _DeadlineStream(super().connect_tcp(host, port, _remaining(timeout), local_address, socket_options))


def default_client(tls: ssl.SSLContext | None = None) -> httpx.Client:
    """A client of a build's thread (HttpApi.client): long per-read timeouts (generation takes
    minutes; giving up early may pay again on a retry) and connections bounded by each exchange's
    overall deadline. `tls`: the TLS context the threads share."""
    limits = httpx.Limits(max_connections=8, max_keepalive_connections=8)  # one thread's calls
    transport = httpx.HTTPTransport(limits=limits, verify=tls if tls is not None else True)
    transport._pool._network_backend = _DeadlineBackend()  # httpx takes no backend argument
    return httpx.Client(
        transport=transport,
        timeout=httpx.Timeout(connect=30.0, read=600.0, write=120.0, pool=None),
        follow_redirects=True,
    )


class _TooLarge(Exception):
    pass


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a call is retried. Defaults suit overnight batches."""

    attempts: int = 8  # tries in all, the first included
    total_seconds: float = 900.0  # no new try starts after this long
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Full-jitter exponential backoff, never shorter than the server's Retry-After."""
        backoff = rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))
        return max(backoff, min(retry_after, self.max_delay)) if retry_after is not None else backoff


class Pacer(Protocol):
    """The build's pace of paid calls (imgbuild.build.schedule.Schedule), told about each create."""

    def retry_turn(self) -> None: ...

    def throttled(self, retry_after: float | None) -> None: ...

    def answered(self) -> None: ...


def retry_policy(settings: Mapping[str, Any]) -> RetryPolicy:
    """The `retries:` section of a provider's settings in imgbuild.yaml, defaults filled in."""
    given = settings.get("retries") or {}
    return RetryPolicy(**{k: given[k] for k in ("attempts", "total_seconds", "base_delay", "max_delay") if k in given})


def api_key(env_var: str, provider: str) -> str:
    """The provider's key from the environment; refuse the build (exit 3) when it is not set."""
    key = os.environ.get(env_var, "").strip()
    if not key:
        raise ProviderRefused(
            f"{env_var} is not set: export the {provider} API key as {env_var} to build with provider "
            f"{provider!r} (keys are read from the environment only, never from files)"
        )
    return key


def base_url(env_var: str, configured: str | None, default: str) -> str:
    """$env_var, else imgbuild.yaml's value, else the provider's public API — without a trailing '/'."""
    return (os.environ.get(env_var) or configured or default).rstrip("/")


@dataclass
class Exchange:
    """One HTTP attempt as recorded in a run's http.json (secrets redacted)."""

    what: str  # create, poll, result, upload, download, ...
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: Any
    started: float
    seconds: float = 0.0
    status: int | None = None
    response_headers: dict[str, str] | None = None
    response_body: Any = None
    error: str | None = None

    def record(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "request": {
                "method": self.method,
                "url": self.url,
                "headers": self.request_headers,
                "body": self.request_body,
            },
            "response": None
            if self.status is None
            else {"status": self.status, "headers": self.response_headers, "body": self.response_body},
            "error": self.error,
            "seconds": round(self.seconds, 3),
        }


Log = list[dict[str, Any]]


class HttpApi:
    """A provider's HTTP client: auth header, retries, the first-call gate and exchange records."""

    def __init__(
        self,
        *,
        provider: str,
        key_env: str,
        auth_scheme: str,
        auth_header: str = "Authorization",
        client: httpx.Client | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        seed: int | None = None,
        deadline_seconds: float = DEADLINE_SECONDS,
    ) -> None:
        self.provider = provider
        self.key_env = key_env
        key = api_key(key_env, provider)
        self._auth_header = auth_header  # "x-goog-api-key", "x-key": the key itself, no scheme
        self._auth = f"{auth_scheme} {key}" if auth_scheme else key
        # What must never be written or shown, whatever a server echoes back: the key as sent,
        # and its base64 (a Basic header, or a server quoting the header encoded).
        self._secrets = tuple(
            {key, base64.b64encode(key.encode()).decode(), base64.b64encode(self._auth.encode()).decode()}
        )
        self._secrets_verbatim = all(json.dumps(s, ensure_ascii=False)[1:-1] == s for s in self._secrets)
        self._shared_client = client
        self._thread = threading.local()
        self._clients: list[httpx.Client] = []
        self._clients_lock = threading.Lock()
        self._tls: ssl.SSLContext | None = None
        self.pacer: Pacer | None = None  # the build's schedule, told about every create call
        self.deadline_seconds = deadline_seconds
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self._gate = threading.Condition()
        self._gate_state = "closed"  # closed → probing → open; until open, one call at a time
        self._refusal: ProviderRefused | None = None  # the key was refused: no further call
        self._round_trip = 0.1  # seconds; measured on the first connection
        self.url_sources: dict[str, str] = {}  # origin → which setting chose it (HostedProvider.urls)

    @property
    def client(self) -> httpx.Client:
        """This thread's HTTP client (or the one given, shared by all threads).

        One connection pool per thread, not one for the build: httpcore's pool does work in
        proportion to its connections on every request, which at 256 calls in flight cost 11 ms
        of CPU per call (bench/http_concurrency.py; per-thread pools: 0.7 ms). The threads share
        one TLS context (making one per client loads the CA bundle each time)."""
        if self._shared_client is not None:
            return self._shared_client
        client: httpx.Client | None = getattr(self._thread, "client", None)
        if client is None:
            with self._clients_lock:
                if self._tls is None:
                    self._tls = httpx.create_ssl_context()
                client = default_client(self._tls)
                self._clients.append(client)
            self._thread.client = client
        return client

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()
        if self._shared_client is not None:
            self._shared_client.close()

    # -- the first-call gate -------------------------------------------------------------------
    def _enter_gate(self) -> bool:
        """Wait until the provider has accepted a call; True when this thread makes the probe call."""
        with self._gate:
            while self._gate_state == "probing":
                self._gate.wait()
            if self._refusal is not None:
                raise self._refusal
            if self._gate_state == "closed":
                self._gate_state = "probing"
                return True
            return False

    def _leave_gate(self, probe: bool, response: httpx.Response | None) -> None:
        if probe:
            with self._gate:  # a refused key is recorded before this: the waiting threads raise it
                if self._gate_state == "probing":
                    self._gate_state = "open" if response is not None else "closed"
                self._gate.notify_all()

    def _probe_tracer(self) -> Callable[[str, dict[str, Any]], None]:
        """An httpx trace hook for the probe call: open the gate once the sent request has gone
        unanswered for a few round trips (the connect time measures one)."""
        connect_started = [0.0]

        def trace(event: str, info: dict[str, Any]) -> None:
            if event == "connection.connect_tcp.started":
                connect_started[0] = time.monotonic()
            elif event == "connection.connect_tcp.complete" and connect_started[0]:
                self._round_trip = time.monotonic() - connect_started[0]
            elif event == "http11.send_request_body.complete" or event == "http2.send_request_body.complete":
                grace = max(GATE_GRACE_MIN, GATE_GRACE_ROUND_TRIPS * self._round_trip)
                timer = threading.Timer(grace, self._open_gate_early)
                timer.daemon = True
                timer.start()

        return trace

    def _open_gate_early(self) -> None:
        with self._gate:
            if self._gate_state == "probing" and self._refusal is None:
                self._gate_state = "open"
                self._gate.notify_all()

    # -- calls -----------------------------------------------------------------------------
    def call(
        self,
        method: str,
        url: str,
        *,
        log: Log,
        json_body: Any = None,
        content: bytes | None = None,
        files: dict[str, Any] | list[tuple[str, Any]] | None = None,  # a list repeats a name (`image[]`)
        data: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        auth: bool = True,
        what: str = "call",
    ) -> httpx.Response:
        """Send a request, retrying transient failures; return a 2xx response or raise.

        Raises ProviderRefused (stop the build), ContentRejected or ProviderError (this asset)."""
        if auth and self.url_sources and not same_site(url, self.url_sources):
            # an answer named this URL (a job's polling or status URL): the key is not sent off-site
            raise ProviderError(
                f"{what}: {self.provider} named {_origin(url)}, which is not its API's site "
                f"({', '.join(sorted(self.url_sources))}); the key is not sent there"
            )
        sent_headers = {self._auth_header: self._auth} if auth else {}
        sent_headers.update(headers or {})
        secret = {"authorization", self._auth_header.lower()}
        recorded_headers = {k: ("<redacted>" if k.lower() in secret else v) for k, v in sent_headers.items()}
        recorded_body = redact_body(json_body) if json_body is not None else _describe_upload(content, files, data)
        started = time.monotonic()
        attempt = 0
        paced = self.pacer if what == "create" else None
        throttles = 0  # 429s: "not now", never made nor billed; bounded by the total time only
        while True:
            attempt += 1
            shown = url if auth else _without_query(url)  # a pre-signed query string is a credential
            exchange = Exchange(what, method, shown, recorded_headers, recorded_body, time.monotonic())
            probe = self._enter_gate() if auth else False
            response: httpx.Response | None = None
            try:
                request = self.client.build_request(
                    method,
                    url,
                    json=json_body,
                    content=content,
                    files=files,
                    data=data,
                    headers=sent_headers,
                    extensions={"trace": self._probe_tracer()} if probe else None,
                )
                response = self._exchange(request, same_origin_only=auth)
            except httpx.HTTPError as exc:
                failure: Exception = self._timed_out(exc, exchange.started) or exc
                exchange.error = f"{type(exc).__name__}: {failure}"
            except _TooLarge as exc:
                exchange.error = str(exc)
                exchange.seconds = time.monotonic() - exchange.started
                log.append(self.scrub(exchange.record()))
                raise BadAnswer(f"{what}: {exc}") from None
            finally:
                exchange.seconds = time.monotonic() - exchange.started
                if response is not None and _refuses_key(response):
                    self._refuse(self._auth_refusal(response))
                self._leave_gate(probe, response)
            if response is not None:
                exchange.status = response.status_code
                exchange.response_headers = _kept_headers(response.headers)
                exchange.response_body = _recordable(response)
            log.append(self.scrub(exchange.record()))
            if response is not None and response.is_success:
                if paced is not None:
                    paced.answered()
                return response
            retry_after = None
            if response is not None and _out_of_credit(response):
                raise self._refuse(
                    ProviderRefused(
                        f"{self.provider}: the account has no credit or quota left (HTTP {response.status_code}: "
                        f"{self.scrub(_error_text(response))}); top it up with the provider — the build stopped"
                    )
                )
            if response is not None:
                if response.status_code not in _RETRY_STATUSES:
                    stable = self._stable_failure(response, url, what)
                    raise self._refuse(stable) if isinstance(stable, ProviderRefused) else stable
                retry_after = _retry_after(response.headers.get("retry-after"))
                failure = ProviderError(f"{what}: HTTP {response.status_code} {self.scrub(_error_text(response))}")
                if response.status_code == 429:
                    throttles += 1
                    if paced is not None:
                        paced.throttled(retry_after)
            elif _unresolvable(failure):
                raise self._refuse(
                    ProviderRefused(
                        f"{self.provider}: cannot resolve the host of {_origin(url)} ({failure}); "
                        f"{self._where_from(url)}"
                    )
                ) from failure
            elapsed = time.monotonic() - started
            if attempt - throttles >= self.retry.attempts or elapsed >= self.retry.total_seconds:
                if response is None and isinstance(failure, httpx.ConnectError):
                    raise self._refuse(
                        ProviderRefused(
                            f"{self.provider}: cannot connect to {_origin(url)} after {attempt} tries ({failure}); "
                            f"{self._where_from(url)}"
                        )
                    ) from failure
                raise ProviderError(f"{what} failed after {attempt} tries: {failure}") from failure
            with self._rng_lock:
                pause = self.retry.delay(min(attempt, 16), retry_after, self._rng)
            self._sleep(min(pause, max(0.0, self.retry.total_seconds - elapsed)))
            if paced is not None:
                paced.retry_turn()

    def _timed_out(self, exc: httpx.HTTPError, started: float) -> ProviderError | None:
        """The failure of an exchange cut at its overall deadline, said in those words."""
        if isinstance(exc, httpx.TimeoutException) and time.monotonic() - started >= 0.95 * self.deadline_seconds:
            return ProviderError(f"no complete answer within the overall deadline of {self.deadline_seconds:g} s")
        return None

    def call_json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        """`call`, and the answer decoded as a JSON object; BadAnswer when it is not one."""
        response = self.call(method, url, **kwargs)
        what = kwargs.get("what", "call")
        try:
            answer = response.json()
        except ValueError as exc:  # not JSON, not UTF-8
            raise BadAnswer(
                f"{what}: {self.provider} answered HTTP {response.status_code} with no JSON ({exc})"
            ) from exc
        if not isinstance(answer, dict):
            raise BadAnswer(f"{what}: {self.provider} answered with a JSON {type(answer).__name__}, expected an object")
        scrubbed: dict[str, Any] = self.scrub(answer)  # saved as response.json: no echoed key goes with it
        return scrubbed

    def _exchange(self, request: httpx.Request, *, same_origin_only: bool) -> httpx.Response:
        """Send `request` and read its whole answer, under the overall deadline and the size cap.

        A keyed call follows redirects only within its origin: a paid request sent on to another
        host could be made, and billed, there (httpx would drop the key, not the body)."""
        with _until(self.deadline_seconds):
            for _ in range(_MAX_REDIRECTS + 1):
                response = self.client.send(request, stream=True, follow_redirects=not same_origin_only)
                try:
                    if not (same_origin_only and response.status_code in _REDIRECTS):
                        return _whole(response, MAX_ANSWER_BYTES)
                    location = response.headers.get("location")
                    target = request.url.join(location) if location else None
                    if target is None or _origin(str(target)) != _origin(str(request.url)):
                        return _whole(response, MAX_ANSWER_BYTES)  # a 3xx answer: a failure, not followed
                finally:
                    response.close()
                request = self.client.build_request(
                    request.method, target, headers=request.headers, content=request.read()
                )
            raise httpx.TooManyRedirects(f"over {_MAX_REDIRECTS} redirects", request=request)

    def _where_from(self, url: str) -> str:
        """What to fix when `url`'s host cannot be reached: the setting that chose it, if one did."""
        return self.url_sources.get(_origin(url), "check the network")

    def _refuse(self, refusal: ProviderRefused) -> ProviderRefused:
        """Remember a refusal: every other call of this build stops at the gate instead of trying."""
        with self._gate:
            self._refusal = self._refusal or refusal
            self._gate.notify_all()
        return refusal

    def scrub(self, value: Any) -> Any:
        """`value` (a record, a message) with the key and its encodings replaced by <redacted>.

        An exchange's record is a hundred strings or so, and almost never holds a secret: it is
        first looked for in the record's JSON text, encoded in C, and only a record where it
        appears is walked string by string. JSON writes a secret as it is unless it holds a quote,
        a backslash or a control character (never in an API key; such a key is always walked)."""
        if self._secrets_verbatim and not isinstance(value, str):
            try:
                text = json.dumps(value, ensure_ascii=False, check_circular=False, default=_not_scrubbed)
            except (TypeError, ValueError):  # a key that JSON cannot write: walk it
                text = None
            if text is not None and not any(secret in text for secret in self._secrets):
                return value
        return self._scrub(value)

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            for secret in self._secrets:
                value = value.replace(secret, "<redacted>")
            return value
        if isinstance(value, dict):
            return {self._scrub(k): self._scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._scrub(v) for v in value]
        return value

    def _stable_failure(self, response: httpx.Response, url: str, what: str) -> Exception:
        """The exception for an answer that retrying will not change."""
        status, text = response.status_code, self.scrub(_error_text(response))
        if _refuses_key(response):
            return self._auth_refusal(response)
        if status == 404 and what == "create":
            return ProviderRefused(
                f"{self.provider}: model or endpoint not found at {_origin(url)} (HTTP 404: {text}); "
                "check the model id in docs/models.md and the provider's base URL"
            )
        if _content_refusal(text):
            return ContentRejected(f"{self.provider} refused the content: {text}")
        return ProviderError(f"{what}: HTTP {status} {text}")

    def _auth_refusal(self, response: httpx.Response) -> ProviderRefused:
        return ProviderRefused(
            f"{self.provider} refused the key in {self.key_env} (HTTP {response.status_code}: "
            f"{self.scrub(_error_text(response))}); check {self.key_env} — the build stopped"
        )

    def download(self, url: str, *, log: Log, max_bytes: int) -> bytes:
        """The bytes at `url` (no auth header: output URLs are pre-signed), retried when cut short."""
        attempt = 0
        while True:
            attempt += 1
            exchange = Exchange("download", "GET", _without_query(url), {}, None, time.monotonic())
            try:
                with _until(self.deadline_seconds), self.client.stream("GET", url) as response:
                    exchange.status = response.status_code
                    if response.status_code >= 400:
                        response.read()
                        exchange.response_body = _recordable(response)
                        if response.status_code not in _RETRY_STATUSES:
                            log.append(self.scrub(exchange.record()))
                            raise ProviderError(f"download: HTTP {response.status_code} for {_without_query(url)}")
                        raise httpx.HTTPStatusError("retryable", request=response.request, response=response)
                    chunks, size = [], 0
                    for chunk in response.iter_bytes():
                        size += len(chunk)
                        if size > max_bytes:
                            raise ProviderError(f"download of {_without_query(url)} is over {max_bytes} bytes")
                        chunks.append(chunk)
                    exchange.response_body = f"<{size} bytes>"
                    exchange.seconds = time.monotonic() - exchange.started
                    log.append(self.scrub(exchange.record()))
                    return b"".join(chunks)
            except httpx.HTTPError as exc:
                cause = self._timed_out(exc, exchange.started) or exc
                exchange.error = f"{type(exc).__name__}: {cause}"
                exchange.seconds = time.monotonic() - exchange.started
                log.append(self.scrub(exchange.record()))
                if attempt >= self.retry.attempts:
                    raise ProviderError(
                        f"download of {_without_query(url)} failed after {attempt} tries: {cause}"
                    ) from exc
            with self._rng_lock:
                pause = self.retry.delay(attempt, None, self._rng)
            self._sleep(pause)


def _whole(response: httpx.Response, max_bytes: int) -> httpx.Response:
    """A streamed response read whole (decoded, so a gzip bomb is capped too) into a plain one."""
    chunks: list[bytes] = []
    size = 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise _TooLarge(f"the answer is over {max_bytes} bytes (HTTP {response.status_code})")
        chunks.append(chunk)
    headers = [
        (k, v)
        for k, v in response.headers.multi_items()
        if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=response.request,
        extensions={k: v for k, v in response.extensions.items() if k in ("reason_phrase", "http_version")},
    )


def _describe_upload(
    content: bytes | None, files: dict[str, Any] | list[tuple[str, Any]] | None, fields: dict[str, str] | None = None
) -> Any:
    """A body that is not JSON as recorded: bytes by size and hash; a multipart body's form fields
    as sent (an edit's model, prompt, size) and each file part by size and hash."""
    if content is not None:
        return f"<{len(content)} bytes, sha256 {hashlib.sha256(content).hexdigest()}>"
    if files:
        parts: dict[str, Any] = dict(fields or {})
        for name, value in files.items() if isinstance(files, dict) else files:
            data = value[1] if isinstance(value, tuple) else value
            described = f"<{len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}>"
            if name.endswith("[]"):  # a repeated part: every one is listed
                parts.setdefault(name, []).append(described)
            else:
                parts[name] = described
        return {"multipart": parts}
    return None


def _not_scrubbed(value: object) -> str:
    """What the JSON text of a record has for a value `scrub` leaves as it is (not a str, dict or
    list): nothing, so a secret is looked for only where the walk would replace it."""
    return ""


def _kept_headers(headers: httpx.Headers) -> dict[str, str]:
    keep = ("content-type", "retry-after", "x-request-id", "location", "x-fal-error-type", "x-fal-request-id")
    return {k: v for k, v in headers.items() if k.lower() in keep}


def _recordable(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        text = response.text
        return text if len(text) <= _MAX_RECORDED_TEXT else text[:_MAX_RECORDED_TEXT] + "…"


def _error_text(response: httpx.Response) -> str:
    """The provider's own error message, whatever the envelope."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300].strip() or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return " ".join(str(error.get(k)) for k in ("code", "message") if error.get(k))
        if isinstance(error, str):
            return error
        detail = body.get("detail")
        if isinstance(detail, list) and detail and isinstance(detail[0], dict):
            return "; ".join(f"{d.get('type', '')}: {d.get('msg', '')}" for d in detail)
        if detail is not None:
            return str(detail)
    return json.dumps(body)[:300]


def _refuses_key(response: httpx.Response) -> bool:
    """The key itself was refused: 401 or 403, or Google's 400 whose ErrorInfo reason says so
    (Gemini answers a wrong key ``400 INVALID_ARGUMENT``, reason ``API_KEY_INVALID``)."""
    if response.status_code in (401, 403):
        return True
    if response.status_code != 400:
        return False
    try:
        error = response.json().get("error")
        details = error.get("details") if isinstance(error, dict) else None
    except (ValueError, AttributeError):
        return False
    return isinstance(details, list) and any(
        isinstance(d, dict) and d.get("reason") == "API_KEY_INVALID" for d in details
    )


def _out_of_credit(response: httpx.Response) -> bool:
    """The account cannot pay: 402 (BFL, Replicate), or OpenAI's 429 ``insufficient_quota`` —
    a 429 that no backoff cures, unlike a rate limit."""
    if response.status_code == 402:
        return True
    if response.status_code != 429:
        return False
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return False
    return isinstance(error, dict) and "insufficient_quota" in (error.get("code"), error.get("type"))


_CONTENT_WORDS = re.compile(r"sensitive|content[_ ]policy|flagged|nsfw|safety", re.IGNORECASE)


def _content_refusal(text: str) -> bool:
    return bool(_CONTENT_WORDS.search(text))


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value)
        return max(0.0, when.timestamp() - time.time()) if when is not None else None


def _unresolvable(exc: Exception) -> bool:
    text = str(exc).lower()
    return isinstance(exc, httpx.ConnectError) and (
        "name or service not known" in text
        or "nodename nor servname" in text
        or "temporary failure in name resolution" in text
        or "no address associated" in text
        or "name resolution" in text
    )


def _origin(url: str) -> str:
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.netloc.decode()}"


def same_site(url: str, origins: Iterable[str]) -> bool:
    """Whether a keyed call may go to `url`: one of `origins` (the provider's configured URLs), or
    an https host of the same domain as one of them (BFL answers ``api.bfl.ai``'s jobs from
    ``api.us1.bfl.ai``). An IP address or a one-label host has no domain: its origin only."""
    target = httpx.URL(url)
    for origin in origins:
        known = httpx.URL(origin)
        if (target.scheme, target.netloc) == (known.scheme, known.netloc):
            return True
        labels = known.host.split(".")
        if target.scheme != "https" or len(labels) < 2 or _is_ip(known.host):
            continue
        domain = ".".join(labels[-2:])
        if target.host == domain or target.host.endswith(f".{domain}"):
            return True
    return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _without_query(url: str) -> str:
    """A URL safe to record: pre-signed query strings carry credentials."""
    return url.split("?", 1)[0]


def _url_source(provider: str, key: str, configured: str | None) -> str:
    """Where a provider URL came from, phrased as what to fix when its host cannot be reached."""
    setting, env_var = f"providers.{provider}.{key}", f"IMGBUILD_{provider.upper()}_{key.upper()}"
    if os.environ.get(env_var):
        return f"the URL comes from ${env_var} (it wins over {setting} in imgbuild.yaml): fix or unset it"
    if configured:
        return f"the URL comes from {setting} in imgbuild.yaml (${env_var} would win over it): fix it"
    return (
        f"the URL is {provider}'s public API: check the network "
        f"(a proxy or test server goes in {setting} in imgbuild.yaml, or ${env_var})"
    )


class HostedProvider:
    """What the hosted providers share: their HTTP client, downloading outputs, closing."""

    name: str
    key_env: str  # the environment variable holding the key
    auth_scheme: str  # "Bearer" or "Key"; "" sends the key alone
    auth_header = "Authorization"
    # attribute holding a URL → its key under providers.<name> (the variable IMGBUILD_<NAME>_<KEY> wins)
    urls: ClassVar[Mapping[str, str]] = {"base": "base_url"}
    base_url_env: str  # IMGBUILD_<NAME>_BASE_URL, which wins over providers.<name>.base_url
    default_base: str

    def __init__(self, project_root: Path, settings: Mapping[str, Any], api: HttpApi | None = None) -> None:
        self.base = base_url(self.base_url_env, settings.get("base_url"), self.default_base_url())
        self.api = api or HttpApi(
            provider=self.name,
            key_env=self.key_env,
            auth_scheme=self.auth_scheme,
            auth_header=self.auth_header,
            retry=retry_policy(settings),
            deadline_seconds=float(settings.get("deadline_seconds", DEADLINE_SECONDS)),
        )
        for attribute, key in self.urls.items():
            origin = _origin(getattr(self, attribute))
            self.api.url_sources[origin] = _url_source(self.name, key, settings.get(key))

    def default_base_url(self) -> str:
        """The URL used when neither the variable nor the setting names one."""
        return self.default_base

    def pace(self, pacer: Pacer) -> None:
        """Send create calls at the pace of the build's schedule (rate limit, backoff on 429)."""
        self.api.pacer = pacer

    def download(self, call: Call, output: Output) -> bytes:
        assert output.url is not None
        return self.api.download(output.url, log=call.log, max_bytes=MAX_IMAGE_BYTES)

    def close(self) -> None:
        self.api.close()


class SynchronousProvider(HostedProvider):
    """A hosted API that answers a call with its images: no job to record, nothing to resume."""

    def parse(self, call: Call, raw: dict[str, Any]) -> Response:
        raise NotImplementedError

    def resume(self, call: Call, job: Job) -> Response:
        raise ProviderError(f"{self.name} calls are synchronous: there is no job to resume")


class PollingProvider(HostedProvider):
    """A hosted API that answers a call with a job to poll (Replicate, fal, BFL), with a poll
    clock learnt over the build."""

    def __init__(
        self,
        project_root: Path,
        settings: Mapping[str, Any],
        api: HttpApi | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(project_root, settings, api)
        self._sleep = sleep
        self.clock = PollClock()


class PollClock:
    """When to poll a job: learnt from the jobs of this build that already finished.

    Until a job has finished, poll every `first` seconds for a while, then back off. Once the
    usual duration is known, sleep through most of it, poll briskly around it, then back off:
    a job is seen done soon after it is, without polling a provider many times per job."""

    def __init__(self, first: float = 0.25, longest: float = 5.0) -> None:
        self.first = first
        self.longest = longest
        self._durations: list[float] = []
        self._lock = threading.Lock()

    def finished(self, seconds: float) -> None:
        with self._lock:
            self._durations.append(seconds)
            del self._durations[:-50]  # the recent past says most about the provider's pace now

    def typical(self) -> float | None:
        with self._lock:
            if not self._durations:
                return None
            ordered = sorted(self._durations)
            return ordered[len(ordered) // 2]

    def delays(self) -> Iterator[float]:
        """Pauses between the polls of one job (the first poll comes after the first pause)."""
        typical = self.typical()
        elapsed = 0.0
        if typical is not None and typical > 2 * self.first:
            elapsed = 0.9 * typical
            yield elapsed
            step = max(0.03, 0.03 * typical)
            while elapsed < 1.5 * typical:
                elapsed += step
                yield step
        delay = self.first
        while True:
            if elapsed > 2.0:  # past the brisk phase: back off to `longest`
                delay = min(self.longest, delay * 1.5)
            elapsed += delay
            yield delay


def prompt_with_negative(prompt: str, negative: str | None) -> str:
    """Seedream APIs take no negative prompt: it is appended as an instruction instead."""
    return f"{prompt} Avoid: {negative}" if negative else prompt


def data_url(data: bytes) -> str:
    """A ``data:image/<fmt>;base64,...`` URL (lowercase format, as Ark requires)."""
    return f"data:{image_mime(data)};base64,{base64.b64encode(data).decode('ascii')}"


def data_url_parts(url: str) -> tuple[str, str]:
    """(MIME type, base64 text) of a data URL made by `data_url`."""
    head, encoded = url.split(",", 1)
    return head.removeprefix("data:").split(";", 1)[0], encoded


def inline_upload(data: bytes) -> Upload:
    """A reference image that travels inside the call itself (as a data URL, a multipart part or
    base64): nothing is sent ahead, and the record keeps its size and hash."""
    return Upload(
        url=data_url(data), raw={"inline": True, "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    )


def image_mime(data: bytes) -> str:
    if data.startswith(b"\x89PNG"):
        return "image/png"
    if data.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"
