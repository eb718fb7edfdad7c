"""Fill-model calibration on tick captures: ``lambda(delta) = A * exp(-kappa * delta)``, and the
bar-level fill rule of the engine checked against tick-level fills on the same minutes.

Intensity (:func:`fit_intensity`). A hypothetical quote rests ``delta`` ticks from a reference
price taken at the start of a window of ``window_s`` seconds: the mid (the A-S convention, what
``quote.kappa`` means) or the same-side touch (the bid for a resting bid). It is filled in the
window when an aggressive trade of the right side reaches it: a seller trading at or below
``ref - delta`` for the bid, a buyer at or above ``ref + delta`` for the ask. Windows start every
``stride_s`` seconds on the capture clock. ``P(delta)`` is the share of window-sides with a fill;
under the Poisson model ``P = 1 - exp(-lambda * window)``, so ``lambda(delta) = -ln(1 - P) /
window`` per side per second, and ``ln lambda = ln A - kappa * delta`` is fitted by least
squares over the ``delta`` with at least ``min_count`` fills and ``P < 1``. Units: ``delta`` and
``1/kappa`` in ticks of the instrument, ``A`` in fills per second per side.

Bar vs tick (:func:`compare_bar_tick`). Trades are binned into bars by exchange time (complete
bars only). In each bar a bid and an ask rest ``delta`` ticks from the previous bar's close. The
engine's bar rule (:func:`trading.fill_engine.bar_crosses`: ``low <= bid - haircut``) is compared
with the tick rule (a trade with the seller as aggressor at ``<= bid - haircut``; mirrored for
the ask) and with the optimistic touch rule (``<= bid``, front of the queue).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.errors import DataError
from trading.fill_engine import bar_crosses
from trading.ticks import TickData, trade_bars

NS = 1_000_000_000


@dataclass(frozen=True)
class IntensityFit:
    """A fitted ``lambda(delta) = A * exp(-kappa * delta)`` with its diagnostics.

    ``delta_ticks`` is the grid; ``fills`` the window-sides filled at each delta (of
    ``window_sides``); ``fill_prob`` their share; ``rate_per_s`` = ``-ln(1 - P) / window_s``;
    ``used`` marks the points in the fit. ``kappa_per_tick`` is 1/tick, ``a_per_s`` fills per
    second per side, ``r2`` the fit's R^2 in log space; ``kappa_per_price`` is kappa / tick_size.
    """

    symbol: str
    reference: str
    window_s: float
    stride_s: float
    tick_size: float
    window_sides: int
    delta_ticks: list[float]
    fills: list[int]
    fill_prob: list[float]
    rate_per_s: list[float]
    used: list[bool]
    a_per_s: float
    kappa_per_tick: float
    kappa_per_price: float
    r2: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"{self.symbol} ref={self.reference} window={self.window_s:g}s: A={self.a_per_s:.4g}/s/side, "
            f"kappa={self.kappa_per_tick:.4g}/tick (1/kappa={1 / self.kappa_per_tick:.1f} ticks), "
            f"R2={self.r2:.3f}, {sum(self.used)} points, {self.window_sides} window-sides"
        )


def _reference(data: TickData, starts: np.ndarray, reference: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference prices (bid side, ask side) in ticks at each window start (last BBO at or before)."""
    bbo_ns = data.bbo["local_ns"].to_numpy()
    idx = np.searchsorted(bbo_ns, starts, side="right") - 1
    bid = data.bbo["bid"].to_numpy()[idx] / data.tick_size
    ask = data.bbo["ask"].to_numpy()[idx] / data.tick_size
    if reference == "mid":
        mid = 0.5 * (bid + ask)
        return mid, mid
    if reference == "touch":
        return bid, ask
    raise ValueError(f"reference must be 'mid' or 'touch', got {reference!r}")


