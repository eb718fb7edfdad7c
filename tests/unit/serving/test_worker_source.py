"""The HTTP signal source tells the worker when its request has left (before the answer)."""

from __future__ import annotations

import asyncio
import json

import numpy as np

from serving.client import RejectedRequest, ServiceTimeout, ServiceUnavailable
from serving.worker_source import HttpSignalSource


def test_sent_is_set_once_the_request_is_out_and_before_the_answer() -> None:
    async def scenario() -> tuple[bool, bool, int, list[float]]:
        release = asyncio.Event()
        received: list[int] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            received.append(len(await reader.readexactly(length)))
            await release.wait()  # the service is "computing": no answer until the test says so
            doc = {
                "request_id": "r",
                "model": "m",
                "symbols": ["A", "B"],
                "values": [0.001, -0.002],
                "versions": ["3", "3"],
                "aliases": ["champion", "champion"],
                "kinds": ["forward_log_return", "forward_log_return"],
            }
            body = json.dumps(doc).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                + f"content-length: {len(body)}\r\n\r\n".encode()
                + body
            )
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        source = HttpSignalSource(f"http://127.0.0.1:{port}", timeout_s=5.0)
        sent = asyncio.Event()
        windows = np.zeros((2, 32, 67), dtype=np.float32)  # a 17 KB body: more than one small write
        request = asyncio.ensure_future(source.signals(["A", "B"], windows, sent=sent))
        await asyncio.wait_for(sent.wait(), timeout=5.0)
        answered_before_sent = request.done()
        await asyncio.sleep(0.05)
        answered_while_held = request.done()
        release.set()
        batch = await request
        await source.close()
        server.close()
        await server.wait_closed()
        return answered_before_sent, answered_while_held, received[0], list(batch.values)

    before, held, size, values = asyncio.run(scenario())
    assert not before and not held  # sent came while the answer was still being held back
    assert size > 2 * 32 * 67 * 4  # the server got the whole body (the windows and the meta)
    assert values == [0.001, -0.002]


def test_a_service_slower_than_the_timeout_is_a_late_answer_that_says_so() -> None:
    """aiohttp's own timeout has an empty text; the source names the wait, and the error is a
    TimeoutError, so the worker reports a late signal rather than a service that is down."""

    async def scenario() -> BaseException:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.readuntil(b"\r\n\r\n")
            await asyncio.sleep(5)  # never answers within the test's 50 ms
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        source = HttpSignalSource(f"http://127.0.0.1:{port}", timeout_s=0.05)
        try:
            await source.signals(["A"], np.zeros((1, 4, 3), dtype=np.float32))
        except Exception as exc:  # the test inspects what came out
            return exc
        finally:
            await source.close()
            server.close()
        raise AssertionError("no error from a service that never answered")

    exc = asyncio.run(scenario())
    assert isinstance(exc, ServiceTimeout) and isinstance(exc, TimeoutError)
    assert isinstance(exc, ServiceUnavailable)  # callers that catch the service's errors still do
    assert str(exc).endswith("/predict_batch: no answer within 50 ms"), str(exc)


def _answer(symbols: list[str]) -> bytes:
    doc = {
        "request_id": "r",
        "model": "m",
        "symbols": symbols,
        "values": [0.001] * len(symbols),
        "versions": ["3"] * len(symbols),
        "aliases": ["champion"] * len(symbols),
        "kinds": ["forward_log_return"] * len(symbols),
    }
    return json.dumps(doc).encode()


