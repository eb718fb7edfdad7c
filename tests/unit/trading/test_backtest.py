"""Fill engine and backtest: hand-computed fills and fees, accounting, limits, kill, latency, lookahead.

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trading_helpers import make_bars

from features.errors import DataError
from trading.backtest import run_backtest, write_backtest_outputs
from trading.config import BacktestConfig, QuoteConfig, RiskConfig

# spread pinned to 20 ticks: with no inventory the quotes are exactly mid -/+ 10 ticks
Q = QuoteConfig(min_spread_ticks=20, max_spread_ticks=20, order_lots=10)
R = RiskConfig()
B = BacktestConfig(tick_size=0.01, lot_size=0.01, maker_fee_bps=2.0, latency_ms=0, queue_haircut_ticks=1)


def run(bars: pd.DataFrame, **kw: object) -> object:
    opts: dict = dict(quote=Q, risk=R, backtest=B)
    opts.update(kw)
    return run_backtest(bars, **opts)


def test_bid_fill_price_fee_and_cash_by_hand() -> None:
    res = run(make_bars(close=[100.0] * 6, low=[100.0, 100.0, 100.0, 99.80, 100.0, 100.0]))
    t = res.trades
    assert len(t) == 1
    row = t.iloc[0]
    assert (row["bar"], row["side"], row["lots"], row["liquidity"]) == (3, "buy", 10, "maker")
    assert row["price"] == pytest.approx(99.90)
    assert row["fee"] == pytest.approx(9.99 * 2e-4)  # 0.1 BTC x 99.90 x 2 bps
    eq = res.equity.iloc[3]
    assert eq["cash"] == pytest.approx(100_000 - 9.99 - 0.001998)
    assert eq["inventory"] == 10
    assert eq["equity"] == pytest.approx(100_000 + 0.1 * (100.0 - 99.90) - 0.001998)
    assert res.metrics.fees == pytest.approx(0.001998)
    assert res.metrics.spread_capture_bps == pytest.approx(0.10 / 99.90 * 1e4)


def test_ask_fill_with_maker_rebate() -> None:
    bars = make_bars(close=[100.0] * 4, high=[100.0, 100.0, 100.20, 100.0])
    res = run(bars, backtest=B.model_copy(update={"maker_fee_bps": -1.0}))
    row = res.trades.iloc[0]
    assert (row["side"], row["price"]) == ("sell", pytest.approx(100.10))
    assert row["fee"] == pytest.approx(-10.01 * 1e-4)
    assert res.equity["cash"].iloc[2] == pytest.approx(100_000 + 10.01 + 0.001001)


def test_queue_haircut_needs_a_trade_through() -> None:
    bars = make_bars(close=[100.0] * 4, low=[100.0, 100.0, 99.90, 100.0])  # low touches the bid exactly
    assert run(bars).trades.empty
    touched = run(bars, backtest=B.model_copy(update={"queue_haircut_ticks": 0}))
    assert list(touched.trades["bar"]) == [2]


def test_partial_fill_caps_at_share_of_opposite_flow() -> None:
    bars = make_bars(close=[100.0] * 4, low=[100.0, 100.0, 99.5, 100.0], volume=0.1, taker_buy=0.04)
    opts = {"max_participation": 0.5, "requote_on_fill": False, "refresh_bars": 100}
    res = run(bars, backtest=B.model_copy(update=opts))
    assert list(res.trades["lots"]) == [3]  # sellers hit 6 lots; half of that is ours
    assert res.equity["bid_lots"].iloc[3] == 7  # the rest of the order stays live


@pytest.mark.parametrize(("latency_ms", "first_fill_bar"), [(0, 1), (60_000, 2), (150_000, 3)])
def test_latency_delays_fills(latency_ms: int, first_fill_bar: int) -> None:
    bars = make_bars(close=[100.0] * 8, low=[100.0] + [99.5] * 7)
    res = run(bars, backtest=B.model_copy(update={"latency_ms": latency_ms}))
    assert int(res.trades["bar"].iloc[0]) == first_fill_bar
    assert res.equity["bid_lots"].iloc[:first_fill_bar].eq(0).all()


def test_accounting_identity_and_inventory_limit_on_real_data(btc_march: pd.DataFrame) -> None:
    risk = RiskConfig(
        max_position_lots=15,
        reduce_at_fraction=1.0,
        resume_at_fraction=1.0,
        max_loss=1e9,
        max_drawdown_pct=99.0,
    )
    res = run_backtest(
        btc_march.iloc[:20_000],
        quote=QuoteConfig(),
        risk=risk,
        backtest=BacktestConfig(queue_haircut_ticks=0, latency_ms=120_000),
    )
    e = res.equity
    # one float64 rounding at $1e5 per bar (~2e-11); 1e-6 dollars is below any fee a bug could drop
    np.testing.assert_allclose(e["cash"] + e["position"] * e["mark"], e["equity"], rtol=0, atol=1e-6)
    assert e["inventory"].abs().max() == 15  # reached, never beyond
    assert res.metrics.n_trades > 100


def test_kill_switch_halts_cancels_and_flattens(btc_march: pd.DataFrame) -> None:
    bars = btc_march.iloc[:3000]
    res = run_backtest(
        bars,
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        kill_at=bars["timestamp"].iloc[1000],
    )
    e, t = res.equity, res.trades
    assert (e["status"].iloc[1000:] == "HALTED").all()
    assert e["reasons"].iloc[1000:].str.contains("kill_switch").all()
    assert (e["status"].iloc[:1000] != "HALTED").any()
    assert (e[["bid_lots", "ask_lots"]].iloc[1001:] == 0).all().all()  # cancelled
    assert (e["inventory"].iloc[1000:] == 0).all()
    assert (t["bar"] <= 1000).all()  # fills during bar 1000 precede the kill at its close
    last = t.iloc[-1]
    assert (last["bar"], last["liquidity"]) == (1000, "taker")


def test_no_lookahead(btc_march: pd.DataFrame) -> None:
    bars = btc_march.iloc[:3000].reset_index(drop=True)
    rng = np.random.default_rng(7)
    sig = pd.DataFrame({"timestamp": bars["timestamp"], "pred_return": rng.normal(0, 5e-4, len(bars))})
    cut = 1500
    future = bars.copy()
    for col in ("open", "high", "low", "close"):
        future.loc[cut + 1 :, col] *= 1.05
    future.loc[cut + 1 :, "volume"] *= 3
    future_sig = sig.copy()
    future_sig.loc[cut + 1 :, "pred_return"] *= -4
    kw: dict = dict(quote=QuoteConfig(), risk=RiskConfig(), backtest=BacktestConfig(), strategy="model")
    a = run_backtest(bars, signals=sig, **kw)
    b = run_backtest(future, signals=future_sig, **kw)
    pd.testing.assert_frame_equal(a.equity.iloc[: cut + 1], b.equity.iloc[: cut + 1])
    # quotes live in bar cut+1 were decided at the close of bar cut: unchanged too
    pd.testing.assert_frame_equal(
        a.equity[["bid", "ask"]].iloc[: cut + 2], b.equity[["bid", "ask"]].iloc[: cut + 2]
    )
    pd.testing.assert_frame_equal(a.trades[a.trades["bar"] <= cut], b.trades[b.trades["bar"] <= cut])
    assert not a.equity["equity"].iloc[cut + 1 :].equals(b.equity["equity"].iloc[cut + 1 :])


def test_model_signal_shifts_quotes_up_and_missing_signal_reduces() -> None:
    bars = make_bars(close=[100.0] * 5)
    sig = pd.DataFrame(
        {"timestamp": bars["timestamp"], "pred_return": [0.0005, 0.0005, np.nan, np.nan, 0.0005]}
    )
    model = run(bars, signals=sig, strategy="model")
    plain = run(bars, signals=sig, strategy="as")
    assert model.equity["ask"].iloc[1] == pytest.approx(plain.equity["ask"].iloc[1] + 0.05)
    assert model.equity["bid"].iloc[1] > plain.equity["bid"].iloc[1]
    assert list(model.equity["status"].iloc[2:4]) == ["REDUCING", "REDUCING"]
    assert model.equity["reasons"].iloc[2] == "signal_unavailable"
    assert model.equity[["bid_lots", "ask_lots"]].iloc[3].eq(0).all()  # flat: nothing to reduce


def test_bad_inputs_raise_clear_errors() -> None:
    bars = make_bars(close=[100.0] * 4)
    with pytest.raises(DataError, match="strictly increasing"):
        run(bars.iloc[::-1])
    with pytest.raises(DataError, match="missing columns"):
        run(bars.drop(columns=["high"]))
    with pytest.raises(ValueError, match="needs a signals frame"):
        run(bars, strategy="model")
    with pytest.raises(DataError, match="signals: need a 'timestamp'"):
        run(bars, strategy="model", signals=pd.DataFrame({"pred_return": [0.1]}))


def test_write_outputs(tmp_path: Path, btc_march: pd.DataFrame) -> None:
    res = run_backtest(
        btc_march.iloc[:2000], quote=QuoteConfig(), risk=RiskConfig(), backtest=BacktestConfig()
    )
    paths = write_backtest_outputs(res, tmp_path / "bt")
    assert set(paths) == {"metrics", "trades", "equity", "plot"}
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["bars"] == 2000
    assert metrics["n_trades"] == len(pd.read_parquet(paths["trades"]))
    assert "fee" in pd.read_parquet(paths["trades"]).columns
    assert paths["plot"].stat().st_size > 1000


def test_params_yaml_states_every_trading_setting_explicitly() -> None:
    import yaml

    from flows.params import load_params

    path = Path(__file__).resolve().parents[3] / "params.yaml"
    raw = yaml.safe_load(path.read_text())
    params = load_params(path)
    for section, config in (("quote", QuoteConfig), ("risk", RiskConfig), ("backtest", BacktestConfig)):
        assert set(raw[section]) == set(config.model_fields), section  # no setting left to a hidden default
    assert params.quote.prob_skew_bps > 0  # classifiers' P(up) must move the quotes
