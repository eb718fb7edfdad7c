"""``mmops drift`` and the ``drift-monitor`` flow share this: resolve the series, its champion and
its training window, read the current window, call :func:`training.monitor.judge`, log to MLflow.

Thin glue between locations/params and the library, like :mod:`flows.training_steps`. The flow
calls :func:`compute_drift` and, when ``verdict.drift``, emits ``EVENT`` on ``resource_id(series)``
with ``verdict.event_payload()``.
"""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from features.errors import ConfigError, DataError
from flows.params import Params
from flows.settings import Locations
from flows.training_steps import open_registry

if TYPE_CHECKING:
    from training.monitor import DriftVerdict

_WINDOW = re.compile(r"^\s*(\d+)\s*([a-zA-Z]*)\s*$")


def parse_series(params: Params, series: str | None) -> tuple[str, str]:
    """``BTCUSDT-1m`` (or ``mmops-BTCUSDT-1m``) -> (symbol, interval); default: the primary dataset.

    Raises:
        ConfigError: not ``SYMBOL-INTERVAL``, or no dataset in params.yaml has that series.
    """
    from features.schema import normalize_interval

    known = {f"{d.symbol}-{d.interval}": d for d in params.data.datasets}
    if series is None:
        primary = params.data.datasets[0]
        return primary.symbol, primary.interval
    text = series.removeprefix("mmops-")
    symbol, _, interval = text.rpartition("-")
    try:
        key = f"{symbol.upper()}-{normalize_interval(interval)}" if symbol else ""
    except ValueError:
        key = ""
    if key not in known:
        raise ConfigError(f"unknown series {series!r}: params.yaml data.datasets has {', '.join(known)}")
    return known[key].symbol, known[key].interval


def parse_window(text: str | None, interval: str) -> int | None:
    """``--window``: bars (``1440``) or a duration (``1d``, ``12h``, ``90min``) -> bars per window."""
    from features.schema import interval_ns

    if text is None:
        return None
    found = _WINDOW.match(text)
    if found is None:
        raise ConfigError(f"--window {text!r}: give bars (1440) or a duration (1d, 12h)")
    number, unit = int(found.group(1)), found.group(2)
    if not unit:
        return number
    try:
        ns = pd.Timedelta(f"{number}{unit}").value
    except ValueError as exc:
        raise ConfigError(f"--window {text!r}: not a duration (1d, 12h, 90min)") from exc
    bars = ns // interval_ns(interval)
    if bars < 1:
        raise ConfigError(f"--window {text!r} is shorter than one {interval} bar")
    return int(bars)


