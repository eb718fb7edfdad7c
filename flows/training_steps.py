"""The steps the CLI and the Prefect flows share: resolve the series and model, tune, evaluate.

Thin glue between ``params.yaml``/locations and the library (``training.pipeline``); no logic.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.errors import ConfigError, DataError
from flows.params import Params
from flows.settings import REPO_ROOT, Locations

if TYPE_CHECKING:
    from training.pipeline import Candidate, TrackingSettings
    from training.quoter import QuoterResult
    from training.registry import GateOutcome, Registry
    from training.retrain_record import Mode, RetrainRecord
    from training.tune import TuneJob


def split_series(key: str) -> tuple[str | None, str, str]:
    """A series key -> (venue or None, symbol, interval).

    Takes the store's ``venue:symbol:interval`` and the monitor's ``SYMBOL-INTERVAL`` (also
    ``mmops-SYMBOL-INTERVAL``, the registered name); without a venue the store's only one is used.

    Raises:
        ConfigError: neither form.
    """
    parts = key.split(":")
    if len(parts) == 3 and all(parts):
        return parts[0], parts[1], parts[2]
    symbol, _, interval = key.removeprefix("mmops-").rpartition("-")
    if len(parts) == 1 and symbol and interval:
        return None, symbol, interval
    raise ConfigError(
        f"series {key!r}: expected venue:symbol:interval (binance:BTCUSDT:1m) or SYMBOL-INTERVAL (BTCUSDT-1m)"
    )


def series_bars(
    where: Locations,
    params: Params,
    *,
    symbol: str | None = None,
    interval: str | None = None,
    venue: str | None = None,
    series: str | None = None,
) -> pd.DataFrame:
    """Bars of the requested series (``series`` is ``venue:symbol:interval`` and wins over the
    parts); by default the first dataset of params.yaml (the primary)."""
    from features.pipeline import resolve_venue

    if series:
        venue, symbol, interval = split_series(series)
    from features.schema import normalize_interval, normalize_symbol
    from features.store import BarStore

    primary = params.data.datasets[0]
    symbol = normalize_symbol(symbol or primary.symbol or "")
    interval = normalize_interval(interval or primary.interval or "")
    store = BarStore(where.bars)
    venue = resolve_venue(
        store, symbol, interval, venue or (primary.venue if symbol == primary.symbol else None)
    )
    return store.read(venue, symbol, interval)


def tracking_settings(where: Locations, params: Params) -> TrackingSettings:
    from training.pipeline import TrackingSettings
    from training.tracking import dvc_data_hash

    dvc_file = where.home / "data.dvc" if (where.home / "data.dvc").is_file() else REPO_ROOT / "data.dvc"
    data_hash = dvc_data_hash(dvc_file)
    return TrackingSettings(
        tracking_uri=where.tracking_uri,
        artifact_root=where.artifact_root,
        optuna_storage=where.optuna_storage,
        scratch=where.models,
        repo=REPO_ROOT,
        dvc_data_hash=data_hash,
        params_doc=params.model_dump(mode="json"),
    )


def model_name(params: Params, model: str | None) -> str:
    """The registered model to act on: ``model``, else ``serve.model``, else the primary dataset's."""
    from training.config import registered_name

    if model or params.serve.model:
        return str(model or params.serve.model)
    primary = params.data.datasets[0]
    if not primary.symbol or not primary.interval:
        raise ConfigError("the first dataset in params.yaml has no symbol/interval; pass --model")
    return registered_name(primary.symbol, primary.interval)


def open_registry(where: Locations) -> Registry:
    from training.registry import Registry

    return Registry(where.tracking_uri, audit_log=where.logs / "registry_audit.jsonl", reports=where.reports)


def register_candidate(candidate: Candidate, bars: pd.DataFrame) -> str:
    """Register a tuned candidate under its series' model name; returns the version."""
    from training.pipeline import register

    return register(candidate, symbol=str(bars["symbol"].iloc[0]), interval=str(bars["interval"].iloc[0]))


def resolve_task(params: Params, task: str | None) -> Any:
    chosen = task or params.tune.task
    if chosen not in ("regressor", "classifier"):
        raise ConfigError(f"--task must be regressor or classifier, not {chosen!r}")
    return chosen


def study_job(
    params: Params,
    bars: pd.DataFrame,
    *,
    family: str,
    task: Any,
    features_file: Path | None = None,
    quote_starts: tuple[Mapping[str, float], ...] = (),
) -> TuneJob:
    """One study's job from params.yaml's sections (a family, or ``as``: the model-free quoter)."""
    from training.pipeline import prepare_job

    return prepare_job(
        bars,
        family=family,
        task=task,
        features=params.features,
        split=params.split,
        tune=params.tune,
        models=params.models,
        quote=params.quote,
        risk=params.risk,
        backtest=params.backtest,
        evaluate=params.evaluate,
        features_file=features_file,
        quote_starts=quote_starts,
    )


