"""Class 5: hostile provider answers, from a real loopback server that answers as Ark would not.

Each case: a real `imgbuild build` against 127.0.0.1; the asset fails with the reason on screen
and in its history, exit 1, no traceback, no image kept, no pending call left (the next build
would not pay again for a call it thinks was interrupted), and all of it within the time bound."""

from __future__ import annotations

import base64
import contextlib
import gzip
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import BATCH as HELPER_BATCH
from helpers import PERSONA, run_cli, write_project
from hostile_support import png_header
from PIL import Image

from imgbuild.providers import http as provider_http

SECONDS = 10.0
KEY = "ark-hostile-test-key-5d1c"
Script = Callable[["Handler"], None]

# helpers.BATCH with every attribute fixed and one candidate: one asset, one paid call.
BATCH = (
    HELPER_BATCH.replace(
        "vary:\n  environment: [home office, cafe]\n  lighting: [morning light, lamp light]\n",
        "  environment: home office\n  lighting: morning light\n",
    )
    .replace("    candidates: 2\n", "")
    .replace("output_format: jpeg", "output_format: png")
)

CONFIG = """\
provider: ark
providers:
  ark:
    deadline_seconds: 0.8
    retries: {attempts: 1, base_delay: 0.01, max_delay: 0.01}
"""


def png(width: int = 64, height: int = 64) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


class Handler(BaseHTTPRequestHandler):
    server: HostileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        self.body = self.rfile.read(length)
        self._serve()

    def _serve(self) -> None:
        self.server.requests.append((self.command, self.path, dict(self.headers)))
        script = self.server.files.get(self.path) if self.command == "GET" else self.server.script
        if script is None:
            return self.send(404, b"{}")
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            script(self)

    def send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def answer(self, payload: object) -> None:
        self.send(200, json.dumps(payload).encode())

    def image_url(self, name: str, data: bytes) -> str:
        self.server.files[f"/img/{name}"] = lambda h: h.send(200, data, {"Content-Type": "image/png"})
        return f"{self.server.url}/img/{name}"


class HostileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.script: Script = lambda h: h.answer({})
        self.files: dict[str, Script] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that hangs up on a hostile answer is the point of the test

    def creates(self) -> int:
        return sum(1 for method, path, _ in self.requests if method == "POST")


@pytest.fixture
def server() -> Iterator[HostileServer]:
    srv = HostileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def hosted(tmp_path: Path, server: HostileServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = write_project(tmp_path / "p", batches={"covers": BATCH}, personas={"mia": PERSONA}, config=CONFIG)
    monkeypatch.setenv("ARK_API_KEY", KEY)
    monkeypatch.setenv("IMGBUILD_ARK_BASE_URL", server.url)
    return root


def failed_build(root: Path, capsys: pytest.CaptureFixture[str], *reason: str) -> str:
    """Build: the one asset fails with `reason` (screen and history), exit 1, nothing kept."""
    started = time.monotonic()
    code = run_cli(root, "build")
    elapsed = time.monotonic() - started
    out = capsys.readouterr()
    text = out.out + out.err
    assert "Traceback" not in text and "unexpected error" not in text, text
    assert code == 1, text
    assert elapsed < SECONDS
    for part in reason:
        assert part in text, (part, text)
    assert list((root / "assets").glob("*/images/**/*.*")) == []  # no image kept
    assert list((root / ".imgbuild/calls").rglob("*.json")) == []  # no call left pending
    history = [json.loads(p.read_text())["history"] for p in (root / "assets").glob("*/index.json")]
    failures = [e for events in history for e in events if e["event"] == "failed"]
    assert len(failures) == 1 and all(part in failures[0]["reason"] for part in reason), history
    return text


def one_image(h: Handler, **item: object) -> None:
    h.answer({"data": [{"url": h.image_url("a.png", png()), **item}], "usage": {"generated_images": 1}})


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        (
            lambda h: h.send(200, b"<html>gateway</html>", {"Content-Type": "text/html"}),
            "answered HTTP 200 with no JSON",
        ),
        (lambda h: h.send(200, b"\xff\xfe\x00garbage"), "answered HTTP 200 with no JSON"),
        (lambda h: h.answer([1, 2, 3]), "answered with a JSON list, expected an object"),
        (lambda h: h.answer("just a string"), "answered with a JSON str, expected an object"),
        (lambda h: h.answer({"data": "nope"}), "ark's answer is not in the documented shape: data"),
        (lambda h: h.answer({"data": [{"url": 12}]}), "data[0].url: 12 is not of type 'string'"),
        (lambda h: h.answer({"data": [{"size": "1x1"}]}), "ark's answer is not in the documented shape: data[0]"),
        (lambda h: h.answer({"data": [None]}), "data[0]: None is not of type 'object'"),
        (
            lambda h: h.answer({"data": [{"b64_json": "!!!not base64!!!"}]}),
            "ark's data[0].b64_json is not valid base64",
        ),
        (
            lambda h: h.answer({"data": [{"url": "http://x/a.png"}] * 3}),
            "ark's answer holds 3 images; 1 were asked for",
        ),
        (lambda h: h.answer({"data": [{"url": "http://x/a.png"}] * 500}), "data: 500 items, over the 64 allowed"),
        (
            lambda h: h.answer({"error": "a string, not an object"}),
            "ark's answer is not in the documented shape: error",
        ),
        (lambda h: one_image(h, url="ftp://example/a.png"), "data[0].url: 'ftp://example/a.png' does not match"),
    ],
    ids=[
        "html",
        "binary",
        "list",
        "string",
        "data-string",
        "url-number",
        "no-url",
        "null-item",
        "bad-base64",
        "too-many-images",
        "hundreds-of-images",
        "error-string",
        "bad-url",
    ],
)
def test_answers_not_in_the_documented_shape_fail_their_asset(hosted, server, capsys, script, reason):
    server.script = script
    failed_build(hosted, capsys, reason)
    assert server.creates() == 1  # one call, never retried as if nothing had happened


