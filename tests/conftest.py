"""Guards for every test: no network beyond loopback, no writes to the real home folder,
and each test starts in its own temporary working folder."""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


class NetworkAccessForbidden(AssertionError):
    """A test tried to reach an address that is not on this machine."""


def _is_loopback(address: Any) -> bool:
    if isinstance(address, str | bytes):
        return True  # AF_UNIX socket path
    if not isinstance(address, tuple):
        return False
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@pytest.fixture(autouse=True)
def _no_network_beyond_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    real_connect = socket.socket.connect
    real_connect_ex = socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise NetworkAccessForbidden(f"test tried to connect to {address!r}")
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> Any:
        if not _is_loopback(address):
            raise NetworkAccessForbidden(f"test tried to connect to {address!r}")
        return real_connect_ex(self, address)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in (None, "localhost") and not _is_loopback((host,)):
            raise NetworkAccessForbidden(f"test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


@pytest.fixture(autouse=True)
def _isolated_folders(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    for name in (
        "IMGBUILD_PROVIDER",
        "IMGBUILD_SHARD",
        "SOURCE_DATE_EPOCH",
        "ARK_API_KEY",
        "REPLICATE_API_TOKEN",
        "FAL_KEY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    yield


def _repo_status() -> str | None:
    import subprocess

    repo = Path(__file__).resolve().parents[1]
    try:
        result = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=all", "--ignored=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout if result.returncode == 0 else None


@pytest.fixture(autouse=True, scope="session")
def _no_writes_into_the_repository() -> Iterator[None]:
    """Tests write under tmp folders only: the checkout must look the same afterwards."""
    before = _repo_status()
    yield
    after = _repo_status()
    if before is not None and after is not None and after != before:
        raise AssertionError(f"the test session changed files in the repository:\n{after}")
