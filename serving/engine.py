"""The serving engine: which versions answer, alias polling with atomic swaps, and one request.

Framework-free so it is tested without a server: :mod:`serving.service` is a thin BentoML shell
around it. A request pins the :class:`~serving.logic.ModelSet` current when it starts; an alias
move loads and warms the new version first, then replaces the set in one assignment, so
in-flight requests finish on the version they started with and none fails during a switch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from features.errors import ConfigError, OperationalError
from serving.batching import MicroBatcher
from serving.config import ServeConfig, ServeSettings
from serving.logic import (
    InvalidInput,
    LoadedModel,
    ModelSet,
    OverLimit,
    check_windows,
    compatible,
    route,
    to_windows,
)
from serving.observers import BatchObserver, PredictionObserver, StreamObserver, notify
from serving.prediction_log import PredictionLog, PredictionRecord
from serving.schemas import (
    BatchPredictResponse,
    InfoResponse,
    ModelInfo,
    PredictResponse,
    Signal,
    SymbolWindow,
)
from serving.streams import StreamStep, StreamStore
from training.artifact import ProviderChoice

logger = logging.getLogger(__name__)


class ModelSource(Protocol):
    """Where versions come from (the MLflow registry in production, a fake in unit tests)."""

    def aliases(self) -> Mapping[str, str]:
        """alias -> version of the served registered model."""
        ...

    def load(self, version: str, alias: str) -> LoadedModel: ...


class NoChampion(OperationalError):  # noqa: N818 - reads as the state it reports
    """The registered model has no ``champion`` alias: nothing may serve."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Answer:
    """One request's result: what answered each symbol, and the shadow model's values if it ran."""

    request_id: str
    values: np.ndarray
    served_by: list[LoadedModel]
    shadow: tuple[LoadedModel, np.ndarray] | None


