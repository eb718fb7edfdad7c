"""Window evaluation: statistics, baselines, the bootstrap interval, and tuning determinism.

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training.config import EvaluateConfig, FamilyConfig, SearchParam, SplitProfile, TuneConfig
from training.evaluate import curve_stats, long_flat, sharpe_difference_ci, statistical_metrics

MINUTE_NS = 60 * 1_000_000_000


def test_statistics_by_hand() -> None:
    pred = np.array([0.01, -0.02, np.nan, 0.03])
    ret = np.array([0.02, -0.01, 0.5, np.nan])  # the NaN rows are left out
    m = statistical_metrics(pred, ret, "regressor")
    assert m["mae"] == pytest.approx(0.01)
    assert m["rmse"] == pytest.approx(0.01)
    assert m["accuracy"] == 1.0
    assert m["labelled_rows"] == 2
    c = statistical_metrics(np.array([0.9, 0.2, 0.6]), np.array([0.01, -0.01, -0.02]), "classifier")
    assert c["accuracy"] == pytest.approx(2 / 3)
    assert c["mae"] == pytest.approx((0.1 + 0.2 + 0.6) / 3)
    assert c["auc"] == 1.0
    with pytest.raises(ValueError, match="no rows"):
        statistical_metrics(np.array([np.nan]), np.array([0.1]), "regressor")


def test_skill_against_the_no_information_forecast_and_the_majority_class() -> None:
    ret = np.array([0.02, -0.01, 0.01, 0.03])
    m = statistical_metrics(np.array([0.01, -0.02, 0.0, 0.01]), ret, "regressor")
    assert m["mae_zero"] == pytest.approx(0.0175)  # |ret| averaged: the zero forecast's error
    assert m["mae"] == pytest.approx(0.0125)
    assert m["mae_ratio"] == pytest.approx(0.0125 / 0.0175)
    assert m["rmse_zero"] == pytest.approx(math.sqrt(0.0015 / 4))
    assert m["skill"] == pytest.approx(1 - (0.0007 / 4) / (0.0015 / 4))  # 1 - MSE / MSE of zero
    assert m["majority_accuracy"] == 0.75  # three of four went up
    assert m["accuracy"] == 0.75  # 0.0 is not "up": row 3 is a miss
    # Wilson 95% for 3 of 4, (p + z^2/2n -+ z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n) by hand
    assert m["accuracy_lo"] == pytest.approx(0.30064, abs=1e-5)  # 5 digits: the constant's precision
    assert m["accuracy_hi"] == pytest.approx(0.95441, abs=1e-5)
    zero = statistical_metrics(np.zeros(4), ret, "regressor")
    assert zero["mae_ratio"] == 1.0 and zero["skill"] == 0.0  # the baseline against itself
    coin = statistical_metrics(np.full(3, 0.5), np.array([0.01, -0.01, -0.02]), "classifier")
    assert coin["rmse"] == coin["rmse_zero"] == 0.5 and coin["skill"] == 0.0
    sure = statistical_metrics(np.array([0.9, 0.2, 0.4]), np.array([0.01, -0.01, -0.02]), "classifier")
    assert sure["skill"] == pytest.approx(1 - ((0.01 + 0.04 + 0.16) / 3) / 0.25)  # Brier skill score


def test_long_flat_earns_only_when_long_and_pays_fees_on_changes() -> None:
    bars = pd.DataFrame({"close": [100.0, 110.0, 99.0, 99.0]})
    equity = long_flat(bars, np.array([0.5, -0.1, 0.2, 0.0]), "regressor", fee_bps=10)
    # long at bar 0 (fee 10 bp), +10%; flat at 1 (fee), 0%; long at 2 (fee), +0%; flat at 3 (fee)
    expected = np.cumprod([1 - 0.001, 1.10 - 0.001, 1 - 0.001, 1 - 0.001])
    np.testing.assert_allclose(equity, expected)


def test_long_flat_holds_each_call_for_the_label_horizon() -> None:
    bars = pd.DataFrame({"close": [100.0, 110.0, 99.0, 99.0, 100.0]})
    # h = 2: the calls at bars 0 and 2 decide; the calls at bars 1 and 3 are ignored
    equity = long_flat(bars, np.array([0.5, -0.1, -0.2, 0.3, 0.1]), "regressor", fee_bps=10, hold_bars=2)
    # long 0-1 (fee), +10%, -10%; flat from bar 2 (fee), flat; long again at bar 4 (fee)
    expected = np.cumprod([1 - 0.001, 1.10, 0.9 - 0.001, 1.0, 1 - 0.001])
    np.testing.assert_allclose(equity, expected)
    with pytest.raises(ValueError, match="hold_bars"):
        long_flat(bars, np.zeros(5), "regressor", fee_bps=10, hold_bars=0)


def test_sharpe_difference_interval_covers_the_point_and_is_reproducible() -> None:
    rng = np.random.default_rng(1)
    a = np.cumprod(1 + rng.normal(2e-4, 1e-3, 5000))
    b = np.cumprod(1 + rng.normal(0.0, 1e-3, 5000))
    config = EvaluateConfig(bootstrap_samples=300)
    diff, lo, hi = sharpe_difference_ci(a, b, bar_ns=MINUTE_NS, config=config)
    assert lo < diff < hi
    assert lo > 0  # a clearly better strategy: the interval excludes zero
    assert sharpe_difference_ci(a, b, bar_ns=MINUTE_NS, config=config) == (diff, lo, hi)
    same = sharpe_difference_ci(a, a, bar_ns=MINUTE_NS, config=config)
    assert same[0] == 0.0
    assert same[1] == same[2] == 0.0
    assert curve_stats(np.array([1.0, 1.0, 1.0]), bar_ns=MINUTE_NS, risk_aversion=10.0)["sharpe"] is not None
    assert math.isnan(curve_stats(np.array([1.0, 1.0, 1.0]), bar_ns=MINUTE_NS, risk_aversion=10.0)["sharpe"])


def test_same_seed_and_data_give_the_same_tuning_metrics(btc_bars: pd.DataFrame, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from features.config import FeaturesConfig
    from training.dataset import build_dataset
    from training.splits import plan_splits
    from training.tune import TuneJob, open_study, run_trials

    bars = btc_bars.iloc[:8000].reset_index(drop=True)
    ds = build_dataset(bars, FeaturesConfig(), label_horizon=15)
    profile = SplitProfile(n_folds=2, backtest_days=0.5, forward_days=0.5, max_train_bars=2000)
    space = {"alpha": SearchParam(type="float", low=1e-6, high=1e-2, log=True)}
    tune = TuneConfig(trials=3, n_startup_trials=2, prune=False)
    job = TuneJob(
        dataset=ds,
        plan=plan_splits(ds.index, profile, label_horizon=15),
        family="sgd",
        task="regressor",
        family_config=FamilyConfig(space=space),
        tune=tune,
        split=profile,
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
    )
    results = []
    for run in range(2):
        study = open_study(f"sqlite:///{tmp_path / f'{run}.db'}", "s", maximize=True, config=tune)
        run_trials(study, job, trials=3, timeout_s=None)
        results.append([(t.params, t.user_attrs["fold_scores"], t.value) for t in study.trials])
    assert results[0] == results[1]
    assert len({r[2] for r in results[0]}) > 1  # the trials did differ from each other
