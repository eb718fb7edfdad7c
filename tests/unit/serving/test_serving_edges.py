"""The bearer-token middleware and the typed client (retries, timeouts, error mapping)."""

from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

from serving.auth import BearerAuth
from serving.client import RejectedRequest, ServiceUnavailable, SignalClient, Unauthorized
from serving.logic import split_raw_batch, windows_from_bytes

SIGNAL = {
    "request_id": "r",
    "model": "m",
    "signals": [{"symbol": "A", "value": 0.5, "kind": "prob_up", "version": "3", "alias": "champion"}],
}


def call(app, path: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict]:
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b""}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app({"type": "http", "path": path, "headers": headers}, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], json.loads(body or b"{}")


async def ok_app(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def test_no_token_configured_lets_everything_through(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MMOPS_SERVE_TOKEN", raising=False)
    assert call(BearerAuth(ok_app), "/predict", [])[0] == 200


def test_token_required_when_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MMOPS_SERVE_TOKEN", "s3cret")
    app = BearerAuth(ok_app)
    status, body = call(app, "/predict", [])
    assert status == 401 and "missing bearer token" in body["error"]
    status, body = call(app, "/info", [(b"authorization", b"Bearer nope")])
    assert status == 401 and "wrong bearer token" in body["error"]
    assert call(app, "/predict", [(b"authorization", b"Bearer s3cret")])[0] == 200
    assert call(app, "/readyz", [])[0] == 200 and call(app, "/metrics", [])[0] == 200  # probes stay open


def client(handler, **kw) -> SignalClient:
    return SignalClient(
        "http://svc", token="t", attempts=3, backoff_s=0.001, transport=httpx.MockTransport(handler), **kw
    )


def test_client_sends_the_token_and_parses_typed_responses() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=SIGNAL)

    out = client(handler).predict({"A": np.zeros((2, 3))}, feature_names=["a", "b", "c"], request_id="r")
    assert out.signals[0].value == 0.5 and out.signals[0].version == "3"
    head, raw = split_raw_batch(seen[0].content)
    assert seen[0].headers["authorization"] == "Bearer t"
    assert seen[0].headers["content-type"] == "application/octet-stream"
    assert json.loads(head) == {
        "symbols": ["A"],
        "rows": 2,
        "feature_names": ["a", "b", "c"],
        "request_id": "r",
    }
    assert windows_from_bytes(raw, n_symbols=1, rows=2).tolist() == [[[0.0] * 3] * 2]
    with pytest.raises(RejectedRequest, match="same shape"):
        client(handler).predict({"A": np.zeros((2, 3)), "B": np.zeros((2, 4))})
    assert len(seen) == 1  # refused before sending


def test_client_retries_transient_failures_then_succeeds() -> None:
    answers = iter(
        [
            httpx.ConnectError("refused"),
            httpx.Response(503, json={"error": "busy"}),
            httpx.Response(200, json=SIGNAL),
        ]
    )

    def handler(request: httpx.Request) -> httpx.Response:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert client(handler).predict({"A": [[1.0]]}).signals[0].symbol == "A"


def test_client_gives_up_with_a_temporary_error() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        raise httpx.ReadTimeout("slow")

    with pytest.raises(ServiceUnavailable, match="after 3 attempts"):
        client(handler).info()
    assert len(calls) == 3


def test_client_does_not_retry_bad_requests_and_keeps_the_message() -> None:
    calls = []
    detail = {
        "error": "1 validation error for Input",
        "detail": [{"loc": ["items", 0, "window"], "msg": "item 0: window has NaN or infinite values"}],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(400, json=detail)

    with pytest.raises(RejectedRequest, match=r"items\.0\.window: item 0: window has NaN"):
        client(handler).predict({"A": [[1.0]]})
    assert len(calls) == 1
    with pytest.raises(Unauthorized, match="wrong bearer token"):
        client(lambda r: httpx.Response(401, json={"error": "wrong bearer token"})).info()


def test_client_predict_batch_returns_the_shadow_fields_and_size_refusals_keep_the_limit() -> None:
    bulk = {
        "request_id": "b",
        "model": "m",
        "symbols": ["A", "B"],
        "values": [0.1, 0.2],
        "versions": ["3", "3"],
        "aliases": ["champion", "champion"],
        "kinds": ["forward_log_return"] * 2,
        "shadow_values": [0.7, 0.8],
        "shadow_version": "4",
        "shadow_kind": "prob_up",
    }
    out = client(lambda r: httpx.Response(200, json=bulk)).predict_batch(["A", "B"], np.zeros((2, 1, 3)))
    assert (out.shadow_values, out.shadow_version, out.shadow_kind) == ([0.7, 0.8], "4", "prob_up")
    plain = {k: v for k, v in bulk.items() if not k.startswith("shadow")}
    out = client(lambda r: httpx.Response(200, json=plain)).predict_batch(["A", "B"], np.zeros((2, 1, 3)))
    assert (out.shadow_values, out.shadow_version) == (None, None)

    calls = []

    def too_big(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(413, json={"error": "the body is 9000000 bytes; the limit is 8388608 bytes"})

    with pytest.raises(RejectedRequest, match="HTTP 413: the body is 9000000 bytes; the limit is 8388608"):
        client(too_big).predict_batch(["A"], np.zeros((1, 1, 3)))
    assert len(calls) == 1  # not retried: sending it again cannot help
    too_long = [{"error": "rows: a window of 500 rows is over the limit of 128 rows (serve.max_window_rows)"}]
    with pytest.raises(RejectedRequest, match=r"HTTP 422: rows: a window of 500 rows .* limit of 128 rows"):
        client(lambda r: httpx.Response(422, json=too_long)).predict_batch(["A"], np.zeros((1, 1, 3)))