class SignalEngine:
    """Serves one registered model's champion (and challenger in canary/shadow mode).

    Args:
        name: the registered model name.
        config: the ``serve`` section.
        source: resolves aliases and loads versions.
        batcher: batches model calls across requests.
        log: the prediction log, or None to not log.
        providers: onnxruntime execution providers available (reported by ``info``).
        choice: the providers the versions open on and why (:func:`training.artifact.select_providers`),
            reported by ``info`` and logged at start; None: the CPU, unsaid (unit tests).
        observe: called per model call with (model, role, n_symbols) for metrics.
        observe_stream: told of each ``/predict_stream`` conflict and each stream dropped, for
            metrics. A failing observer changes no answer (:mod:`serving.observers`).
    """

    def __init__(
        self,
        *,
        name: str,
        config: ServeConfig,
        source: ModelSource,
        batcher: MicroBatcher,
        log: PredictionLog | None = None,
        providers: Sequence[str] = (),
        choice: ProviderChoice | None = None,
        observe: PredictionObserver | None = None,
        observe_stream: StreamObserver | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.source = source
        self.batcher = batcher
        self.log = log
        self.providers = list(providers)
        self.choice = choice
        self.observe = observe
        self._models: ModelSet | None = None
        self._info: InfoResponse | None = None
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._refresh_lock = threading.Lock()
        self.streams = StreamStore(
            max_bytes=config.stream_cache_mb * 2**20, max_symbols=config.max_items, observe=observe_stream
        )

    @property
    def models(self) -> ModelSet:
        if self._models is None:
            raise NoChampion(f"{self.name}: not loaded yet")
        return self._models

    # ---- versions ------------------------------------------------------------------------
    def refresh(self) -> bool:
        """Re-read the aliases; load, warm up and swap in any version that moved. True if swapped.

        Raises:
            NoChampion: there is no champion and nothing is serving yet.
        """
        with self._refresh_lock:
            aliases = self.source.aliases()
            champion_v = aliases.get("champion")
            current = self._models
            if champion_v is None:
                if current is None:
                    raise NoChampion(
                        f"{self.name} has no champion; approve a version (`mmops approve`) first"
                    )
                logger.warning(
                    "%s: the champion alias is gone; still serving v%s", self.name, current.champion.version
                )
                return False
            challenger_v = aliases.get("challenger") if self.config.mode != "champion" else None
            if challenger_v == champion_v:
                challenger_v = None
            if current is not None and current.versions == (champion_v, challenger_v):
                return False
            champion = self._obtain(current, champion_v, "champion")
            challenger = self._obtain(current, challenger_v, "challenger") if challenger_v else None
            if challenger is not None and (why := compatible(champion, challenger)):
                logger.warning("%s: not routing to the challenger: %s", self.name, why)
                challenger = None
            models = ModelSet(
                champion=champion,
                challenger=challenger,
                mode=self.config.mode,
                canary_fraction=self.config.canary_fraction,
                canary_salt=self.config.canary_salt,
            )
            if models.window_rows > self.config.max_window_rows:
                raise ConfigError(
                    f"{self.name} {models.versions}: a lookback of {models.window_rows} rows is over "
                    f"serve.max_window_rows ({self.config.max_window_rows}), so no request could be "
                    "served; raise serve.max_window_rows in params.yaml"
                )
            for model in models.active:  # warm up before anyone is routed to it
                model.predictor.predict(
                    np.zeros((1, model.lookback, len(model.feature_names)), dtype=np.float32)
                )
            self._info = self._describe(models)
            self._models = models  # the swap: one reference assignment
            logger.info(
                "%s: serving %s",
                self.name,
                ", ".join(f"v{m.version} ({m.alias}) on {m.predictor.provider}" for m in models.active),
            )
            return True

    def _obtain(self, current: ModelSet | None, version: str, alias: str) -> LoadedModel:
        loaded = (
            [] if current is None else [m for m in (current.champion, current.challenger) if m is not None]
        )
        for model in loaded:
            if model.version == version:
                return model if model.alias == alias else dataclasses.replace(model, alias=alias)
        return self.source.load(version, alias)

    def start(self) -> None:
        """Load the current versions, then poll the aliases in a daemon thread."""
        if self.choice is not None:
            logger.info("%s: %s", self.name, self.choice.reason)
        self.refresh()
        if self.log is not None:
            self.log.start()
        self._poller = threading.Thread(target=self._poll, name="mmops-alias-poll", daemon=True)
        self._poller.start()

    def _poll(self) -> None:
        while not self._stop.wait(self.config.poll_interval_s):
            try:
                self.refresh()
            except Exception:  # keep serving what is loaded; the next poll retries
                logger.exception("%s: alias refresh failed; still serving the loaded versions", self.name)

    def close(self) -> None:
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout=5)
        if self.log is not None:
            self.log.close()
        self.batcher.close()

    # ---- requests ------------------------------------------------------------------------
    def info(self) -> InfoResponse:
        if self._info is None:
            raise NoChampion(f"{self.name}: not loaded yet")
        return self._info

    def _describe(self, models: ModelSet) -> InfoResponse:
        d = models.describe()
        return InfoResponse(
            model=self.name,
            mode=d["mode"],
            canary_fraction=d["canary_fraction"],
            window_rows=d["window_rows"],
            feature_names=d["feature_names"],
            champion=ModelInfo(**d["champion"]),
            challenger=None if d["challenger"] is None else ModelInfo(**d["challenger"]),
            loaded_at=dt.datetime.now(dt.UTC).isoformat(),
            providers=self.providers,
            device=models.champion.device,
            device_reason="" if self.choice is None else self.choice.reason,
        )

    async def predict(
        self, items: Sequence[SymbolWindow], *, feature_names: Sequence[str] | None, request_id: str | None
    ) -> PredictResponse:
        """Signals for every item, each tagged with the version that produced it.

        Raises:
            InvalidInput: no or too many items, ragged or non-finite windows, wrong shape or names.
            OverLimit: a window longer than ``serve.max_window_rows``.
        """
        symbols = [item.symbol for item in items]
        self._check_count(len(symbols))
        for i, item in enumerate(items):
            self._check_rows(len(item.window), loc=("items", i, "window"))
        windows = to_windows([item.window for item in items])
        return await self.predict_windows(
            symbols, windows, feature_names=feature_names, request_id=request_id
        )

    async def predict_windows(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        feature_names: Sequence[str] | None,
        request_id: str | None,
    ) -> PredictResponse:
        """:meth:`predict` for stacked windows ``(n_symbols, rows, features)`` (the raw single path)."""
        self._check_count(len(symbols))
        self._check_rows(windows.shape[1], loc=("rows",))
        answer = await self._run(symbols, windows, feature_names, request_id)
        signals = [
            Signal.model_construct(symbol=s, value=float(v), kind=m.kind, version=m.version, alias=m.alias)
            for s, v, m in zip(symbols, answer.values, answer.served_by, strict=True)
        ]
        return PredictResponse.model_construct(request_id=answer.request_id, model=self.name, signals=signals)

    async def predict_columns(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        *,
        feature_names: Sequence[str] | None,
        request_id: str | None,
    ) -> BatchPredictResponse:
        """The same as :meth:`predict` for stacked windows, answered column-wise (the bulk path).

        In shadow mode the challenger's value for every symbol comes along in ``shadow_values``
        (its version in ``shadow_version``, its kind in ``shadow_kind``), for the worker's shadow
        paper book.
        """
        self._check_count(len(symbols))
        self._check_rows(windows.shape[1], loc=("rows",))
        return self._columns(symbols, await self._run(symbols, windows, feature_names, request_id))

    def _columns(self, symbols: Sequence[str], answer: _Answer) -> BatchPredictResponse:
        served_by = answer.served_by
        shadow_model, shadow_values = answer.shadow if answer.shadow is not None else (None, None)
        return BatchPredictResponse.model_construct(
            request_id=answer.request_id,
            model=self.name,
            symbols=list(symbols),
            values=answer.values.tolist(),
            versions=[m.version for m in served_by],
            aliases=[m.alias for m in served_by],
            kinds=[m.kind for m in served_by],
            shadow_values=None if shadow_values is None else shadow_values.tolist(),
            shadow_version=None if shadow_model is None else shadow_model.version,
            shadow_kind=None if shadow_model is None else shadow_model.kind,
        )

    async def predict_stream(
        self, step: StreamStep, *, feature_names: Sequence[str] | None, request_id: str | None
    ) -> BatchPredictResponse:
        """:meth:`predict_columns` on the windows of a stream (:mod:`serving.streams`): the step's
        rows are checked and applied to the windows held for its stream, then answered as a
        whole-window request would be.

        Raises:
            InvalidInput, OverLimit: as :meth:`predict_columns` (nothing held changes then).
            serving.streams.StreamMiss: the service does not hold what a row builds on.
        """
        self._check_count(len(step.symbols))
        if len(step.full):
            self._check_rows(step.windows.shape[1], loc=("rows",))
        models = self.models
        if feature_names is not None and tuple(feature_names) != models.feature_names:
            raise InvalidInput(
                f"feature_names differ from the model's (in order): expected {list(models.feature_names)}",
                loc=("feature_names",),
            )
        windows = self.streams.windows(step, rows=models.window_rows, features=models.feature_names)
        # the store checked every row it took against these models: no second pass over the windows
        answer = await self._run(step.symbols, windows, None, request_id, models=models)
        return self._columns(step.symbols, answer)

    def _check_rows(self, rows: int, *, loc: tuple[str | int, ...]) -> None:
        limit = self.config.max_window_rows
        if rows > limit:
            raise OverLimit(
                f"{'.'.join(map(str, loc))}: a window of {rows} rows is over the limit of {limit} rows "
                f"(serve.max_window_rows); send the last {self.models.window_rows} (the model lookback)",
                loc=loc,
            )

    def _check_count(self, n: int) -> None:
        if n == 0:
            raise InvalidInput("no symbols: send at least one symbol and its window", loc=("items",))
        if n > self.config.max_items:
            raise InvalidInput(
                f"at most {self.config.max_items} symbols per request; got {n}", loc=("items",)
            )

    async def _run(
        self,
        symbols: Sequence[str],
        windows: np.ndarray,
        feature_names: Sequence[str] | None,
        request_id: str | None,
        *,
        models: ModelSet | None = None,
    ) -> _Answer:
        """Check ``windows`` against the served models and predict; with ``models`` (the set the
        caller already checked ``windows`` against, pinned) the check is skipped."""
        start = time.perf_counter()
        if models is None:
            models = self.models  # pinned for the whole request
            windows = check_windows(windows, models, feature_names=feature_names)
        calls = self._plan(symbols, models)
        inputs = [_select(windows, idx, m.lookback) for m, idx, _ in calls]
        if len(calls) == 1:  # the usual case: no gather (it would wrap the call in one more task)
            outputs = [await self.batcher.predict(calls[0][0], inputs[0])]
        else:
            outputs = await asyncio.gather(
                *(self.batcher.predict(m, x) for (m, _, _), x in zip(calls, inputs, strict=True))
            )
        values = np.empty(len(symbols), dtype=np.float64)
        served_by: list[LoadedModel] = [models.champion] * len(symbols)
        shadow: tuple[LoadedModel, np.ndarray] | None = None
        for (model, idx, role), out in zip(calls, outputs, strict=True):
            if role == "shadow":  # _plan gives the shadow model every symbol, in order
                shadow = (model, out)
                continue
            values[idx] = out
            if model is not models.champion:
                for i in idx.tolist():
                    served_by[i] = model
        rid = request_id or uuid.uuid4().hex
        self._record(rid, symbols, inputs, calls, outputs, (time.perf_counter() - start) * 1000)
        return _Answer(request_id=rid, values=values, served_by=served_by, shadow=shadow)

    @staticmethod
    def _plan(symbols: Sequence[str], models: ModelSet) -> list[tuple[LoadedModel, np.ndarray, str]]:
        """(model, item indices, role) per model call: role "served" answers, "shadow" is only logged."""
        every = np.arange(len(symbols))
        if models.challenger is None or models.mode == "champion":
            return [(models.champion, every, "served")]
        if models.mode == "shadow":
            return [(models.champion, every, "served"), (models.challenger, every, "shadow")]
        to_challenger = route(symbols, models)
        calls = [
            (models.champion, every[~to_challenger], "served"),
            (models.challenger, every[to_challenger], "served"),
        ]
        return [c for c in calls if len(c[1])]

    def _record(
        self,
        rid: str,
        symbols: Sequence[str],
        inputs: Sequence[np.ndarray],
        calls: Sequence[tuple[LoadedModel, np.ndarray, str]],
        outputs: Sequence[np.ndarray],
        latency_ms: float,
    ) -> None:
        """Queue one log record per model call; it keeps a reference to the model's input (no copy:
        the request's windows are never written to), and the log thread digests it."""
        at = dt.datetime.now(dt.UTC).isoformat()
        for (model, idx, role), x, out in zip(calls, inputs, outputs, strict=True):
            notify(self.observe, model, role, len(idx), what="prediction")
            if self.log is not None:
                self.log.record(
                    PredictionRecord(
                        at=at,
                        request_id=rid,
                        symbols=tuple(symbols[i] for i in idx),
                        model=model.name,
                        version=model.version,
                        alias=model.alias,
                        role=role,
                        windows=x,
                        outputs=out,
                        latency_ms=latency_ms,
                    )
                )