def window_reach(
    data: TickData, *, window_s: float, stride_s: float, reference: str = "mid"
) -> tuple[np.ndarray, np.ndarray]:
    """How far past the reference the aggressive trades of each window reached, ticks.

    Returns:
        ``(bid_reach, ask_reach)``, one value per window: ``ref - min seller price`` and
        ``max buyer price - ref`` in ticks, ``-inf`` when no trade of that side.

    Raises:
        ValueError: non-positive window or stride, or an unknown reference.
        DataError: the capture is shorter than one window.
    """
    if window_s <= 0 or stride_s <= 0:
        raise ValueError(f"window_s and stride_s must be positive, got {window_s}, {stride_s}")
    first = int(data.bbo["local_ns"].iloc[0])
    last = int(data.trades["local_ns"].iloc[-1])
    win, stride = round(window_s * NS), round(stride_s * NS)
    starts = np.arange(first, last - win + 1, stride, dtype=np.int64)
    if len(starts) == 0:
        raise DataError(
            f"{data.symbol}: capture of {data.duration_s:.0f} s is shorter than one {window_s} s window"
        )
    ref_bid, ref_ask = _reference(data, starts, reference)
    t_ns = data.trades["local_ns"].to_numpy()
    price = data.trades["price"].to_numpy() / data.tick_size
    side = data.trades["side"].to_numpy()
    lo_i = np.searchsorted(t_ns, starts, side="right")  # trades strictly after the start ...
    hi_i = np.searchsorted(t_ns, starts + win, side="right")  # ... up to and including the end
    sell_px = np.where(side < 0, price, np.inf)
    buy_px = np.where(side > 0, price, -np.inf)
    min_sell = np.array([sell_px[a:b].min(initial=np.inf) for a, b in zip(lo_i, hi_i, strict=True)])
    max_buy = np.array([buy_px[a:b].max(initial=-np.inf) for a, b in zip(lo_i, hi_i, strict=True)])
    return ref_bid - min_sell, max_buy - ref_ask


def fit_intensity(
    data: TickData,
    *,
    window_s: float = 1.0,
    stride_s: float | None = None,
    reference: str = "mid",
    n_grid: int = 25,
    min_count: int = 10,
) -> IntensityFit:
    """Fit ``lambda(delta) = A * exp(-kappa * delta)`` from aggressive trades and the BBO.

    Args:
        data: one instrument's capture.
        window_s: how long a quote rests before it is re-centred, seconds.
        stride_s: spacing of window starts, seconds (default: ``window_s``, no overlap).
        reference: ``"mid"`` or ``"touch"``.
        n_grid: number of delta points, evenly spaced from 0 to the deepest delta with
            ``min_count`` fills.
        min_count: fewest fills for a delta to enter the fit.

    Returns:
        The fit and its per-delta diagnostics.

    Raises:
        DataError: fewer than three usable grid points.
    """
    bid_reach, ask_reach = window_reach(
        data, window_s=window_s, stride_s=stride_s or window_s, reference=reference
    )
    reach = np.concatenate([bid_reach, ask_reach])
    finite = np.sort(reach[np.isfinite(reach)])
    if len(finite) < min_count:
        raise DataError(f"{data.symbol}: {len(finite)} filled window-sides, need at least {min_count}")
    deepest = max(float(finite[-min_count]), 1.0)
    grid = np.unique(np.round(np.linspace(0.0, deepest, n_grid)))
    if reference == "mid":  # a quote at the mid is the same as half a tick inside: start there
        grid = np.unique(np.concatenate([[0.5], grid[grid > 0.5]]))
    fills = np.array([(reach >= d).sum() for d in grid])
    prob = fills / len(reach)
    with np.errstate(divide="ignore"):
        rate = -np.log1p(-prob) / window_s
    used = (fills >= min_count) & (prob < 1.0)
    if used.sum() < 3:
        raise DataError(f"{data.symbol}: {int(used.sum())} grid points with >= {min_count} fills; need 3")
    slope, intercept = np.polyfit(grid[used], np.log(rate[used]), 1)
    pred = intercept + slope * grid[used]
    resid = np.log(rate[used]) - pred
    total = np.log(rate[used]) - np.log(rate[used]).mean()
    r2 = 1.0 - float(resid @ resid) / float(total @ total) if float(total @ total) > 0 else math.nan
    return IntensityFit(
        symbol=data.symbol,
        reference=reference,
        window_s=window_s,
        stride_s=stride_s or window_s,
        tick_size=data.tick_size,
        window_sides=len(reach),
        delta_ticks=grid.tolist(),
        fills=fills.tolist(),
        fill_prob=prob.tolist(),
        rate_per_s=[float(r) if math.isfinite(r) else math.inf for r in rate],
        used=used.tolist(),
        a_per_s=float(math.exp(intercept)),
        kappa_per_tick=float(-slope),
        kappa_per_price=float(-slope / data.tick_size),
        r2=r2,
    )


