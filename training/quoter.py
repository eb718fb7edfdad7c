"""Tune the model-free Avellaneda-Stoikov quoter as its own study, then log and report it.

The study (``<registered>-as-quoter``) searches ``tune.quote_space`` over the same walk-forward
folds and with the same trial budget as a model family; its best settings are what every model of
the series is then compared with (``tas_`` metrics). MLflow is reached only through
:mod:`training.tracking`.
"""

from __future__ import annotations

import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import pandas as pd

from training import plots, tracking
from training.config import EvaluateConfig, registered_name
from training.evaluate import WindowReport, evaluate_quoters
from training.pipeline import WINDOWS, TrackingSettings, study_run_tags, trial_callback, trials_frame
from training.quote_tuning import TAG_TUNED_AS, Quoting
from training.tune import TuneJob, best_params, open_study, run_trials, study_name

# What the quoter's summary carries per window (the CLI's JSON, DVC metrics)
QUOTER_SUMMARY = (
    "as_sharpe",
    "as_pnl_pct",
    "as_n_trades",
    "tas_sharpe",
    "tas_pnl_pct",
    "tas_n_trades",
    "tas_max_drawdown_pct",
    "tas_over_as_sharpe_diff",
    "tas_over_as_sharpe_diff_lo",
    "tas_over_as_sharpe_diff_hi",
    "tas_over_as_pnl_diff_pct",
)


@dataclass(frozen=True)
class QuoterResult:
    """The tuned model-free quoter of one series: its study, best settings and hold-out metrics."""

    study: str
    run_id: str
    trials: int
    best_value: float
    best_settings: dict[str, Any]  # names without the quote. prefix, e.g. {"kappa": 0.0003}
    metrics: dict[str, float]
    equity: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)

    def summary(self) -> dict[str, Any]:
        keys = [f"{w}_{m}" for w in WINDOWS for m in QUOTER_SUMMARY]
        return {
            "family": "as",
            "study": self.study,
            "run_id": self.run_id,
            "trials": self.trials,
            "best_value": self.best_value,
            "best_settings": self.best_settings,
            "metrics": {k: self.metrics[k] for k in keys if k in self.metrics},
        }


def tune_quoter_and_log(
    job: TuneJob,
    settings: TrackingSettings,
    *,
    trials: int,
    timeout_s: float | None,
    evaluate: EvaluateConfig,
) -> QuoterResult:
    """Run more trials of the series' model-free quoter study, log its best settings (MLflow params
    ``quote.<name>``, tags ``mmops.tas.<name>``) and its hold-out metrics against params.yaml's.

    Raises:
        ValueError: no quote space, a loss objective, or no trial completed.
    """
    ds = job.dataset
    registered = registered_name(ds.symbol, ds.interval)
    name = study_name(registered, job.family, job.task)
    study = open_study(settings.optuna_storage, name, maximize=job.maximize, config=job.tune)
    tracking.use_tracking(settings.tracking_uri)
    experiment = tracking.ensure_experiment(f"{registered}-quoter", artifact_root=settings.artifact_root)
    tags = study_run_tags(job, name, settings)
    with tracking.parent_run(experiment, run_name=name, tags=tags) as parent_id:
        on_trial = trial_callback(parent_id, experiment, what="tune as-quoter", total=trials)
        run_trials(study, job, trials=trials, timeout_s=timeout_s, on_trial=on_trial)
        best = job.quoting(best_params(study))
        tracking.log_params_flat(dict(best_params(study)))
        tracking.log_params_flat(
            {"objective": job.tune.objective, "folds": len(job.plan.folds), "gap_bars": job.plan.gap},
            prefix="mmops.",
        )
        tracking.set_run_tags(best.tags(TAG_TUNED_AS))
        reports = {w: _evaluate(job, best, getattr(job.plan, w), evaluate) for w in WINDOWS}
        metrics = {f"{w}_{k}": v for w, r in reports.items() for k, v in r.metrics.items()}
        metrics["tune_best_value"] = float(study.best_value)
        tracking.log_metrics(metrics)
        result = QuoterResult(
            study=name,
            run_id=parent_id,
            trials=len(study.trials),
            best_value=float(study.best_value),
            best_settings=dict(best.tuned),
            metrics=metrics,
            equity={w: r.equity for w, r in reports.items()},
        )
        with tempfile.TemporaryDirectory() as tmp:
            tracking.log_artifacts(_write_reports(study, result, Path(tmp), title=f"{ds.symbol} A-S quoter"))
    return result


def write_quoter_outputs(result: QuoterResult, out_dir: Path) -> dict[str, Path]:
    """``best_settings.json`` (the tuned settings, the study, its best value) and ``metrics.json``
    (flat, NaN as null) and ``equity_<window>.csv``, e.g. for a DVC stage."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = result.summary()
    paths = {"settings": out_dir / "best_settings.json", "metrics": out_dir / "metrics.json"}
    paths["settings"].write_text(json.dumps(_settings_doc(result), indent=1))
    flat = {"best_value": result.best_value, "trials": result.trials, **summary["metrics"]}
    paths["metrics"].write_text(json.dumps({k: _finite(v) for k, v in flat.items()}, indent=1))
    for window, frame in result.equity.items():
        paths[window] = out_dir / f"equity_{window}.csv"
        frame.to_csv(paths[window])
    return paths


def _settings_doc(result: QuoterResult) -> dict[str, Any]:
    return {"study": result.study, "best_value": _finite(result.best_value), "settings": result.best_settings}


def _finite(value: Any) -> Any:
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _evaluate(job: TuneJob, best: Quoting, rows: slice, config: EvaluateConfig) -> WindowReport:
    return evaluate_quoters(
        job.dataset.bars.iloc[rows].reset_index(drop=True),
        quote=job.quote,
        risk=job.risk,
        backtest=job.backtest,
        tuned=best,
        config=config,
    )


def _write_reports(
    study: optuna.Study, result: QuoterResult, folder: Path, *, title: str
) -> list[tuple[str, Path]]:
    """The best settings, the trial/fold table, equity curves and Optuna's plots."""
    (folder / "best_settings.json").write_text(json.dumps(_settings_doc(result), indent=1))
    trials_frame(study).to_csv(folder / "trials_folds.csv", index=False)
    out = [("tables", folder / "best_settings.json"), ("tables", folder / "trials_folds.csv")]
    out.append(("plots", plots.equity_plot(result.equity, folder / "equity.png", title=title)))
    out += [("optuna", path) for path in plots.optuna_plots(study, folder)]
    return out
