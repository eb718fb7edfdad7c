"""Quoting: the A-S formulas by hand, and behaviour (inventory, volatility, signal).

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

import itertools
import math

import pytest

from trading.config import QuoteConfig
from trading.quoting import compute_quotes, reservation_price, total_spread

MID = 6_000_000.0  # ticks (60,000.00 at 0.01)
SIG2 = 3000.0**2  # ticks^2 per bar


def quotes(**kw: float | int | None) -> object:
    base: dict = dict(
        mid_ticks=MID, inventory_lots=0, sigma2_ticks=SIG2, quote=QuoteConfig(), max_position_lots=100
    )
    base.update(kw)
    return compute_quotes(**base)


def test_formulas_match_hand_computation() -> None:
    assert reservation_price(mid=100.0, inventory=2, gamma=0.1, sigma=2.0, tau=0.5) == pytest.approx(99.6)
    # 0.1*4*0.5 + (2/0.1)*ln(1 + 0.1/1.5)
    assert total_spread(gamma=0.1, sigma=2.0, tau=0.5, kappa=1.5) == pytest.approx(
        0.2 + 20 * math.log(1 + 0.1 / 1.5)
    )
    with pytest.raises(ValueError, match="gamma and kappa must be positive"):
        total_spread(gamma=0.0, sigma=2.0, tau=0.5, kappa=1.5)


def test_core_matches_formulas_and_rounds_outwards() -> None:
    cfg = QuoteConfig(gamma=1e-7, kappa=1e-3, horizon_bars=30)
    q = compute_quotes(mid_ticks=MID, inventory_lots=7, sigma2_ticks=SIG2, quote=cfg, max_position_lots=100)
    r = reservation_price(mid=MID, inventory=7, gamma=1e-7, sigma=3000.0, tau=30.0)
    delta = total_spread(gamma=1e-7, sigma=3000.0, tau=30.0, kappa=1e-3)
    assert q.reservation_ticks == pytest.approx(r)
    assert q.spread_ticks == pytest.approx(delta)
    assert q.bid_ticks == math.floor(r - delta / 2)
    assert q.ask_ticks == math.ceil(r + delta / 2)


def test_more_inventory_lowers_reservation_and_both_quotes() -> None:
    qs = [quotes(inventory_lots=q) for q in (-50, -10, 0, 10, 50)]
    res = [q.reservation_ticks for q in qs]
    assert res == sorted(res, reverse=True)
    assert res[0] > res[-1]
    assert all(a.bid_ticks > b.bid_ticks and a.ask_ticks > b.ask_ticks for a, b in itertools.pairwise(qs))


def test_higher_sigma_widens_the_spread() -> None:
    spreads = [quotes(sigma2_ticks=s**2).spread_ticks for s in (1000.0, 3000.0, 9000.0)]
    assert spreads[0] < spreads[1] < spreads[2]


def test_positive_predicted_return_shifts_quotes_up() -> None:
    flat, up, down = quotes(), quotes(pred_return=0.001), quotes(pred_return=-0.001)
    assert up.bid_ticks - flat.bid_ticks == pytest.approx(0.001 * MID, abs=1)  # quotes round to whole ticks
    assert up.ask_ticks > flat.ask_ticks
    assert down.ask_ticks < flat.ask_ticks


def test_prob_up_skews_and_low_confidence_widens() -> None:
    cfg = QuoteConfig(prob_skew_bps=2.0, confidence_widen=1.0)
    sure_up = quotes(quote=cfg, prob_up=1.0)
    unsure = quotes(quote=cfg, prob_up=0.5)
    assert sure_up.reservation_ticks == pytest.approx(MID * (1 + 2e-4))
    assert unsure.spread_ticks == pytest.approx(2 * sure_up.spread_ticks)


def test_pred_vol_only_widens_when_above_realised() -> None:
    base = quotes()
    high = quotes(pred_vol=2 * 3000.0 / MID)
    low = quotes(pred_vol=0.5 * 3000.0 / MID)
    assert high.spread_ticks > base.spread_ticks
    assert low.spread_ticks == pytest.approx(base.spread_ticks)


def test_spread_bounds_and_sizes() -> None:
    tight = quotes(quote=QuoteConfig(min_spread_ticks=50_000))
    assert tight.ask_ticks - tight.bid_ticks >= 50_000
    capped = quotes(quote=QuoteConfig(max_spread_ticks=10))
    assert capped.ask_ticks - capped.bid_ticks <= 10
    at_limit = quotes(inventory_lots=95)
    assert (at_limit.bid_lots, at_limit.ask_lots) == (5, 10)
    assert quotes(size_cap_lots=3.7).bid_lots == 3
    with pytest.raises(ValueError, match="max_spread_ticks"):
        QuoteConfig(min_spread_ticks=20, max_spread_ticks=10)


def test_a_half_spread_floor_in_bps_of_the_mid_widens_the_quote_and_zero_changes_nothing() -> None:
    base = quotes()
    assert quotes(quote=QuoteConfig(min_half_spread_bps=0.0)) == base  # off: the same quote, bit for bit
    floored = quotes(quote=QuoteConfig(min_half_spread_bps=20.0))  # 20 bps of 60,000.00 = 120.00 a side
    assert floored.spread_ticks == pytest.approx(2 * 20e-4 * MID) and floored.spread_ticks > base.spread_ticks
    assert MID - floored.bid_ticks >= 12_000 and floored.ask_ticks - MID >= 12_000
    capped = quotes(quote=QuoteConfig(min_half_spread_bps=20.0, max_spread_ticks=5_000))
    assert capped.ask_ticks - capped.bid_ticks <= 5_000  # max_spread_ticks still caps it
    with pytest.raises(ValueError, match="less than or equal to 1000"):
        QuoteConfig(min_half_spread_bps=5_000)


def test_finite_horizon_spread_narrows_towards_session_end() -> None:
    cfg = QuoteConfig(horizon="finite", session_bars=100)
    early = quotes(quote=cfg, bar_index=0, inventory_lots=10)
    late = quotes(quote=cfg, bar_index=99, inventory_lots=10)
    assert late.spread_ticks < early.spread_ticks
    assert late.reservation_ticks > early.reservation_ticks  # inventory penalty fades with tau


def test_book_pressure_shifts_towards_the_heavy_side() -> None:
    cfg = QuoteConfig(pressure_ticks=100.0)
    assert quotes(quote=cfg, pressure=1.0).reservation_ticks == pytest.approx(MID + 100.0)
    with pytest.raises(ValueError, match="mid_ticks must be > 0"):
        quotes(mid_ticks=0.0)


def test_the_decision_filters_sides_by_risk_state_and_never_crosses_the_touch() -> None:
    from trading.risk import RiskStatus

    free = quotes()
    assert free.bid_lots == free.ask_lots == 10  # type: ignore[attr-defined]
    long_reducing = quotes(inventory_lots=50, status=RiskStatus.REDUCING)
    assert long_reducing.bid_lots == 0 and long_reducing.ask_lots == 10  # type: ignore[attr-defined]
    short_reducing = quotes(inventory_lots=-50, status=RiskStatus.REDUCING)
    assert short_reducing.bid_lots == 10 and short_reducing.ask_lots == 0  # type: ignore[attr-defined]
    halted = quotes(status=RiskStatus.HALTED)
    assert (halted.bid_lots, halted.ask_lots, halted.bid_ticks, halted.ask_ticks) == (0, 0, 0, 0)  # type: ignore[attr-defined]
    # the book moved away from the mid the quote was priced on: post-only keeps each quote one tick
    # inside the far touch instead of sending an order that would cross and be rejected
    below = quotes(best_bid_ticks=int(MID) - 10_002, best_ask_ticks=int(MID) - 10_000)
    assert below.bid_ticks == int(MID) - 10_001 < free.bid_ticks  # type: ignore[attr-defined]
    assert below.ask_ticks == free.ask_ticks  # type: ignore[attr-defined]
    above = quotes(best_bid_ticks=int(MID) + 10_000, best_ask_ticks=int(MID) + 10_002)
    assert above.ask_ticks == int(MID) + 10_001 > free.ask_ticks  # type: ignore[attr-defined]
    assert above.bid_ticks == free.bid_ticks  # type: ignore[attr-defined]
