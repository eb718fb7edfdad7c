"""A cap on request bodies, as a plain ASGI middleware in front of the service.

The service reads a body whole before it parses it, so without a cap one request decides how
much the worker holds: a 60 MB body (100,000 rows in one window) was accepted after 2.8 s and
took the worker from 334 to 580 MB. :class:`BodyLimit` answers 413 with a JSON reason instead.
"""

from __future__ import annotations

from serving.auth import ASGIApp, Message, Receive, Scope, Send, send_json

SETTING = "serve.max_body_bytes"


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with a 413, without reading them whole.

    A declared ``Content-Length`` over the cap is refused before any byte is read. Every other
    body is read here chunk by chunk and counted, so a chunked body (no ``Content-Length``) or a
    declared length the bytes do not keep to is refused as soon as the count passes the cap; the
    chunks are then handed to the app unchanged (no copy), since the service reads the whole body
    anyway. Bodies over the cap are never held: reading stops at the first chunk past it.

    Args:
        app: the ASGI app behind.
        max_bytes: the cap, bytes; None reads ``serve.max_body_bytes`` from the service settings
            (``MMOPS_SERVE_SETTINGS``, written by ``mmops serve``).
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int | None = None) -> None:
        if max_bytes is None:
            from serving.config import settings_from_env

            max_bytes = settings_from_env().config.max_body_bytes
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send, f"{scope.get('path')}: the body is {declared} bytes (Content-Length)")
            return
        messages: list[Message] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":  # a disconnect: the app sees it as it came
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._refuse(send, f"{scope.get('path')}: the body passed {size} bytes while read")
                return
            if not message.get("more_body", False):
                break
        pending = iter(messages)

        async def replay() -> Message:
            message = next(pending, None)
            return message if message is not None else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send: Send, what: str) -> None:
        await send_json(
            send,
            413,
            {
                "error": f"{what}; the limit is {self.max_bytes} bytes ({SETTING}): "
                "send fewer symbols per request, or the raw float32 form",
                "limit_bytes": self.max_bytes,
            },
        )


def _content_length(scope: Scope) -> int | None:
    """The declared body size, or None when absent or not a number (then the count decides)."""
    for key, value in scope.get("headers", ()):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