async def _scripted(paths: dict[str, list[int]], seen: list[tuple[str, dict]]) -> asyncio.Server:
    """A keep-alive HTTP server that answers each path with the next status of its script (200
    after the script runs out) and records each request's path and JSON line."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            path = head.split(b" ", 2)[1].decode()
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            body = await reader.readexactly(length)
            meta = json.loads(body.split(b"\n", 1)[0])
            seen.append((path, meta))
            script = paths.get(path, [])
            status = script.pop(0) if script else 200
            payload = _answer(meta["symbols"]) if status == 200 else b'{"error": "scripted"}'
            reason = {200: "OK", 404: "Not Found", 409: "Conflict", 503: "Service Unavailable"}[status]
            writer.write(
                f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n".encode()
                + f"content-length: {len(payload)}\r\n\r\n".encode()
                + payload
            )
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def _ticks(
    script: dict[str, list[int]], n: int, **options: float
) -> tuple[list[tuple[str, dict]], HttpSignalSource]:
    async def scenario() -> tuple[list[tuple[str, dict]], HttpSignalSource]:
        seen: list[tuple[str, dict]] = []
        server = await _scripted(script, seen)
        port = server.sockets[0].getsockname()[1]
        source = HttpSignalSource(f"http://127.0.0.1:{port}", timeout_s=5.0, **options)
        windows = np.ones((2, 4, 3), dtype=np.float32)
        for t in range(n):
            batch = await source.signals(["A", "B"], windows, seq=np.array([10 + t, 20 + t]))
            assert list(batch.values) == [0.001, 0.001]
        await source.close()
        server.close()
        await server.wait_closed()
        return seen, source

    return asyncio.run(scenario())


def test_a_stream_sends_whole_windows_first_then_only_the_newest_rows() -> None:
    seen, source = _ticks({}, 3)
    assert [path for path, _ in seen] == ["/predict_stream"] * 3
    assert [meta["full"] for _, meta in seen] == [[0, 1], [], []]
    assert [meta["seq"] for _, meta in seen] == [[10, 20], [11, 21], [12, 22]]
    assert source.conflicts == 0 and source.whole_windows == 2


def test_a_conflict_resends_the_windows_whole_in_the_same_call() -> None:
    seen, source = _ticks({"/predict_stream": [200, 409]}, 3)
    # tick 1: whole; tick 2: steps -> 409 -> whole again, at once; tick 3: steps
    assert [meta["full"] for _, meta in seen] == [[0, 1], [], [0, 1], []]
    assert seen[1][1]["seq"] == seen[2][1]["seq"] == [11, 21]
    assert source.conflicts == 1 and source.whole_windows == 4


def test_a_service_without_the_stream_path_gets_whole_windows_on_predict_batch() -> None:
    seen, _ = _ticks({"/predict_stream": [404]}, 3)
    assert [path for path, _ in seen] == [
        "/predict_stream",
        "/predict_batch",
        "/predict_batch",
        "/predict_batch",
    ]
    assert all(meta["rows"] == 4 and "seq" not in meta for _, meta in seen[1:])


def test_the_stream_path_is_tried_again_after_stream_retry_s() -> None:
    """A service replaced behind the same address (here: one without the path, then one with it)
    gets the stream again: whole windows first, since the new one holds nothing of it, then steps."""
    seen, source = _ticks({"/predict_stream": [200, 404]}, 4, stream_retry_s=0.0)
    assert [path for path, _ in seen] == [
        "/predict_stream",
        "/predict_stream",
        "/predict_batch",
        "/predict_stream",
        "/predict_stream",
    ]
    assert [meta.get("full") for _, meta in seen] == [[0, 1], [], None, [0, 1], []]
    assert source.conflicts == 0  # no 409 round trip: the windows went whole at once


def _ticks_with_errors(script: dict[str, list[int]], n: int) -> tuple[list[tuple[str, dict]], list[str]]:
    """As :func:`_ticks`, recording each tick's outcome: "ok" or the error's class name."""

    async def scenario() -> tuple[list[tuple[str, dict]], list[str]]:
        seen: list[tuple[str, dict]] = []
        outcomes: list[str] = []
        server = await _scripted(script, seen)
        source = HttpSignalSource(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}", timeout_s=5.0)
        windows = np.ones((2, 4, 3), dtype=np.float32)
        for t in range(n):
            try:
                await source.signals(["A", "B"], windows, seq=np.array([10 + t, 20 + t]))
                outcomes.append("ok")
            except (RejectedRequest, ServiceUnavailable) as exc:
                outcomes.append(type(exc).__name__)
        await source.close()
        server.close()
        await server.wait_closed()
        return seen, outcomes

    return asyncio.run(scenario())


def test_a_conflict_on_the_whole_resend_is_an_error_not_a_loop_and_the_next_tick_starts_whole() -> None:
    seen, outcomes = _ticks_with_errors({"/predict_stream": [200, 409, 409]}, 3)
    assert outcomes == ["ok", "RejectedRequest", "ok"]
    # tick 2: steps -> 409 -> whole -> 409 (raised, no third try); tick 3: whole, nothing known held
    assert [meta["full"] for _, meta in seen] == [[0, 1], [], [0, 1], [0, 1]]


def test_an_answer_that_never_came_makes_the_next_tick_send_whole_windows() -> None:
    """The service may or may not have applied a request whose answer failed: the client must
    not assume either, so the symbols it covered go whole on the next tick."""
    seen, outcomes = _ticks_with_errors({"/predict_stream": [200, 200, 503]}, 4)
    assert outcomes == ["ok", "ok", "ServiceUnavailable", "ok"]
    assert [meta["full"] for _, meta in seen] == [[0, 1], [], [], [0, 1]]
