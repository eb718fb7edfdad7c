"""Optuna (TPE, Bayesian) walk-forward tuning of one model family, scored on the fill engine.

Each trial fits the family on every fold's training window and scores it on the fold's test
window; the running mean is reported after each fold so the pruner can stop a hopeless trial
early. The study lives in an RDB storage URL, so several processes (or machines, with
PostgreSQL) can tune one study at the same time, and a study resumes where it stopped.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import optuna

from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training.config import EvaluateConfig, FamilyConfig, SearchParam, SplitProfile, Task, TuneConfig
from training.dataset import Dataset, predict_rows
from training.evaluate import objective_score, signal_frame, statistical_metrics
from training.models import make_model
from training.models.base import SignalModel
from training.splits import Fold, SplitPlan, validation_tail

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneJob:
    """Everything one study needs; built once at the edge."""

    dataset: Dataset
    plan: SplitPlan
    family: str
    task: Task
    family_config: FamilyConfig
    tune: TuneConfig
    split: SplitProfile
    quote: QuoteConfig
    risk: RiskConfig
    backtest: BacktestConfig
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)  # the utility's risk aversion

    @property
    def maximize(self) -> bool:
        return self.tune.objective != "loss"


def study_name(registered: str, family: str, task: str) -> str:
    return f"{registered}-{family}-{task}"


def suggest(trial: optuna.Trial, space: Mapping[str, SearchParam]) -> dict[str, Any]:
    """Draw one point of the search space."""
    params: dict[str, Any] = {}
    for name, p in space.items():
        if p.type == "categorical":
            params[name] = trial.suggest_categorical(name, list(p.choices or ()))
        elif p.type == "int":
            params[name] = trial.suggest_int(name, int(p.low or 0), int(p.high or 0), log=p.log)
        else:
            params[name] = trial.suggest_float(name, float(p.low or 0.0), float(p.high or 0.0), log=p.log)
    return params


def fit_window(job: TuneJob, params: Mapping[str, Any], train: slice, *, seed: int) -> SignalModel:
    """Fit the family on ``train`` rows; the purged tail of the window drives early stopping."""
    fit_rows, val_rows = validation_tail(train, job.split.val_fraction, gap=job.plan.gap)
    X, y = job.dataset.training_rows(fit_rows, job.task)
    if len(X) < 10:
        raise ValueError(f"only {len(X)} labelled training rows in {fit_rows}")
    model = make_model(job.family, job.task, random_state=seed, **{**job.family_config.fixed, **params})
    X_val = y_val = None
    if val_rows is not None:
        X_val, y_val = job.dataset.training_rows(val_rows, job.task)
    return model.fit(X, y, X_val=X_val, y_val=y_val, feature_names=job.dataset.feature_names)


def fold_score(job: TuneJob, model: SignalModel, fold: Fold) -> float:
    """Out-of-sample score of a fitted model on a fold's test window: the model quoter's
    :func:`training.evaluate.objective_score` (higher is better), or its forecast loss (lower)."""
    ds = job.dataset
    preds = predict_rows(model, ds.X, fold.test)
    if job.tune.objective == "loss":
        stats = statistical_metrics(preds, ds.fwd_return[fold.test], job.task)
        return stats["mae"] if job.task == "regressor" else stats["log_loss"]
    bars = ds.bars.iloc[fold.test]
    signals = signal_frame(bars["timestamp"], preds, job.task)
    result = run_backtest(
        bars, quote=job.quote, risk=job.risk, backtest=job.backtest, signals=signals, strategy="model"
    )
    return objective_score(result, objective=job.tune.objective, risk_aversion=job.evaluate.risk_aversion)


def make_objective(job: TuneJob) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, job.family_config.space)
        scores: list[float] = []
        for fold in job.plan.folds:
            model = fit_window(job, params, fold.train, seed=job.tune.seed)
            scores.append(fold_score(job, model, fold))
            trial.set_user_attr("fold_scores", scores)
            trial.report(float(np.mean(scores)), fold.number)
            if job.tune.prune and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {fold.number}: mean {np.mean(scores):.4f}")
        return float(np.mean(scores))

    return objective


def open_study(storage_url: str, name: str, *, maximize: bool, config: TuneConfig) -> optuna.Study:
    """Create or resume a study in an RDB storage (SQLite waits for locks rather than failing)."""
    from training.tracking import sqlite_init_lock

    # Optuna's per-study and per-trial INFO lines give way to our progress reports (features.progress)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine_kwargs: dict[str, Any] = {}
    if storage_url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=config.n_startup_trials, multivariate=True
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=max(1, config.n_startup_trials), n_warmup_steps=0)
    with sqlite_init_lock(storage_url):  # table and study creation must not race between workers
        storage = optuna.storages.RDBStorage(storage_url, engine_kwargs=engine_kwargs)
        return optuna.create_study(
            study_name=name,
            storage=storage,
            sampler=sampler,
            pruner=pruner,
            direction="maximize" if maximize else "minimize",
            load_if_exists=True,
        )


def run_trials(
    study: optuna.Study,
    job: TuneJob,
    *,
    trials: int,
    timeout_s: float | None,
    on_trial: Callable[[optuna.Study, optuna.trial.FrozenTrial], None] | None = None,
) -> None:
    """Run ``trials`` more trials (or until ``timeout_s``) of ``job`` in ``study``.

    Exceptions inside a trial other than pruning fail the trial and propagate: a broken model or
    bad data must stop the run, not be averaged away.

    Raises:
        ValueError: the study was tuned on another objective (see :func:`pin_objective`).
    """
    pin_objective(study, job.tune.objective)
    callbacks = [on_trial] if on_trial else None
    study.optimize(
        make_objective(job),
        n_trials=trials,
        timeout=timeout_s,
        callbacks=callbacks,
        catch=(),
        gc_after_trial=True,
    )


OBJECTIVE_ATTR = "mmops.objective"


def pin_objective(study: optuna.Study, objective: str) -> None:
    """Record the objective on a new study; refuse to add trials of another objective to it (the
    best trial of a study that mixed Sharpe ratios and utilities would mean nothing).

    Raises:
        ValueError: the study records another objective, or has trials from before objectives
            were recorded.
    """
    recorded = study.user_attrs.get(OBJECTIVE_ATTR)
    fix = "use a fresh MMOPS_OPTUNA_STORAGE (or MMOPS_HOME), or delete the study"
    if recorded is None and study.trials:
        raise ValueError(
            f"study {study.study_name} has {len(study.trials)} trials from before objectives were "
            f"recorded (the default was sharpe; tune.objective is now {objective}); {fix}"
        )
    if recorded is None:
        study.set_user_attr(OBJECTIVE_ATTR, objective)
    elif recorded != objective:
        raise ValueError(
            f"study {study.study_name} was tuned on objective {recorded!r}, tune.objective is "
            f"{objective!r}; {fix}"
        )


def best_params(study: optuna.Study) -> dict[str, Any]:
    """Parameters of the best completed trial.

    Raises:
        ValueError: the study has no completed trial (all pruned or failed).
    """
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not done:
        raise ValueError(f"study {study.study_name}: no completed trial yet")
    return dict(study.best_trial.params)


def trial_value(trial: optuna.trial.FrozenTrial) -> float:
    return float(trial.value) if trial.value is not None else math.nan
