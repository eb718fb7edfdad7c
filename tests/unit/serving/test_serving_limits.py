"""The request-body cap (serving.limits.BodyLimit) as a plain ASGI app: no server."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from serving.config import ServeConfig, ServeSettings
from serving.limits import BodyLimit

CAP = 100


class Recorder:
    """The app behind the middleware: reads the whole body the way Starlette does, then answers 200."""

    def __init__(self) -> None:
        self.called = False
        self.chunks: list[bytes] = []
        self.after: dict | None = None

    async def __call__(self, scope, receive, send) -> None:
        self.called = True
        while True:
            message = await receive()
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        self.after = await receive()  # what a disconnect listener would see next
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def run(app, chunks: list[bytes], *, content_length: int | None = None) -> tuple[int, dict, int]:
    """(status, JSON body, calls of the server's receive) for a body sent as ``chunks``."""
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]
    handed = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal handed
        handed += 1
        return messages[handed - 1] if handed <= len(messages) else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    asyncio.run(app({"type": "http", "path": "/predict_batch", "headers": headers}, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body), handed


def test_a_declared_length_over_the_cap_is_refused_before_any_byte_is_read() -> None:
    inner = Recorder()
    status, body, handed = run(BodyLimit(inner, max_bytes=CAP), [b"x" * 500], content_length=500)
    assert (status, handed, inner.called) == (413, 0, False)
    assert "/predict_batch: the body is 500 bytes (Content-Length)" in body["error"]
    assert "the limit is 100 bytes (serve.max_body_bytes)" in body["error"] and body["limit_bytes"] == CAP


@pytest.mark.parametrize("declared", [None, 10], ids=["chunked", "lying-content-length"])
def test_a_streamed_body_is_refused_at_the_first_chunk_past_the_cap(declared: int | None) -> None:
    inner = Recorder()
    chunks = [b"a" * 60, b"b" * 60, b"c" * 60, b"d" * 60]
    status, body, handed = run(BodyLimit(inner, max_bytes=CAP), chunks, content_length=declared)
    assert (status, inner.called) == (413, False)
    assert handed == 2  # stopped reading at 120 bytes: the rest is never held
    assert "the body passed 120 bytes while read; the limit is 100 bytes" in body["error"]


def test_a_body_at_the_cap_reaches_the_app_unchanged_chunk_by_chunk() -> None:
    inner = Recorder()
    chunks = [b"a" * 40, b"b" * 40, b"c" * 20]  # exactly CAP bytes
    status, _, handed = run(BodyLimit(inner, max_bytes=CAP), chunks, content_length=CAP)
    assert (status, handed) == (200, 4)  # the fourth receive is the app's own, after the replay
    assert inner.chunks == chunks
    assert inner.after == {"type": "http.disconnect"}  # later receives go to the server again


def test_empty_bodies_and_other_scopes_pass() -> None:
    inner = Recorder()
    assert run(BodyLimit(inner, max_bytes=CAP), [b""])[0] == 200 and inner.chunks == [b""]
    seen: list[str] = []

    async def lifespan_app(scope, receive, send) -> None:
        seen.append(scope["type"])

    asyncio.run(BodyLimit(lifespan_app, max_bytes=CAP)({"type": "lifespan"}, None, None))  # type: ignore[arg-type]
    assert seen == ["lifespan"]


def test_the_cap_defaults_to_the_service_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServeSettings(
        model_name="m",
        tracking_uri="sqlite:///x.db",
        cache_dir=tmp_path,
        log_dir=tmp_path,
        config=ServeConfig(max_body_bytes=4096),
    )
    monkeypatch.setenv("MMOPS_SERVE_SETTINGS", str(settings.write(tmp_path / "settings.json")))
    limit = BodyLimit(Recorder())
    assert limit.max_bytes == 4096
    assert run(limit, [b"x" * 4097], content_length=4097)[0] == 413
