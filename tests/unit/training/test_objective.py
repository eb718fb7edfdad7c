"""The objective a market maker ranks strategies by (training.evaluate.objective_score): the
orderings it must keep, why the Sharpe ratio does not keep them, and the gate's refusal of a
quoter that loses more PnL than the model-free A-S quoter while its Sharpe is higher.

The ordering properties are strict inequalities between two scores of series built from the same
standardised noise, so no tolerance is involved; ``hypothesis`` draws the means, spreads and risk
aversions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training.config import EvaluateConfig
from training.evaluate import difference_ci, equity_curve, measure, objective_score
from training.gate import GateConfig, judge

MINUTE_NS = 60 * 1_000_000_000
CAPITAL = 100_000.0
N = 2880  # two days of minute bars
_Z = np.random.default_rng(7).normal(size=N)
Z = (_Z - _Z.mean()) / _Z.std(ddof=1)  # exactly mean 0, std 1: the draws set mean and std exactly


def curve(mean_bps: float, std_bps: float) -> np.ndarray:
    """An equity curve (quote ccy) whose per-bar PnL has exactly this mean and std, bps of capital."""
    pnl = (mean_bps + std_bps * Z) * 1e-4 * CAPITAL
    return np.concatenate([[CAPITAL], CAPITAL + np.cumsum(pnl)])


def score(equity: np.ndarray, objective: str = "utility", risk_aversion: float = 10.0) -> float:
    return objective_score(equity, objective=objective, risk_aversion=risk_aversion, bar_ns=MINUTE_NS)  # type: ignore[arg-type]


means = st.floats(min_value=-0.5, max_value=0.5, allow_nan=False)  # bps of capital per bar
spreads = st.floats(min_value=0.01, max_value=2.0)
aversions = st.floats(min_value=0.1, max_value=1000.0)


@settings(max_examples=60, deadline=None)
@given(mean=st.floats(min_value=-0.5, max_value=-0.001), low=spreads, extra=spreads, a=aversions)
def test_of_two_equal_negative_means_the_noisier_does_not_rank_higher(
    mean: float, low: float, extra: float, a: float
) -> None:
    calm, noisy = curve(mean, low), curve(mean, low + extra)
    assert score(noisy, risk_aversion=a) < score(calm, risk_aversion=a)
    assert score(noisy, "pnl") == pytest.approx(score(calm, "pnl"))  # the same money per day
    # ... while the Sharpe ratio ranks the noisier loser higher: what the objective replaces
    assert score(noisy, "sharpe") > score(calm, "sharpe")


@settings(max_examples=60, deadline=None)
@given(mean=means, better=st.floats(min_value=0.001, max_value=0.5), std=spreads, a=aversions)
def test_of_two_equal_variances_the_higher_mean_ranks_higher(
    mean: float, better: float, std: float, a: float
) -> None:
    for objective in ("utility", "pnl"):  # (Sharpe divides by equity, which these curves move)
        assert score(curve(mean + better, std), objective, a) > score(curve(mean, std), objective, a)


@settings(max_examples=60, deadline=None)
@given(
    edge=st.floats(min_value=-0.2, max_value=0.2),
    q_small=st.floats(min_value=0.0, max_value=5.0),
    q_extra=st.floats(min_value=0.1, max_value=5.0),
    a=aversions,
)
def test_more_inventory_risk_for_the_same_pnl_ranks_lower(
    edge: float, q_small: float, q_extra: float, a: float
) -> None:
    # a constant spread income plus inventory q times price moves that end where they started:
    # every q ends on the same PnL, a larger q carries more inventory risk on the way
    moves = Z - Z.mean()

    def book(q: float) -> np.ndarray:
        pnl = (edge + q * 0.1 * moves) * 1e-4 * CAPITAL
        return np.concatenate([[CAPITAL], CAPITAL + np.cumsum(pnl)])

    small, large = book(q_small), book(q_small + q_extra)
    assert large[-1] == pytest.approx(small[-1], rel=1e-12)  # same final PnL, to rounding
    assert score(large, risk_aversion=a) < score(small, risk_aversion=a)


def test_units_by_hand() -> None:
    # 0.01 bp of capital a minute = 14.4 bp a day; std 0.5 bp a minute = 0.5 * sqrt(1440) bp a day
    eq = curve(0.01, 0.5)
    assert score(eq, "pnl") == pytest.approx(14.4)
    var_day = 0.25 * 1440  # bp^2 per day
    assert score(eq, risk_aversion=10.0) == pytest.approx(14.4 - 10.0 / 2 * var_day * 1e-4)
    assert score(eq, risk_aversion=0.0) == pytest.approx(14.4)
    flat = np.full(10, CAPITAL)
    assert score(flat) == 0.0 and score(flat, "sharpe") == 0.0  # no trade: no edge, no risk
    with pytest.raises(ValueError, match="bar_ns"):
        objective_score(eq, objective="utility", risk_aversion=1.0)
    with pytest.raises(ValueError, match="at least 2 equity values"):
        score(np.array([CAPITAL]), "sharpe")
    with pytest.raises(ValueError, match="unknown measure"):
        measure("calmar", bar_ns=MINUTE_NS, risk_aversion=1.0)  # type: ignore[arg-type]


def test_difference_ci_of_pnl_is_paired_and_reproducible() -> None:
    config = EvaluateConfig(bootstrap_samples=300)
    spec = measure("pnl", bar_ns=MINUTE_NS, risk_aversion=0.0)
    a, b = curve(0.02, 0.3), curve(0.0, 0.3)  # the same noise: a pays 28.8 bp/day more, exactly
    diff, lo, hi = difference_ci(a, b, spec=spec, config=config)
    assert diff == pytest.approx(28.8)
    # paired: the shared noise cancels in every resample, so the interval is the point itself
    assert lo == pytest.approx(28.8) and hi == pytest.approx(28.8)
    independent = curve(0.0, 0.3)[::-1].copy()  # noise unrelated to a's
    independent = CAPITAL + (independent - independent[0])
    _, lo2, hi2 = difference_ci(a, independent, spec=spec, config=config)
    assert lo2 < hi2
    assert difference_ci(a, b, spec=spec, config=config) == (diff, lo, hi)


def _gate(metrics: dict[str, float], **config: object) -> list[str]:
    verdict = judge(
        {f"forward_{k}": v for k, v in metrics.items()},
        task="regressor",
        config=GateConfig(**config),  # type: ignore[arg-type]
        candidate_eval={"utility": 0.0},
        champion_eval=None,
        champion_version=None,
    )
    return [c.name for c in verdict.failed]


def test_gate_refuses_a_quoter_losing_more_than_a_s_on_real_equity_curves(btc_bars: pd.DataFrame) -> None:
    """On two real days, an A-S quoter with 3x the order size and a tenth of the risk aversion
    (it holds more inventory, as the model quoters of issue 14 did) loses ~45 bp/day more than the
    default A-S quoter, yet its Sharpe is higher with a bootstrap CI above zero."""
    bars = btc_bars.iloc[:N].reset_index(drop=True)
    backtest, risk = BacktestConfig(), RiskConfig()
    default = run_backtest(bars, quote=QuoteConfig(), risk=risk, backtest=backtest, strategy="as")
    loose = run_backtest(
        bars, quote=QuoteConfig(gamma=5e-9, order_lots=30), risk=risk, backtest=backtest, strategy="as"
    )
    config = EvaluateConfig(bootstrap_samples=300)
    model, free = equity_curve(loose), equity_curve(default)
    metrics: dict[str, float] = {"max_drawdown_pct": 1.0, "n_trades": float(loose.metrics.n_trades)}
    for name in ("utility", "pnl", "sharpe"):
        spec = measure(name, bar_ns=MINUTE_NS, risk_aversion=config.risk_aversion)  # type: ignore[arg-type]
        d, lo, hi = difference_ci(model, free, spec=spec, config=config)
        metrics |= {f"{name}_diff": d, f"{name}_diff_lo": lo, f"{name}_diff_hi": hi}
    metrics["utility"] = objective_score(loose, objective="utility", risk_aversion=config.risk_aversion)
    metrics["sharpe"] = objective_score(loose, objective="sharpe", risk_aversion=0.0)
    assert metrics["sharpe_diff_lo"] > 0  # the Sharpe says "better", confidently
    assert metrics["pnl_diff_hi"] < 0  # it lost more money, confidently
    assert loose.metrics.inventory_std > 2 * default.metrics.inventory_std
    # the old Sharpe-only gate passed it (with the losing quoter's own Sharpe floor lowered) ...
    sharpe_only = {
        "min_utility": None,
        "min_utility_over_quoter": None,
        "min_pnl_over_quoter": None,
        "min_sharpe": -1e9,
        "min_sharpe_over_quoter": 0.0,
        "ci_over_quoter": True,
    }
    assert _gate(metrics, **sharpe_only) == []
    # ... the default gate refuses it on the objective and on PnL against A-S
    failed = _gate(metrics)
    assert "forward_utility_diff (model - A-S quoter)" in failed
    assert "forward_pnl_diff (model - A-S quoter)" in failed


def test_gate_refuses_more_loss_than_a_s_with_a_higher_sharpe_constructed() -> None:
    metrics = {
        "utility": -20.0,
        "max_drawdown_pct": 1.0,
        "n_trades": 500.0,
        "sharpe": -50.0,
        "sharpe_diff": 27.0,
        "sharpe_diff_lo": 12.0,
        "utility_diff": -1.5,
        "utility_diff_lo": -3.0,
        "pnl_diff": -1.4,
        "pnl_diff_lo": -2.9,
    }
    failed = _gate(metrics, min_utility=None)
    assert failed == ["forward_utility_diff (model - A-S quoter)", "forward_pnl_diff (model - A-S quoter)"]
    # PnL alone refuses it too, even with the utility checks off
    assert _gate(metrics, min_utility=None, min_utility_over_quoter=None) == [
        "forward_pnl_diff (model - A-S quoter)"
    ]


def test_a_study_keeps_one_objective(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import optuna

    from training.config import TuneConfig
    from training.tune import OBJECTIVE_ATTR, open_study, pin_objective

    study = open_study(f"sqlite:///{tmp_path / 'o.db'}", "s", maximize=True, config=TuneConfig())
    pin_objective(study, "utility")
    assert study.user_attrs[OBJECTIVE_ATTR] == "utility"
    pin_objective(study, "utility")  # the same objective resumes
    with pytest.raises(ValueError, match=r"tuned on objective 'utility', tune\.objective is 'sharpe'"):
        pin_objective(study, "sharpe")
    old = optuna.create_study(study_name="old")
    old.add_trial(optuna.trial.create_trial(value=1.0))  # a study from before objectives were recorded
    with pytest.raises(ValueError, match="1 trials from before objectives were recorded"):
        pin_objective(old, "utility")
