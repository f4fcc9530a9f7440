"""A request goes out in one send: httpcore writes a request's head and its body apart, and the
build's connections (providers/http.py, _DeadlineStream) hold small writes until the answer is
read, or until 64 KiB wait (a reference image uploaded goes as soon as its body is written). Each
send is a system call and a packet; a head and a body sent apart also meet delayed ACKs."""

from __future__ import annotations

import json
from typing import Any

import httpcore
import pytest
from fakes.loopback import LoopbackJSON

from imgbuild.providers.http import default_client


class _Echo(LoopbackJSON):
    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[bytes] = []

    def answer(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple[int, Any]:
        self.bodies.append(body)
        return 200, {"ok": True, "size": len(body)}


@pytest.fixture
def sends(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The size of every send on a connection of this process."""
    sizes: list[int] = []
    real = httpcore._backends.sync.SyncStream.write

    def counting(self: Any, buffer: bytes, timeout: float | None = None) -> None:
        if buffer:
            sizes.append(len(buffer))
        real(self, buffer, timeout)

    monkeypatch.setattr(httpcore._backends.sync.SyncStream, "write", counting)
    return sizes


def test_a_json_request_goes_out_in_one_send_and_whole(sends: list[int]) -> None:
    body = {"prompt": "a portrait, " * 200, "size": "2048x2048"}
    with _Echo() as server, default_client() as client:
        for _ in range(3):  # a fresh connection, then the same one kept alive
            answer = client.post(f"{server.url}/images/generations", json=body)
            assert answer.json() == {"ok": True, "size": len(json.dumps(body, separators=(",", ":")))}
    assert len(sends) == 3  # one per request: head and body together
    assert [json.loads(b) for b in server.bodies] == [body] * 3


def test_a_large_upload_goes_out_with_its_head(sends: list[int]) -> None:
    data = bytes(range(256)) * 1024  # 256 KiB
    with _Echo() as server, default_client() as client:
        assert client.post(f"{server.url}/upload", content=data).json()["size"] == len(data)
    assert server.bodies == [data]
    assert len(sends) == 1 and sends[0] > len(data)  # past 64 KiB held, it goes at once, head first
