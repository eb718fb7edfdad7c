"""The BentoML service: ``models:/<name>@champion`` (and ``@challenger`` for canary or shadow).

A thin shell: each API delegates to :class:`serving.engine.SignalEngine`. Start it with
``mmops serve`` (which writes the settings the engine reads); BentoML adds ``/metrics``,
``/livez`` and ``/readyz``; :class:`serving.auth.BearerAuth` guards the rest when
``MMOPS_SERVE_TOKEN`` is set.
"""

from __future__ import annotations

import os
from http import HTTPStatus
from typing import TYPE_CHECKING, Annotated, Any

import bentoml
import numpy as np
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from serving.auth import BearerAuth
from serving.limits import BodyLimit
from serving.logic import (
    RAW_MEDIA_TYPE,
    InvalidInput,
    LoadedModel,
    OverLimit,
    decode_windows,
    split_raw_batch,
    windows_from_bytes,
)
from serving.schemas import (
    BatchPredictResponse,
    InfoResponse,
    PredictResponse,
    RawPredictHead,
    Symbol,
    SymbolWindow,
    validation_error,
)
from serving.streams import MAX_SEQ, StreamMiss, StreamStep, parse_step

if TYPE_CHECKING:
    from starlette.requests import Request


class PredictBatchInput(bentoml.IODescriptor):
    """``/predict_batch`` input, in either of two forms.

    * ``application/json``: ``{"symbols": [...], "rows": R, "windows_b64": "...", ...}``, the
      windows base64 of little-endian float32 (symbols x rows x features).
    * ``application/octet-stream`` (no base64): one line of JSON with the same fields except
      ``windows_b64``, a newline, then the raw float32 bytes (see :func:`serving.logic.encode_raw_batch`).
    """

    symbols: Annotated[list[Symbol], Field(min_length=1)]
    rows: Annotated[int, Field(ge=1)]
    windows_b64: str | None = None
    feature_names: list[str] | None = None
    request_id: str | None = None
    windows_raw: SkipJsonSchema[Any] = Field(default=None, exclude=True)  # the raw form's bytes

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> PredictBatchInput:
        media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if media_type != RAW_MEDIA_TYPE:
            parsed: PredictBatchInput = await super().from_http_request(request, serde)
            if parsed.windows_raw is not None:
                raise validation_error(InvalidInput("windows_raw is not a JSON field", loc=("windows_raw",)))
            if parsed.windows_b64 is None:
                raise validation_error(
                    InvalidInput(
                        f"send windows_b64, or the raw windows as {RAW_MEDIA_TYPE}", loc=("windows_b64",)
                    )
                )
            return parsed
        try:
            head, raw = split_raw_batch(await request.body())
        except InvalidInput as exc:
            raise validation_error(exc) from exc
        parsed = cls.model_validate_json(head)
        if parsed.windows_b64 is not None or parsed.windows_raw is not None:
            raise validation_error(
                InvalidInput(
                    "the raw form carries the windows after the JSON line, not in it", loc=("windows_b64",)
                )
            )
        parsed.windows_raw = raw
        return parsed