def compute_drift(
    where: Locations,
    params: Params,
    *,
    series: str | None = None,
    window: str | None = None,
    end: pd.Timestamp | None = None,
    journal: Path | None = None,
    prediction_log: Path | None = None,
    log_to_mlflow: bool = True,
    now: dt.datetime | None = None,
) -> DriftVerdict:
    """One drift verdict for ``series`` against its champion's training window; reports saved under
    ``reports/drift/<series>/<timestamp>/`` and logged to the ``<model>-monitoring`` experiment.

    Raises:
        ConfigError: unknown series or bad window.
        GovernanceError: no registered model, or no champion.
        DataError: no stored bars, no training window in the lineage, an empty or too small window.
    """
    from features.build import compute_features, make_labels
    from features.pipeline import resolve_venue
    from features.store import BarStore
    from training.config import registered_name
    from training.gate import GovernanceError
    from training.monitor import judge
    from training.monitor.sources import (
        journal_kpis,
        journal_signals,
        training_window,
    )
    from training.monitor.sources import (
        prediction_log as read_log,
    )
    from training.tracking import load_run_json, use_tracking

    symbol, interval = parse_series(params, series)
    name, label = registered_name(symbol, interval), f"{symbol}-{interval}"
    window_bars = parse_window(window, interval)
    if window_bars is not None and window_bars < params.monitor.min_window_bars:
        raise ConfigError(
            f"--window {window}: {window_bars} bars is under monitor.min_window_bars "
            f"({params.monitor.min_window_bars}); give a longer window"
        )
    use_tracking(where.tracking_uri)
    registry = open_registry(where)
    champion = registry.resolve(name, "champion")
    if champion is None:
        raise GovernanceError(f"{name} has no @champion to monitor; approve a version first")
    state = registry.state(name).get(champion.version)
    split_plan = (
        None
        if "mmops.train.start" in state.tags
        else (load_run_json(state.run_id, "tables/split_plan.json") if state.run_id else None)
    )
    trained = training_window(state.tags, split_plan, where=f"{name} v{champion.version}")
    store = BarStore(where.bars)
    venue = resolve_venue(store, symbol, interval, state.tags.get("mmops.venue"))
    bars = store.read(venue, symbol, interval)  # all of it: the reference may lie before --end
    if bars.empty:
        raise DataError(f"no stored bars for {label}; run `mmops ingest` first")
    features = compute_features(bars, params.features)
    model_dir = registry.download(champion, where.models / "monitor-cache")
    predictor = _Predictor(model_dir)
    missing = [c for c in predictor.names if c not in features.columns]
    if missing:
        raise DataError(
            f"{name} v{champion.version} was trained on features the features config does not make: {missing[:5]}"
        )
    reference = features.loc[trained.start : trained.end]
    if reference.empty:
        raise DataError(
            f"{label}: no stored bars in the champion's training window {trained.start} .. {trained.end}"
        )
    size = window_bars or params.monitor.window_bars
    needed = size * params.monitor.consecutive_windows
    signals, source = None, "bars"
    if journal is not None:
        signals, source = journal_signals(journal, symbol), "journal"
    elif prediction_log is not None or (where.logs / "predictions.jsonl").is_file():
        path = prediction_log or where.logs / "predictions.jsonl"
        signals, source = read_log(path, symbol, version=champion.version), "prediction_log"
    if signals is not None and signals.empty:
        signals, source = None, "bars"
    last = signals.index[-1] if signals is not None and source == "journal" else features.index[-1]
    if end is not None:
        last = min(last, end)
    current = features.loc[:last].iloc[-needed:]
    ref_pred = predictor.series(features, reference.index)
    cur_pred = signals if signals is not None else predictor.series(features, current.index)
    labels = make_labels(
        bars, horizon=params.split.for_interval(interval).label_horizon or params.features.label_horizon
    )["fwd_return"]
    if source == "prediction_log":  # request times, not bar times: no label to align with
        performance = None
    else:
        from training.monitor import MonitorConfig
        from training.monitor.drift import split_windows
        from training.monitor.verdict import performance_of

        logged = registry.run_metrics(state)
        cfg: MonitorConfig = params.monitor
        rows = current.dropna(how="all")
        performance = [
            performance_of(
                cur_pred, labels.loc[rows.index[s]], task=predictor.task, logged=logged, config=cfg
            )
            for s in split_windows(pd.DatetimeIndex(rows.index), cfg, window_bars=window_bars)
        ]
    verdict = judge(
        reference,
        current,
        series=label,
        config=params.monitor,
        model_version=champion.version,
        reference_predictions=ref_pred,
        current_predictions=cur_pred,
        performance=performance,
        kpis=journal_kpis(journal) if journal is not None else (),
        source=source,
        window_bars=window_bars,
        out_dir=where.reports / "drift",
        now=now,
        reference_info={**trained.to_dict(), "rows": len(reference)},
    )
    if log_to_mlflow and verdict.summary_path is not None:
        _log(where, name, verdict)
    return verdict


def _log(where: Locations, name: str, verdict: DriftVerdict) -> None:
    from training.tracking import log_monitoring_run

    latest = verdict.latest
    metrics = {"drift_share": latest.drift_share, "drifted_features": float(len(verdict.drifted_features))}
    metrics.update({f"score.{c.column}": c.score for c in latest.features})
    if verdict.prediction is not None:
        metrics["prediction_score"] = verdict.prediction.score
    assert verdict.summary_path is not None
    log_monitoring_run(
        f"{name}-monitoring",
        artifact_root=where.artifact_root,
        run_name=f"drift-{verdict.series}-{verdict.at}",
        tags={
            "mmops.model": name,
            "mmops.model_version": str(verdict.model_version),
            "mmops.series": verdict.series,
            "mmops.drift": str(verdict.drift).lower(),
            "mmops.drift.reasons": ",".join(verdict.reasons) or "none",
        },
        metrics=metrics,
        folder=verdict.summary_path.parent,
    )


class _Predictor:
    """The champion's ONNX fast path (what serving runs) over feature rows in time order."""

    def __init__(self, model_dir: Path) -> None:
        from training.artifact import load_predictor

        self._p = load_predictor(model_dir)
        self.names = list(self._p.info.feature_names)
        self.task = self._p.info.task
        self.lookback = self._p.info.lookback

    def series(self, features: pd.DataFrame, index: pd.Index) -> pd.Series:
        """Outputs at ``index`` (rows of ``features``), with ``lookback - 1`` rows of context before."""
        if len(index) == 0:
            return pd.Series(dtype="float64", name="prediction")
        first = int(features.index.searchsorted(index[0]))
        start = max(0, first - self.lookback + 1)
        block = features.iloc[start : int(features.index.searchsorted(index[-1])) + 1][self.names]
        out = np.asarray(self._p.predict_frame(block.to_numpy(np.float32)), dtype=np.float64)
        return pd.Series(out, index=block.index, name="prediction").loc[index[0] :]