def run_family(
    where: Locations,
    params: Params,
    bars: pd.DataFrame,
    *,
    family: str,
    task: Any,
    trials: int | None = None,
    timeout: float | None = None,
    features_file: Path | None = None,
) -> Candidate:
    from training.pipeline import tune_and_log

    try:
        job = study_job(params, bars, family=family, task=task, features_file=features_file)
        return tune_and_log(
            job,
            tracking_settings(where, params),
            trials=trials or params.tune.trials,
            timeout_s=timeout or params.tune.timeout_s,
            evaluate=params.evaluate,
        )
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{family}: {exc}") from exc


def run_quoter(
    where: Locations,
    params: Params,
    bars: pd.DataFrame,
    *,
    task: Any,
    trials: int | None = None,
    timeout: float | None = None,
    calibration: Path | None = None,
) -> QuoterResult:
    """Tune the model-free A-S quoter of the series (``tune.quote_space``), same folds and budget."""
    from training.quote_tuning import QUOTER, calibrated_start
    from training.quoter import tune_quoter_and_log

    starts = (calibrated_start(calibration, tick_size=params.backtest.tick_size),) if calibration else ()
    try:
        job = study_job(params, bars, family=QUOTER, task=task, quote_starts=starts)
        return tune_quoter_and_log(
            job,
            tracking_settings(where, params),
            trials=trials or params.tune.trials,
            timeout_s=timeout or params.tune.timeout_s,
            evaluate=params.evaluate,
        )
    except ValueError as exc:
        if isinstance(exc, DataError | ConfigError):
            raise
        raise DataError(f"as-quoter: {exc}") from exc


def evaluate_uri(
    where: Locations, params: Params, model_uri: str, *, window: str | None, data: Path | None = None
) -> dict[str, float]:
    """Metrics of a logged model on a hold-out window of its series, or on a raw file."""
    from training.pipeline import evaluate_artifact
    from training.quote_tuning import from_version
    from training.tracking import download_model, use_tracking

    use_tracking(where.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, tags = download_model(model_uri, dest=Path(tmp))
        if data is not None:
            from features.pipeline import read_validated

            bars = read_validated(data, config=params.validation, now=pd.Timestamp.now(tz="UTC"))
        else:
            bars = series_bars(
                where,
                params,
                symbol=tags.get("mmops.symbol"),
                interval=tags.get("mmops.interval"),
                venue=tags.get("mmops.venue"),
            )
        own, tuned = from_version(tags, params.quote, params.backtest)
        return evaluate_artifact(
            model_dir,
            bars,
            window=window,
            features=params.features,
            split=params.split,
            quote=params.quote,
            risk=params.risk,
            backtest=params.backtest,
            evaluate=params.evaluate,
            model_quoting=own,
            tuned_quoter=tuned,
        )


def evaluator_for(
    where: Locations, params: Params, window: str = "forward"
) -> Callable[[str], dict[str, float]]:
    """The gate's evaluator: model URI -> metrics on ``window`` (identical for every model)."""
    return lambda uri: evaluate_uri(where, params, uri, window=window)


def gate_result(outcome: GateOutcome) -> dict[str, Any]:
    """A gate outcome as the flows return it: the verdict, the report, every check with its numbers."""
    verdict = outcome.verdict
    return {
        "version": outcome.version,
        "passed": verdict.passed,
        "report": str(outcome.report),
        "checks": [c.describe() for c in verdict.checks],
        "failed": [c.sentence() for c in verdict.failed],
    }


def retrain_reason(mode: Mode, reason: str | None, drift: dict[str, Any] | None) -> str:
    """Why a retrain runs, in words; a canary retrain must say (its reason, or its drift event's).

    Raises:
        ConfigError: canary mode with neither a reason nor a drift payload.
    """
    if reason and reason.strip():
        return reason.strip()
    if drift:
        return str(drift.get("reason") or f"drift detected on {drift.get('series', 'an unnamed series')}")
    if mode == "canary":
        raise ConfigError("a canary retrain needs --reason or the drift event's payload (drift=...)")
    return "scheduled retrain"


def record_retrain(
    where: Locations,
    name: str,
    version: str,
    *,
    mode: Mode,
    reason: str,
    drift: dict[str, Any] | None,
    flow_run: str,
    registered: dict[str, Any],
    gate: dict[str, Any],
) -> RetrainRecord:
    """Write every step of one retrain on the version it registered (tags and description)."""
    from training.retrain_record import RetrainRecord

    registry = open_registry(where)
    record = RetrainRecord(
        mode=mode,
        reason=reason,
        drift=drift or {},
        flow_run=flow_run,
        chosen=registered["chosen"],
        candidates=registered["candidates"],
        gate_passed=bool(gate["passed"]),
        gate_checks=gate["checks"],
        gate_failed=gate["failed"],
        aliases=registry.state(name).get(version).aliases,
    )
    registry.annotate(name, version, tags=record.tags(), description=record.description())
    return record
