"""One drift verdict for a series: windows scored, the sustained rule applied, reports written.

:func:`judge` is what the ``mmops drift`` command and the ``drift-monitor`` flow call (through
``flows.monitor_steps``); it takes frames, not locations, so it is tested on real data without a
registry. :class:`DriftVerdict` is frozen and carries the Prefect event's payload
(:meth:`DriftVerdict.event_payload`); emitting the event is the flow's job.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataError
from training.monitor.config import MonitorConfig
from training.monitor.drift import (
    ColumnScore,
    RegimeReference,
    Standardiser,
    WindowDrift,
    cap_rows,
    score_window,
    split_windows,
    sustained,
    watched_features,
)
from training.monitor.report import write_evidently, write_summary

EVENT = "mmops.drift.detected"


def resource_id(series: str) -> str:
    """The Prefect resource a series' drift events are about: ``mmops.monitor.<series>``."""
    return f"mmops.monitor.{series}"


@dataclass(frozen=True, slots=True)
class Performance:
    """Realised error of the model's outputs once labels matured, against the training-time value."""

    metric: str  # mae (regressor) | accuracy (classifier: hit rate)
    realised: float
    logged: float | None  # the version's run metric on its forward window (None: not logged)
    rows: int
    degraded: bool


@dataclass(frozen=True, slots=True)
class DriftVerdict:
    """What one drift check found. ``drift`` is the alarm: the sustained condition held."""

    series: str
    model_version: str | None
    at: str
    drift: bool
    sustained: bool
    windows: tuple[WindowDrift, ...]
    drifted_features: tuple[ColumnScore, ...]  # of the newest window, by score
    prediction: ColumnScore | None
    performance: Performance | None
    kpis: tuple[Mapping[str, Any], ...] = ()
    source: str = "bars"  # where the current outputs came from: journal | prediction_log | bars
    report_html: Path | None = None
    report_json: Path | None = None
    summary_path: Path | None = None
    reference: Mapping[str, Any] = field(default_factory=dict)

    @property
    def latest(self) -> WindowDrift:
        return self.windows[-1]

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.latest.reasons

    def event_payload(self) -> dict[str, Any]:
        """The ``mmops.drift.detected`` event's payload (JSON-able; the retrain trigger templates it)."""
        return {
            "series": self.series,
            "model_version": self.model_version,
            "at": self.at,
            "sustained": self.sustained,
            "reasons": list(self.reasons),
            "drift_share": self.latest.drift_share,
            "families": {f.family: round(f.score, 4) for f in self.latest.families},
            "regime_z": round(self.latest.regime.z, 3) if self.latest.regime else None,
            "drifted_features": {c.column: round(c.score, 4) for c in self.drifted_features[:10]},
            "prediction_score": self.prediction.score if self.prediction else None,
            "report": str(self.report_html) if self.report_html else None,
        }

    def to_dict(self) -> dict[str, Any]:
        perf = self.performance
        return {
            "series": self.series,
            "model_version": self.model_version,
            "at": self.at,
            "drift": self.drift,
            "sustained": self.sustained,
            "reasons": list(self.reasons),
            "source": self.source,
            "drifted_features": [c.column for c in self.drifted_features],
            "top_features": [c.to_dict() for c in self.latest.top(10)],
            "prediction": self.prediction.to_dict() if self.prediction else None,
            "performance": None
            if perf is None
            else {
                "metric": perf.metric,
                "realised": perf.realised,
                "logged": perf.logged,
                "rows": perf.rows,
                "degraded": perf.degraded,
            },
            "kpis": [dict(k) for k in self.kpis],
            "windows": [w.to_dict() for w in self.windows],
            "reference": dict(self.reference),
            "report": str(self.report_html) if self.report_html else None,
            "snapshot": str(self.report_json) if self.report_json else None,
            "event": {"event": EVENT, "resource": resource_id(self.series), "payload": self.event_payload()},
        }


def performance_of(
    predictions: pd.Series,
    fwd_return: pd.Series,
    *,
    task: str,
    logged: Mapping[str, float],
    config: MonitorConfig,
) -> Performance | None:
    """Realised MAE (regressor) or hit rate (classifier) where labels matured; None under
    ``min_labelled_rows``. Degraded: MAE over ``max_error_ratio`` x the logged forward MAE, or a hit
    rate under the logged forward accuracy / ``max_error_ratio``."""
    both = pd.concat([predictions.rename("p"), fwd_return.rename("y")], axis=1, join="inner").dropna()
    if len(both) < config.min_labelled_rows:
        return None
    p, y = both["p"].to_numpy(), both["y"].to_numpy()
    if task == "regressor":
        realised, known = float(np.mean(np.abs(p - y))), logged.get("forward_mae")
        degraded = known is not None and realised > config.max_error_ratio * known
        return Performance("mae", realised, known, len(both), bool(degraded))
    realised = float(np.mean((p > 0.5) == (y > 0)))
    known = logged.get("forward_accuracy")
    degraded = known is not None and realised < known / config.max_error_ratio
    return Performance("accuracy", realised, known, len(both), bool(degraded))


