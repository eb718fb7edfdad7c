"""Walk-forward splits: purge/embargo at every boundary, no label leakage, dated hold-outs."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pandas as pd
import pytest

from features.config import FeaturesConfig
from training.config import SplitConfig, SplitProfile
from training.dataset import build_dataset
from training.splits import plan_splits, validation_tail, walk_forward


def minute_index(n: int) -> pd.DatetimeIndex:
    return pd.date_range("2026-03-01", periods=n, freq="1min", tz="UTC")


@pytest.mark.parametrize("scheme", ["expanding", "rolling"])
@pytest.mark.parametrize(("horizon", "embargo"), [(1, 0), (15, 0), (15, 30)])
def test_every_fold_is_purged_and_embargoed(scheme: str, horizon: int, embargo: int) -> None:
    profile = SplitProfile(
        n_folds=5,
        scheme=scheme,
        rolling_train_bars=3000,
        embargo_bars=embargo,
        backtest_days=1,
        forward_days=1,
        test_fraction=0.4,
    )
    index = minute_index(20_000)
    plan = plan_splits(index, profile, label_horizon=horizon)
    assert plan.gap == horizon + embargo
    for fold in plan.folds:
        last_train_label_reaches = fold.train.stop - 1 + horizon
        assert last_train_label_reaches < fold.test.start, fold
        assert fold.test.start - fold.train.stop >= horizon + embargo
        assert fold.test.stop <= plan.tuning.stop
        if scheme == "rolling":
            assert fold.train.stop - fold.train.start <= 3000
    tests = [f.test for f in plan.folds]
    assert all(a.stop == b.start for a, b in itertools.pairwise(tests))  # consecutive, disjoint
    assert plan.tuning.stop - 1 + horizon < plan.backtest.start  # hold-outs purged too
    assert plan.backtest.stop == plan.forward.start
    assert plan.forward.stop == len(index)
    assert index[plan.forward.start] > index[-1] - pd.Timedelta(days=1)


def test_changing_data_after_a_folds_end_does_not_change_its_training_rows(btc_bars: pd.DataFrame) -> None:
    bars = btc_bars.iloc[:12_000].reset_index(drop=True)
    features = FeaturesConfig()
    profile = SplitProfile(n_folds=3, backtest_days=0.5, forward_days=0.5)
    base = build_dataset(bars, features, label_horizon=15)
    plan = plan_splits(base.index, profile, label_horizon=15)
    for fold in plan.folds:
        tampered = bars.copy()
        cut = base.index[fold.test.start]
        later = tampered["timestamp"] >= cut
        tampered.loc[later, ["open", "high", "low", "close"]] *= 1.5  # the future is rewritten
        changed = build_dataset(tampered, features, label_horizon=15)
        for task in ("regressor", "classifier"):
            X0, y0 = base.training_rows(fold.train, task)
            X1, y1 = changed.training_rows(fold.train, task)
            np.testing.assert_array_equal(X0, X1)
            np.testing.assert_array_equal(y0, y1)
        assert not np.array_equal(base.fwd_return[fold.test], changed.fwd_return[fold.test])  # it did change


def test_daily_protocol_windows_match_the_seed_dates() -> None:
    index = pd.date_range("2013-10-06", "2023-12-31", freq="1D", tz="UTC")
    plan = plan_splits(index, SplitConfig().for_interval("1d"), label_horizon=1)
    assert index[plan.backtest.start].date() == dt.date(2023, 2, 1)
    assert index[plan.backtest.stop - 1].date() == dt.date(2023, 7, 31)
    assert index[plan.forward.start].date() == dt.date(2023, 8, 1)
    assert index[plan.forward.stop - 1].date() == dt.date(2023, 10, 31)
    assert index[plan.tuning.stop - 1].date() <= dt.date(2023, 1, 30)  # train_end less the 1-day label


def test_too_little_data_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="cannot hold 5 test folds"):
        list(walk_forward(40, n_folds=5, gap=15))
    with pytest.raises(ValueError, match=r"no data in the backtest window 2023-02-01\.\.2023-07-31"):
        plan_splits(
            pd.date_range("2020-01-01", periods=100, freq="1D", tz="UTC"),
            SplitConfig().for_interval("1d"),
            label_horizon=1,
        )
    with pytest.raises(ValueError, match="give backtest_days and forward_days"):
        SplitProfile(n_folds=2)


def test_early_stopping_tail_is_purged_from_the_fit_rows() -> None:
    fit, val = validation_tail(slice(100, 1100), 0.2, gap=15)
    assert val == slice(900, 1100)
    assert fit.stop + 15 <= val.start
    assert validation_tail(slice(0, 30), 0.2, gap=15) == (slice(0, 30), None)
