"""Threads or asyncio for a few hundred calls in flight? Both measured side by side.

N requests to a loopback HTTP/1.1 server in its own process
that answers each after LATENCY seconds with a small JSON body (no image is made: the client's
cost is measured, not the server's), C at a time:

* threads, a client each: C threads, each with its own ``httpx.Client`` sharing one TLS context
  (what a build does: doit's thread runner, imgbuild.providers.http);
* threads, one client: C threads sharing one ``httpx.Client``;
* asyncio: C tasks sharing one ``httpx.AsyncClient`` on one event loop.

For each it prints the wall time against the ideal (N / C × LATENCY), the CPU seconds this
process spent per request (user + system, the server's not counted), the peak RSS growth and how
many requests took more than twice LATENCY (a request stuck in the client).

Usage::

    python bench/http_concurrency.py                     # N=1000, C=256, LATENCY=2 s
    python bench/http_concurrency.py --n 2000 --latency 5
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import httpx

SERVER = """
import sys, threading, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
LATENCY = float(sys.argv[1])
BODY = b'{"data": [{"url": "http://127.0.0.1/x.png"}], "usage": {"generated_images": 1}}'
class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(LATENCY)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)
    def log_message(self, *args):
        pass
class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
server = Server(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
sys.stdin.read()
"""
BODY = {"model": "seedream-4-0-250828", "prompt": "bench", "size": "1024x1024", "response_format": "url"}
LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=None, keepalive_expiry=None)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def with_threads(url: str, headers: dict[str, str], n: int, c: int, timeout: float) -> list[float]:
    client = httpx.Client(limits=LIMITS, timeout=timeout)
    took = _threads(lambda: client, url, headers, n, c)
    client.close()
    return took


def with_thread_clients(url: str, headers: dict[str, str], n: int, c: int, timeout: float) -> list[float]:
    """What imgbuild does (providers/http.py): a client per thread, one TLS context for all."""
    tls = httpx.create_ssl_context()
    local = threading.local()
    clients: list[httpx.Client] = []

    def client() -> httpx.Client:
        made: httpx.Client | None = getattr(local, "client", None)
        if made is None:
            made = local.client = httpx.Client(limits=LIMITS, timeout=timeout, verify=tls)
            clients.append(made)
        return made

    took = _threads(client, url, headers, n, c)
    for each in clients:
        each.close()
    return took


def _threads(client: Callable[[], httpx.Client], url: str, headers: dict[str, str], n: int, c: int) -> list[float]:
    todo = list(range(n))
    lock = threading.Lock()
    took: list[float] = []

    def worker() -> None:
        while True:
            with lock:
                if not todo:
                    return
                todo.pop()
            started = time.monotonic()
            with contextlib.suppress(httpx.HTTPError):  # a failed request counts by its time
                client().post(url, json=BODY, headers=headers).raise_for_status()
            took.append(time.monotonic() - started)

    threads = [threading.Thread(target=worker) for _ in range(c)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return took


def with_asyncio(url: str, headers: dict[str, str], n: int, c: int, timeout: float) -> list[float]:
    took: list[float] = []

    async def run() -> None:
        async with httpx.AsyncClient(limits=LIMITS, timeout=timeout) as client:
            todo = list(range(n))

            async def worker() -> None:
                while todo:
                    todo.pop()
                    started = time.monotonic()
                    with contextlib.suppress(httpx.HTTPError):
                        (await client.post(url, json=BODY, headers=headers)).raise_for_status()
                    took.append(time.monotonic() - started)

            await asyncio.gather(*(worker() for _ in range(c)))

    asyncio.run(run())
    return took


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--latency", type=float, default=2.0)
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(args.latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdout is not None
    try:
        url = f"http://127.0.0.1:{int(server.stdout.readline())}/images/generations"
        headers = {"Authorization": "Bearer bench"}
        rounds = -(-args.n // args.concurrency)
        ideal = args.n / args.concurrency * args.latency
        print(f"{args.n} requests, {args.concurrency} in flight, {args.latency:g} s each: ideal {ideal:.2f} s")
        ways: dict[str, Callable[..., list[float]]] = {
            "threads, a client each": with_thread_clients,
            "threads, one client": with_threads,
            "asyncio, one AsyncClient": with_asyncio,
        }
        for name, way in ways.items():
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            before, started = cpu(), time.monotonic()
            took = way(url, headers, args.n, args.concurrency, timeout=max(30.0, 6 * args.latency))
            wall, spent = time.monotonic() - started, cpu() - before
            grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss) / 1024
            stuck = sum(1 for t in took if t > 2 * args.latency)
            print(
                f"{name:>24}: wall {wall:.2f} s ({wall / ideal:.3f} x ideal,"
                f" floor {rounds * args.latency / ideal:.3f}),"
                f" CPU {spent / args.n * 1000:.2f} ms per request, peak RSS +{grown:.0f} MB, {stuck} stuck"
            )
    finally:
        server.kill()
        server.wait()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
