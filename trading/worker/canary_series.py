"""The numbers under a canary evaluation: per-version PnL paths, the realised/marked split, one
version's summary (:class:`VersionResult`), and a paired moving-block bootstrap of a difference
of means.

A version's PnL at a mark is what its own fills would be worth there: for each symbol,
``cash(fills so far) + inventory(fills so far) * lot * close * tick``, summed over symbols. A
fill booked on a tick carries that tick's mark time, so it counts from that mark on (the book's
own convention, :func:`serving.control.views.curves`). The last point equals the version's
share in :func:`trading.worker.attribution.attribute`, up to the order of the float sums.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from trading.config import BacktestConfig
from trading.metrics import NS_PER_YEAR
from trading.worker.attribution import VersionPnl

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
NS_PER_DAY = 86_400 * 1_000_000_000


@dataclass(frozen=True)
class VersionPath:
    """One version's path, one entry per journaled mark. Quote ccy."""

    pnl: FloatArray  # cumulative PnL of the version's fills at each mark
    exposure: FloatArray  # sum over symbols of |inventory| at the mark


def carried_closes(closes: IntArray) -> IntArray:
    """Closes (ticks, marks x symbols) with each symbol's last close carried over marks without a bar
    (0 before its first bar)."""
    out = closes.copy()
    for s in range(closes.shape[1]):
        raw = closes[:, s]
        seen = np.maximum.accumulate(np.where(raw > 0, np.arange(len(raw)), -1))
        out[:, s] = np.where(seen >= 0, raw[np.maximum(seen, 0)], 0)
    return out


def version_paths(
    fills: Sequence[Mapping[str, Any]],
    *,
    ts: IntArray,
    closes: IntArray,
    row: Mapping[str, int],
    tick: float,
    lot: float,
) -> dict[str, VersionPath]:
    """Per model version, its PnL and exposure at every mark.

    Args:
        fills: journal fills (any books); grouped here by their ``version``.
        ts: mark times, ns, ascending.
        closes: carried closes in ticks, marks x symbols (:func:`carried_closes`).
        row: symbol -> column of ``closes``.
        tick, lot: price and size units.
    """
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = defaultdict(list)
    for f in fills:
        groups[(f["version"], f["symbol"])].append(f)
    out: dict[str, VersionPath] = {}
    for (version, symbol), mine in sorted(groups.items()):
        mine = sorted(mine, key=lambda f: f["ts_ns"])
        side = np.array([f["side"] for f in mine], dtype=np.int64)
        lots = np.array([f["lots"] for f in mine], dtype=np.int64)
        price = np.array([f["price_ticks"] for f in mine], dtype=np.int64)
        fee = np.array([f["fee"] for f in mine], dtype=np.float64)
        cash = np.concatenate([[0.0], np.cumsum(-side * (price * tick) * (lots * lot) - fee)])
        inv = np.concatenate([[0], np.cumsum(side * lots)])
        upto = np.searchsorted(np.array([f["ts_ns"] for f in mine], dtype=np.int64), ts, side="right")
        held = inv[upto] * lot * (closes[:, row[symbol]] * tick)
        path = out.get(version)
        pnl, exposure = cash[upto] + held, np.abs(held)
        out[version] = (
            VersionPath(pnl=pnl, exposure=exposure)
            if path is None
            else VersionPath(pnl=path.pnl + pnl, exposure=path.exposure + exposure)
        )
    return out


def realised_and_marked(
    fills: Sequence[Mapping[str, Any]], *, last: Mapping[str, int], tick: float, lot: float
) -> tuple[float, float]:
    """A version's PnL split at average cost: ``realised`` (closed lots, less every fee) and
    ``marked`` (open lots at the last close, per symbol in ``last``, ticks). Quote ccy; they add
    up to the version's PnL."""
    realised, marked = 0.0, 0.0
    by_symbol: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for f in fills:
        by_symbol[f["symbol"]].append(f)
    for symbol, mine in by_symbol.items():
        pos, avg = 0, 0.0  # lots, ticks
        for f in sorted(mine, key=lambda f: f["ts_ns"]):
            side, lots, price = int(f["side"]), int(f["lots"]), float(f["price_ticks"])
            realised -= float(f["fee"])
            if pos == 0 or (pos > 0) == (side > 0):  # opening or adding: a new average cost
                avg = (avg * abs(pos) + price * lots) / (abs(pos) + lots)
                pos += side * lots
                continue
            closed = min(lots, abs(pos))
            realised += (price - avg) * closed * (1 if pos > 0 else -1) * tick * lot
            pos += side * lots
            if pos != 0 and (pos > 0) == (side > 0):  # crossed through flat: the rest opens at price
                avg = price
        marked += pos * lot * (last[symbol] - avg) * tick
    return realised, marked


@dataclass(frozen=True, slots=True)
class VersionResult:
    """One version over the run: money in quote ccy, sizes in lots, markouts/capture in bps.

    ``pnl`` (= ``realised`` + ``marked`` at average cost) and ``fills``/``fees`` cover the whole
    run, so the versions add up to the book; ``window_*``, ``sharpe`` and the exposure cover the
    canary window. ``sharpe`` is of per-tick PnL increments, annualised on 365 days (None: flat).
    """

    version: str
    role: str  # champion | challenger | model-free | other
    books: tuple[str, ...]
    symbols: tuple[str, ...]
    fills: int
    lots: int
    fees: float
    pnl: float
    realised: float
    marked: float
    spread_capture_bps: float | None
    markouts_bps: dict[str, float | None]
    window_fills: int
    window_pnl: float
    capital: float
    mean_bps_per_day: float
    sharpe: float | None
    exposure_mean: float
    exposure_max: float


