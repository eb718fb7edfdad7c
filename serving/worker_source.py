"""The signal service as the quoting worker's :class:`trading.worker.types.SignalSource`.

Two ways to reach the same engine: over HTTP (:class:`HttpSignalSource`, the raw
``/predict_batch`` body a real ``mmops serve`` answers) and in process
(:class:`EngineSignalSource`, the service's :class:`serving.engine.SignalEngine` without the
server, for the demo's short replay). Both answer one request for all symbols; the worker
holds the latency budget, so the HTTP source makes a single attempt with that timeout.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import httpx
import numpy as np

from serving.client import RejectedRequest, ServiceUnavailable, Unauthorized, _message
from serving.engine import SignalEngine
from serving.logic import RAW_MEDIA_TYPE, encode_raw_batch
from serving.schemas import BatchPredictResponse, InfoResponse
from trading.worker.types import SignalBatch, SourceInfo


def _info(doc: InfoResponse) -> SourceInfo:
    return SourceInfo(
        window_rows=doc.window_rows,
        feature_names=tuple(doc.feature_names),
        kind=doc.champion.kind,
        champion=doc.champion.version,
        challenger=None if doc.challenger is None else doc.challenger.version,
        mode=doc.mode,
    )


def _batch(doc: BatchPredictResponse) -> SignalBatch:
    return SignalBatch(
        values=np.asarray(doc.values, dtype=np.float64),
        versions=list(doc.versions),
        aliases=list(doc.aliases),
        kind=doc.kinds[0] if doc.kinds else "forward_log_return",
        shadow_values=None if doc.shadow_values is None else np.asarray(doc.shadow_values, dtype=np.float64),
        shadow_version=doc.shadow_version,
        shadow_kind=doc.shadow_kind,
        kinds=list(doc.kinds),
    )


def _on_sent(sent: asyncio.Event) -> Callable[[str, dict[str, Any]], Awaitable[None]]:
    """An httpcore trace hook that sets ``sent`` once the request body has left (HTTP/1.1)."""

    async def trace(event: str, _info: dict[str, Any]) -> None:
        if event == "http11.send_request_body.complete":
            sent.set()

    return trace


class HttpSignalSource:
    """A running ``mmops serve``, one raw ``/predict_batch`` request per tick.

    Args:
        base_url: e.g. ``http://127.0.0.1:3000``.
        token: the service's bearer token, or None.
        timeout_s: per request (the worker's budget also cancels the wait).
        transport: an httpx transport (tests).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout_s, transport=transport
        )
        self._rid = 0

    async def _post(
        self, path: str, body: bytes | dict[str, Any], *, sent: asyncio.Event | None = None
    ) -> Any:
        try:
            if isinstance(body, bytes):
                response = await self._http.post(
                    path,
                    content=body,
                    headers={"Content-Type": RAW_MEDIA_TYPE},
                    extensions={} if sent is None else {"trace": _on_sent(sent)},
                )
            else:
                response = await self._http.post(path, json=body)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"{self._http.base_url}{path}: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 401:
            raise Unauthorized(f"{self._http.base_url}{path}: {_message(response)}")
        if response.status_code >= 500 or response.status_code == 429:
            raise ServiceUnavailable(
                f"{self._http.base_url}{path}: HTTP {response.status_code}: {_message(response)}"
            )
        if response.status_code >= 400:
            raise RejectedRequest(
                f"{self._http.base_url}{path}: HTTP {response.status_code}: {_message(response)}"
            )
        return response.json()

    async def info(self) -> SourceInfo:
        return _info(InfoResponse.model_validate(await self._post("/info", {})))

    async def signals(
        self, symbols: Sequence[str], windows: np.ndarray, *, sent: asyncio.Event | None = None
    ) -> SignalBatch:
        self._rid += 1
        meta = {"symbols": list(symbols), "rows": int(windows.shape[1]), "request_id": f"worker-{self._rid}"}
        doc = await self._post(
            "/predict_batch", encode_raw_batch(meta, np.asarray(windows, dtype=np.float32)), sent=sent
        )
        return _batch(BatchPredictResponse.model_validate(doc))

    async def close(self) -> None:
        await self._http.aclose()


class EngineSignalSource:
    """The service's engine in this process (no HTTP): the same model set, routing and log."""

    def __init__(self, engine: SignalEngine) -> None:
        self.engine = engine

    async def info(self) -> SourceInfo:
        return _info(self.engine.info())

    async def signals(
        self, symbols: Sequence[str], windows: np.ndarray, *, sent: asyncio.Event | None = None
    ) -> SignalBatch:
        doc = await self.engine.predict_columns(
            list(symbols), np.asarray(windows, dtype=np.float32), feature_names=None, request_id=None
        )
        return _batch(doc)

    async def close(self) -> None:
        self.engine.close()
