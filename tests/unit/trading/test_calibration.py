"""Fill-intensity calibration: recovery of a known A and kappa, hand-computed bar-vs-tick fills,
and the fit on the shipped BTCUSDT capture."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trading.calibration import calibrate, compare_bar_tick, fit_intensity, plot_intensity
from trading.ticks import TickData, group_tick_files, read_ticks

S = 1_000_000_000


def tick_data(trades: list[tuple[int, float, int]], *, tick: float = 0.01, bid: float = 100.0) -> TickData:
    """Trades as (time ns, price, side) on one clock; a constant one-tick BBO from time 0."""
    t = pd.DataFrame(trades, columns=["local_ns", "price", "side"]).assign(qty=0.5)
    t["exch_ns"] = t["local_ns"]
    bbo = pd.DataFrame(
        {"local_ns": [0], "bid": [bid], "ask": [bid + tick], "bid_qty": [1.0], "ask_qty": [1.0]}
    )
    return TickData(
        symbol="TEST",
        bbo=bbo,
        trades=t[["local_ns", "exch_ns", "price", "qty", "side"]],
        tick_size=tick,
        files=(),
    )


def test_fit_recovers_a_known_poisson_intensity() -> None:
    a, kappa, seconds, mid = 0.4, 0.02, 30_000, 1000.5  # fills/s/side, 1/tick, capture length, ticks
    rng = np.random.default_rng(7)
    rows = []
    for side in (-1, 1):  # Poisson arrivals, exponential depth: reach >= delta at rate a*exp(-kappa*delta)
        n = rng.poisson(a * seconds)
        times = np.sort(rng.integers(1, seconds * S, n))
        depth = rng.exponential(1 / kappa, n)
        rows += [(int(t), mid + side * d, side) for t, d in zip(times, depth, strict=True)]
    data = tick_data(sorted(rows), tick=1.0, bid=1000.0)
    fit = fit_intensity(data, window_s=1.0, reference="mid")
    # ~12,000 simulated fills per side (a x seconds); the fit's error is dominated by the deep,
    # rarely-filled distances (a few hundred fills): 8% on kappa and 10% on A are ~3 standard errors.
    assert fit.kappa_per_tick == pytest.approx(kappa, rel=0.08)
    assert fit.a_per_s == pytest.approx(a, rel=0.1)
    assert fit.r2 > 0.97
    assert fit.fills == sorted(fit.fills, reverse=True)  # a farther quote never fills more often


def test_bar_rule_against_tick_rule_by_hand() -> None:
    m = 60 * S
    trades = [
        (30 * S, 100.00, -1),  # minute 0: partial, dropped
        (m + 1, 100.00, -1),  # minute 1 closes at 100.00
        (2 * m + 1, 99.97, -1),
        (2 * m + 2, 99.95, 1),
        (2 * m + 3, 100.01, 1),  # low 99.95 is a BUYER
        (3 * m + 1, 100.00, -1),  # minute 3 (ref = 100.01): a seller at 100.00
        (4 * m + 1, 100.00, -1),  # minute 4: partial, dropped
    ]
    cmp = compare_bar_tick(tick_data(trades), delta_ticks=[1, 3], haircut_ticks=1)
    assert (cmp.bars, cmp.quotes) == (2, 4)
    # delta 1, minute 2: bid 99.99 filled by bar (low 99.95) and tick (seller 99.97 <= 99.98); the ask
    # 100.01 only at the touch. Minute 3: bid 100.00 only at the touch (seller at exactly 100.00).
    assert (cmp.bar_fills[0], cmp.tick_fills[0], cmp.touch_fills[0], cmp.agree[0]) == (1, 1, 3, 4)
    # delta 3, minute 2: bid 99.97: the bar low (a buyer) is through it by 2 ticks, no seller was
    assert (cmp.bar_fills[1], cmp.tick_fills[1], cmp.touch_fills[1], cmp.agree[1]) == (1, 0, 1, 3)
    assert cmp.model_prob is None
    with pytest.raises(ValueError, match=">= 1"):
        compare_bar_tick(tick_data(trades), delta_ticks=[0])


def test_shipped_btcusdt_capture_fits_and_bar_rule_matches_ticks(ticks_dir: Path, tmp_path: Path) -> None:
    data = read_ticks(group_tick_files(ticks_dir)["spot_btcusdt"])
    cal = calibrate("spot_btcusdt", data, window_s=60.0, stride_s=2.0)
    mid = cal.fits["mid"]
    assert mid.r2 > 0.95 and 1e-4 < mid.kappa_per_tick < 1e-3 and 0.01 < mid.a_per_s < 0.1
    assert cal.fits["touch"].kappa_per_tick == pytest.approx(mid.kappa_per_tick, rel=0.05)
    cmp = cal.bar_vs_tick
    assert (
        cmp.bars == 9 and cmp.bar_fills == cmp.tick_fills and cmp.agree == [cmp.quotes] * len(cmp.delta_ticks)
    )
    assert all(t >= b for t, b in zip(cmp.touch_fills, cmp.tick_fills, strict=True))
    assert cmp.model_prob is not None and all(0 <= p <= 1 for p in cmp.model_prob)
    assert math.isclose(mid.kappa_per_price, mid.kappa_per_tick / 0.01)
    png = plot_intensity(cal.fits, tmp_path / "fit.png")
    assert png.read_bytes()[:4] == b"\x89PNG"
