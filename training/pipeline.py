"""Tune -> refit -> evaluate -> log -> register, for one family or for all of them.

The steps the CLI, the DVC stages and the Prefect retrain flow share. MLflow is reached only
through :mod:`training.tracking`.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pandas as pd

from features.config import FeaturesConfig
from features.errors import DataError
from features.feature_files import read_features
from features.progress import report
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training import plots, tracking
from training.config import (
    EvaluateConfig,
    FamilyConfig,
    ModelsConfig,
    SplitConfig,
    Task,
    TuneConfig,
    registered_name,
)
from training.dataset import Dataset, build_dataset, predict_rows
from training.evaluate import WindowReport, evaluate_window, statistical_metrics
from training.models import model_class
from training.quote_tuning import QUOTER, TAG_MODEL, TAG_TUNED_AS, Quoting
from training.splits import plan_splits
from training.tune import (
    TuneJob,
    best_params,
    fit_window,
    open_study,
    run_trials,
    study_name,
    trial_value,
    tuned_quoter,
)

logger = logging.getLogger(__name__)
WINDOWS = ("backtest", "forward")
TAG_TUNED_AS_STUDY = "mmops.tas_study"  # the model-free quoter's study the version was compared with
# What a candidate's summary (the flow's result, the demo's table, DVC metrics) carries per window:
# forecast errors, the model quoter, the model-free A-S quoter (as_) and buy-and-hold (bh_).
SUMMARY_METRICS = (
    "mae",
    "rmse",
    "accuracy",
    "sharpe",
    "pnl_pct",
    "max_drawdown_pct",
    "as_sharpe",
    "as_pnl_pct",
    "bh_sharpe",
    "bh_pnl_pct",
    "sharpe_diff",
    "sharpe_diff_lo",
    "sharpe_diff_hi",
    "n_trades",
    "as_n_trades",
    # the objective (bps of capital per day) and the baselines a forecast must beat
    "utility",
    "pnl_bps_day",
    "as_utility",
    "as_pnl_bps_day",
    "bh_utility",
    "utility_diff",
    "utility_diff_lo",
    "utility_diff_hi",
    "pnl_diff",
    "pnl_diff_lo",
    "pnl_diff_hi",
    "mae_ratio",
    "rmse_ratio",
    "skill",
    "accuracy_lo",
    "accuracy_hi",
    "majority_accuracy",
    # the model-free quoter at its tuned settings (training.quoter), and the model against it
    "tas_utility",
    "tas_sharpe",
    "tas_pnl_pct",
    "tas_n_trades",
    "tas_sharpe_diff",
    "tas_sharpe_diff_lo",
    "tas_sharpe_diff_hi",
    "tas_pnl_diff_pct",
    "tas_utility_diff",
    "tas_utility_diff_lo",
    "tas_utility_diff_hi",
    "tas_pnl_diff",
    "tas_pnl_diff_lo",
    "tas_pnl_diff_hi",
)


@dataclass(frozen=True)
class TrackingSettings:
    """Where runs, studies and scratch artifacts go, and the lineage of this checkout."""

    tracking_uri: str
    artifact_root: str | None  # None: the tracking server's own store
    optuna_storage: str
    scratch: Path
    repo: Path
    dvc_data_hash: str
    params_doc: Mapping[str, Any] = field(repr=False)


@dataclass
class Candidate:
    """A refitted, evaluated model of one family, logged in its parent run, maybe registered."""

    family: str
    task: Task
    study: str
    run_id: str
    model_dir: Path
    metrics: dict[str, float]
    best_params: dict[str, Any]
    trials: int
    best_value: float
    version: str | None = None
    equity: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    input_example: pd.DataFrame | None = field(
        default=None, repr=False
    )  # last feature rows, for the signature

    def score(self, objective: str) -> float:
        """Selection score on the backtest window (higher is better); NaN sorts last."""
        if objective in ("utility", "sharpe"):
            return self.metrics.get(f"backtest_{objective}", math.nan)
        key = "backtest_mae" if self.task == "regressor" else "backtest_log_loss"
        return -self.metrics.get(key, math.nan)

    def summary(self) -> dict[str, Any]:
        keys = [f"{w}_{m}" for w in WINDOWS for m in SUMMARY_METRICS]
        return {
            "family": self.family,
            "task": self.task,
            "study": self.study,
            "run_id": self.run_id,
            "trials": self.trials,
            "best_value": self.best_value,
            "best_params": self.best_params,
            "registered_version": self.version,
            "metrics": {k: self.metrics[k] for k in keys if k in self.metrics},
        }


class _FastRows:
    """Adapts the ONNX Predictor (what serving runs) to ``predict_rows``."""

    def __init__(self, model_dir: Path) -> None:
        from training.artifact import load_predictor

        self._predictor = load_predictor(model_dir)
        self.lookback = self._predictor.info.lookback

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self._predictor.predict_frame(X.astype(np.float32)), dtype=np.float64)


def tune_and_log(
    job: TuneJob,
    settings: TrackingSettings,
    *,
    trials: int,
    timeout_s: float | None,
    evaluate: EvaluateConfig,
) -> Candidate:
    """Run more trials of the family's study, refit the best, evaluate and log it (not registered).

    Raises:
        ValueError: no trial completed (the message names the study).
    """
    ds = job.dataset
    registered = registered_name(ds.symbol, ds.interval)
    name = study_name(registered, job.family, job.task, joint=job.tune.quote_joint)
    study = open_study(settings.optuna_storage, name, maximize=job.maximize, config=job.tune)
    tracking.use_tracking(settings.tracking_uri)
    experiment = tracking.ensure_experiment(f"{registered}-{job.task}", artifact_root=settings.artifact_root)
    tags = study_run_tags(job, name, settings)
    report(f"tune {job.family} device", detail=model_class(job.family).compute_device())
    with tracking.parent_run(experiment, run_name=name, tags=tags) as parent_id:
        on_trial = trial_callback(parent_id, experiment, what=f"tune {job.family}", total=trials)
        run_trials(study, job, trials=trials, timeout_s=timeout_s, on_trial=on_trial)
        params = best_params(study)
        own = job.quoting(params)  # the model's quote settings: tuned with it, or params.yaml's
        against = tuned_quoter(settings.optuna_storage, registered, job)
        tracking.log_params_flat({**job.family_config.fixed, **params})
        tracking.log_params_flat(
            {
                "objective": job.tune.objective,
                "folds": len(job.plan.folds),
                "gap_bars": job.plan.gap,
                "label_horizon": ds.label_horizon,
                "rows": len(ds),
                "features": len(ds.feature_names),
            },
            prefix="mmops.",
        )
        final = job.plan.final_train(job.split.max_train_bars)
        # the refit's exact rows, as bar open times: what drift monitoring takes as the reference
        tracking.set_run_tags(
            {
                "mmops.train.start": ds.index[final.start].isoformat(),
                "mmops.train.end": ds.index[final.stop - 1].isoformat(),
                "mmops.train.rows": str(final.stop - final.start),
            }
        )
        model = fit_window(job, params, final, seed=job.tune.seed)
        model_dir = settings.scratch / f"{name}-{parent_id}"
        model.save(model_dir)
        fast = _FastRows(model_dir)
        tracking.set_run_tags({**own.tags(TAG_MODEL), **_tuned_quoter_tags(against)})
        reports = {
            w: _evaluate(job, fast, getattr(job.plan, w), evaluate, own=own, against=against) for w in WINDOWS
        }
        metrics = {f"{w}_{k}": v for w, r in reports.items() for k, v in r.metrics.items()}
        metrics["tune_best_value"] = float(study.best_value)
        tracking.log_metrics(metrics)
        tracking.set_run_tags({"mmops.lookback": str(fast.lookback)})
        with tempfile.TemporaryDirectory() as tmp:
            tracking.log_artifacts(_write_reports(job, study, fast, reports, Path(tmp), evaluate))
    return Candidate(
        family=job.family,
        task=job.task,
        study=name,
        run_id=parent_id,
        model_dir=model_dir,
        metrics=metrics,
        best_params=params,
        trials=len(study.trials),
        best_value=float(study.best_value),
        equity={w: r.equity for w, r in reports.items()},
        input_example=pd.DataFrame(ds.X[-5:], columns=list(ds.feature_names)),
    )


def study_run_tags(job: TuneJob, study: str, settings: TrackingSettings) -> dict[str, str]:
    """The parent run's tags of one study: what was tuned on which series, and its lineage."""
    ds = job.dataset
    return {
        "mmops.family": job.family,
        "mmops.task": job.task,
        "mmops.symbol": ds.symbol,
        "mmops.interval": ds.interval,
        "mmops.venue": ds.venue,
        "mmops.study": study,
        "lineage.bars_hash": ds.bars_hash(),
        **tracking.lineage_tags(
            repo=settings.repo, params_doc=settings.params_doc, data_hash=settings.dvc_data_hash
        ),
    }


