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


def test_long_flat_earns_only_when_long_and_pays_fees_on_changes() -> None:
    bars = pd.DataFrame({"close": [100.0, 110.0, 99.0, 99.0]})
    equity = long_flat(bars, np.array([0.5, -0.1, 0.2, 0.0]), "regressor", fee_bps=10)
    # long at bar 0 (fee 10 bp), +10%; flat at 1 (fee), 0%; long at 2 (fee), +0%; flat at 3 (fee)
    expected = np.cumprod([1 - 0.001, 1.10 - 0.001, 1 - 0.001, 1 - 0.001])
    np.testing.assert_allclose(equity, expected)


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
    assert curve_stats(np.array([1.0, 1.0, 1.0]), bar_ns=MINUTE_NS)["sharpe"] is not None
    assert math.isnan(curve_stats(np.array([1.0, 1.0, 1.0]), bar_ns=MINUTE_NS)["sharpe"])


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