def version_result(
    version: str,
    *,
    role: str,
    shares: Sequence[VersionPnl],
    fills: Sequence[Mapping[str, Any]],
    quoted: set[str],
    path: VersionPath,
    start: int,
    since_ns: int,
    last: Mapping[str, int],
    bt: BacktestConfig,
    n_symbols: int,
    bar_ns: int,
) -> VersionResult:
    lots = sum(s.lots for s in shares)
    realised, marked = realised_and_marked(fills, last=last, tick=bt.tick_size, lot=bt.lot_size)
    maker = [s for s in shares if s.spread_capture_bps is not None]
    symbols = tuple(sorted(quoted or {f["symbol"] for f in fills}))
    capital = bt.initial_cash * max(1, len(symbols))
    before = float(path.pnl[start - 1]) if start > 0 else 0.0
    inc = window_returns(path.pnl, start, 1.0)
    std = float(inc.std(ddof=1)) if len(inc) > 1 else 0.0
    exposure = path.exposure[start:]
    return VersionResult(
        version=version,
        role=role,
        books=tuple(sorted({s.book for s in shares})),
        symbols=symbols,
        fills=len(fills),
        lots=lots,
        fees=float(sum(s.fees for s in shares)),
        pnl=float(sum(s.pnl for s in shares)),
        realised=realised,
        marked=marked,
        spread_capture_bps=(
            sum(float(s.spread_capture_bps or 0.0) * s.lots for s in maker) / sum(s.lots for s in maker)
            if maker
            else None
        ),
        markouts_bps=pooled_markouts(shares),
        window_fills=sum(1 for f in fills if f["ts_ns"] >= since_ns),
        window_pnl=float(path.pnl[-1]) - before,
        capital=capital,
        mean_bps_per_day=float(inc.mean()) / capital * NS_PER_DAY / bar_ns * 1e4 if len(inc) else 0.0,
        sharpe=float(inc.mean()) / std * float(np.sqrt(NS_PER_YEAR / bar_ns)) if std > 0 else None,
        exposure_mean=float(exposure.mean()) if len(exposure) else 0.0,
        exposure_max=float(exposure.max()) if len(exposure) else 0.0,
    )


def pooled_markouts(shares: Sequence[VersionPnl]) -> dict[str, float | None]:
    """Lot-weighted across books (one book in canary mode: the version's own share)."""
    if len(shares) == 1:
        return dict(shares[0].markouts_bps)
    keys = sorted({k for s in shares for k in s.markouts_bps}, key=int)
    out: dict[str, float | None] = {}
    for k in keys:
        have = [(s.markouts_bps[k], s.lots) for s in shares if s.markouts_bps.get(k) is not None]
        out[k] = sum(float(v or 0.0) * w for v, w in have) / sum(w for _v, w in have) if have else None
    return out


def window_returns(pnl: FloatArray, start: int, capital: float) -> FloatArray:
    """Per-tick PnL increments over the window, divided by ``capital``."""
    before = pnl[start - 1] if start > 0 else 0.0
    return np.diff(np.concatenate([[before], pnl[start:]])) / capital


@dataclass(frozen=True, slots=True)
class BootstrapInterval:
    """A difference of means with its paired moving-block bootstrap interval."""

    point: float
    low: float
    high: float
    level: float
    block: int
    samples: int


def paired_block_bootstrap(
    a: FloatArray, b: FloatArray, *, level: float, block: int, samples: int, seed: int
) -> BootstrapInterval:
    """``mean(a) - mean(b)`` and its percentile interval from a paired moving-block bootstrap.

    The same blocks of consecutive positions are drawn from both series (their common moves, a
    market both versions traded through, cancel in the difference) and each block keeps the
    autocorrelation inside it (inventory carried from tick to tick). Each resample is
    ``ceil(n / block)`` whole blocks; its mean is the mean of their block means, computed from
    one cumulative sum, so the cost is ``samples x n / block``.

    Args:
        a, b: aligned series of equal length n >= 2.
        level: two-sided confidence level, e.g. 0.95.
        block: block length in positions (capped at n).
        samples: bootstrap resamples.
        seed: the generator's seed (the same inputs give the same interval).

    Raises:
        ValueError: the series differ in length or are shorter than 2.
    """
    if len(a) != len(b):
        raise ValueError(f"paired series of different lengths: {len(a)} and {len(b)}")
    n = len(a)
    if n < 2:
        raise ValueError(f"need at least 2 paired values for an interval, got {n}")
    d = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    block = max(1, min(block, n))
    sums = np.concatenate([[0.0], np.cumsum(d)])
    block_means = (sums[block:] - sums[:-block]) / block  # one per start 0..n-block
    n_blocks = math.ceil(n / block)
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, n - block + 1, size=(samples, n_blocks))
    means = block_means[starts].mean(axis=1)
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return BootstrapInterval(
        point=float(d.mean()), low=float(low), high=float(high), level=level, block=block, samples=samples
    )
