"""Typed sections of ``params.yaml`` for training: ``split``, ``tune``, ``models``, ``evaluate``."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.schema import interval_ns
from training.quote_tuning import tunable

Family = Literal["rf", "sgd", "lstm"]
Task = Literal["classifier", "regressor"]
Objective = Literal["utility", "sharpe", "loss"]


def registered_name(symbol: str, interval: str) -> str:
    """One registered model per series, e.g. ``mmops-BTCUSDT-1m``."""
    return f"mmops-{symbol}-{interval}"


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class SplitProfile(_Section):
    """Walk-forward folds over the tuning range, then two untouched hold-outs: backtest, forward.

    Hold-outs are either explicit dates (``*_start``/``*_end``, inclusive days, UTC) or the last
    ``backtest_days`` + ``forward_days`` of the data. Everything before the backtest window (less
    the embargo) is the tuning range.
    """

    n_folds: int = Field(3, ge=1, le=50)
    scheme: Literal["expanding", "rolling"] = "expanding"
    test_fraction: float = Field(
        0.5, gt=0, lt=1, description="share of the tuning range covered by the N test folds"
    )
    rolling_train_bars: int | None = Field(
        None, ge=10, description="rolling scheme: training window length (bars)"
    )
    max_train_bars: int | None = Field(
        None, ge=10, description="cap on training rows per fit (the most recent are kept)"
    )
    label_horizon: int | None = Field(
        None, ge=1, description="bars ahead for the target; null = features.label_horizon"
    )
    embargo_bars: int = Field(0, ge=0, description="extra gap beyond the label horizon (bars)")
    backtest_days: float | None = Field(None, gt=0)
    forward_days: float | None = Field(None, gt=0)
    train_end: dt.date | None = None
    backtest_start: dt.date | None = None
    backtest_end: dt.date | None = None
    forward_start: dt.date | None = None
    forward_end: dt.date | None = None
    val_fraction: float = Field(
        0.15, ge=0, lt=0.5, description="tail of each training window used for early stopping"
    )

    @model_validator(mode="after")
    def _holdouts(self) -> SplitProfile:
        dated = [self.backtest_start, self.backtest_end, self.forward_start, self.forward_end]
        if any(d is not None for d in dated) and not all(d is not None for d in dated):
            raise ValueError("give all of backtest_start/end and forward_start/end, or none")
        if all(d is None for d in dated) and (self.backtest_days is None or self.forward_days is None):
            raise ValueError("give backtest_days and forward_days, or explicit hold-out dates")
        if self.scheme == "rolling" and self.rolling_train_bars is None:
            raise ValueError("scheme 'rolling' needs rolling_train_bars")
        return self


class SplitConfig(_Section):
    profile: Literal["auto", "minute", "daily"] = "auto"
    profiles: dict[str, SplitProfile] = Field(
        default_factory=lambda: {
            "minute": SplitProfile(backtest_days=7, forward_days=7, max_train_bars=20_000),
            "daily": SplitProfile(
                train_end=dt.date(2023, 1, 31),
                backtest_start=dt.date(2023, 2, 1),
                backtest_end=dt.date(2023, 7, 31),
                forward_start=dt.date(2023, 8, 1),
                forward_end=dt.date(2023, 10, 31),
                label_horizon=1,
            ),
        }
    )

    def for_interval(self, interval: str) -> SplitProfile:
        name = self.profile
        if name == "auto":
            name = "daily" if interval_ns(interval) >= interval_ns("1d") else "minute"
        if name not in self.profiles:
            raise ValueError(f"split: no profile named {name!r} (have {sorted(self.profiles)})")
        return self.profiles[name]


class SearchParam(_Section):
    """One dimension of a search space: a numeric range or a list of choices."""

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: tuple[Any, ...] | None = None

    @model_validator(mode="after")
    def _shape(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("categorical parameter needs choices")
        elif self.low is None or self.high is None or self.low > self.high:
            raise ValueError(f"{self.type} parameter needs low <= high")
        return self


class FamilyConfig(_Section):
    fixed: dict[str, Any] = Field(default_factory=dict, description="constructor params, not tuned")
    space: dict[str, SearchParam] = Field(default_factory=dict)


class ModelsConfig(_Section):
    rf: FamilyConfig = FamilyConfig()
    sgd: FamilyConfig = FamilyConfig()
    lstm: FamilyConfig = FamilyConfig()

    def family(self, name: str) -> FamilyConfig:
        if name not in ("rf", "sgd", "lstm"):
            raise ValueError(f"unknown model family {name!r}; expected rf, sgd or lstm")
        config: FamilyConfig = getattr(self, name)
        return config


class TuneConfig(_Section):
    task: Task = "regressor"
    families: tuple[Family, ...] = ("rf", "sgd", "lstm")
    objective: Objective = Field(
        "utility",
        description="utility: mean-variance utility of the model-skewed quoter's daily PnL on the fill "
        "engine, net of fees, bps of capital per day (training.evaluate.objective_score), mean over "
        "folds; sharpe: its annualised Sharpe (365 d), which rewards variance when the mean is "
        "negative; loss: MAE (regressor) or log-loss (classifier), minimised",
    )
    trials: int = Field(20, ge=1)
    timeout_s: float | None = Field(None, gt=0)
    seed: int = 0
    n_startup_trials: int = Field(5, ge=0, description="random trials before TPE models the space")
    prune: bool = True
    heartbeat_s: int = Field(
        60, ge=1, description="a running trial records a heartbeat this often (RDB storage), seconds"
    )
    grace_s: int = Field(
        180,
        ge=1,
        description="a running trial silent this long is a crashed process's: failed and retried, seconds",
    )
    max_retry: int = Field(2, ge=0, description="times a crashed trial is retried with its parameters")
    quote_space: dict[str, SearchParam] = Field(
        default_factory=dict,
        description="quote settings Optuna may tune (numeric quote fields, refresh_bars): the model-free "
        "quoter's own study (mmops tune --model as) and, with quote_joint, every family's study",
    )
    quote_joint: bool = Field(
        False,
        description="tune quote_space jointly with each family's hyper-parameters (study <name>-quote), "
        "the model-free quoter is tuned first whenever quote_space is set (tunes_quoter)",
    )
    quote_starts: tuple[dict[str, float], ...] = Field(
        (), description="starting points enqueued after today's quote values, e.g. a calibrated kappa"
    )

    @model_validator(mode="after")
    def _grace_after_beats(self) -> TuneConfig:
        if self.grace_s <= self.heartbeat_s:
            raise ValueError(
                f"grace_s ({self.grace_s}) must exceed heartbeat_s ({self.heartbeat_s}): "
                "a live trial would be failed between two of its own heartbeats"
            )
        return self

    @model_validator(mode="after")
    def _quote_space(self) -> TuneConfig:
        bad = sorted(k for k in self.quote_space if not tunable(k))
        if bad:
            raise ValueError(f"quote_space: {bad} are not numeric quote settings or refresh_bars")
        stray = sorted({k for start in self.quote_starts for k in start} - set(self.quote_space))
        if stray:
            raise ValueError(f"quote_starts names {stray}, which quote_space does not tune")
        if self.quote_joint and self.objective == "loss":
            raise ValueError("quote_joint needs a fill-engine objective: the forecast loss ignores quotes")
        return self

    @property
    def tunes_quoter(self) -> bool:
        """Whether the model-free quoter gets its own study before the families (mmops train, the
        retrain flows, mmops protocol): a quote_space to search and an objective that reads the
        fill engine (the forecast loss makes no quotes). Every model then meets the tuned quoter."""
        return bool(self.quote_space) and self.objective != "loss"


class EvaluateConfig(_Section):
    risk_aversion: float = Field(
        10.0,
        ge=0,
        description="relative risk aversion A of the utility (dimensionless): utility = m - A/2 x s^2 "
        "with m, s the mean and std of daily PnL as fractions of initial capital, reported in bps "
        "per day (0 = net PnL per day only)",
    )
    bootstrap_samples: int = Field(1000, ge=100)
    block_bars: int | None = Field(None, ge=1, description="moving-block length; null = n^(1/3)")
    seed: int = 0
    importance_rows: int = Field(2000, ge=100, description="rows used for permutation importance")