def judge(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    *,
    series: str,
    config: MonitorConfig,
    model_version: str | None = None,
    reference_predictions: pd.Series | None = None,
    current_predictions: pd.Series | None = None,
    performance: Sequence[Performance | None] | None = None,
    kpis: Sequence[Mapping[str, Any]] = (),
    source: str = "bars",
    window_bars: int | None = None,
    out_dir: Path | None = None,
    now: dt.datetime | None = None,
    reference_info: Mapping[str, Any] | None = None,
) -> DriftVerdict:
    """Score the last windows of ``current`` against ``reference`` and decide.

    Args:
        reference: feature rows of the reference (the champion's training window), by time.
        current: feature rows up to now, by time; the last ``consecutive_windows`` windows are scored.
        series: e.g. ``BTCUSDT-1m`` (names the report folder and the event's resource).
        reference_predictions, current_predictions: the model's outputs (prediction drift).
        performance: per window (oldest first), realised performance, or None where unknown.
        out_dir: the report root (``reports/drift``); None writes nothing.
        now: the verdict's time (the report folder's name), UTC.

    Raises:
        DataError: an empty reference or current window, or a window under ``min_window_bars``.
    """
    names = watched_features(list(reference.columns), config)
    ref = cap_rows(reference[names].dropna(how="all"), config.reference_max_rows)
    if len(ref) < config.min_window_bars:
        raise DataError(
            f"{series}: the reference holds {len(ref)} rows; at least {config.min_window_bars} needed"
        )
    scaler = Standardiser(ref)
    regime_ref = RegimeReference.of(reference, config)  # the whole window, not the capped sample
    pred_scaler = None
    if reference_predictions is not None and reference_predictions.notna().sum() >= config.min_window_bars:
        pred_scaler = Standardiser(
            cap_rows(reference_predictions.dropna().to_frame("prediction"), config.reference_max_rows)
        )
    cur = current[[c for c in names if c in current.columns]].dropna(how="all")
    slices = split_windows(pd.DatetimeIndex(cur.index), config, window_bars=window_bars)
    windows = []
    for k, rows in enumerate(slices):
        part = cur.iloc[rows]
        preds = None
        if current_predictions is not None:
            preds = current_predictions.loc[
                (current_predictions.index >= part.index[0]) & (current_predictions.index <= part.index[-1])
            ]
        perf = performance[k] if performance is not None and k < len(performance) else None
        windows.append(
            score_window(
                scaler,
                part,
                config=config,
                prediction_scaler=pred_scaler,
                predictions=preds,
                performance_degraded=bool(perf and perf.degraded),
                regime_reference=regime_ref,
            )
        )
    latest = windows[-1]
    alarm = sustained(windows, config)
    when = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    verdict = DriftVerdict(
        series=series,
        model_version=model_version,
        at=when.isoformat(timespec="seconds"),
        drift=alarm,
        sustained=alarm,
        windows=tuple(windows),
        drifted_features=tuple(c for c in latest.top(len(latest.features)) if c.drifted),
        prediction=latest.prediction,
        performance=performance[-1] if performance else None,
        kpis=tuple(kpis),
        source=source,
        reference=dict(reference_info or {}),
    )
    if out_dir is None:
        return verdict
    folder = out_dir / series / when.strftime("%Y%m%dT%H%M%SZ")
    ref_z, cur_z = scaler.transform(ref), scaler.transform(cur.iloc[slices[-1]])
    if latest.prediction is not None and pred_scaler is not None and current_predictions is not None:
        ref_z = ref_z.join(pred_scaler.transform(reference_predictions.to_frame("prediction")), how="left")  # type: ignore[union-attr]
        cur_z = cur_z.join(pred_scaler.transform(current_predictions.to_frame("prediction")), how="left")
    title = (
        f"drift {series} v{model_version or '-'} {latest.start:%Y-%m-%d %H:%M} .. {latest.end:%Y-%m-%d %H:%M}"
    )
    html, snap = write_evidently(ref_z, cur_z, latest, folder, config=config, title=title)
    done = _with_paths(verdict, html=html, snap=snap, summary=folder / "summary.json")
    write_summary(folder, done.to_dict())
    return done


def _with_paths(v: DriftVerdict, *, html: Path, snap: Path, summary: Path) -> DriftVerdict:
    from dataclasses import replace

    return replace(v, report_html=html, report_json=snap, summary_path=summary)