def trial_callback(
    parent_id: str, experiment_id: str, *, what: str, total: int
) -> Callable[[optuna.Study, optuna.trial.FrozenTrial], None]:
    """After each trial: its nested MLflow run (params, fold scores, value, state) and a progress
    report (``what``, trials done of ``total``, the trial's value against the best so far)."""
    finished = 0

    def on_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        nonlocal finished
        finished += 1
        tracking.log_trial(
            parent_id,
            experiment_id=experiment_id,
            number=trial.number,
            params=trial.params,
            fold_scores=list(trial.user_attrs.get("fold_scores", [])),
            value=trial.value,
            state=trial.state.name,
        )
        report(what, done=finished, total=total, detail=_trial_detail(study, trial))

    return on_trial


def _trial_detail(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> str:
    value = "pruned" if trial.value is None else f"{trial.value:.3g}"
    try:
        best = f"{study.best_value:.3g}"
    except ValueError:  # no completed trial yet
        best = "none yet"
    return f"trial {trial.number}: {value}, best {best}"


def write_outputs(candidate: Candidate, out_dir: Path) -> dict[str, Path]:
    """DVC outputs of a tuning stage: ``metrics.json`` (flat) and ``equity_<window>.csv`` per hold-out."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = candidate.summary()
    flat = {"best_value": summary["best_value"], "trials": summary["trials"], **summary["metrics"]}
    paths = {"metrics": out_dir / "metrics.json"}
    paths["metrics"].write_text(
        json.dumps(
            {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in flat.items()},
            indent=1,
        )
    )
    for window, frame in candidate.equity.items():
        paths[window] = out_dir / f"equity_{window}.csv"
        frame.to_csv(paths[window])
    return paths


def register(candidate: Candidate, *, symbol: str, interval: str) -> str:
    """Log the candidate's model in its run and register it as a new version (lineage tags copied)."""
    if candidate.input_example is None:
        raise ValueError(f"{candidate.study}: candidate has no input example; was it built by tune_and_log?")
    candidate.version = tracking.register_from_run(
        candidate.run_id,
        candidate.model_dir,
        registered_name=registered_name(symbol, interval),
        input_example=candidate.input_example,
    )
    return candidate.version


def write_registration(candidate: Candidate, out_dir: Path, *, registered_model: str) -> Path:
    """``registered.json``: the registry version a tuning stage created (DVC shows it as an out)."""
    if candidate.version is None:
        raise ValueError(f"{candidate.study}: not registered yet; call register() first")
    path = out_dir / "registered.json"
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "registered_model": registered_model,
                "version": candidate.version,
                "run_id": candidate.run_id,
                "family": candidate.family,
                "task": candidate.task,
                "study": candidate.study,
            },
            indent=1,
        )
    )
    return path


