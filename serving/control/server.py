"""Serve the control API on the worker's own asyncio loop (uvicorn), for as long as the worker runs.

The socket is bound before anything starts, so a taken port is a one-line error, not a
traceback. uvicorn's signal handlers are left out: the worker's process owns its signals (a
Ctrl-C stops the run as it always did). Handlers are sync functions: FastAPI runs them in its
thread pool, so journal reads never hold up a tick; the loop only parses HTTP between ticks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from features.errors import ConfigError

logger = logging.getLogger(__name__)
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the worker's process keeps its own signal handling


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: any free one).

    Raises:
        ConfigError: the address cannot be bound (in use, not this machine's, no permission).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=64)
    except OSError as exc:
        raise ConfigError(
            f"--api-host {host} --api-port {port}: cannot listen there ({exc.strerror or exc})"
        ) from exc


@contextlib.asynccontextmanager
async def serving(app: FastAPI, *, host: str, port: int) -> AsyncIterator[str]:
    """Serve ``app`` on this loop while the block runs; yields the base URL.

    Raises:
        ConfigError: the address cannot be bound.
    """
    sock = bind(host, port)
    bound = sock.getsockname()[1]
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=2
    )
    server = _Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():  # it could not start: say why (uvicorn exits on a startup failure)
            sock.close()
            raise ConfigError(f"the control API did not start on {host}:{bound} ({task.exception()!r})")
        await asyncio.sleep(0.01)
    url = f"http://{f'[{host}]' if ':' in host else host}:{bound}"
    logger.info("control API on %s (dashboard: %s/dashboard)", url, url)
    if host not in LOOPBACK:
        logger.warning(
            "control API on %s: plain HTTP beyond loopback, tokens travel in clear; put TLS in front", url
        )
    try:
        yield url
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
