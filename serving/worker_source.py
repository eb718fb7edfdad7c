"""The signal service as the quoting worker's :class:`trading.worker.types.SignalSource`.

Two ways to reach the same engine: over HTTP (:class:`HttpSignalSource`, the raw
``/predict_batch`` body a real ``mmops serve`` answers) and in process
(:class:`EngineSignalSource`, the service's :class:`serving.engine.SignalEngine` without the
server, for the demo's short replay). Both answer one request for all symbols; the worker
holds the latency budget, so the HTTP source makes a single attempt with that timeout.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
import numpy as np
from aiohttp.abc import AbstractStreamWriter

from serving.client import RejectedRequest, ServiceTimeout, ServiceUnavailable, Unauthorized, message_of
from serving.engine import SignalEngine
from serving.logic import RAW_MEDIA_TYPE, encode_raw_batch
from serving.schemas import BatchPredictResponse, InfoResponse
from serving.streams import encode_step
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


class _Body(aiohttp.BytesPayload):
    """A raw request body that sets ``sent`` once all of it is in the kernel's socket buffer.

    The worker starts CPU-bound venue work when ``sent`` is set; bytes still queued in the event
    loop's transport would wait for that work to finish, so the transport's write buffer limit
    is dropped to 0 for the wait (``drain`` then returns only once nothing is left in it).
    """

    def __init__(self, data: bytes, sent: asyncio.Event | None) -> None:
        super().__init__(data, content_type=RAW_MEDIA_TYPE)
        self._sent = sent

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        await super().write_with_length(writer, content_length)
        if self._sent is None:
            return
        transport = getattr(writer, "transport", None)
        if transport is not None and not transport.is_closing():
            transport.set_write_buffer_limits(high=0)
            await writer.drain()
        self._sent.set()


class HttpSignalSource:
    """A running ``mmops serve``, one raw ``/predict_batch`` request per tick, over aiohttp.

    aiohttp rather than httpx (which :class:`serving.client.SignalClient` uses): on the 2-core
    development machine, one request at a time to a bare Starlette app, httpx took 1.6 ms at p50
    without a body and 2.7 ms with the worker's 857 KB one, aiohttp 0.8-0.95 and 2.1-2.3 ms, a
    raw socket 0.4 and 1.8 ms (``bench/http_clients.py``, BENCHMARKS.md "Worker"); the worker
    makes one request on every tick's critical path.

    With ``stream`` (the default) and each window's newest row number from the worker, a tick
    sends each symbol's newest feature row to ``/predict_stream`` (:mod:`serving.streams`), the
    whole window only for a symbol the service may not hold: 27 KB a tick instead of 857 KB at
    100 symbols. A 409 (the service restarted, its models changed shape, or it dropped the
    stream) is answered at once with whole windows, in the same call; a service without the
    path (404: an older release) gets ``/predict_batch`` for ``stream_retry_s``, then the stream
    path is tried again (the service may have been upgraded behind the same address).

    Args:
        base_url: e.g. ``http://127.0.0.1:3000``.
        token: the service's bearer token, or None.
        timeout_s: per request (the worker's budget also cancels the wait).
        stream: False: always whole windows on ``/predict_batch``.
        stream_retry_s: after a 404 on the stream path, how long to stay on ``/predict_batch``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 1.0,
        stream: bool = True,
        stream_retry_s: float = 60.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout_s = timeout_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._http: aiohttp.ClientSession | None = None  # made in the running loop, on first use
        self._rid = 0
        self.stream_id = f"worker-{uuid.uuid4().hex}"
        self._streaming = stream
        self._stream_retry_s = stream_retry_s
        self._stream_back_at = 0.0  # monotonic time before which a service without the path is not asked
        self._held: dict[str, int] = {}  # symbol -> the newest row the service holds for it (as far as known)
        self.conflicts = 0  # 409s answered by sending whole windows
        self.whole_windows = 0  # windows sent whole on /predict_stream (the rest: one row each)

    def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(headers=self._headers, timeout=self._timeout)
        return self._http

    async def _post(self, path: str, body: aiohttp.BytesPayload | dict[str, Any]) -> bytes:
        url = f"{self.base_url}{path}"
        try:
            kind = {"data": body} if isinstance(body, aiohttp.BytesPayload) else {"json": body}
            async with self._session().post(url, **kind) as response:
                status, content = response.status, await response.read()
        except TimeoutError as exc:  # aiohttp's own timeout, whose text is empty
            raise ServiceTimeout(f"{url}: no answer within {self._timeout_s * 1000:.0f} ms") from exc
        except aiohttp.ClientError as exc:
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            raise ServiceUnavailable(f"{url}: {reason}") from exc
        if status < 400:
            return content
        message = message_of(content.decode("utf-8", "replace"))
        if status == 401:
            raise Unauthorized(f"{url}: {message}")
        if status >= 500 or status == 429:
            raise ServiceUnavailable(f"{url}: HTTP {status}: {message}")
        raise RejectedRequest(f"{url}: HTTP {status}: {message}", status=status)

    async def info(self) -> SourceInfo:
        return _info(InfoResponse.model_validate_json(await self._post("/info", {})))

    async def signals(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        seq: np.ndarray | None = None,
        sent: asyncio.Event | None = None,
    ) -> SignalBatch:
        """One answer for all ``symbols``: on ``/predict_stream`` when ``seq`` (each window's
        newest row number) is given and the service has that path, else on ``/predict_batch``."""
        self._rid += 1
        rid = f"worker-{self._rid}"
        windows = np.asarray(windows, dtype=np.float32)
        if seq is None or not self._streaming or time.monotonic() < self._stream_back_at:
            meta = {"symbols": list(symbols), "rows": int(windows.shape[1]), "request_id": rid}
            body = _Body(encode_raw_batch(meta, windows), sent)
            return _batch(BatchPredictResponse.model_validate_json(await self._post("/predict_batch", body)))
        seq = np.asarray(seq, dtype=np.int64)
        try:
            content = await self._post("/predict_stream", self._step(symbols, windows, seq, rid, sent))
        except RejectedRequest as exc:
            if exc.status == 404:  # a service without the stream path: whole windows for a while
                self._stream_back_at = time.monotonic() + self._stream_retry_s
                self._held.clear()  # whatever answers next on the path holds nothing of this stream
                return await self.signals(symbols, windows, sent=sent)
            if exc.status != 409:
                raise
            self.conflicts += 1  # it does not hold what this stream builds on: send it whole
            self._held.clear()
            content = await self._post("/predict_stream", self._step(symbols, windows, seq, rid, sent))
        self._held.update(zip(symbols, seq.tolist(), strict=True))
        return _batch(BatchPredictResponse.model_validate_json(content))

    def _step(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        seq: np.ndarray,
        rid: str,
        sent: asyncio.Event | None,
    ) -> _Body:
        body, whole = encode_step(
            stream=self.stream_id, symbols=symbols, windows=windows, seq=seq, held=self._held, request_id=rid
        )
        self.whole_windows += whole
        return _Body(body, sent)

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()


class EngineSignalSource:
    """The service's engine in this process (no HTTP): the same model set, routing and log."""

    def __init__(self, engine: SignalEngine) -> None:
        self.engine = engine

    async def info(self) -> SourceInfo:
        return _info(self.engine.info())

    async def signals(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        seq: np.ndarray | None = None,
        sent: asyncio.Event | None = None,
    ) -> SignalBatch:
        doc = await self.engine.predict_columns(
            list(symbols), np.asarray(windows, dtype=np.float32), feature_names=None, request_id=None
        )
        return _batch(doc)

    async def close(self) -> None:
        self.engine.close()
