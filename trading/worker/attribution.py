"""PnL by model version, from the journal: every fill belongs to the version that quoted it.

A book's PnL to the last mark is the sum over its fills of
``side * quantity * (last mark - price) - fee`` (cash plus inventory at the mark, less the
start), so splitting the fills by version splits the PnL exactly: the parts add up to the
book's PnL; :func:`trading.pnl.decompose_pnl` splits each share into spread capture, adverse
selection, inventory and fees, the same function the backtest's metrics call. Markouts use the marks journaled each tick: ``side * (mark h ticks later - price)
/ price`` in bps, lot-weighted (negative = adverse selection).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from trading.pnl import PnlDecomposition, combine, decompose_pnl
from trading.worker.journal import Journal, JournalOrder


@dataclass(frozen=True, slots=True)
class VersionPnl:
    """One version's share of one book. Money in quote ccy, sizes in lots, markouts in bps."""

    book: str
    version: str
    fills: int
    lots: int
    fees: float
    pnl: float
    spread_capture_bps: float | None
    markouts_bps: dict[str, float | None] = field(default_factory=dict)
    decomposition: PnlDecomposition | None = None

    @property
    def label(self) -> str:
        """``v3`` for a registry version, ``model-free`` as it is."""
        return f"v{self.version}" if self.version.isdigit() else self.version

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def attribute(
    journal: Journal,
    symbols: Sequence[str],
    *,
    tick: float,
    lot: float,
    markout_ticks: Sequence[int],
    symbol: str | None = None,
) -> list[VersionPnl]:
    """Per book and model version: fills, fees, PnL to the last mark, spread capture, markouts.

    Args:
        journal: the run's journal.
        symbols: the run's symbols in their row order (the marks' columns).
        tick, lot: the price and size units.
        markout_ticks: horizons in ticks (bars for a bar replay).
        symbol: only this symbol's fills (None: all of them).
    """
    marks = journal.marks()
    if not marks:
        return []
    n = len(symbols)
    ts = np.array([m[1] for m in marks], dtype=np.int64)
    closes = np.stack([np.frombuffer(m[2], dtype=np.int64, count=n) for m in marks])
    held = _carried_marks(closes)
    row = {sym: i for i, sym in enumerate(symbols)}
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for f in journal.fills():
        if symbol is None or f["symbol"] == symbol:
            groups[(f["book"], f["version"])].append(f)
    out = []
    for (book, version), fills in sorted(groups.items()):
        side = np.array([f["side"] for f in fills], dtype=np.int64)
        price = np.array([f["price_ticks"] for f in fills], dtype=np.int64)
        lots = np.array([f["lots"] for f in fills], dtype=np.int64)
        fee = np.array([f["fee"] for f in fills])
        rows = np.array([row[f["symbol"]] for f in fills], dtype=np.int64)
        maker = np.array([bool(f["maker"]) for f in fills])
        ref = np.array([f["ref_mid_ticks"] for f in fills])
        at = np.searchsorted(ts, np.array([f["ts_ns"] for f in fills], dtype=np.int64))
        parts = combine(
            [
                decompose_pnl(
                    step=np.minimum(at[rows == s], len(ts) - 1),  # a fill after the last mark: that mark
                    side=side[rows == s],
                    price_ticks=price[rows == s],
                    lots=lots[rows == s],
                    fee=fee[rows == s],
                    ref_mid_ticks=ref[rows == s],
                    marks_ticks=held[:, s],
                    tick=tick,
                    lot=lot,
                    horizons=markout_ticks,
                )
                for s in np.unique(rows)
            ]
        )
        capture = None
        if maker.any():
            w = lots[maker]
            capture = float(
                np.sum(w * side[maker] * (ref[maker] - price[maker]) / price[maker]) / w.sum() * 1e4
            )
        markouts: dict[str, float | None] = {}
        for h in markout_ticks:
            later = at + h
            ok = later < len(ts)
            later_close = np.where(ok, closes[np.minimum(later, len(ts) - 1), rows], 0)
            ok &= later_close > 0
            if not ok.any():
                markouts[str(h)] = None
                continue
            move = side[ok] * (later_close[ok] - price[ok]) / price[ok]
            markouts[str(h)] = float(np.sum(lots[ok] * move) / lots[ok].sum() * 1e4)
        out.append(
            VersionPnl(
                book=book,
                version=version,
                fills=len(fills),
                lots=int(lots.sum()),
                fees=float(fee.sum()),
                pnl=parts.net,
                spread_capture_bps=capture,
                markouts_bps=markouts,
                decomposition=parts,
            )
        )
    return out


def _carried_marks(closes: np.ndarray) -> np.ndarray:
    """Each symbol's marks with its gaps (0 = no mark that tick) filled by its previous mark, and a
    leading gap by its first mark, so the last row is each symbol's last mark."""
    rows = np.arange(len(closes))[:, None]
    seen = np.where(closes > 0, rows, -1)
    prev = np.maximum.accumulate(seen, axis=0)
    first = np.argmax(closes > 0, axis=0)
    idx = np.where(prev >= 0, prev, first[None, :])
    return np.take_along_axis(closes, idx, axis=0)


def fill_rate(orders: Iterable[JournalOrder]) -> float | None:
    """Lots filled / lots placed over the limit orders among ``orders`` (None: none placed); the
    control API's performance and the drift monitor's KPIs both read it here."""
    limits = [o for o in orders if o.kind == "limit"]
    placed = sum(o.lots for o in limits)
    return sum(o.filled_lots for o in limits) / placed if placed else None
