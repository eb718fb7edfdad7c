"""What the control API answers, read from the worker's journal alone (a read connection; WAL).

Every number here can be checked against the journal: the live book's state row (``books``),
its fills, orders, marks, the quotes after each tick, the events and the operator's requests.
The functions are pure over a :class:`~trading.worker.journal.Journal` and a
:class:`ControlContext`; :mod:`serving.control.api` only routes to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from serving.control import models as m
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.risk import RiskStatus, reason_names
from trading.worker import strategy as st
from trading.worker.attribution import attribute, fill_rate
from trading.worker.controls import Overrides, SymbolState, symbol_states
from trading.worker.journal import Journal

ALERT_KINDS = ("risk", "market_data", "fail_closed", "alert", "recovered", "control", "resume", "reconcile")


class UnknownSymbol(LookupError):  # noqa: N818 - reads as what it reports
    """A symbol this worker does not trade (the message names the ones it does)."""


class NotReady(RuntimeError):  # noqa: N818 - reads as the state it reports
    """The worker has not started its run in the journal yet."""


@dataclass(frozen=True)
class ControlContext:
    """What the API knows besides the journal: the run's symbols (row order) and settings."""

    journal: Path
    symbols: tuple[str, ...]
    quote: QuoteConfig
    risk: RiskConfig
    backtest: BacktestConfig
    ticks_total: int | None  # None: a live run

    def row(self, symbol: str) -> int:
        """The symbol's row; ``BTC/USDT`` and ``btcusdt`` name ``BTCUSDT``.

        Raises:
            UnknownSymbol: not one of this worker's symbols.
        """
        key = "".join(c for c in symbol if c.isalnum()).upper()
        if key not in self.symbols:
            raise UnknownSymbol(f"unknown symbol {symbol!r}: this worker trades {', '.join(self.symbols)}")
        return self.symbols.index(key)


def _iso(ns: int | None) -> str | None:
    return None if not ns else pd.Timestamp(int(ns), tz="UTC").isoformat()


def _book(j: Journal, ctx: ControlContext) -> tuple[int, st.Books, dict[str, Any]]:
    saved = j.book("live")
    if saved is None:
        if j.run_spec() is None:
            raise NotReady(f"{ctx.journal}: the worker has not started its run yet; ask again in a moment")
        return 0, st.Books.fresh(len(ctx.symbols), ctx.backtest.initial_cash), {}
    tick, _seq, fs, ist, extra = saved
    return tick, st.Books.from_bytes(fs, ist, len(ctx.symbols)), extra


def _limits(state: SymbolState, ctx: ControlContext) -> tuple[int, float, list[str]]:
    o = state.overrides
    lots = ctx.risk.max_position_lots if o.max_position_lots is None else o.max_position_lots
    bps = ctx.quote.min_half_spread_bps if o.min_half_spread_bps is None else o.min_half_spread_bps
    names = [
        n
        for n, v in (
            ("max_position_lots", o.max_position_lots),
            ("min_half_spread_bps", o.min_half_spread_bps),
        )
        if v is not None
    ]
    return lots, bps, names


def _last_risk(j: Journal, symbol: str) -> str | None:
    mine = [e["message"] for e in j.events(("risk",)) if e["symbol"] == symbol]
    return mine[-1] if mine else None


def _price(ticks: float | None, ctx: ControlContext) -> float | None:
    return None if not ticks else round(float(ticks) * ctx.backtest.tick_size, 10)


def active(j: Journal, ctx: ControlContext) -> m.Active:
    """``GET /maker/active``."""
    tick, books, _extra = _book(j, ctx)
    states = symbol_states(j, ctx.symbols)
    kill = j.control_doc("kill")
    halted = [s for i, s in enumerate(ctx.symbols) if books.ist[i, st.I_STATUS] == RiskStatus.HALTED]
    stopped = [s for s in ctx.symbols if not states[s].quoting]
    marks = j.marks(since_tick=max(0, tick - 1))
    return m.Active(
        phase=j.control("phase") or "stopped",
        kill=kill is not None,
        kill_by=None if kill is None else kill.get("by"),
        kill_reason=None if kill is None else kill.get("reason"),
        tick=tick,
        ticks_total=ctx.ticks_total,
        time=_iso(marks[-1][1]) if marks else None,
        symbols=list(ctx.symbols),
        active=[s for s in ctx.symbols if s not in stopped and s not in halted],
        stopped=stopped,
        halted=halted,
    )


