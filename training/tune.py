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

from features.errors import OperationalError, TemporaryError
from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training import quote_tuning
from training.config import EvaluateConfig, FamilyConfig, SearchParam, SplitProfile, Task, TuneConfig
from training.dataset import Dataset, predict_rows
from training.evaluate import objective_score, signal_frame, statistical_metrics
from training.models import make_model
from training.models.base import SignalModel
from training.quote_tuning import QUOTER, Quoting
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
    quote_starts: tuple[Mapping[str, float], ...] = ()  # more starting points (a calibrated kappa)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)  # the utility's risk aversion

    @property
    def maximize(self) -> bool:
        return self.tune.objective != "loss"

    @property
    def tunes_quotes(self) -> bool:
        """The model-free quoter's study, or a family tuned jointly with the quote settings."""
        return self.family == QUOTER or self.tune.quote_joint

    def quoting(self, params: Mapping[str, Any]) -> Quoting:
        """The quote settings a trial (or the best trial) runs with; params.yaml's when not tuned."""
        return quote_tuning.apply(self.quote, self.backtest, quote_tuning.from_trial_params(params))


def study_name(registered: str, family: str, task: str, *, joint: bool = False) -> str:
    """``<registered>-<family>-<task>``; ``-quote`` when tuned jointly with the quote settings (a
    study's search space must not change under it); the model-free quoter ``<registered>-as-quoter``
    (it reads no forecast, so one study serves both tasks)."""
    if family == QUOTER:
        return f"{registered}-as-quoter"
    return f"{registered}-{family}-{task}" + ("-quote" if joint else "")


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
    """Fit the family on ``train`` rows; the purged tail of the window drives early stopping.
    Quote settings among ``params`` (``quote.*``) are not the model's and are left out."""
    params = quote_tuning.model_params(params)
    fit_rows, val_rows = validation_tail(train, job.split.val_fraction, gap=job.plan.gap)
    X, y = job.dataset.training_rows(fit_rows, job.task)
    if len(X) < 10:
        raise ValueError(f"only {len(X)} labelled training rows in {fit_rows}")
    model = make_model(job.family, job.task, random_state=seed, **{**job.family_config.fixed, **params})
    X_val = y_val = None
    if val_rows is not None:
        X_val, y_val = job.dataset.training_rows(val_rows, job.task)
    return model.fit(X, y, X_val=X_val, y_val=y_val, feature_names=job.dataset.feature_names)


def fold_score(job: TuneJob, model: SignalModel, fold: Fold, *, quoting: Quoting | None = None) -> float:
    """Out-of-sample score of a fitted model on a fold's test window: the model quoter's
    :func:`training.evaluate.objective_score` (higher is better), or its forecast loss (lower),
    quoting with ``quoting`` (default: the job's params.yaml settings)."""
    ds = job.dataset
    preds = predict_rows(model, ds.X, fold.test)
    if job.tune.objective == "loss":
        stats = statistical_metrics(preds, ds.fwd_return[fold.test], job.task)
        return stats["mae"] if job.task == "regressor" else stats["log_loss"]
    q = quoting or job.quoting({})
    bars = ds.bars.iloc[fold.test]
    signals = signal_frame(bars["timestamp"], preds, job.task)
    result = run_backtest(
        bars, quote=q.quote, risk=job.risk, backtest=q.backtest, signals=signals, strategy="model"
    )
    return objective_score(result, objective=job.tune.objective, risk_aversion=job.evaluate.risk_aversion)


def quoter_fold_score(job: TuneJob, fold: Fold, *, quoting: Quoting) -> float:
    """The model-free A-S quoter's score on a fold's test window: what a family's trial is scored
    on, with no signal and nothing fitted."""
    objective = job.tune.objective
    if objective == "loss":  # check_job refuses it before any trial
        raise ValueError("the model-free quoter makes no forecast: no loss to score")
    bars = job.dataset.bars.iloc[fold.test]
    result = run_backtest(bars, quote=quoting.quote, risk=job.risk, backtest=quoting.backtest, strategy="as")
    return objective_score(result, objective=objective, risk_aversion=job.evaluate.risk_aversion)


def check_job(job: TuneJob) -> None:
    """Refuse a study that cannot mean anything, before any trial runs.

    Raises:
        ValueError: the quoter's study with no quote space, or scored on a forecast loss.
    """
    if job.family != QUOTER:
        return
    if not job.tune.quote_space:
        raise ValueError("the model-free quoter's study needs tune.quote_space in params.yaml (it is empty)")
    if job.tune.objective == "loss":
        raise ValueError(
            "the model-free quoter makes no forecast: tune it on a fill-engine objective, not loss"
        )


