"""The training steps the CLI and the Prefect flows share: resolve the series, tune, evaluate.

Thin glue between ``params.yaml``/locations and the library (``training.pipeline``); no logic.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from features.errors import ConfigError, DataError
from flows.params import Params
from flows.settings import REPO_ROOT, Locations

if TYPE_CHECKING:
    from training.dataset import Dataset
    from training.pipeline import Candidate, TrackingSettings


def series_bars(where: Locations, params: Params, symbol: str | None, interval: str | None,
                venue: str | None) -> pd.DataFrame:  # fmt: skip
    """Bars of the requested series; by default the first dataset of params.yaml (the primary)."""
    from features.pipeline import resolve_venue
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
    import yaml

    from training.pipeline import TrackingSettings

    dvc_file = where.home / "data.dvc" if (where.home / "data.dvc").is_file() else REPO_ROOT / "data.dvc"
    data_hash = "none"
    if dvc_file.is_file():
        outs = (yaml.safe_load(dvc_file.read_text()) or {}).get("outs") or [{}]
        data_hash = str(outs[0].get("md5", "none"))
    return TrackingSettings(tracking_uri=where.tracking_uri, artifact_root=where.artifact_root,
                            optuna_storage=where.optuna_storage, scratch=where.models, repo=REPO_ROOT,
                            dvc_data_hash=data_hash, params_doc=params.model_dump(mode="json"))  # fmt: skip


def resolve_task(params: Params, task: str | None) -> Any:
    chosen = task or params.tune.task
    if chosen not in ("regressor", "classifier"):
        raise ConfigError(f"--task must be regressor or classifier, not {chosen!r}")
    return chosen


def run_family(where: Locations, params: Params, bars: pd.DataFrame, family: str, task: Any,
               trials: int | None, timeout: float | None) -> Candidate:  # fmt: skip
    from training.pipeline import prepare_job, tune_and_log

    try:
        job = prepare_job(bars, family=family, task=task, features=params.features, split=params.split,
                          tune=params.tune, models=params.models, quote=params.quote, risk=params.risk,
                          backtest=params.backtest)  # fmt: skip
        return tune_and_log(job, tracking_settings(where, params), trials=trials or params.tune.trials,
                            timeout_s=timeout or params.tune.timeout_s, evaluate=params.evaluate)  # fmt: skip
    except ValueError as exc:
        if isinstance(exc, DataError):
            raise
        raise DataError(f"{family}: {exc}") from exc


def dataset_of(candidate: Candidate, bars: pd.DataFrame, params: Params) -> Dataset:
    from training.dataset import build_dataset

    profile = params.split.for_interval(str(bars["interval"].iloc[0]))
    return build_dataset(
        bars, params.features, label_horizon=profile.label_horizon or params.features.label_horizon
    )


def evaluate_uri(where: Locations, params: Params, model_uri: str, *, window: str | None,
                 data: Path | None = None) -> dict[str, float]:  # fmt: skip
    """Metrics of a logged model on a hold-out window of its series, or on a raw file."""
    from training.pipeline import evaluate_artifact
    from training.tracking import download_model, use_tracking

    use_tracking(where.tracking_uri)
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, tags = download_model(model_uri, dest=Path(tmp))
        if data is not None:
            bars = validated_file(where, params, data)
        else:
            bars = series_bars(where, params, tags.get("mmops.symbol"), tags.get("mmops.interval"),
                               tags.get("mmops.venue"))  # fmt: skip
        return evaluate_artifact(model_dir, bars, window=window, features=params.features, split=params.split,
                                 quote=params.quote, risk=params.risk, backtest=params.backtest,
                                 evaluate=params.evaluate)  # fmt: skip


def evaluator_for(
    where: Locations, params: Params, window: str = "forward"
) -> Callable[[str], dict[str, float]]:
    """The gate's evaluator: model URI -> metrics on ``window`` (identical for every model)."""
    return lambda uri: evaluate_uri(where, params, uri, window=window)


def validated_file(where: Locations, params: Params, path: Path) -> pd.DataFrame:
    """Read a raw dump or file, validate it in memory (never written to the store)."""
    from features.errors import ValidationFailed
    from features.ingest import read_source
    from features.validation import validate_bars

    bars = read_source("binance-dump" if path.suffix == ".zip" or path.is_dir() else "file", path)
    reports = validate_bars(bars, config=params.validation, now=pd.Timestamp.now(tz="UTC"))
    failed = [r for r in reports if not r.success]
    if failed:
        raise ValidationFailed("; ".join(r.summary() for r in failed), quarantine_path=None)
    if bars[["venue", "symbol", "interval"]].drop_duplicates().shape[0] != 1:
        raise DataError(f"{path}: holds several series; evaluate one at a time")
    return bars
