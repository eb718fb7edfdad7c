"""The promotion gate: pure checks of a candidate's metrics against thresholds and the champion.

No MLflow here: :mod:`training.registry` reads the metrics and stores the verdict. By default a
candidate is judged on the measure it was tuned on (:func:`training.evaluate.objective_score`):
the model quoter's utility and net PnL per day, in bps of capital per day, against the model-free
Avellaneda-Stoikov quoter and the champion. Sharpe checks (annualised on 365 days) stay
available but are off: with a negative mean, a noisier quoter has the better Sharpe. Drawdowns
in percent of peak equity, MAE and RMSE in the units of the target (forward log return for
regressors), skill as the MSE skill score against the no-information forecast.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.errors import MmopsError

Comparator = Literal[">=", "<="]

# Keys of earlier params files whose meaning changed: a clear error rather than a silent switch.
RENAMED_KEYS: dict[str, str] = {
    "require_ci_over_quoter": "gate.require_ci_over_quoter (the Sharpe difference's CI) is now "
    "gate.ci_over_quoter, which asks the lower 95% bound of every over-quoter difference that is "
    "checked (utility, PnL, and Sharpe when min_sharpe_over_quoter is set) to clear its threshold",
}


class GovernanceError(MmopsError):
    """A governance action was refused (gate, approval, rejection, rollback); nothing was changed."""


class AutoApproveConfig(BaseModel):
    """Optional policy: approve without a person when the gate passes by a margin (default off)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="off by default: champion moves only on a recorded approval")
    min_utility_margin: float = Field(
        0.5, ge=0, description="every utility and PnL check must clear its threshold by this much, bps/day"
    )
    min_sharpe_margin: float = Field(
        0.5, ge=0, description="every Sharpe check that is on must clear its threshold by this much"
    )


class GateConfig(BaseModel):
    """Thresholds a version must meet to become ``challenger`` (the ``gate`` section of params.yaml).

    A threshold of ``None`` turns its check off. Utility and PnL are in bps of capital per day.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Literal["backtest", "forward"] = Field(
        "forward", description="which held-out window's logged metrics the thresholds read"
    )
    min_utility: float | None = Field(
        0.0, description="the model quoter's utility (certainty-equivalent PnL), bps of capital per day"
    )
    max_drawdown_pct: float = Field(5.0, gt=0, description="maximum drawdown, % of peak equity")
    min_utility_over_quoter: float | None = Field(
        0.0, description="model minus model-free A-S quoter utility, same window, bps/day"
    )
    min_pnl_over_quoter: float | None = Field(
        0.0, description="model minus A-S quoter net PnL per day, same window, bps of capital per day"
    )
    ci_over_quoter: bool = Field(
        False,
        description="also require the paired bootstrap 95% CI of each checked over-quoter difference "
        "to lie above its threshold",
    )
    min_sharpe: float | None = Field(None, description="annualised (365 d) Sharpe of the model's quoter")
    min_sharpe_over_quoter: float | None = Field(
        None, description="model Sharpe minus the A-S quoter's (rewards noise when both lose; off)"
    )
    max_mae: float | None = Field(None, gt=0, description="regressors: MAE of the forward log return")
    max_rmse: float | None = Field(None, gt=0, description="regressors: RMSE of the forward log return")
    min_skill: float | None = Field(
        None,
        description="MSE skill score against the no-information forecast (zero return, P(up) = 0.5); "
        "> 0 beats it",
    )
    min_trades: int = Field(10, ge=0, description="fills in the window; fewer says nothing")
    min_utility_over_champion: float | None = Field(
        0.0, description="head-to-head on identical windows: candidate minus champion utility, bps/day"
    )
    min_sharpe_over_champion: float | None = Field(
        None, description="head-to-head on identical windows: candidate minus champion Sharpe"
    )
    auto_approve: AutoApproveConfig = AutoApproveConfig()

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and (old := [k for k in RENAMED_KEYS if k in data]):
            raise ValueError("; ".join(RENAMED_KEYS[k] for k in old))
        return data


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One line of the verdict: ``value comparator threshold``; skipped checks do not count."""

    name: str
    value: float | None
    threshold: float
    comparator: Comparator
    passed: bool
    skipped: bool = False
    note: str = ""
    label: str = ""  # the check in words for people, e.g. "forward Sharpe of the model's quoter"

    @property
    def margin(self) -> float | None:
        """How far the value clears the threshold (negative when it fails)."""
        if self.value is None:
            return None
        return self.value - self.threshold if self.comparator == ">=" else self.threshold - self.value

    def describe(self) -> str:
        shown = "missing" if self.value is None else f"{self.value:.6g}"
        state = "skipped" if self.skipped else ("pass" if self.passed else "FAIL")
        note = f" ({self.note})" if self.note else ""
        return f"{self.name}: {shown} {self.comparator} {self.threshold:.6g} -> {state}{note}"

    def sentence(self) -> str:
        """The check in words with its numbers, e.g. ``forward Sharpe ... -19.41 is below the minimum 0``."""
        what = self.label or self.name
        if self.skipped:
            return f"{what}: not checked ({self.note})"
        if self.value is None:
            return f"{what}: {self.note or 'missing'}"
        bound, short = ("minimum", "is below") if self.comparator == ">=" else ("maximum", "is above")
        relation = "meets" if self.passed else short
        return f"{what} {_number(self.value)} {relation} the {bound} {_number(self.threshold)}"