def choose(candidates: list[Candidate], objective: str) -> Candidate:
    """The best candidate on the backtest window (the forward window stays untouched for review)."""
    if not candidates:
        raise ValueError("no candidate to choose from")
    scored = [(c.score(objective), c) for c in candidates]
    best = max(scored, key=lambda pair: pair[0] if np.isfinite(pair[0]) else -math.inf)
    return best[1]


def _tuned_quoter_tags(against: tuple[str, Quoting] | None) -> dict[str, str]:
    if against is None:
        logger.info("no tuned model-free quoter for this series yet (mmops tune --model as): no tas_ metrics")
        return {}
    study, quoting = against
    return {**quoting.tags(TAG_TUNED_AS), TAG_TUNED_AS_STUDY: study}


def _evaluate(
    job: TuneJob,
    fast: _FastRows,
    rows: slice,
    config: EvaluateConfig,
    *,
    own: Quoting,
    against: tuple[str, Quoting] | None,
) -> WindowReport:
    ds = job.dataset
    preds = predict_rows(fast, ds.X, rows)
    return evaluate_window(
        ds.bars.iloc[rows].reset_index(drop=True),
        preds,
        ds.fwd_return[rows],
        task=job.task,
        quote=job.quote,
        risk=job.risk,
        backtest=job.backtest,
        config=config,
        hold_bars=ds.label_horizon,
        model_quoting=own,
        tuned_quoter=against[1] if against else None,
    )


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: state, value, parameters and the score of each fold."""
    return pd.DataFrame(
        [
            {
                "trial": t.number,
                "state": t.state.name,
                "value": trial_value(t),
                **t.params,
                **{f"fold_{i}": s for i, s in enumerate(t.user_attrs.get("fold_scores", []))},
            }
            for t in study.trials
        ]
    )


def _write_reports(
    job: TuneJob,
    study: optuna.Study,
    fast: _FastRows,
    reports: Mapping[str, WindowReport],
    folder: Path,
    config: EvaluateConfig,
) -> list[tuple[str, Path]]:
    """Equity curves, the trial/fold table, the split plan, permutation importance, Optuna plots,
    the tear sheets."""
    ds = job.dataset
    out = [
        (
            "plots",
            plots.equity_plot(
                {w: r.equity for w, r in reports.items()},
                folder / "equity.png",
                title=f"{ds.symbol} {job.family} {job.task}",
            ),
        )
    ]
    trials_frame(study).to_csv(folder / "trials_folds.csv", index=False)
    (folder / "split_plan.json").write_text(json.dumps(job.plan.to_dict(ds.index), indent=1))
    out += [("tables", folder / "trials_folds.csv"), ("tables", folder / "split_plan.json")]
    rows = job.plan.backtest
    take = slice(max(rows.start, rows.stop - config.importance_rows), rows.stop)
    context = slice(max(0, take.start - fast.lookback + 1), take.stop)
    labels = ds.fwd_return[context]
    metric = "mae" if job.task == "regressor" else "log_loss"
    table = plots.permutation_importance(
        fast.predict,
        ds.X[context],
        lambda p: statistical_metrics(p, labels, job.task)[metric],
        ds.feature_names,
        seed=config.seed,
    )
    table.to_csv(folder / "permutation_importance.csv", index=False)
    out += [
        ("importance", folder / "permutation_importance.csv"),
        ("importance", plots.importance_plot(table, folder / "permutation_importance.png")),
    ]
    out += [("optuna", path) for path in plots.optuna_plots(study, folder)]
    out += _tear_sheets(job, reports, folder)
    return out


def _tear_sheets(job: TuneJob, reports: Mapping[str, WindowReport], folder: Path) -> list[tuple[str, Path]]:
    """One tear sheet per hold-out window (``plots/tear_sheet_<window>.png``): equity, the PnL
    decomposition of both quoters, inventory and the markout curve."""
    ds = job.dataset
    return [
        (
            "plots",
            plots.tear_sheet(
                metrics=r.metrics,
                equity=r.equity,
                inventory=r.inventory,
                path=folder / f"tear_sheet_{window}.png",
                title=f"{ds.symbol} {job.family} {job.task}: {window} window",
            ),
        )
        for window, r in reports.items()
    ]


def series_dataset(
    bars: pd.DataFrame,
    *,
    features: FeaturesConfig,
    split: SplitConfig,
    features_file: Path | None = None,
) -> Dataset:
    """Features and labels of one series, the label horizon taken from its split profile
    (else ``features.label_horizon``): the one place training and evaluation build a dataset.

    ``features_file``: the series' file from ``mmops features`` (the DVC features stage), read
    instead of recomputed; refused when it was made from other bars or params. Labels always
    come from ``bars``: their horizon is the split profile's (1 bar for daily data), which the
    features stage's labels file (``features.label_horizon``) need not match.
    """
    profile = split.for_interval(str(bars["interval"].iloc[0]))
    frame = None
    if features_file is not None:
        series = ":".join(str(bars[c].iloc[0]) for c in ("venue", "symbol", "interval"))
        frame = read_features(features_file, config=features, series=series)
    return build_dataset(
        bars, features, label_horizon=profile.label_horizon or features.label_horizon, features=frame
    )


def prepare_job(
    bars: pd.DataFrame,
    *,
    family: str,
    task: Task,
    features: FeaturesConfig,
    split: SplitConfig,
    tune: TuneConfig,
    models: ModelsConfig,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    evaluate: EvaluateConfig,
    quote_starts: tuple[Mapping[str, float], ...] = (),
    features_file: Path | None = None,
) -> TuneJob:
    """Dataset, split plan and settings of one study, from the bars of one series (and its
    features file, when given: see :func:`series_dataset`); ``family`` may be ``as``, the
    model-free quoter (no hyper-parameters, only ``tune.quote_space``).

    Raises:
        DataError: too few bars for the features, or a features file that does not fit them.
        ValueError: the data cannot hold the split profile (the message names the window).
    """
    profile = split.for_interval(str(bars["interval"].iloc[0]))
    dataset = series_dataset(bars, features=features, split=split, features_file=features_file)
    plan = plan_splits(dataset.index, profile, label_horizon=dataset.label_horizon)
    return TuneJob(
        dataset=dataset,
        plan=plan,
        family=family,
        task=task,
        family_config=FamilyConfig() if family == QUOTER else models.family(family),
        tune=tune,
        split=profile,
        quote=quote,
        risk=risk,
        backtest=backtest,
        quote_starts=quote_starts,
        evaluate=evaluate,
    )


def evaluate_artifact(
    model_dir: Path,
    bars: pd.DataFrame,
    *,
    window: str | None,
    features: FeaturesConfig,
    split: SplitConfig,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    evaluate: EvaluateConfig,
    model_quoting: Quoting | None = None,
    tuned_quoter: Quoting | None = None,
) -> dict[str, float]:
    """Score a saved model (its ONNX fast path) on a hold-out window of ``bars``, or on all of
    them when ``window`` is None (e.g. a fresh dump). Features come from the same code as training.
    ``model_quoting``/``tuned_quoter``: as in :func:`training.evaluate.evaluate_window` (read back
    from the version's ``mmops.quote.*``/``mmops.tas.*`` tags by :func:`quote_tuning.from_version`).

    Raises:
        DataError: the model's feature names differ from what the features config produces.
    """
    from training.artifact import read_info

    info = read_info(model_dir)
    profile = split.for_interval(str(bars["interval"].iloc[0]))
    dataset = series_dataset(bars, features=features, split=split)
    if tuple(info.feature_names) != dataset.feature_names:
        raise DataError(
            f"{model_dir}: the model was trained on {len(info.feature_names)} features that differ from the "
            f"{len(dataset.feature_names)} the current features config produces; evaluate with the params it was trained with"
        )
    if window is None:
        rows = slice(0, len(dataset))
    else:
        rows = getattr(plan_splits(dataset.index, profile, label_horizon=dataset.label_horizon), window)
    fast = _FastRows(model_dir)
    preds = predict_rows(fast, dataset.X, rows)
    report = evaluate_window(
        dataset.bars.iloc[rows].reset_index(drop=True),
        preds,
        dataset.fwd_return[rows],
        task=info.task,
        quote=quote,
        risk=risk,
        backtest=backtest,
        config=evaluate,
        hold_bars=dataset.label_horizon,
        model_quoting=model_quoting,
        tuned_quoter=tuned_quoter,
    )
    return report.metrics