@dataclass(frozen=True)
class BarTickComparison:
    """Fill counts per quote distance under the bar rule and the tick rules, on the same bars.

    Per distance (ticks from the previous close): ``bar_fills`` (engine rule with
    ``haircut_ticks``), ``tick_fills`` (aggressor-side trades through by the same haircut),
    ``touch_fills`` (aggressor-side trades at or through the quote), ``model_prob`` (the Poisson
    fill probability ``1 - exp(-A exp(-kappa delta) * bar_s)`` of the given fit, None without
    one); each count is over ``quotes`` = 2 x bars. ``agree`` counts quote-bars where the bar
    and the tick rule decide the same; ``both_sides`` the bars where the bar rule fills bid and
    ask (their order inside the bar is what a bar cannot tell); ``through_qty_median`` the median
    aggressor quantity that traded through a filled quote, base ccy (what a partial-fill cap
    would have to respect).
    """

    symbol: str
    bar_s: float
    bars: int
    haircut_ticks: int
    delta_ticks: list[int]
    quotes: int
    bar_fills: list[int]
    tick_fills: list[int]
    touch_fills: list[int]
    agree: list[int]
    both_sides: list[int]
    through_qty_median: list[float | None]
    model_prob: list[float] | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        rows = [
            f"{self.symbol}: {self.bars} bars of {self.bar_s:g} s, haircut {self.haircut_ticks} tick(s); "
            "P(fill) per quote-bar",
            f"{'delta':>7} {'bar':>6} {'tick':>6} {'touch':>6} {'model':>6} {'agree':>6} {'both':>5} {'qty_thru':>9}",
        ]
        for i, d in enumerate(self.delta_ticks):
            model = "   n/a" if self.model_prob is None else f"{self.model_prob[i]:6.3f}"
            qty = self.through_qty_median[i]
            rows.append(
                f"{d:>7} {self.bar_fills[i] / self.quotes:6.3f} {self.tick_fills[i] / self.quotes:6.3f} "
                f"{self.touch_fills[i] / self.quotes:6.3f} {model} {self.agree[i]:>6} {self.both_sides[i]:>5} "
                f"{'-' if qty is None else f'{qty:9.4f}':>9}"
            )
        return "\n".join(rows)


