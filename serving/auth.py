"""Optional bearer-token check, as a plain ASGI middleware in front of the service.

When ``MMOPS_SERVE_TOKEN`` holds a token, every request except the
probes and ``/metrics`` must carry ``Authorization: Bearer <token>``; otherwise it gets a 401
with a JSON reason. Without a token the middleware lets everything through (local use).
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Awaitable, Callable, Mapping, MutableMapping, Sequence
from typing import Any

from serving.config import TOKEN_ENV

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

OPEN_PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})


class BearerAuth:
    """Reject requests without the right bearer token (constant-time comparison)."""

    def __init__(self, app: ASGIApp, *, token_env: str = TOKEN_ENV) -> None:
        self.app = app
        token = os.environ.get(token_env, "")
        self.expected = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope.get("path") in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope.get("headers", ()) if k == b"authorization"), b"")
        if hmac.compare_digest(given, self.expected):
            await self.app(scope, receive, send)
            return
        reason = "missing bearer token" if not given else "wrong bearer token"
        await send_json(
            send,
            401,
            {"error": f"{reason}: send 'Authorization: Bearer <token>'"},
            headers=[(b"www-authenticate", b'Bearer realm="mmops"')],
        )


async def send_json(
    send: Send, status: int, doc: Mapping[str, Any], *, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Answer a request from a middleware with a small JSON document (the app never sees it)."""
    body = json.dumps(doc).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