def _number(value: float) -> str:
    """Counts as whole numbers (12,345 fills), ratios with enough digits to show a near miss."""
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:.6g}"


@dataclass(frozen=True, slots=True)
class GateVerdict:
    """The gate's decision for one version, with every check and the head-to-head numbers."""

    passed: bool
    checks: tuple[GateCheck, ...]
    candidate: Mapping[str, float]
    champion: Mapping[str, float] | None
    champion_version: str | None
    auto_approve: bool

    @property
    def failed(self) -> tuple[GateCheck, ...]:
        return tuple(c for c in self.checks if not c.passed and not c.skipped)

    def summary(self) -> str:
        if self.passed:
            return "passed: " + ", ".join(c.name for c in self.checks if not c.skipped)
        return "failed: " + "; ".join(c.describe() for c in self.failed)


def _check(
    name: str,
    value: float | None,
    threshold: float,
    comparator: Comparator,
    *,
    note: str = "",
    label: str = "",
) -> GateCheck:
    if value is None:
        note = note or "metric not logged"
        return GateCheck(name, None, threshold, comparator, passed=False, note=note, label=label)
    ok = value >= threshold if comparator == ">=" else value <= threshold
    return GateCheck(name, float(value), threshold, comparator, passed=ok, note=note, label=label)


def _skip(name: str, threshold: float, comparator: Comparator, note: str, *, label: str = "") -> GateCheck:
    return GateCheck(name, None, threshold, comparator, passed=True, skipped=True, note=note, label=label)


def threshold_checks(metrics: Mapping[str, float], *, task: str, config: GateConfig) -> list[GateCheck]:
    """Checks of the logged ``{window}_*`` metrics against the thresholds (missing metric = fail)."""
    w = config.window

    def get(key: str) -> float | None:
        value = metrics.get(f"{w}_{key}")
        return None if value is None else float(value)

    checks: list[GateCheck] = []
    if config.min_utility is not None:
        checks.append(
            _check(
                f"{w}_utility",
                get("utility"),
                config.min_utility,
                ">=",
                label=f"{w} utility of the model's quoter, bps of capital per day",
            )
        )
    if config.min_sharpe is not None:
        checks.append(
            _check(
                f"{w}_sharpe",
                get("sharpe"),
                config.min_sharpe,
                ">=",
                label=f"{w} Sharpe (365 d) of the model's quoter",
            )
        )
    checks.append(
        _check(
            f"{w}_max_drawdown_pct",
            get("max_drawdown_pct"),
            config.max_drawdown_pct,
            "<=",
            label=f"{w} max drawdown, % of peak",
        )
    )
    checks += _over_quoter_checks(get, config)
    checks.append(
        _check(f"{w}_n_trades", get("n_trades"), float(config.min_trades), ">=", label=f"{w} fills")
    )
    for key, limit in (("mae", config.max_mae), ("rmse", config.max_rmse)):
        if limit is None:
            continue
        label = f"{w} {key.upper()} of the forward log return"
        if task != "regressor":
            checks.append(_skip(f"{w}_{key}", limit, "<=", f"not checked for a {task}", label=label))
        else:
            checks.append(_check(f"{w}_{key}", get(key), limit, "<=", label=label))
    if config.min_skill is not None:
        label = f"{w} MSE skill against the no-information forecast"
        checks.append(_check(f"{w}_skill", get("skill"), config.min_skill, ">=", label=label))
    return checks