def compare_bar_tick(
    data: TickData,
    *,
    delta_ticks: list[int],
    haircut_ticks: int = 1,
    bar_s: float = 60.0,
    fit: IntensityFit | None = None,
) -> BarTickComparison:
    """Place quotes ``delta`` ticks around each bar's previous close; count bar and tick fills.

    Args:
        data: one instrument's capture.
        delta_ticks: quote distances from the previous close, ticks (>= 1, as the engine never
            quotes at or through the last price).
        haircut_ticks: the engine's queue haircut (``backtest.queue_haircut_ticks``).
        bar_s: bar length, seconds.
        fit: an intensity fit (reference mid, window ``bar_s``) for the model column.

    Returns:
        Counts per distance.

    Raises:
        ValueError: a distance below 1 tick.
        DataError: fewer than two complete bars.
    """
    if any(d < 1 for d in delta_ticks):
        raise ValueError(f"delta_ticks must be >= 1, got {delta_ticks}")
    bar_ns = round(bar_s * NS)
    bars = trade_bars(data.trades, bar_ns=bar_ns)
    tick = data.tick_size
    trades = data.trades.assign(bar=data.trades["exch_ns"].to_numpy() // bar_ns * bar_ns)
    sells, buys = trades[trades["side"] < 0], trades[trades["side"] > 0]
    low_sell = sells.groupby("bar")["price"].min()
    high_buy = buys.groupby("bar")["price"].max()
    cur, prev = bars.iloc[1:], bars.iloc[:-1]
    ok = cur["open_ns"].to_numpy() - prev["open_ns"].to_numpy() == bar_ns
    cur, ref = cur[ok], np.rint(prev["close"].to_numpy()[ok] / tick).astype(np.int64)
    if len(cur) < 2:
        raise DataError(f"{data.symbol}: {len(cur)} consecutive complete bars of {bar_s:g} s; need 2")
    low, high = (
        np.rint(cur["low"].to_numpy() / tick).astype(np.int64),
        np.rint(cur["high"].to_numpy() / tick).astype(np.int64),
    )
    sell = np.rint(low_sell.reindex(cur["open_ns"]).to_numpy(dtype=float) / tick)  # NaN: no seller
    buy = np.rint(high_buy.reindex(cur["open_ns"]).to_numpy(dtype=float) / tick)
    h = haircut_ticks
    out: dict[str, list[int]] = {"bar": [], "tick": [], "touch": [], "agree": [], "both": []}
    through_qty: list[float | None] = []
    for d in delta_ticks:
        bid, ask = ref - d, ref + d
        through_qty.append(
            _median_through_qty(sells, buys, cur["open_ns"].to_numpy(), bid - h, ask + h, tick)
        )
        bar_bid = np.array(
            [bar_crosses(lo, hi, b, a, h)[0] for lo, hi, b, a in zip(low, high, bid, ask, strict=True)]
        )
        bar_ask = np.array(
            [bar_crosses(lo, hi, b, a, h)[1] for lo, hi, b, a in zip(low, high, bid, ask, strict=True)]
        )
        tick_bid, tick_ask = sell <= bid - h, buy >= ask + h
        out["bar"].append(int(bar_bid.sum() + bar_ask.sum()))
        out["tick"].append(int(tick_bid.sum() + tick_ask.sum()))
        out["touch"].append(int((sell <= bid).sum() + (buy >= ask).sum()))
        out["agree"].append(int((bar_bid == tick_bid).sum() + (bar_ask == tick_ask).sum()))
        out["both"].append(int((bar_bid & bar_ask).sum()))
    model = None
    if fit is not None:
        model = [
            float(1 - math.exp(-fit.a_per_s * math.exp(-fit.kappa_per_tick * d) * bar_s)) for d in delta_ticks
        ]
    return BarTickComparison(
        symbol=data.symbol,
        bar_s=bar_s,
        bars=len(cur),
        haircut_ticks=h,
        delta_ticks=list(delta_ticks),
        quotes=2 * len(cur),
        bar_fills=out["bar"],
        tick_fills=out["tick"],
        touch_fills=out["touch"],
        agree=out["agree"],
        both_sides=out["both"],
        through_qty_median=through_qty,
        model_prob=model,
    )


def _median_through_qty(
    sells: pd.DataFrame,
    buys: pd.DataFrame,
    opens: np.ndarray,
    bid_px: np.ndarray,
    ask_px: np.ndarray,
    tick: float,
) -> float | None:
    """Median over filled quote-bars of the aggressor quantity traded through the quote, base ccy."""
    qty = []
    for frame, level, sign in ((sells, bid_px, -1), (buys, ask_px, 1)):
        px = np.rint(frame["price"].to_numpy() / tick)
        where = np.searchsorted(opens, frame["bar"].to_numpy())
        inside = (where < len(opens)) & (opens[np.minimum(where, len(opens) - 1)] == frame["bar"].to_numpy())
        lvl = level[np.minimum(where, len(opens) - 1)]
        through = inside & (sign * (px - lvl) >= 0)
        per_bar = np.bincount(where[through], weights=frame["qty"].to_numpy()[through], minlength=len(opens))
        qty += per_bar[per_bar > 0].tolist()
    return float(np.median(qty)) if qty else None


def plot_intensity(fits: dict[str, IntensityFit], path: Path) -> Path:
    """Log rate against delta with the fitted line, one panel per labelled fit (two per row).

    Returns:
        ``path``, a PNG.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = -(-len(fits) // 2)
    fig, grid = plt.subplots(rows, 2, figsize=(11, 3.6 * rows), squeeze=False)
    axes = grid.reshape(-1)
    for ax in axes[len(fits) :]:
        ax.set_visible(False)
    for ax, (label, fit) in zip(axes, fits.items(), strict=False):
        d = np.asarray(fit.delta_ticks)
        rate = np.asarray(fit.rate_per_s)
        used = np.asarray(fit.used)
        ax.semilogy(d[used], rate[used], "o", label="measured (in fit)")
        ax.semilogy(
            d[~used & np.isfinite(rate) & (rate > 0)],
            rate[~used & np.isfinite(rate) & (rate > 0)],
            "x",
            color="grey",
            label="measured (too few fills)",
        )
        ax.semilogy(
            d,
            fit.a_per_s * np.exp(-fit.kappa_per_tick * d),
            "-",
            label=f"A={fit.a_per_s:.3g}/s, kappa={fit.kappa_per_tick:.3g}/tick, R2={fit.r2:.2f}",
        )
        ax.set_title(f"{label}: from the {fit.reference}, {fit.window_s:g} s windows", fontsize=9)
        ax.set_xlabel(f"quote distance delta (ticks of {fit.tick_size:g})")
        ax.set_ylabel("fill intensity per side (1/s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass(frozen=True)
class Calibration:
    """Everything :func:`calibrate` measured on one instrument's capture."""

    instrument: str
    symbol: str
    tick_size: float
    files: tuple[str, ...]
    duration_s: float
    trades: int
    bbo_updates: int
    fits: dict[str, IntensityFit]
    bar_vs_tick: BarTickComparison

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("fits", "bar_vs_tick")}
        out["fits"] = {ref: fit.to_dict() for ref, fit in self.fits.items()}
        out["bar_vs_tick"] = self.bar_vs_tick.to_dict()
        return out