def make_objective(job: TuneJob) -> Callable[[optuna.Trial], float]:
    quote_space = {f"{quote_tuning.PREFIX}{k}": p for k, p in job.tune.quote_space.items()}

    def objective(trial: optuna.Trial) -> float:
        params = suggest(trial, job.family_config.space)
        quoting = job.quoting(suggest(trial, quote_space) if job.tunes_quotes else {})
        scores: list[float] = []
        for fold in job.plan.folds:
            if job.family == QUOTER:
                scores.append(quoter_fold_score(job, fold, quoting=quoting))
            else:
                model = fit_window(job, params, fold.train, seed=job.tune.seed)
                scores.append(fold_score(job, model, fold, quoting=quoting))
            trial.set_user_attr("fold_scores", scores)
            trial.report(float(np.mean(scores)), fold.number)
            if job.tune.prune and trial.should_prune():
                raise optuna.TrialPruned(f"pruned after fold {fold.number}: mean {np.mean(scores):.4f}")
        return float(np.mean(scores))

    return objective


def enqueue_starts(study: optuna.Study, job: TuneJob) -> int:
    """Queue the quote settings' starting points (today's params.yaml values, ``tune.quote_starts``,
    the job's extra ones) so they run first; a point the study already holds is not queued again,
    so a resumed study does not repeat them. Returns how many starting points there are."""
    if not job.tunes_quotes:
        return 0
    points = quote_tuning.starting_points(
        job.tune.quote_space, job.quote, job.backtest, [*job.tune.quote_starts, *job.quote_starts]
    )
    for point in points:
        study.enqueue_trial(point, skip_if_exists=True)
    return len(points)


def open_study(storage_url: str, name: str, *, maximize: bool, config: TuneConfig) -> optuna.Study:
    """Create or resume a study in an RDB storage: a SQLite file, or a server for many tuners.

    Running trials record a heartbeat every ``config.heartbeat_s``; a trial silent for
    ``config.grace_s`` belongs to a crashed tuner (kill -9, a lost machine): the next trial any
    tuner starts fails it and queues it again with its parameters, up to ``config.max_retry``
    times. SQLite waits for locks rather than failing; a server's connections are pinged before
    use, so a restarted database is reconnected at the next call.

    Raises:
        TemporaryError: the storage cannot be reached (down, wrong host, refused).
        OperationalError: its schema is another Optuna version's (``optuna storage upgrade``).
    """
    import warnings

    from training.tracking import sqlite_init_lock

    # Optuna's per-study and per-trial INFO lines give way to our progress reports (features.progress)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine_kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if storage_url.startswith("sqlite"):
        engine_kwargs = {"connect_args": {"timeout": 120}}
    elif storage_url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}  # a wrong host fails in 10 s, not minutes
    sampler = optuna.samplers.TPESampler(
        seed=config.seed, n_startup_trials=config.n_startup_trials, multivariate=True
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=max(1, config.n_startup_trials), n_warmup_steps=0)
    try:
        with sqlite_init_lock(storage_url), warnings.catch_warnings():  # creation must not race
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat_interval
            storage = optuna.storages.RDBStorage(
                storage_url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=config.heartbeat_s,
                grace_period=config.grace_s,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=config.max_retry
                ),
            )
            return optuna.create_study(
                study_name=name,
                storage=storage,
                sampler=sampler,
                pruner=pruner,
                direction="maximize" if maximize else "minimize",
                load_if_exists=True,
            )
    except Exception as exc:
        failure = storage_failure(exc)
        if failure is None:
            raise
        raise type(failure)(f"study storage {_safe_url(storage_url)}: {failure}") from exc


def storage_failure(exc: BaseException) -> TemporaryError | OperationalError | None:
    """A study storage that is down or went away (temporary: worth a retry later), or that holds
    another Optuna version's schema (operational: a person upgrades it), as a one-line error;
    None for any other error. Looks through the exception's causes (Optuna and SQLAlchemy wrap)."""
    import sqlalchemy.exc

    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, sqlalchemy.exc.OperationalError | sqlalchemy.exc.InterfaceError):
            first = str(seen.orig or seen).strip().splitlines()[0]
            return TemporaryError(
                f"database unreachable, lost or locked ({first}); check that the database behind "
                "MMOPS_OPTUNA_STORAGE is up: a trial this crash left running is retried by the next "
                "tuner after tune.grace_s"
            )
        if isinstance(seen, RuntimeError) and "optuna storage upgrade" in str(seen):
            return OperationalError(f"{str(seen).strip().splitlines()[0]} (back the database up first)")
        seen = seen.__cause__ or seen.__context__
    return None


def _safe_url(url: str) -> str:
    """``url`` with any password masked, fit for an error message."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


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
    check_job(job)
    pin_objective(study, job.tune.objective)  # before the starting points are queued: they are trials
    enqueue_starts(study, job)
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


def tuned_quoter(storage_url: str, registered: str, job: TuneJob) -> tuple[str, Quoting] | None:
    """The model-free quoter's study of this series and its best settings, or None when it has not
    been tuned (no such study, or no completed trial): what a model is compared with as ``tas_``."""
    name = study_name(registered, QUOTER, job.task)
    storage = optuna.storages.RDBStorage(storage_url)
    if name not in {s.study_name for s in storage.get_all_studies()}:
        return None
    study = optuna.load_study(study_name=name, storage=storage)
    try:
        params = best_params(study)
    except ValueError:
        return None
    return name, job.quoting(params)