def status(j: Journal, ctx: ControlContext, symbol: str) -> m.SymbolStatus:
    """``GET /maker/status/{symbol}``."""
    s = ctx.row(symbol)
    sym = ctx.symbols[s]
    tick, books, extra = _book(j, ctx)
    state = symbol_states(j, ctx.symbols)[sym]
    lots, bps, overridden = _limits(state, ctx)
    bt = ctx.backtest
    closes = [
        int(np.frombuffer(c, dtype=np.int64)[s]) for _t, _ts, c in j.marks(since_tick=max(0, tick - 500))
    ]
    mark = next((c for c in reversed(closes) if c), None)
    q = j.quotes(since_tick=max(0, tick - 1))
    bid, ask, bid_lots, ask_lots = (
        (int(v) for v in np.frombuffer(q[-1][2], dtype=np.int64).reshape(-1, 4)[s]) if q else (0, 0, 0, 0)
    )
    two_sided = bid_lots > 0 and ask_lots > 0
    orders = [o for o in j.open_orders("live") if o.symbol == sym and not o.cancel_requested]
    inv = books.inventory(s)
    equity = books.equity(s, tick=bt.tick_size, lot=bt.lot_size)
    return m.SymbolStatus(
        symbol=sym,
        quoting=state.quoting,
        pending=[r.action for r in j.requests(pending=True, symbol=sym)],
        controlled_by=state.by,
        controlled_at=_iso(state.at_ns),
        max_position_lots=lots,
        min_half_spread_bps=bps,
        overridden=overridden,
        risk_status=RiskStatus(int(books.ist[s, st.I_STATUS])).name,
        reasons=list(reason_names(int(books.ist[s, st.I_REASONS]))),
        risk_message=_last_risk(j, sym),
        inventory_lots=inv,
        inventory_base=inv * bt.lot_size,
        equity=equity,
        pnl=equity - bt.initial_cash,
        mark=_price(mark, ctx),
        bid=_price(bid if bid_lots else None, ctx),
        ask=_price(ask if ask_lots else None, ctx),
        bid_lots=bid_lots,
        ask_lots=ask_lots,
        spread_ticks=ask - bid if two_sided else None,
        spread_bps=(ask - bid) / mark * 1e4 if two_sided and mark else None,
        orders=[
            m.Order(
                client_id=o.client_id,
                side="buy" if o.side > 0 else "sell",
                price=o.price_ticks * bt.tick_size,
                price_ticks=o.price_ticks,
                lots=o.lots,
                filled_lots=o.filled_lots,
                status=o.status,
                tick=o.tick,
                version=o.version,
            )
            for o in orders
        ],
        model_free=extra.get("fallback", {}).get(str(s)),
        tick=tick,
    )


@dataclass(frozen=True)
class Curves:
    """One symbol's path, one entry per journaled tick (the book's own float operations)."""

    tick: np.ndarray
    ts: np.ndarray
    close: np.ndarray  # ticks, carried over ticks without a bar (0 before the first)
    inventory: np.ndarray  # lots
    equity: np.ndarray  # quote ccy


