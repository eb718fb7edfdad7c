"""The BentoML service: ``models:/<name>@champion`` (and ``@challenger`` for canary or shadow).

A thin shell: each API delegates to :class:`serving.engine.SignalEngine`. Start it with
``mmops serve`` (which writes the settings the engine reads); BentoML adds ``/metrics``,
``/livez`` and ``/readyz``; :class:`serving.auth.BearerAuth` guards the rest when
``MMOPS_SERVE_TOKEN`` is set.
"""

from __future__ import annotations

from typing import Annotated

import bentoml
from pydantic import Field

from serving.auth import BearerAuth
from serving.logic import InvalidInput, LoadedModel, decode_windows
from serving.schemas import (
    BatchPredictResponse,
    InfoResponse,
    PredictResponse,
    Symbol,
    SymbolWindow,
    validation_error,
)


@bentoml.service(name="mmops-signal", workers=1, traffic={"timeout": 10}, metrics={"enabled": True})
class SignalService:
    def __init__(self) -> None:
        import prometheus_client as prom  # after BentoML set up multiprocess metrics

        from serving.config import settings_from_env
        from serving.engine import engine_from_settings

        calls = prom.Counter("mmops_predictions", "signals computed", ["model", "version", "alias", "role"])
        seconds = prom.Histogram("mmops_model_call_seconds", "one batched model call", ["version"],
                                 buckets=(1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.5))  # fmt: skip

        def observe(model: LoadedModel, role: str, n: int) -> None:
            calls.labels(model.name, model.version, model.alias, role).inc(n)

        def observe_batch(model: LoadedModel, _n: int, elapsed: float) -> None:
            seconds.labels(model.version).observe(elapsed)

        self.engine = engine_from_settings(settings_from_env(), observe=observe, observe_batch=observe_batch)
        self.engine.start()

    @bentoml.api
    async def predict(
        self, items: list[SymbolWindow], feature_names: list[str] | None = None, request_id: str | None = None
    ) -> PredictResponse:
        """Signals for one or many symbols; each is tagged with the version and alias that produced it."""
        try:
            return await self.engine.predict(items, feature_names=feature_names, request_id=request_id)
        except InvalidInput as exc:
            raise validation_error(exc) from exc

    @bentoml.api
    async def predict_batch(
        self,
        symbols: Annotated[list[Symbol], Field(min_length=1)],
        windows_b64: str,
        rows: Annotated[int, Field(ge=1)],
        feature_names: list[str] | None = None,
        request_id: str | None = None,
    ) -> BatchPredictResponse:
        """Bulk path: windows as base64 little-endian float32 (symbols x rows x features), answers column-wise."""
        try:
            windows = decode_windows(windows_b64, n_symbols=len(symbols), rows=rows)
            return await self.engine.predict_columns(
                symbols, windows, feature_names=feature_names, request_id=request_id
            )
        except InvalidInput as exc:
            raise validation_error(exc) from exc

    @bentoml.api
    async def info(self) -> InfoResponse:
        """Registered model, serving versions and aliases, lineage, routing mode and expected input."""
        return self.engine.info()

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        self.engine.close()


SignalService.add_asgi_middleware(BearerAuth)  # type: ignore[attr-defined]
