"""Typed HTTP client of the signal service, for the worker and the tests.

Timeouts on every call; retries with exponential backoff (tenacity) only where a retry can help:
connection errors, timeouts, 429 and 5xx. A 4xx is the caller's mistake and raises at once with
the service's message; a 401 raises :class:`Unauthorized`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
import numpy as np
from tenacity import Retrying as _Retrying
from tenacity import retry_if_exception, stop_after_attempt, wait_exponential_jitter

from features.errors import DataError, OperationalError, TemporaryError
from serving.logic import RAW_MEDIA_TYPE, encode_raw_batch
from serving.schemas import BatchPredictResponse, InfoResponse, PredictResponse

RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class ServiceUnavailable(TemporaryError):  # noqa: N818 - reads as the state it reports
    """The service did not answer (after the retries); the worker falls back to model-free quotes."""


class ServiceTimeout(ServiceUnavailable, TimeoutError):  # noqa: N818 - as ServiceUnavailable
    """No answer within the caller's timeout: the service may be up but slow. A ``TimeoutError``
    too, so the worker reports it as the late signal it is, as when its own budget runs out."""


class RejectedRequest(DataError):  # noqa: N818 - reads as the event it reports
    """The service refused the input (4xx); the message is the service's.

    Attributes:
        status: the HTTP status (None where no request was sent).
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Unauthorized(OperationalError):  # noqa: N818 - reads as the state it reports
    """Missing or wrong bearer token."""


class _RetryableError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)


class SignalClient:
    """Client of one service.

    Args:
        base_url: e.g. ``http://127.0.0.1:3000``.
        token: bearer token (the service's ``MMOPS_SERVE_TOKEN``), or None.
        timeout_s: per-attempt timeout, seconds (connect, read and write).
        attempts: total attempts for retryable failures.
        backoff_s: first backoff, seconds (doubling, with jitter, capped at 2 s).
        transport: an httpx transport (tests use ``httpx.MockTransport``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 1.0,
        attempts: int = 3,
        backoff_s: float = 0.05,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=base_url, headers=headers, timeout=timeout_s, transport=transport)
        self.attempts = attempts
        self.backoff_s = backoff_s

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def predict(
        self,
        windows: Mapping[str, np.ndarray | Sequence[Sequence[float]]],
        *,
        feature_names: Sequence[str] | None = None,
        request_id: str | None = None,
    ) -> PredictResponse:
        """Signals for each symbol's window (rows x features, oldest first).

        Sent as the raw form (a JSON line, then the windows as float32 bytes; no per-float JSON).
        Windows of different shapes cannot be stacked and raise :class:`RejectedRequest` here.
        """
        symbols = list(windows)
        try:
            stacked = np.asarray(
                [np.asarray(w, dtype=np.float32) for w in windows.values()], dtype=np.float32
            )
        except ValueError as exc:
            raise RejectedRequest(
                "windows must all have the same shape (rows x features), oldest row first"
            ) from exc
        if stacked.ndim != 3:
            raise RejectedRequest(f"each window must be 2-D (rows x features); got {stacked.ndim - 1}-D")
        meta: dict[str, Any] = {"symbols": symbols, "rows": int(stacked.shape[1])}
        if feature_names is not None:
            meta["feature_names"] = list(feature_names)
        if request_id is not None:
            meta["request_id"] = request_id
        return PredictResponse.model_validate(self._post("/predict", encode_raw_batch(meta, stacked)))

    def predict_batch(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        feature_names: Sequence[str] | None = None,
        request_id: str | None = None,
    ) -> BatchPredictResponse:
        """The bulk path: ``windows`` float (n_symbols, rows, features) sent as raw float32 bytes."""
        windows = np.asarray(windows)
        if windows.ndim != 3 or len(windows) != len(symbols):
            raise ValueError(f"windows must be (len(symbols), rows, features); got {windows.shape}")
        meta: dict[str, Any] = {"symbols": list(symbols), "rows": int(windows.shape[1])}
        if feature_names is not None:
            meta["feature_names"] = list(feature_names)
        if request_id is not None:
            meta["request_id"] = request_id
        raw = encode_raw_batch(meta, windows)
        return BatchPredictResponse.model_validate(self._post("/predict_batch", raw))

    def info(self) -> InfoResponse:
        return InfoResponse.model_validate(self._post("/info", {}))

    def _post(self, path: str, body: Mapping[str, Any] | bytes) -> Any:
        retrying = _Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, _RetryableError | httpx.TransportError)),
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(initial=self.backoff_s, max=2.0),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(path, body)
        except (_RetryableError, httpx.TransportError) as exc:
            raise ServiceUnavailable(
                f"{self._http.base_url}{path}: {exc} after {self.attempts} attempts"
            ) from exc
        raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover

    def _once(self, path: str, body: Mapping[str, Any] | bytes) -> Any:
        if isinstance(body, bytes):
            response = self._http.post(path, content=body, headers={"Content-Type": RAW_MEDIA_TYPE})
        else:
            response = self._http.post(path, json=body)
        if response.status_code == 401:
            raise Unauthorized(f"{self._http.base_url}{path}: {_message(response)}")
        if response.status_code in RETRY_STATUS:
            raise _RetryableError(f"HTTP {response.status_code}: {_message(response)}")
        if response.status_code >= 400:
            raise RejectedRequest(
                f"{self._http.base_url}{path}: HTTP {response.status_code}: {_message(response)}"
            )
        return response.json()


def _message(response: httpx.Response) -> str:
    """The service's own words: the validation messages, else the error, else the body."""
    return message_of(response.text)


def message_of(body: str) -> str:
    """An error body in the service's own words: the validation messages, else the error, else the
    body (its first 500 characters)."""
    try:
        doc = json.loads(body)
    except ValueError:
        return body[:500]
    if isinstance(doc, list) and doc and isinstance(doc[0], dict):
        doc = doc[0]
    if isinstance(doc, dict):
        details = doc.get("detail")
        if isinstance(details, list) and details:
            return "; ".join(f"{'.'.join(str(p) for p in d.get('loc', ()))}: {d.get('msg')}" for d in details)
        return str(doc.get("error", doc))
    return str(doc)[:500]