def curves(j: Journal, ctx: ControlContext, s: int) -> Curves:
    """Inventory and equity at each mark from the symbol's live fills, as the book books them."""
    bt, n = ctx.backtest, len(ctx.symbols)
    marks = j.marks()
    ticks = np.array([mk[0] for mk in marks], dtype=np.int64)
    ts = np.array([mk[1] for mk in marks], dtype=np.int64)
    raw = np.array([np.frombuffer(mk[2], dtype=np.int64, count=n)[s] for mk in marks], dtype=np.int64)
    seen = np.maximum.accumulate(np.where(raw > 0, np.arange(len(raw)), -1)) if len(raw) else raw
    close = np.where(seen >= 0, raw[np.maximum(seen, 0)], 0)
    fills = [f for f in j.fills("live") if f["symbol"] == ctx.symbols[s]]
    cash = np.empty(len(fills) + 1)
    inv = np.zeros(len(fills) + 1, dtype=np.int64)
    cash[0] = bt.initial_cash
    for k, f in enumerate(fills):  # in booking order, the book's own additions
        cash[k + 1] = cash[k] + st.fill_cash(
            f["side"], f["price_ticks"], f["lots"], f["fee"], tick=bt.tick_size, lot=bt.lot_size
        )
        inv[k + 1] = inv[k] + f["side"] * f["lots"]
    upto = np.searchsorted(np.array([f["ts_ns"] for f in fills], dtype=np.int64), ts, side="right")
    equity = cash[upto] + inv[upto] * bt.lot_size * (close * bt.tick_size)
    return Curves(tick=ticks, ts=ts, close=close, inventory=inv[upto], equity=equity)


def _drawdown(equity: np.ndarray) -> np.ndarray:
    if not len(equity):
        return equity
    peak = np.maximum.accumulate(equity)
    return (peak - equity) / peak


def series(j: Journal, ctx: ControlContext, symbol: str, *, points: int) -> m.Series:
    """``GET /maker/series/{symbol}``: the last ``points`` ticks."""
    s = ctx.row(symbol)
    _book(j, ctx)
    c = curves(j, ctx, s)
    dd = _drawdown(c.equity)
    quotes = {
        t: np.frombuffer(b, dtype=np.int64).reshape(-1, 4)[s]
        for t, _ts, b in j.quotes(since_tick=int(c.tick[-points]) if len(c.tick) > points else 0)
    }
    keep = slice(max(0, len(c.tick) - points), None)
    no = np.zeros(4, dtype=np.int64)
    rows = [quotes.get(int(t), no) for t in c.tick[keep]]
    return m.Series(
        symbol=ctx.symbols[s],
        tick=[int(t) for t in c.tick[keep]],
        time=[str(_iso(int(t))) for t in c.ts[keep]],
        mid=[_price(int(v), ctx) for v in c.close[keep]],
        bid=[_price(int(r[0]), ctx) if r[2] else None for r in rows],
        ask=[_price(int(r[1]), ctx) if r[3] else None for r in rows],
        inventory_lots=[int(v) for v in c.inventory[keep]],
        pnl=[float(v) - ctx.backtest.initial_cash for v in c.equity[keep]],
        drawdown=[float(v) for v in dd[keep]],
    )


def performance(j: Journal, ctx: ControlContext, symbol: str) -> m.Performance:
    """``GET /maker/performance/{symbol}``."""
    s = ctx.row(symbol)
    sym, bt = ctx.symbols[s], ctx.backtest
    _tick, books, _extra = _book(j, ctx)
    fills = [f for f in j.fills("live") if f["symbol"] == sym]
    lots = sum(f["lots"] for f in fills)
    rate = fill_rate(o for o in j.orders() if o.book == "live" and o.symbol == sym)
    c = curves(j, ctx, s)
    q = np.array([np.frombuffer(b, dtype=np.int64).reshape(-1, 4)[s] for _t, _ts, b in j.quotes()]).reshape(
        -1, 4
    )
    mid = c.close[: len(q)] if len(q) == len(c.close) else np.zeros(len(q), dtype=np.int64)
    both = (q[:, 2] > 0) & (q[:, 3] > 0) & (mid > 0)
    width = (q[both, 1] - q[both, 0]).astype(np.float64)
    mean_inv = float(np.abs(c.inventory).mean()) if len(c.inventory) else 0.0
    shares = attribute(
        j, ctx.symbols, tick=bt.tick_size, lot=bt.lot_size, markout_ticks=bt.markout_bars, symbol=sym
    )
    return m.Performance(
        symbol=sym,
        pnl=books.equity(s, tick=bt.tick_size, lot=bt.lot_size) - bt.initial_cash,
        fees=float(sum(f["fee"] for f in fills)),
        fills=len(fills),
        maker_fills=sum(1 for f in fills if f["maker"]),
        lots_traded=lots,
        volume_base=lots * bt.lot_size,
        volume_quote=float(sum(f["price_ticks"] * bt.tick_size * f["lots"] * bt.lot_size for f in fills)),
        avg_spread_ticks=float(width.mean()) if len(width) else None,
        avg_spread_bps=float((width / mid[both]).mean() * 1e4) if len(width) else None,
        quoted_ticks=int(both.sum()),
        fill_rate=rate,
        inventory_turnover=lots / mean_inv if mean_inv > 0 else None,
        mean_abs_inventory_lots=mean_inv,
        max_drawdown=float(_drawdown(c.equity).max()) if len(c.equity) else 0.0,
        by_version=[m.VersionShare(**v.to_dict(), label=v.label) for v in shares],
    )