# (logged difference, threshold field, label): model quoter minus the model-free A-S quoter
_OVER_QUOTER: tuple[tuple[str, str, str], ...] = (
    ("utility_diff", "min_utility_over_quoter", "utility over the model-free A-S quoter, bps/day"),
    ("pnl_diff", "min_pnl_over_quoter", "net PnL per day over the model-free A-S quoter, bps/day"),
    ("sharpe_diff", "min_sharpe_over_quoter", "Sharpe over the model-free A-S quoter"),
)


def _over_quoter_checks(get: Any, config: GateConfig) -> list[GateCheck]:
    """Each difference that has a threshold, and with ``ci_over_quoter`` its lower 95% bound."""
    w = config.window
    checks: list[GateCheck] = []
    for key, field, label in _OVER_QUOTER:
        limit = getattr(config, field)
        if limit is None:
            continue
        checks.append(_check(f"{w}_{key} (model - A-S quoter)", get(key), limit, ">=", label=f"{w} {label}"))
        if config.ci_over_quoter:
            checks.append(
                _check(
                    f"{w}_{key}_lo (95% CI)",
                    get(f"{key}_lo"),
                    limit,
                    ">=",
                    label=f"{w} lower 95% bound of the {label}",
                )
            )
    return checks


def head_to_head_checks(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, *, config: GateConfig
) -> list[GateCheck]:
    """Candidate vs champion (utility, and Sharpe where set), both evaluated on the same windows."""
    checks = []
    for key, limit, label in (
        (
            "utility",
            config.min_utility_over_champion,
            "utility over the champion on the same window, bps/day",
        ),
        ("sharpe", config.min_sharpe_over_champion, "Sharpe over the champion on the same window"),
    ):
        if limit is None:
            continue
        name = f"head-to-head {key} (candidate - champion)"
        if champion is None:
            checks.append(_skip(name, limit, ">=", "no champion yet", label=label))
        elif key not in candidate or key not in champion:
            checks.append(_check(name, None, limit, ">=", note=f"evaluator returned no {key}", label=label))
        else:
            checks.append(
                _check(name, float(candidate[key]) - float(champion[key]), limit, ">=", label=label)
            )
    return checks


def judge(
    metrics: Mapping[str, float],
    *,
    task: str,
    config: GateConfig,
    candidate_eval: Mapping[str, float],
    champion_eval: Mapping[str, float] | None,
    champion_version: str | None,
) -> GateVerdict:
    """The verdict for one candidate.

    Args:
        metrics: the candidate's logged metrics (``backtest_*``, ``forward_*``).
        task: ``classifier`` or ``regressor`` (MAE/RMSE limits apply to regressors only).
        config: the ``gate`` section of params.yaml.
        candidate_eval: the evaluator's un-prefixed metrics for the candidate.
        champion_eval: the same for the current champion on identical windows, or None.
        champion_version: the champion's version, recorded with the verdict.

    Returns:
        The verdict; ``auto_approve`` is True only when the policy is enabled, the gate passed and
        every utility/PnL check cleared its threshold by ``auto_approve.min_utility_margin`` and
        every Sharpe check by ``auto_approve.min_sharpe_margin``.
    """
    checks = [*threshold_checks(metrics, task=task, config=config)]
    checks += head_to_head_checks(candidate_eval, champion_eval, config=config)
    passed = all(c.passed for c in checks)
    policy = config.auto_approve
    auto = policy.enabled and passed and all(_clears_margin(c, policy) for c in checks if not c.skipped)
    return GateVerdict(
        passed=passed,
        checks=tuple(checks),
        candidate=dict(candidate_eval),
        champion=None if champion_eval is None else dict(champion_eval),
        champion_version=champion_version,
        auto_approve=auto,
    )


def _clears_margin(check: GateCheck, policy: AutoApproveConfig) -> bool:
    """Comparisons of money (utility, PnL) and of Sharpe need their margin; other checks none."""
    if "sharpe" in check.name:
        need = policy.min_sharpe_margin
    elif "utility" in check.name or "pnl" in check.name:
        need = policy.min_utility_margin
    else:
        return True
    return check.margin is not None and check.margin >= need
