"""The promotion gate: pure checks of a candidate's metrics against thresholds and the champion.

No MLflow here: :mod:`training.registry` reads the metrics and stores the verdict. Sharpe ratios
are annualised on 365 days (crypto trades every day), drawdowns in percent of peak equity, MAE and
RMSE in the units of the target (forward log return for regressors).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from features.errors import MmopsError

Comparator = Literal[">=", "<="]


class GovernanceError(MmopsError):
    """A governance action was refused (gate, approval, rejection, rollback); nothing was changed."""


class AutoApproveConfig(BaseModel):
    """Optional policy: approve without a person when the gate passes by a margin (default off)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = Field(False, description="off by default: champion moves only on a recorded approval")
    min_sharpe_margin: float = Field(
        0.5, ge=0, description="every Sharpe check must clear its threshold by this much (annualised)"
    )


class GateConfig(BaseModel):
    """Thresholds a version must meet to become ``challenger`` (the ``gate`` section of params.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    window: Literal["backtest", "forward"] = Field(
        "forward", description="which held-out window's logged metrics the thresholds read"
    )
    min_sharpe: float = Field(0.0, description="annualised (365 d) Sharpe of the model's quoter")
    max_drawdown_pct: float = Field(5.0, gt=0, description="maximum drawdown, % of peak equity")
    min_sharpe_over_quoter: float = Field(
        0.0, description="model Sharpe minus the model-free Avellaneda-Stoikov quoter's, same window"
    )
    require_ci_over_quoter: bool = Field(
        False, description="also require the bootstrap 95% CI of that difference to lie above 0"
    )
    max_mae: float | None = Field(None, gt=0, description="regressors: MAE of the forward log return")
    max_rmse: float | None = Field(None, gt=0, description="regressors: RMSE of the forward log return")
    min_trades: int = Field(10, ge=0, description="fills in the window; fewer says nothing")
    min_sharpe_over_champion: float = Field(
        0.0, description="head-to-head on identical windows: candidate minus champion Sharpe"
    )
    auto_approve: AutoApproveConfig = AutoApproveConfig()


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

    checks = [
        _check(
            f"{w}_sharpe",
            get("sharpe"),
            config.min_sharpe,
            ">=",
            label=f"{w} Sharpe (365 d) of the model's quoter",
        ),
        _check(
            f"{w}_max_drawdown_pct",
            get("max_drawdown_pct"),
            config.max_drawdown_pct,
            "<=",
            label=f"{w} max drawdown, % of peak",
        ),
        _check(
            f"{w}_sharpe_diff (model - A-S quoter)",
            get("sharpe_diff"),
            config.min_sharpe_over_quoter,
            ">=",
            label=f"{w} Sharpe over the model-free A-S quoter",
        ),
        _check(f"{w}_n_trades", get("n_trades"), float(config.min_trades), ">=", label=f"{w} fills"),
    ]
    if config.require_ci_over_quoter:
        checks.append(
            _check(
                f"{w}_sharpe_diff_lo (95% CI)",
                get("sharpe_diff_lo"),
                0.0,
                ">=",
                label=f"{w} lower 95% bound of the Sharpe over the A-S quoter",
            )
        )
    for key, limit in (("mae", config.max_mae), ("rmse", config.max_rmse)):
        if limit is None:
            continue
        label = f"{w} {key.upper()} of the forward log return"
        if task != "regressor":
            checks.append(_skip(f"{w}_{key}", limit, "<=", f"not checked for a {task}", label=label))
        else:
            checks.append(_check(f"{w}_{key}", get(key), limit, "<=", label=label))
    return checks


def head_to_head_check(
    candidate: Mapping[str, float], champion: Mapping[str, float] | None, *, config: GateConfig
) -> GateCheck:
    """Candidate vs champion Sharpe, both evaluated on the same windows by the same evaluator."""
    name = "head-to-head sharpe (candidate - champion)"
    label = "Sharpe over the champion on the same window"
    limit = config.min_sharpe_over_champion
    if champion is None:
        return _skip(name, limit, ">=", "no champion yet", label=label)
    if "sharpe" not in candidate or "sharpe" not in champion:
        return _check(name, None, limit, ">=", note="evaluator returned no sharpe", label=label)
    diff = float(candidate["sharpe"]) - float(champion["sharpe"])
    return _check(name, diff, limit, ">=", label=label)


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
        every Sharpe check cleared its threshold by ``auto_approve.min_sharpe_margin``.
    """
    checks = [*threshold_checks(metrics, task=task, config=config)]
    checks.append(head_to_head_check(candidate_eval, champion_eval, config=config))
    passed = all(c.passed for c in checks)
    policy = config.auto_approve
    sharpe_margins = [c.margin for c in checks if "sharpe" in c.name and not c.skipped]
    auto = (
        policy.enabled
        and passed
        and all(m is not None and m >= policy.min_sharpe_margin for m in sharpe_margins)
    )
    return GateVerdict(
        passed=passed,
        checks=tuple(checks),
        candidate=dict(candidate_eval),
        champion=None if champion_eval is None else dict(champion_eval),
        champion_version=champion_version,
        auto_approve=auto,
    )