class PredictStreamInput(bentoml.IODescriptor):
    """``/predict_stream`` input, ``application/octet-stream`` only (see :mod:`serving.streams`).

    One line of JSON ``{"stream": ID, "symbols": [...], "seq": [...], "full": [...], "rows": R,
    "feature_names"?, "request_id"?}``, a newline, then little-endian float32: the whole windows
    (R rows each) of the symbols at the indices in ``full``, then the newest row of every other
    symbol, in the order of ``symbols``. A symbol's ``seq`` is the row number of its newest row.
    """

    stream: Annotated[str, Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")]
    symbols: Annotated[list[Symbol], Field(min_length=1)]
    seq: list[Annotated[int, Field(ge=0, lt=MAX_SEQ)]]
    full: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    rows: Annotated[int, Field(ge=1)] = 1
    feature_names: list[str] | None = None
    request_id: str | None = None
    step: SkipJsonSchema[Any] = Field(default=None, exclude=True)  # the parsed body

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> PredictStreamInput:
        media_type = request.headers.get("content-type", "").split(";")[0].strip()
        try:
            if media_type != RAW_MEDIA_TYPE:
                raise InvalidInput(
                    f"/predict_stream takes {RAW_MEDIA_TYPE}: a JSON line, then float32 rows", loc=("body",)
                )
            head, raw = split_raw_batch(await request.body())
            parsed = cls.model_validate_json(head)
            if parsed.step is not None:
                raise InvalidInput("step is not a JSON field", loc=("step",))
            parsed.step = parse_step(
                raw,
                stream=parsed.stream,
                symbols=parsed.symbols,
                seq=parsed.seq,
                full=parsed.full,
                rows=parsed.rows,
            )
        except InvalidInput as exc:
            raise validation_error(exc) from exc
        return parsed


class PredictInput(bentoml.IODescriptor):
    """``/predict`` input, in either of two forms.

    * ``application/json``: ``{"items": [{"symbol": ..., "window": [[...], ...]}, ...], ...}``.
    * ``application/octet-stream`` (what :class:`serving.client.SignalClient` sends): one line of
      JSON ``{"symbols": [...], "rows": R, "feature_names"?, "request_id"?}``, a newline, then the
      windows as little-endian float32 (symbols x rows x features), read in place; no per-item
      pydantic models (see :func:`serving.logic.encode_raw_batch`).
    """

    items: list[SymbolWindow]
    feature_names: list[str] | None = None
    request_id: str | None = None
    raw: SkipJsonSchema[Any] = Field(default=None, exclude=True)  # the raw form's (symbols, windows)

    @classmethod
    async def from_http_request(cls, request: Request, serde: Any) -> PredictInput:
        media_type = request.headers.get("content-type", "application/json").split(";")[0].strip()
        if media_type != RAW_MEDIA_TYPE:
            parsed: PredictInput = await super().from_http_request(request, serde)
            if parsed.raw is not None:
                raise validation_error(InvalidInput("raw is not a JSON field", loc=("raw",)))
            return parsed
        try:
            head_bytes, body = split_raw_batch(await request.body())
            head = RawPredictHead.model_validate_json(head_bytes)
            windows = windows_from_bytes(body, n_symbols=len(head.symbols), rows=head.rows)
        except InvalidInput as exc:
            raise validation_error(exc) from exc
        return cls.model_construct(
            items=None,
            feature_names=head.feature_names,
            request_id=head.request_id,
            raw=(head.symbols, windows),
        )


API_PATHS = ["/predict_batch", "/predict_stream", "/predict", "/info"]


def _server_options() -> dict[str, Any]:
    """BentoML's access log and request tracing as ``serve.access_log`` and ``serve.trace_requests``
    say. Read when ``bentoml serve`` imports this module, from the settings ``mmops serve`` wrote
    (the defaults where there are none, as in tests that import the module)."""
    from serving.config import SETTINGS_ENV, ServeConfig, settings_from_env

    config = settings_from_env().config if os.environ.get(SETTINGS_ENV) else ServeConfig()
    return {
        "logging": {"access": {"enabled": config.access_log}},
        "tracing": {"excluded_urls": [] if config.trace_requests else API_PATHS},
    }


@bentoml.service(
    name="mmops-signal", workers=1, traffic={"timeout": 10}, metrics={"enabled": True}, **_server_options()
)
class SignalService:
    def __init__(self) -> None:
        import prometheus_client as prom  # after BentoML set up multiprocess metrics

        from serving.config import settings_from_env
        from serving.engine import engine_from_settings

        calls = prom.Counter("mmops_predictions", "signals computed", ["model", "version", "alias", "role"])
        seconds = prom.Histogram(
            "mmops_model_call_seconds",
            "one batched model call",
            ["version"],
            buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.5),
        )

        streams = prom.Counter(
            "mmops_stream_events",
            "/predict_stream: conflicts (409, the client resends whole windows) and streams dropped",
            ["event"],
        )

        def observe(model: LoadedModel, role: str, n: int) -> None:
            calls.labels(model.name, model.version, model.alias, role).inc(n)

        def observe_batch(model: LoadedModel, _n: int, elapsed: float) -> None:
            seconds.labels(model.version).observe(elapsed)

        def observe_stream(event: str) -> None:
            streams.labels(event).inc()

        self.engine = engine_from_settings(
            settings_from_env(), observe=observe, observe_batch=observe_batch, observe_stream=observe_stream
        )
        self.engine.start()

    @bentoml.api(input_spec=PredictInput)
    async def predict(
        self,
        items: list[SymbolWindow] | None,
        feature_names: list[str] | None = None,
        request_id: str | None = None,
        raw: tuple[list[str], np.ndarray] | None = None,
    ) -> PredictResponse:
        """Signals for one or many symbols; each is tagged with the version and alias that produced it.

        JSON items, or raw float32 windows (``application/octet-stream``, see :class:`PredictInput`).
        """
        try:
            if raw is not None:
                symbols, windows = raw
                return await self.engine.predict_windows(
                    symbols, windows, feature_names=feature_names, request_id=request_id
                )
            return await self.engine.predict(items or [], feature_names=feature_names, request_id=request_id)
        except InvalidInput as exc:
            raise refusal(exc) from exc

    @bentoml.api(input_spec=PredictBatchInput)
    async def predict_batch(
        self,
        symbols: list[str],
        rows: int,
        windows_b64: str | None = None,
        feature_names: list[str] | None = None,
        request_id: str | None = None,
        windows_raw: memoryview | None = None,
    ) -> BatchPredictResponse:
        """Bulk path: windows as little-endian float32 (symbols x rows x features), answers column-wise.

        Raw bytes (``application/octet-stream``, see :class:`PredictBatchInput`) or base64 in JSON.
        """
        try:
            if windows_raw is not None:
                windows = windows_from_bytes(windows_raw, n_symbols=len(symbols), rows=rows)
            else:
                windows = decode_windows(windows_b64 or "", n_symbols=len(symbols), rows=rows)
            return await self.engine.predict_columns(
                symbols, windows, feature_names=feature_names, request_id=request_id
            )
        except InvalidInput as exc:
            raise refusal(exc) from exc

    @bentoml.api(input_spec=PredictStreamInput)
    async def predict_stream(
        self,
        stream: str,
        symbols: list[str],
        seq: list[int],
        full: list[int] | None = None,
        rows: int = 1,
        feature_names: list[str] | None = None,
        request_id: str | None = None,
        step: StreamStep | None = None,
    ) -> BatchPredictResponse:
        """The bulk path for a client that sends each symbol's newest row: the service keeps its
        windows by stream id and answers as ``/predict_batch`` would on the whole windows.

        409 when a row does not extend what the service holds for that stream (after a restart,
        a model change or an eviction): the client then sends those windows whole.
        """
        assert step is not None  # set by PredictStreamInput
        try:
            return await self.engine.predict_stream(step, feature_names=feature_names, request_id=request_id)
        except InvalidInput as exc:
            raise refusal(exc) from exc
        except StreamMiss as exc:
            raise bentoml.exceptions.BentoMLException(str(exc), error_code=HTTPStatus.CONFLICT) from exc

    @bentoml.api
    async def info(self) -> InfoResponse:
        """Registered model, serving versions and aliases, lineage, routing mode and expected input."""
        return self.engine.info()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.engine.close()


def refusal(exc: InvalidInput) -> Exception:
    """400 with the schema-violation shape for bad input; 422 for input over a size limit."""
    if isinstance(exc, OverLimit):
        return bentoml.exceptions.UnprocessableEntity(str(exc))
    return validation_error(exc)


# The first added runs first: the token is checked before any body is read.
SignalService.add_asgi_middleware(BearerAuth)  # type: ignore[attr-defined]
SignalService.add_asgi_middleware(BodyLimit)  # type: ignore[attr-defined]
