"""PnL decomposition: each part's sign and size by hand, the identity on real bars, additivity.

Money here is quote ccy. The engine keeps cash near 100,000 in float64, whose spacing there is
1.5e-11, so an identity checked against the equity curve holds to ~1e-11 per operation; the
tolerances of 1e-8 (hand cases) and 1e-6 (a day of ~1,000 fills) leave room for that rounding
and are still far below a cent, the size of any real part or of a missed fee.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from trading_helpers import make_bars

from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.pnl import PnlDecomposition, combine, decompose_pnl

Q = QuoteConfig(min_spread_ticks=20, max_spread_ticks=20, order_lots=10)
B = BacktestConfig(
    tick_size=0.01, lot_size=0.01, maker_fee_bps=2.0, latency_ms=0, queue_haircut_ticks=1, markout_bars=(1, 2)
)


def parts_sum(d: PnlDecomposition) -> float:
    return d.spread + d.adverse[str(d.horizon)] + d.inventory + d.fees + d.residual


def test_a_bid_fill_marked_against_then_held_through_a_fall_by_hand() -> None:
    # bar 3 trades down to 99.80: the bid at 99.90 (mid 100 - 10 ticks) buys 10 lots = 0.1 BTC;
    # then the price falls 5 ticks a bar, never through the bid again, so the 0.1 BTC is held
    close = [100.0] * 4 + [99.95, 99.90, 99.85, 99.80]
    low = [100.0, 100.0, 100.0, 99.80, *close[4:]]
    res = run_backtest(make_bars(close=close, low=low), quote=Q, risk=RiskConfig(), backtest=B)
    assert len(res.trades) == 1
    d = res.metrics.decomposition
    assert d is not None and d.horizon == 1
    assert d.spread == pytest.approx(0.1 * (100.0 - 99.90))  # bought 10 ticks under the mid: +0.01
    assert d.adverse["1"] == pytest.approx(0.1 * (99.95 - 100.0))  # one bar later 5 ticks lower: -0.005
    assert d.adverse["2"] == pytest.approx(0.1 * (99.90 - 100.0))
    assert d.inventory == pytest.approx(0.1 * (99.80 - 99.95))  # held from bar 4 to the end: -0.015
    assert d.fees == pytest.approx(-0.1 * 99.90 * 2e-4)  # 2 bps maker fee paid
    assert d.net == pytest.approx(res.metrics.pnl, abs=1e-12)
    assert d.net == pytest.approx(0.1 * (99.80 - 99.90) - 0.1 * 99.90 * 2e-4)
    assert abs(d.residual) < 1e-8 and parts_sum(d) == pytest.approx(d.net, abs=1e-12)


def test_a_sell_picked_off_with_a_rebate_and_a_horizon_past_the_end() -> None:
    # sell 2 lots of 0.5 at 101 (mid 100.5) at step 1; the mark rises to 103 and ends at 102
    d = decompose_pnl(
        step=[1],
        side=[-1],
        price_ticks=[101],
        lots=[2],
        fee=[-0.05],
        ref_mid_ticks=[100.5],
        marks_ticks=[100, 101, 103, 102],
        tick=1.0,
        lot=0.5,
        horizons=(1, 5),
    )
    assert d.spread == pytest.approx(0.5)  # 1 BTC sold half a tick over the mid
    assert d.adverse == {"1": pytest.approx(-2.5), "5": pytest.approx(-1.5)}  # 5 steps: capped at the end
    assert d.inventory == pytest.approx(1.0)  # short from 103 down to 102 earns 1
    assert d.fees == pytest.approx(0.05)  # a rebate contributes
    assert d.net == pytest.approx(1.0 * (101 - 102) + 0.05) and abs(d.residual) < 1e-12


def test_no_fill_no_pnl_and_bad_inputs_raise() -> None:
    empty = decompose_pnl(
        step=[],
        side=[],
        price_ticks=[],
        lots=[],
        fee=[],
        ref_mid_ticks=[],
        marks_ticks=[1, 2],
        tick=1,
        lot=1,
        horizons=(1,),
    )
    assert (empty.net, empty.spread, empty.inventory, empty.adverse) == (0.0, 0.0, 0.0, {"1": 0.0})
    assert str(empty.fees) == "0.0"  # no fee paid reads 0.0 in JSON, not -0.0
    kw = dict(side=[1], price_ticks=[1], lots=[1], fee=[0.0], ref_mid_ticks=[1.0], tick=1.0, lot=1.0)
    with pytest.raises(ValueError, match="horizons must be positive"):
        decompose_pnl(step=[0], marks_ticks=[1], horizons=(0, 5), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"fill steps must lie in \[0, 2\)"):
        decompose_pnl(step=[2], marks_ticks=[1, 1], horizons=(1,), **kw)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="differ in length"):
        decompose_pnl(step=[0, 1], marks_ticks=[1, 1], horizons=(1,), **kw)  # type: ignore[arg-type]


fills = st.integers(min_value=0, max_value=30).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 19), min_size=n, max_size=n),
        st.lists(st.sampled_from([-1, 1]), min_size=n, max_size=n),
        st.lists(st.integers(9_000, 11_000), min_size=n, max_size=n),
        st.lists(st.integers(1, 50), min_size=n, max_size=n),
        st.lists(st.floats(-0.01, 0.05, allow_nan=False), min_size=n, max_size=n),
        st.lists(st.integers(9_000, 11_000), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(
    fills=fills, marks=st.lists(st.integers(9_000, 11_000), min_size=20, max_size=20), cut=st.integers(0, 30)
)
def test_parts_add_up_at_every_horizon_and_split_additively(fills: tuple, marks: list[int], cut: int) -> None:  # type: ignore[type-arg]
    step, side, price, lots, fee, ref = (np.asarray(a) for a in fills)
    kw = dict(marks_ticks=marks, tick=0.01, lot=0.001)

    def dec(sel: slice, horizons: tuple[int, ...]) -> PnlDecomposition:
        return decompose_pnl(
            step=step[sel],
            side=side[sel],
            price_ticks=price[sel],
            lots=lots[sel],
            fee=fee[sel],
            ref_mid_ticks=ref[sel],
            horizons=horizons,
            **kw,  # type: ignore[arg-type]
        )

    whole = dec(slice(None), (1, 5, 15))
    own_net = float(np.sum(side * lots * 0.001 * (marks[-1] - price) * 0.01) - np.sum(fee))
    assert whole.net == pytest.approx(own_net, abs=1e-9) and abs(whole.residual) < 1e-9
    for h in (5, 15):  # another horizon moves PnL between adverse and inventory, never the total
        other = dec(slice(None), (h,))
        assert other.adverse[str(h)] == pytest.approx(whole.adverse[str(h)], abs=1e-9)
        assert other.spread + other.adverse[str(h)] + other.inventory + other.fees == pytest.approx(
            own_net, abs=1e-9
        )
    # the worker splits a book by version: the parts of a split add up to the parts of the whole
    joined = combine([dec(slice(None, cut), (1, 5, 15)), dec(slice(cut, None), (1, 5, 15))])
    for key, value in whole.flat().items():
        assert joined.flat()[key] == pytest.approx(value, abs=1e-9)


@pytest.mark.parametrize("strategy", ["as", "model"])
def test_the_identity_on_a_real_day_of_btc_minutes(btc_bars: pd.DataFrame, strategy: str) -> None:
    day = btc_bars.iloc[:1440].reset_index(drop=True)
    close = day["close"].to_numpy(float)
    # a signal with some skill (the next bar's return, scaled): the model quoter skews, fills differ
    signals = pd.DataFrame(
        {"timestamp": day["timestamp"], "pred_return": np.append(np.diff(np.log(close)), 0.0)}
    )
    bt = BacktestConfig()
    res = run_backtest(
        day, quote=QuoteConfig(), risk=RiskConfig(), backtest=bt, signals=signals, strategy=strategy
    )  # type: ignore[arg-type]
    d = res.metrics.decomposition
    assert d is not None and res.metrics.n_trades > 100  # a day of minutes quotes and fills: content
    assert tuple(d.adverse) == tuple(str(h) for h in bt.markout_bars) and d.horizon == min(bt.markout_bars)
    assert d.net == res.metrics.pnl
    assert abs(d.residual) < 1e-6, d  # the equity curve's own PnL, rebuilt from the fills
    assert d.fees == pytest.approx(-res.metrics.fees)
    assert d.spread > 0  # a maker buys under and sells over the mid it quoted around
