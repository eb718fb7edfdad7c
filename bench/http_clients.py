"""What an HTTP client costs the worker per request: httpx and aiohttp against a raw socket.

The worker makes one request to the signal service on every tick's critical path
(:class:`serving.worker_source.HttpSignalSource`). This bench takes the service out: a bare
Starlette app under uvicorn (httptools, the event loop uvicorn picks) on a free 127.0.0.1 port,
in its own process, with two routes: ``/info`` (no body, a 2-byte JSON answer) and ``/body``
(reads the body, answers its length). Each client sends ``--requests`` pairs of requests, one at
a time on one keep-alive connection, a ``/info`` then a ``/body`` of ``--body-kb`` (857 KB: the
worker's 100-symbol request, 100 x 32 x 67 float32), 5 ms apart; the first 50 pairs are dropped.
The clients run in turn, ``--rounds`` times interleaved, so the machine's load falls on all of
them alike; the report is each client's p50 / p99 in ms and its ratio to the raw socket in the
same round.

Stops by itself; the server process is stopped on the way out.

    .venv/bin/python bench/http_clients.py [--requests 800] [--rounds 2] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import numpy as np

# bench/features.py and bench/serving.py are named like packages: this folder goes last on the path
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))
from worker_setup import free_port, pct  # noqa: E402

WARMUP = 50


def serve(port: int) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def info(_request: Request) -> JSONResponse:
        return JSONResponse({})

    async def body(request: Request) -> JSONResponse:
        return JSONResponse({"n": len(await request.body())})

    app = Starlette(routes=[Route("/info", info, methods=["POST"]), Route("/body", body, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", http="httptools")


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("the test server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("the test server did not start in 60 s")


async def timed(call: Callable[[str, bytes], Awaitable[None]], body: bytes, n: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"info": [], "body": []}
    for _ in range(n):
        for path, payload in (("/info", b""), ("/body", body)):
            t = time.perf_counter()
            await call(path, payload)
            out[path[1:]].append((time.perf_counter() - t) * 1000)
        await asyncio.sleep(0.005)
    return {k: v[WARMUP:] for k, v in out.items()}


async def with_raw(base: str, body: bytes, n: int) -> dict[str, list[float]]:
    """HTTP/1.1 by hand on one socket: the floor (what the server and the loopback cost)."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))

    async def call(path: str, payload: bytes) -> None:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(payload)}\r\n\r\n".encode() + payload
        )
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)

    try:
        return await timed(call, body, n)
    finally:
        writer.close()


async def with_httpx(base: str, body: bytes, n: int) -> dict[str, list[float]]:
    import httpx

    async with httpx.AsyncClient(base_url=base) as client:

        async def call(path: str, payload: bytes) -> None:
            (await client.post(path, content=payload)).raise_for_status()

        return await timed(call, body, n)


async def with_aiohttp(base: str, body: bytes, n: int) -> dict[str, list[float]]:
    import aiohttp

    async with aiohttp.ClientSession(base) as session:

        async def call(path: str, payload: bytes) -> None:
            async with session.post(path, data=payload) as response:
                response.raise_for_status()
                await response.read()

        return await timed(call, body, n)


CLIENTS = {"raw_socket": with_raw, "httpx": with_httpx, "aiohttp": with_aiohttp}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=800, help="request pairs per client per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--body-kb", type=int, default=857)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    body = os.urandom(args.body_kb * 1000)
    rounds: list[dict[str, dict[str, dict[str, float]]]] = []
    try:
        wait_ready(port, proc)
        for _ in range(args.rounds):
            got = {
                name: asyncio.run(run(f"http://127.0.0.1:{port}", body, args.requests + WARMUP))
                for name, run in CLIENTS.items()
            }
            rounds.append({name: {k: pct(np.array(v)) for k, v in r.items()} for name, r in got.items()})
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    for r in rounds:
        for name in CLIENTS:
            for k in ("info", "body"):
                r[name][k]["p50_over_raw"] = r[name][k]["p50"] / r["raw_socket"][k]["p50"]
    report = {
        "bench": "http_clients",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "body_bytes": len(body),
        "requests_per_round": args.requests,
        "rounds": rounds,
    }
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(
        f"p50 / p99 ms, one request at a time on 127.0.0.1 ({len(body):,} B body); x = p50 over the raw socket's"
    )
    for i, r in enumerate(rounds, 1):
        for name in CLIENTS:
            cells = [
                f"{k} {r[name][k]['p50']:.2f} / {r[name][k]['p99']:.2f} (x{r[name][k]['p50_over_raw']:.2f})"
                for k in ("info", "body")
            ]
            print(f"  round {i}  {name:<10} " + "   ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        serve(int(sys.argv[2]))
    else:
        main()