def test_a_body_over_the_cap_fails_while_streaming(hosted, server, capsys, monkeypatch):
    monkeypatch.setattr(provider_http, "MAX_ANSWER_BYTES", 64 * 1024)
    server.script = lambda h: h.answer({"data": [{"url": "x" * 200_000}]})
    failed_build(hosted, capsys, "the answer is over 65536 bytes")


def test_a_gzip_bomb_answer_is_capped_decoded(hosted, server, capsys, monkeypatch):
    monkeypatch.setattr(provider_http, "MAX_ANSWER_BYTES", 1024 * 1024)
    bomb = gzip.compress(b'{"data": [{"url": "' + b"x" * 50_000_000 + b'"}]}')
    assert len(bomb) < 100_000
    server.script = lambda h: h.send(200, bomb, {"Content-Encoding": "gzip"})
    failed_build(hosted, capsys, "the answer is over 1048576 bytes")


def drip(h: Handler, interval: float, body: bytes) -> None:
    h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
    for byte in body:
        h.wfile.write(bytes([byte]))
        h.wfile.flush()
        time.sleep(interval)


def test_a_server_dripping_its_headers_cannot_hang_the_build(hosted, server, capsys):
    server.script = lambda h: drip(h, 0.2, b"X-Slow: " + b"y" * 200 + b"\r\n\r\n")
    failed_build(hosted, capsys, "no complete answer within the overall deadline of 0.8 s")


def test_a_server_dripping_its_body_cannot_hang_the_build(hosted, server, capsys):
    def script(h: Handler) -> None:
        body = json.dumps({"data": [{"url": "x"}]}).encode() + b" " * 200
        h.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode())
        for byte in body:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.1)

    server.script = script
    failed_build(hosted, capsys, "no complete answer within the overall deadline of 0.8 s")


def test_a_paid_call_is_not_redirected_to_another_origin(hosted, server, capsys):
    other = HostileServer()
    thread = threading.Thread(target=other.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        server.script = lambda h: h.send(307, b"", {"Location": f"{other.url}/images/generations"})
        failed_build(hosted, capsys, "HTTP 307")
        assert other.requests == []  # neither the body nor the key went there
    finally:
        other.shutdown()
        other.server_close()


def test_a_same_origin_redirect_is_followed(hosted, server, capsys):
    def script(h: Handler) -> None:
        if h.path == "/images/generations":
            h.send(307, b"", {"Location": "/v2/images/generations"})
        else:
            one_image(h)

    server.script = script
    assert run_cli(hosted, "build") == 0, capsys.readouterr()
    assert len(list((hosted / "assets").glob("*/images/candidates/*.png"))) == 1


def test_a_decompression_bomb_image_fails_its_asset_once(hosted, server, capsys):
    server.script = lambda h: h.answer({"data": [{"url": h.image_url("bomb.png", png_header(60_000, 60_000))}]})
    failed_build(hosted, capsys, "decompression bomb")
    # the saved answer is not tried again by the next build: it failed for good, with the reason
    assert run_cli(hosted, "build") == 1
    assert server.creates() == 2  # a new call (the asset is still wanted), not a replay of the bomb


def test_an_image_over_the_pixel_cap_fails_its_asset(hosted, server, capsys):
    server.script = lambda h: h.answer({"data": [{"url": h.image_url("big.png", png_header(8000, 8000))}]})
    failed_build(hosted, capsys, "8000×8000 pixels, over the cap")


def test_an_inline_image_that_is_not_png(hosted, server, capsys):
    data = base64.b64encode(b"GIF89a" + b"\0" * 64).decode()
    server.script = lambda h: h.answer({"data": [{"b64_json": data}]})
    text = failed_build(hosted, capsys)
    assert "not a whole image" in text


def test_an_answer_echoing_the_key_leaves_no_trace(hosted, server, capsys):
    def script(h: Handler) -> None:
        auth = h.headers["Authorization"]
        h.send(400, json.dumps({"error": {"code": "Bad", "message": f"you sent {auth} / {KEY}"}}).encode())

    server.script = script
    failed_build(hosted, capsys, "<redacted>")
    needles = [KEY.encode(), base64.b64encode(KEY.encode())]
    assert [p for p in hosted.rglob("*") if p.is_file() and any(n in p.read_bytes() for n in needles)] == []
