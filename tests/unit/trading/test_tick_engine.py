"""Tick fill engine: hand-computed fills and fees on tiny event streams, latency, aggressor side,
accounting, limits, the kill switch, and a run on a shipped capture checked against the bar engine.

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from trading.backtest import BacktestResult, run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.tick_backtest import run_tick_backtest
from trading.ticks import TickData, group_tick_files, read_ticks, trade_bars

S = 1_000_000_000
# spread pinned to 20 ticks: with no inventory the quotes are exactly mid -/+ 10 ticks
Q = QuoteConfig(min_spread_ticks=20, max_spread_ticks=20, order_lots=10)
R = RiskConfig()
B = BacktestConfig(
    tick_size=0.01,
    lot_size=0.01,
    maker_fee_bps=2.0,
    latency_ms=0,
    queue_haircut_ticks=1,
    requote_on_fill=False,
)
# a 2 s "bar": 1 s decisions, warm-up at 0 s and 1 s, the first quote decided at 2 s
BAR_NS = 2 * S


def capture(trades: list[tuple[float, float, float, int]], *, end_s: float = 4.0) -> TickData:
    """A constant 99.99 / 100.01 book (mid 100.00) from 0 s to ``end_s`` and the given trades
    ``(time s, price, qty base ccy, aggressor side)``."""
    times = np.arange(0.0, end_s + 0.5, 0.5)
    bbo = pd.DataFrame(
        {
            "local_ns": (times * S).astype(np.int64),
            "bid": 99.99,
            "ask": 100.01,
            "bid_qty": 1.0,
            "ask_qty": 1.0,
        }
    )
    tr = pd.DataFrame(trades, columns=["t", "price", "qty", "side"])
    tr = tr.assign(local_ns=(tr["t"] * S).astype(np.int64), exch_ns=(tr["t"] * S).astype(np.int64))
    return TickData("BTCUSDT", bbo, tr[["local_ns", "exch_ns", "price", "qty", "side"]], 0.01, ())


def run(data: TickData, **kw: object) -> BacktestResult:
    opts: dict = dict(quote=Q, risk=R, backtest=B, decision_interval_ms=1000, bar_ns=BAR_NS)
    opts.update(kw)
    return run_tick_backtest(data, **opts)


def test_bid_fill_price_fee_and_cash_by_hand() -> None:
    # 2.3 s: a seller at the bid itself (not through it by the 1-tick haircut); 2.5 s: through it
    res = run(capture([(2.3, 99.90, 0.5, -1), (2.5, 99.89, 0.5, -1)]))
    assert len(res.trades) == 1
    row = res.trades.iloc[0]
    assert (row["step"], row["side"], row["lots"], row["liquidity"]) == (3, "buy", 10, "maker")
    assert row["timestamp"] == pd.Timestamp(int(2.5 * S), tz="UTC")
    assert row["price"] == pytest.approx(99.90)
    assert row["ref_mid"] == pytest.approx(100.00)
    assert row["fee"] == pytest.approx(9.99 * 2e-4)  # 0.1 BTC x 99.90 x 2 bps
    eq = res.equity.iloc[3]
    assert (eq["inventory"], eq["mark"], eq["bid_lots"], eq["ask_lots"]) == (10, pytest.approx(100.0), 10, 10)
    assert eq["cash"] == pytest.approx(100_000 - 9.99 - 0.001998)
    assert eq["equity"] == pytest.approx(100_000 + 0.1 * (100.0 - 99.90) - 0.001998)
    assert res.metrics.fees == pytest.approx(0.001998)
    assert res.metrics.spread_capture_bps == pytest.approx(0.10 / 99.90 * 1e4)
    assert res.equity["bid_lots"].iloc[:2].eq(0).all()  # warm-up: no quotes


def test_ask_fill_with_maker_rebate_and_haircut_zero() -> None:
    res = run(
        capture([(2.5, 100.10, 0.5, 1)]),
        backtest=B.model_copy(update={"maker_fee_bps": -1.0, "queue_haircut_ticks": 0}),
    )
    row = res.trades.iloc[0]
    assert (row["side"], row["price"], row["lots"]) == ("sell", pytest.approx(100.10), 10)
    assert row["fee"] == pytest.approx(-10.01 * 1e-4)
    assert res.equity["cash"].iloc[3] == pytest.approx(100_000 + 10.01 + 0.001001)


def test_wrong_aggressor_side_does_not_fill() -> None:
    # a buyer printing below our bid and a seller printing above our ask fill nothing
    res = run(capture([(2.2, 99.80, 1.0, 1), (2.4, 100.20, 1.0, -1)]))
    assert res.trades.empty
    assert (res.equity["inventory"] == 0).all()


@pytest.mark.parametrize(("latency_ms", "fill_at_s"), [(0, 2.5), (800, 2.9), (1000, 3.1)])
def test_latency_delays_fills(latency_ms: int, fill_at_s: float) -> None:
    # quotes decided at 2 s go live at 2 s + latency; the first seller through them after that fills
    data = capture(
        [(1.5, 99.80, 0.5, -1), (2.5, 99.89, 0.5, -1), (2.9, 99.89, 0.5, -1), (3.1, 99.89, 0.5, -1)]
    )
    res = run(data, backtest=B.model_copy(update={"latency_ms": latency_ms}))
    assert res.trades["timestamp"].iloc[0] == pd.Timestamp(int(fill_at_s * S), tz="UTC")
    assert res.trades["lots"].sum() == 10  # the order is used up until the next decision goes live


def test_partial_fills_capped_by_trade_quantity() -> None:
    # half of each 5-lot seller is ours: 2 lots (2.5 credit), then 3 (0.5 carried + 2.5)
    opts = {"max_participation": 0.5}
    res = run(capture([(2.2, 99.89, 0.05, -1), (2.4, 99.85, 0.05, -1)]), backtest=B.model_copy(update=opts))
    assert list(res.trades["lots"]) == [2, 3]
    assert res.equity["bid_lots"].iloc[2] == 10 and res.equity["inventory"].iloc[3] == 5


def test_kill_switch_flattens_at_the_touch_with_taker_fee() -> None:
    data = capture([(2.5, 99.89, 0.5, -1)], end_s=6.0)
    crash = data.bbo["local_ns"] >= 3.2 * S  # the book drops 10 dollars: a 1 dollar loss on 0.1 BTC
    data.bbo.loc[crash, ["bid", "ask"]] = [89.99, 90.01]
    res = run(data, risk=RiskConfig(max_loss=0.5))
    last = res.trades.iloc[-1]
    assert (last["side"], last["liquidity"], last["price"], last["lots"]) == (
        "sell",
        "taker",
        pytest.approx(89.99),
        10,
    )
    assert last["fee"] == pytest.approx(8.999 * 5e-4)
    e = res.equity
    assert (e["status"].iloc[4:] == "HALTED").all() and e["reasons"].str.contains("max_loss").iloc[4:].all()
    assert (e["inventory"].iloc[4:] == 0).all()
    assert (e[["bid_lots", "ask_lots"]].iloc[5:] == 0).all().all()  # cancelled


def test_requote_on_bbo_sends_more_orders_and_model_signal_shifts_quotes() -> None:
    data = capture([], end_s=6.0)
    data.bbo.loc[data.bbo["local_ns"] >= int(3.5 * S), ["bid", "ask"]] = [100.09, 100.11]
    base = run(data)
    on_bbo = run(data, requote_on_bbo=True)
    assert on_bbo.metrics.orders_placed > base.metrics.orders_placed
    sig = pd.DataFrame({"timestamp": pd.to_datetime([0, 2 * S], utc=True), "pred_return": [5e-4, 5e-4]})
    model = run(data, signals=sig, strategy="model")
    # bar 0 closes at 2 s and bar 1 at 4 s: the signal covers decisions from 2 s to 5 s
    shift = model.equity["ask"] - base.equity["ask"]
    assert shift.iloc[3] == pytest.approx(0.05)  # 5 bps of 100 dollars
    assert model.equity["status"].iloc[-1] == "REDUCING"  # no signal row for the bar closing at 6 s


def test_rejects_bad_inputs() -> None:
    data = capture([(2.5, 99.89, 0.5, -1)])
    with pytest.raises(ValueError, match="needs a signals frame"):
        run(data, strategy="model")
    with pytest.raises(DataError, match=r"not a multiple of backtest\.tick_size"):
        run(data, backtest=B.model_copy(update={"tick_size": 0.03}))
    with pytest.raises(DataError, match="need > 2"):
        run(capture([(0.5, 99.89, 0.5, -1)], end_s=1.0))


def test_accounting_identity_and_inventory_limit_on_random_stream() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    t = np.sort(rng.uniform(0, 400, n))
    mid = 100.0 + np.cumsum(rng.normal(0, 0.03, n))
    bbo = pd.DataFrame(
        {
            "local_ns": (t * S).astype(np.int64),
            "bid": np.round(mid - 0.01, 2),
            "ask": np.round(mid - 0.01, 2) + 0.02,
            "bid_qty": 1.0,
            "ask_qty": 1.0,
        }
    )
    side = rng.choice([-1, 1], n)
    tr = pd.DataFrame(
        {
            "local_ns": bbo["local_ns"] + 1,
            "exch_ns": bbo["local_ns"] + 1,
            "price": np.round(mid + side * rng.uniform(0, 0.3, n), 2),
            "qty": 0.2,
            "side": side,
        }
    )
    risk = RiskConfig(
        max_position_lots=15,
        reduce_at_fraction=1.0,
        resume_at_fraction=1.0,
        max_loss=1e9,
        max_drawdown_pct=99.0,
    )
    res = run(TickData("X", bbo, tr, 0.01, ()), risk=risk, backtest=B.model_copy(update={"latency_ms": 30}))
    e = res.equity
    # one float64 rounding at $1e5 per bar (~2e-11); 1e-6 dollars is below any fee a bug could drop
    np.testing.assert_allclose(e["cash"] + e["position"] * e["mark"], e["equity"], rtol=0, atol=1e-6)
    assert e["inventory"].abs().max() == 15  # reached, never beyond
    fills = res.trades
    assert len(fills) > 50
    signed = np.where(fills["side"] == "buy", 1, -1) * fills["lots"]
    assert int(signed.sum()) == int(e["inventory"].iloc[-1])


@pytest.fixture(scope="module")
def btc_capture(source_data: Path) -> TickData:
    return read_ticks(group_tick_files(source_data / "ticks")["spot_btcusdt"])


def test_real_capture_gives_plausible_fills(btc_capture: TickData) -> None:
    res = run_tick_backtest(btc_capture, quote=QuoteConfig(), risk=RiskConfig(), backtest=BacktestConfig())
    m, e, t = res.metrics, res.equity, res.trades
    assert 600 < m.bars < 700  # one row a second over the ~650 s capture
    # one float64 rounding at $1e5 per bar (~2e-11); 1e-6 dollars is below any fee a bug could drop
    np.testing.assert_allclose(e["cash"] + e["position"] * e["mark"], e["equity"], rtol=0, atol=1e-6)
    assert 10 <= m.n_trades == m.maker_fills <= 200
    notional = (t["price"] * t["quantity"]).sum()
    assert m.fees == pytest.approx(notional * 1e-4)  # 1 bp maker fee on every fill
    assert abs(m.pnl) < 50 and m.inventory_max_abs <= RiskConfig().max_position_lots
    assert m.spread_capture_bps is not None and 0 < m.spread_capture_bps < 10  # about half the ~6.6 bp spread
    assert (t["timestamp"] >= e["timestamp"].iloc[60]).all()  # nothing before the 60 s warm-up
    # the decomposition is keyed by the bar horizons (not the steps they became) and adds up
    d = m.decomposition
    assert d is not None and list(d.adverse) == [str(h) for h in BacktestConfig().markout_bars]
    assert d.horizon == min(BacktestConfig().markout_bars) and abs(d.residual) < 1e-6


def test_no_lookahead_on_real_capture(btc_capture: TickData) -> None:
    cut = int(btc_capture.bbo["local_ns"].iloc[len(btc_capture.bbo) // 2])
    later_bbo, later_trades = btc_capture.bbo["local_ns"] > cut, btc_capture.trades["local_ns"] > cut
    bbo, trades = btc_capture.bbo.copy(), btc_capture.trades.copy()
    bbo.loc[later_bbo, ["bid", "ask"]] = (bbo.loc[later_bbo, ["bid", "ask"]] * 1.01).round(2).to_numpy()
    trades.loc[later_trades, "side"] *= -1
    future = TickData(btc_capture.symbol, bbo, trades, btc_capture.tick_size, ())
    kw: dict = dict(quote=QuoteConfig(), risk=RiskConfig(), backtest=BacktestConfig())
    a, b = run_tick_backtest(btc_capture, **kw), run_tick_backtest(future, **kw)
    before = a.equity["timestamp"] <= pd.Timestamp(cut, tz="UTC")
    pd.testing.assert_frame_equal(a.equity[before], b.equity[before])
    early = a.trades["timestamp"] <= pd.Timestamp(cut, tz="UTC")
    pd.testing.assert_frame_equal(
        a.trades[early], b.trades[b.trades["timestamp"] <= pd.Timestamp(cut, tz="UTC")]
    )
    assert not a.equity["equity"].equals(b.equity["equity"])


def test_real_capture_agrees_with_bar_engine_per_minute(btc_capture: TickData) -> None:
    """Same params, one decision a minute, no requote on fill: the closest tick analogue of the
    bar engine. Compared: filled lots per minute and side over the minutes both engines quote
    (the bar engine on 1m bars built from the capture's trades by exchange time)."""
    bt = BacktestConfig(requote_on_fill=False)
    ticks = run_tick_backtest(
        btc_capture, quote=QuoteConfig(), risk=RiskConfig(), backtest=bt, decision_interval_ms=60_000
    )
    bars = trade_bars(btc_capture.trades)
    bars = bars.assign(timestamp=pd.to_datetime(bars["open_ns"], utc=True), interval="1m")
    bar = run_backtest(bars, quote=QuoteConfig(), risk=RiskConfig(), backtest=bt)
    first_quote = ticks.trades["timestamp"].min().floor("1min")
    minutes = bars["timestamp"][bars["timestamp"] >= first_quote]

    def per_minute(res: BacktestResult) -> pd.DataFrame:
        t = res.trades.assign(minute=res.trades["timestamp"].dt.floor("1min"))
        return (
            t.groupby(["minute", "side"])["lots"].sum().unstack(fill_value=0).reindex(minutes, fill_value=0)
        )

    a, b = per_minute(ticks), per_minute(bar)
    assert len(minutes) >= 6
    agree = (a[["buy", "sell"]].to_numpy() > 0) == (b[["buy", "sell"]].to_numpy() > 0)
    assert agree.mean() >= 0.75  # 14 of 16 minute-sides on the shipped capture
    assert 0.5 <= a.to_numpy().sum() / b.to_numpy().sum() <= 2.0
    spread_tick = (ticks.equity["ask"] - ticks.equity["bid"]).median()
    spread_bar = (bar.equity["ask"] - bar.equity["bid"]).median()
    # same quoting math; 10% because the tick engine estimates volatility from the mids at its grid
    # points and the bar engine from the bars: the same scale, not the same estimate
    assert spread_tick == pytest.approx(spread_bar, rel=0.1)


def test_cli_backtest_ticks_writes_the_bar_files(home: Path, source_data: Path) -> None:
    import json

    from typer.testing import CliRunner

    from flows.cli import app

    capture_file = source_data / "ticks" / "spot_btcusdt_20240809.gz"
    out = home / "bt"
    args = ["backtest", "--symbol", "BTCUSDT", "--ticks", str(capture_file), "--out", str(out), "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.stderr
    payload = json.loads(res.stdout)
    assert payload["series"] == "ticks:spot_btcusdt:1000ms"
    assert sorted(p.name for p in out.iterdir()) == [
        "equity.parquet",
        "equity.png",
        "metrics.json",
        "trades.parquet",
    ]
    assert "fee" in pd.read_parquet(out / "trades.parquet").columns
    folder = CliRunner().invoke(app, [*args[:4], str(source_data / "ticks"), *args[5:]])
    assert folder.exit_code != 0 and "2 captures of BTCUSDT" in folder.stderr