def calibrate(
    instrument: str,
    data: TickData,
    *,
    window_s: float = 60.0,
    stride_s: float = 1.0,
    haircut_ticks: int = 1,
    delta_ticks: list[int] | None = None,
) -> Calibration:
    """Fit the intensity from the mid and from the touch, and compare bar and tick fills.

    Args:
        instrument: a name for the capture (e.g. ``spot_btcusdt``).
        data: its BBO and trades.
        window_s: quote lifetime of the fit and bar length of the comparison, seconds (60 = the
            engine's 1m bars, whose quotes live one bar).
        stride_s: spacing of the (overlapping) fit windows, seconds.
        haircut_ticks: the engine's queue haircut for the comparison.
        delta_ticks: quote distances of the comparison, ticks (default 1, 10, 100, 300, 1000, 3000).

    Raises:
        DataError: the capture is too short or has too few fills to fit.
    """
    fits = {
        ref: fit_intensity(data, window_s=window_s, stride_s=stride_s, reference=ref)
        for ref in ("mid", "touch")
    }
    comparison = compare_bar_tick(
        data,
        delta_ticks=delta_ticks or [1, 10, 100, 300, 1000, 3000],
        haircut_ticks=haircut_ticks,
        bar_s=window_s,
        fit=fits["mid"],
    )
    return Calibration(
        instrument=instrument,
        symbol=data.symbol,
        tick_size=data.tick_size,
        files=data.files,
        duration_s=data.duration_s,
        trades=len(data.trades),
        bbo_updates=len(data.bbo),
        fits=fits,
        bar_vs_tick=comparison,
    )