def _select(windows: np.ndarray, idx: np.ndarray, lookback: int) -> np.ndarray:
    """The model's input: items ``idx``, last ``lookback`` rows; a view (no copy) when idx is all items."""
    picked = windows[:, -lookback:, :] if len(idx) == len(windows) else windows[idx, -lookback:, :]
    return np.ascontiguousarray(picked)


def engine_from_settings(
    settings: ServeSettings,
    *,
    observe: PredictionObserver | None = None,
    observe_batch: BatchObserver | None = None,
    observe_stream: StreamObserver | None = None,
) -> SignalEngine:
    """The production engine: registry source, micro-batcher, prediction log under ``log_dir``."""
    import onnxruntime

    from serving.source import RegistrySource
    from training.artifact import CALL_BYTES, select_providers

    config = settings.config
    choice = select_providers(config.device)  # serve.device cuda without a working GPU: refused here
    log = (
        PredictionLog(settings.log_dir / "predictions.jsonl", flush_s=config.log_flush_s)
        if config.log_predictions
        else None
    )
    return SignalEngine(
        name=settings.model_name,
        config=config,
        source=RegistrySource(settings, choice),
        batcher=MicroBatcher(
            max_windows=config.batch_windows(choice.device),
            inline_max=config.inline_max_windows,
            max_bytes=CALL_BYTES if choice.device == "cpu" else None,  # see serving/batching.py
            observe=observe_batch,
        ),
        log=log,
        providers=onnxruntime.get_available_providers(),
        choice=choice,
        observe=observe,
        observe_stream=observe_stream,
    )