def _severity(e: dict[str, Any]) -> m.Severity:
    text = e["message"]
    if e["kind"] == "fail_closed" or "-> HALTED" in text or text.startswith("kill pressed"):
        return "critical"
    if e["kind"] in ("market_data", "alert") or "-> REDUCING" in text:
        return "warning"
    return "info"


def alerts(j: Journal, ctx: ControlContext, *, limit: int) -> m.Alerts:
    """``GET /maker/risk/alerts``: symbols not ACTIVE now, and the last ``limit`` events."""
    _tick, books, _extra = _book(j, ctx)
    events = j.events(ALERT_KINDS)[-limit:]
    open_ = [
        m.OpenAlert(
            symbol=sym,
            status=RiskStatus(int(books.ist[s, st.I_STATUS])).name,
            reasons=list(reason_names(int(books.ist[s, st.I_REASONS]))),
            message=_last_risk(j, sym),
        )
        for s, sym in enumerate(ctx.symbols)
        if books.ist[s, st.I_STATUS] != RiskStatus.ACTIVE
    ]
    return m.Alerts(
        kill=j.control("kill") is not None,
        open=open_,
        events=[
            m.Alert(
                tick=e["tick"],
                time=_iso(e["ts_ns"]),
                symbol=e["symbol"],
                kind=e["kind"],
                severity=_severity(e),
                message=e["message"],
            )
            for e in events
        ],
    )


def start_doc(ctx: ControlContext, req: m.StartRequest) -> dict[str, Any]:
    """The start request's overrides in journal units, checked against params.yaml.

    Raises:
        ValueError: an override params.yaml's limits do not allow (the message names the field).
    """
    doc: dict[str, Any] = {"reason": req.reason}
    if req.limits is not None:
        lots = req.limits.max_position_lots
        if lots is None:
            base, lot = float(req.limits.max_position_base or 0.0), ctx.backtest.lot_size
            lots = round(base / lot)
            if lots < 1 or abs(base / lot - lots) > 1e-9 * max(1.0, base / lot):
                raise ValueError(
                    f"limits.max_position_base {base:g}: not a whole number of lots of {lot:g} "
                    f"(backtest.lot_size): {base / lot:g} lots"
                )
        if lots > ctx.risk.max_position_lots:
            raise ValueError(
                f"limits.max_position_lots {lots} > risk.max_position_lots {ctx.risk.max_position_lots} "
                "in params.yaml: an override tightens the limit, it cannot loosen it"
            )
        doc["max_position_lots"] = lots
    if req.spread is not None:
        doc["min_half_spread_bps"] = req.spread.min_half_spread_bps
    try:
        Overrides.of(doc).configs(ctx.quote, ctx.risk)
    except ValueError as exc:  # pydantic's ValidationError is one
        raise ValueError(f"overrides refused by params.yaml's checks: {exc}") from exc
    return doc
