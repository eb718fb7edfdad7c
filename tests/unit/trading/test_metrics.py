"""Metrics by hand: Sharpe/Sortino basis, drawdown from the peak, markouts.

Hand-computed float64 values are compared with ``pytest.approx``'s default (relative 1e-6): the
round-off of these few operations is ~1e-15, so the default only absorbs the rounding of the
decimal constants written here, and a wrong formula or a missed fee is off by far more.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from trading.metrics import FillRecords, annualised_ratios, markouts_bps, max_drawdown_pct

MINUTE_NS = 60_000_000_000


def test_sharpe_and_sortino_on_a_365_day_basis() -> None:
    eq = np.array([100.0, 101.0, 100.0, 102.0])
    r = np.diff(eq) / eq[:-1]
    scale = math.sqrt(365 * 1440)
    sharpe, sortino = annualised_ratios(eq, bar_ns=MINUTE_NS)
    assert sharpe == pytest.approx(r.mean() / r.std(ddof=1) * scale)
    assert sortino == pytest.approx(r.mean() / math.sqrt((r[1] ** 2) / 3) * scale)
    assert annualised_ratios(np.full(5, 100.0), bar_ns=MINUTE_NS) == (None, None)
    with pytest.raises(ValueError, match="at least 2"):
        annualised_ratios(np.array([1.0]), bar_ns=MINUTE_NS)


def test_drawdown_from_running_peak() -> None:
    assert max_drawdown_pct(np.array([100.0, 120.0, 90.0, 130.0])) == pytest.approx(25.0)


def test_markouts_sign_and_horizon() -> None:
    close = np.array([100, 100, 110, 90], dtype=np.int64)
    fills = FillRecords(
        bar=np.array([0, 1]),
        side=np.array([1, -1]),
        price_ticks=np.array([100, 100]),
        lots=np.array([1, 3]),
        fee=np.zeros(2),
        maker=np.array([1, 1]),
        ref_mid_ticks=np.array([100.0, 100.0]),
    )
    m = markouts_bps(fills, close, (1, 2, 5))
    assert m["1"] == pytest.approx((1 * 0 + 3 * (-1000.0)) / 4)  # the sell at 100 then 110: adverse
    assert m["2"] == pytest.approx((1 * 1000.0 + 3 * 1000.0) / 4)
    assert m["5"] is None
