"""Features: independent reference values, no lookahead, online == batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import ta

from features.build import FeatureEngine, FeatureEngines, compute_features, make_labels
from features.config import FeaturesConfig
from features.errors import DataError

CONFIG = FeaturesConfig()


@pytest.fixture(scope="module")
def sample(btc_bars: pd.DataFrame) -> pd.DataFrame:
    return btc_bars.iloc[:6000].reset_index(drop=True)


@pytest.fixture(scope="module")
def full(btc_bars: pd.DataFrame) -> pd.DataFrame:
    return compute_features(btc_bars, CONFIG)


def test_hand_worked_small_case() -> None:
    bars = pd.DataFrame(
        {
            "timestamp": pd.date_range("2024-01-01", periods=4, freq="1D", tz="UTC"),
            "symbol": "T",
            "venue": "v",
            "interval": "1d",
            "open": [10.0, 11.0, 12.0, 11.0],
            "high": [11.0, 12.0, 13.0, 12.0],
            "low": [9.0, 10.0, 11.0, 10.0],
            "close": [10.0, 11.0, 12.0, 11.0],
            "volume": [1.0, 2.0, 3.0, 4.0],
            "taker_buy_volume": [1.0, 1.5, 0.0, 4.0],
        }
    )
    f = compute_features(bars, FeaturesConfig(windows=(2,)))
    last = f.iloc[-1]
    # returns over 2 bars and realized vol of the last two 1-bar returns
    assert last["ret_2"] == pytest.approx(np.log(11 / 11))
    r = np.log([12 / 11, 11 / 12])
    assert last["rv_2"] == pytest.approx(np.sqrt(np.mean(r**2)))
    # close at mid-range: CLV 0 on every bar
    assert last["ad_2"] == pytest.approx(0.0)
    # order flow: (2*0 - 3) + (2*4 - 4) over 7
    assert last["ofi_2"] == pytest.approx(1 / 7)
    # Bollinger over closes 12, 11: mean 11.5, sd 0.5, k=2 -> band 10.5..12.5
    assert last["bb_pctb_2"] == pytest.approx((11 - 10.5) / 2.0)
    assert last["bb_width_2"] == pytest.approx(2.0 / 11.5)
    # true ranges: bar 2 max(2, |13-11|, |11-11|) = 2; bar 3 max(2, |12-12|, |10-12|) = 2
    assert last["atr_2"] == pytest.approx(2 / 11)
    # money flow: tp rises then falls -> 12*3 up, 11*4 down
    assert last["mfi_2"] == pytest.approx(100 * 36 / (36 + 44))
    assert last["bar_range"] == pytest.approx(np.log(12 / 10))
    assert np.isnan(f["ret_2"].iloc[1]) and not np.isnan(f["ret_2"].iloc[2])
    assert f.loc["2024-01-01", "dow_sin"] == pytest.approx(0.0)  # a Monday at midnight: week fraction 0


def test_against_the_ta_library(sample: pd.DataFrame) -> None:
    f = compute_features(sample, CONFIG)
    high, low, close, volume = sample["high"], sample["low"], sample["close"], sample["volume"]
    w = 60
    valid = slice(w + 1, None)
    bb = ta.volatility.BollingerBands(close, window=w, window_dev=2)
    np.testing.assert_allclose(
        f[f"bb_pctb_{w}"].to_numpy()[valid], bb.bollinger_pband().to_numpy()[valid], rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        f[f"bb_width_{w}"].to_numpy()[valid], bb.bollinger_wband().to_numpy()[valid] / 100, rtol=1e-6
    )
    mfi = ta.volume.MFIIndicator(high, low, close, volume, window=w).money_flow_index()
    np.testing.assert_allclose(f[f"mfi_{w}"].to_numpy()[valid], mfi.to_numpy()[valid], rtol=1e-8)
    cmf = ta.volume.ChaikinMoneyFlowIndicator(high, low, close, volume, window=w).chaikin_money_flow()
    np.testing.assert_allclose(f[f"ad_{w}"].to_numpy()[valid], cmf.to_numpy()[valid], rtol=1e-6, atol=1e-9)
    psar = ta.trend.PSARIndicator(high, low, close, step=0.02, max_step=0.2).psar()
    np.testing.assert_allclose(
        f["psar_dist"].to_numpy(), ((close - psar) / close).to_numpy(), rtol=1e-9, atol=1e-12
    )


def test_against_plain_pandas(sample: pd.DataFrame) -> None:
    f = compute_features(sample, CONFIG)
    c, h, lo, v = sample["close"], sample["high"], sample["low"], sample["volume"]
    w, valid = 240, slice(241, None)
    r1 = np.log(c).diff()
    expect = {
        "ret_240": np.log(c / c.shift(w)),
        "rv_240": np.sqrt((r1**2).rolling(w).mean()),
        "atr_240": pd.concat([h - lo, (h - c.shift()).abs(), (lo - c.shift()).abs()], axis=1)
        .max(axis=1)
        .rolling(w)
        .mean()
        / c,
        "ofi_240": (2 * sample["taker_buy_volume"] - v).rolling(w).sum() / v.rolling(w).sum(),
        "vwap_dev_240": np.log(c / (((h + lo + c) / 3 * v).rolling(w).sum() / v.rolling(w).sum())),
        "vol_z_240": (np.log1p(v) - np.log1p(v).rolling(w).mean()) / np.log1p(v).rolling(w).std(ddof=0),
    }
    tp = (h + lo + c) / 3
    atr = expect["atr_240"] * c
    expect["kc_pos_240"] = (c - (tp.rolling(w).mean() - 2 * atr)) / (4 * atr)
    for name, series in expect.items():
        np.testing.assert_allclose(
            f[name].to_numpy()[valid], series.to_numpy()[valid], rtol=1e-7, atol=1e-10, err_msg=name
        )


@pytest.mark.parametrize("cut", [1, 2, 7, 100, 1441, 1442, 5000, 33333, 60001, 87838])
def test_no_lookahead_features_at_t_ignore_data_after_t(
    btc_bars: pd.DataFrame, full: pd.DataFrame, cut: int
) -> None:
    truncated = compute_features(btc_bars.iloc[:cut], CONFIG)
    pd.testing.assert_frame_equal(truncated, full.iloc[:cut], check_exact=True)


def test_end_option_equals_the_full_run_up_to_end(btc_bars: pd.DataFrame, full: pd.DataFrame) -> None:
    end = pd.Timestamp("2026-04-10 13:37", tz="UTC")
    pd.testing.assert_frame_equal(
        compute_features(btc_bars, CONFIG, end=end), full.loc[:end], check_exact=True
    )


def test_online_one_bar_at_a_time_equals_batch(btc_bars: pd.DataFrame, full: pd.DataFrame) -> None:
    engine = FeatureEngine(CONFIG.for_interval("1m"))
    head = engine.update(btc_bars.iloc[:3000])  # bootstrap from history, then bar by bar
    rows = [engine.update(btc_bars.iloc[i : i + 1]) for i in range(3000, 8000)]
    online = pd.concat([head, *rows])
    pd.testing.assert_frame_equal(online, full.iloc[:8000], check_exact=True)


def test_online_rejects_a_repeated_bar(btc_bars: pd.DataFrame) -> None:
    engine = FeatureEngine(CONFIG.for_interval("1m"))
    engine.update(btc_bars.iloc[:10])
    with pytest.raises(ValueError, match="strictly increasing"):
        engine.update(btc_bars.iloc[9:10])


def _arrays(bars: pd.DataFrame) -> list[np.ndarray]:
    """Open times (int64 ns) and the six bar columns, as ``update_arrays`` takes them."""
    ts = bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    columns = ("open", "high", "low", "close", "volume", "taker_buy_volume")
    return [ts, *(bars[c].to_numpy(dtype=np.float64, na_value=np.nan) for c in columns)]


# history per series: none, one bar, short, the 1440 window filling up during the ticks, warm
WARMUPS = (0, 1, 40, 1300, 3000)


def test_one_call_for_all_series_equals_one_engine_per_series_bit_for_bit(btc_bars: pd.DataFrame) -> None:
    config = CONFIG.for_interval("1m")
    ticks = 400
    series = [_arrays(btc_bars.iloc[15_000 * s : 15_000 * s + w + ticks]) for s, w in enumerate(WARMUPS)]
    series[2][6][::7] = np.nan  # taker volume unknown on some bars
    has = np.random.default_rng(7).random((ticks, len(WARMUPS))) < 0.8  # some bars missing
    has[17] = False  # and a tick with no bar at all
    stack = FeatureEngines(config, len(WARMUPS))
    alone = [FeatureEngine(config) for _ in WARMUPS]
    for s, w in enumerate(WARMUPS):  # the history through a one-series view of the stack
        head = [a[:w] for a in series[s]]
        np.testing.assert_array_equal(stack[s].update_arrays(*head), alone[s].update_arrays(*head))
    fed = np.array(WARMUPS)  # each series' next bar
    got: list[list[np.ndarray]] = [[] for _ in WARMUPS]
    for j in range(ticks):
        rows = np.flatnonzero(has[j])
        out = stack.update(rows, *(np.array([series[s][k][fed[s]] for s in rows]) for k in range(7)))
        assert out.shape == (len(rows), len(stack.names))
        for i, s in enumerate(rows):
            want = alone[s].update_arrays(*(a[fed[s] : fed[s] + 1] for a in series[s]))
            np.testing.assert_array_equal(out[i], want[0])  # NaN where the reference has NaN
            got[s].append(out[i])
        fed[rows] += 1
    for s, w in enumerate(WARMUPS):  # and the batch over the same bars agrees
        batch = FeatureEngine(config).update_arrays(*(a[: fed[s]] for a in series[s]))
        np.testing.assert_array_equal(np.array(got[s]), batch[w:])
    warming = np.array(got[3])  # the 1440 window became defined during the ticks
    assert np.isnan(warming[0]).any() and np.isfinite(warming[-1]).all()


def test_a_bar_out_of_order_for_one_series_is_refused_and_no_series_changes(btc_bars: pd.DataFrame) -> None:
    stack = FeatureEngines(CONFIG.for_interval("1m"), 3)
    series = [_arrays(btc_bars.iloc[1000 * s : 1000 * s + 50]) for s in range(3)]
    for s in range(3):
        stack[s].update_arrays(*(a[:40] for a in series[s]))
    state = (stack.buf, stack.sums, stack.istate, stack.fstate, stack.last_ts)
    before = [a.copy() for a in state]
    bars = [np.array([series[s][k][40] for s in range(3)]) for k in range(7)]
    for stale in (39, 10):  # series row 1: its last bar again, then an older one
        bars[0][1] = series[1][0][stale]
        with pytest.raises(DataError, match=r"strictly increasing time order.*series row 1 .*none updated"):
            stack.update(np.arange(3), *bars)
        for now, then in zip(state, before, strict=True):
            np.testing.assert_array_equal(now, then)
    with pytest.raises(ValueError, match="strictly increasing"):  # one bar per series per call
        stack.update(np.array([0, 0]), *(np.repeat(a[:1], 2) for a in bars))


def test_features_are_defined_after_warmup_and_finite(full: pd.DataFrame) -> None:
    after = full.iloc[1441:]
    assert np.isfinite(after.to_numpy()).all()
    assert full.iloc[:1440]["ret_1440"].isna().all() and full["ret_1440"].iloc[1440:].notna().all()


def test_labels_are_forward_and_kept_apart(btc_bars: pd.DataFrame, full: pd.DataFrame) -> None:
    labels = make_labels(btc_bars, horizon=15)
    c = btc_bars["close"].to_numpy()
    assert labels["fwd_return"].iloc[100] == pytest.approx(np.log(c[115] / c[100]))
    assert labels["fwd_return"].iloc[-15:].isna().all()
    assert not set(labels.columns) & set(full.columns)
    assert ((labels["direction"] == 1) == (labels["fwd_return"] > 0)).iloc[:-15].all()
