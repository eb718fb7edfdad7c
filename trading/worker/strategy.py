"""The worker's per-tick decision for all symbols at once: the bar kernel's close, compiled.

:func:`step_books` runs, for every symbol with a new bar, exactly what
:func:`trading.fill_engine.run_kernel` runs at a bar close, through the same compiled pieces
(:func:`~trading.fill_engine.close_bar`, :func:`~trading.fill_engine.must_flatten`,
:func:`~trading.fill_engine.must_requote`, :func:`~trading.quoting.decide_quotes`), so a paper
replay and a backtest of the same bars make the same decisions. The kernel loops over time for
one symbol; this loops over symbols for one time. State lives in two small arrays per book
(one row per symbol) that the journal snapshots every tick. Settings come as rows too, one per
symbol (:func:`param_rows`): identical rows by default, a symbol's own numbers where an operator
overrode them (:mod:`trading.worker.controls`), so each symbol is decided once, with its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, get_type_hints

import numpy as np
from numba import njit

from trading.fill_engine import (
    EngineParams,
    close_bar,
    close_quotes,
    first_variance,
    must_flatten,
    must_requote,
)
from trading.quoting import QuoteParams
from trading.risk import RiskParams

# float state columns
F_CASH, F_PEAK, F_VAR_Q, F_VAR_F, F_VAR_S, F_PREV_CLOSE, F_EQUITY, F_REJECT = range(8)
N_F = 8
# integer state columns
I_INV, I_STATUS, I_REASONS, I_UNTIL, I_REFRESH, I_BARS, I_PREV_OPEN, I_FILLED, I_CLOSE = range(9)
N_I = 9
# decision columns (one row per symbol, written for the symbols that had a bar)
D_REQUOTE, D_BID, D_ASK, D_BID_LOTS, D_ASK_LOTS, D_FLATTEN_SIDE, D_FLATTEN_LOTS, D_PREV_STATUS = range(8)
N_D = 8


class TickBars(NamedTuple):
    """One tick's bars, one entry per symbol of the run (NaN/0 where a symbol has no bar now)."""

    has_bar: Any  # bool
    open_ns: Any  # int64
    open: Any  # int64 ticks
    high: Any
    low: Any
    close: Any
    volume: Any  # float64 lots
    buy_flow: Any
    sell_flow: Any


class TickSignals(NamedTuple):
    """The model inputs per symbol for this tick (NaN: none) and whether a signal is required."""

    pred_return: Any  # float64
    pred_sigma2: Any  # float64 ticks^2 per bar
    prob_up: Any  # float64
    need_signal: Any  # bool


@njit(cache=True, error_model="numpy")
def step_books(
    bars: TickBars,
    sig: TickSignals,
    kill: bool,
    fs: Any,
    ist: Any,
    out: Any,
    qp: Any,
    rp: Any,
    ep: EngineParams,
) -> None:
    """The close of this tick's bar for every symbol that has one: risk, flatten, the new quote.

    Args:
        bars, sig: this tick's inputs.
        kill: the manual kill switch is pressed.
        fs, ist: float and int state, ``(n_symbols, N_F)`` / ``(n_symbols, N_I)``, updated in place;
            fills since the last step must already be applied (:func:`apply_fill`).
        out: int64 ``(n_symbols, N_D)`` decisions, written for the symbols that had a bar.
        qp, rp: quoting and risk settings, one row per symbol (:func:`param_rows` of what the
            backtest builds, with that symbol's overrides).
        ep: engine settings (as the backtest builds them).
    """
    for s in range(len(bars.has_bar)):
        if not bars.has_bar[s]:
            continue
        q, r = qp[s], rp[s]
        close = bars.close[s]
        if ist[s, I_BARS] == 0:  # the first bar seeds the estimates, as the kernel does
            fs[s, F_VAR_Q] = fs[s, F_VAR_F] = fs[s, F_VAR_S] = first_variance(bars.high[s], bars.low[s])
            fs[s, F_PREV_CLOSE] = float(bars.open[s])
            gap = 0
        else:
            gap = bars.open_ns[s] - ist[s, I_PREV_OPEN] - ep.bar_ns
        inv = ist[s, I_INV]
        sig_ok = not sig.need_signal[s] or sig.pred_return[s] == sig.pred_return[s]
        sig_ok = sig_ok or sig.prob_up[s] == sig.prob_up[s]
        prev_status = ist[s, I_STATUS]
        equity, peak, var_q, var_f, var_s, status, reasons, until = close_bar(
            close,
            fs[s, F_PREV_CLOSE],
            bars.open_ns[s] + ep.bar_ns,
            gap,
            inv,
            fs[s, F_CASH],
            fs[s, F_PEAK],
            fs[s, F_VAR_Q],
            fs[s, F_VAR_F],
            fs[s, F_VAR_S],
            ist[s, I_REASONS],
            ist[s, I_UNTIL],
            sig_ok,
            fs[s, F_REJECT],
            kill,
            ep,
            r,
        )
        out[s, D_FLATTEN_SIDE] = out[s, D_FLATTEN_LOTS] = 0
        if must_flatten(status, reasons, ep.flatten_on_kill, inv):
            out[s, D_FLATTEN_SIDE] = 1 if inv < 0 else -1
            out[s, D_FLATTEN_LOTS] = abs(inv)
            inv = 0  # the flatten is a taker order at the touch: it fills (the kernel books it here)
        requote = must_requote(
            status, prev_status, ist[s, I_REFRESH], ist[s, I_FILLED] != 0, ep.requote_on_fill
        )
        out[s, D_REQUOTE] = 1 if requote else 0
        out[s, D_PREV_STATUS] = prev_status
        if requote:
            bid, ask, bl, al = close_quotes(
                close,
                ist[s, I_BARS],
                inv,
                status,
                var_q,
                sig.pred_return[s],
                sig.pred_sigma2[s],
                sig.prob_up[s],
                bars.buy_flow[s],
                bars.sell_flow[s],
                bars.volume[s],
                r.max_position,
                q,
                ep,
            )
            out[s, D_BID], out[s, D_ASK], out[s, D_BID_LOTS], out[s, D_ASK_LOTS] = bid, ask, bl, al
        fs[s, F_PEAK], fs[s, F_VAR_Q], fs[s, F_VAR_F], fs[s, F_VAR_S] = peak, var_q, var_f, var_s
        fs[s, F_EQUITY] = equity
        fs[s, F_PREV_CLOSE] = float(close)
        ist[s, I_STATUS], ist[s, I_REASONS], ist[s, I_UNTIL] = status, reasons, until
        ist[s, I_REFRESH] = ist[s, I_REFRESH] + 1 if ist[s, I_REFRESH] + 1 < ep.refresh_bars else 0
        ist[s, I_BARS] += 1
        ist[s, I_PREV_OPEN] = bars.open_ns[s]
        ist[s, I_FILLED] = 0
        ist[s, I_CLOSE] = close


_FIELD_TYPES: dict[Any, type] = {float: np.float64, int: np.int64, bool: np.bool_}


def param_rows(params: QuoteParams | RiskParams, n_symbols: int) -> np.ndarray:
    """``params`` as one record per symbol, every row equal: what :func:`step_books` takes.

    The compiled code reads a record's fields by name as it reads the NamedTuple's, with the
    same types (float64, int64, bool), so identical rows decide exactly as the backtest does.
    """
    kinds = get_type_hints(type(params))
    dtype = np.dtype([(name, _FIELD_TYPES[kinds[name]]) for name in params._fields])
    rows = np.empty(n_symbols, dtype=dtype)
    rows[:] = tuple(params)
    return rows


def fill_cash(side: int, price_ticks: int, lots: int, fee: float, *, tick: float, lot: float) -> float:
    """Cash change of one fill, quote ccy: the fill engine's booking (same operations, same order)."""
    notional = price_ticks * tick * lots * lot
    return -side * notional - fee


def fill_fee(price_ticks: int, lots: int, fee_rate: float, *, tick: float, lot: float) -> float:
    """Fee of one fill, quote ccy (negative = rebate), as the fill engine computes it."""
    return abs(price_ticks * tick * lots * lot) * fee_rate


@dataclass
class Books:
    """The state of one book (the live one, or the shadow) for every symbol of the run."""

    fs: np.ndarray
    ist: np.ndarray

    @classmethod
    def fresh(cls, n_symbols: int, initial_cash: float) -> Books:
        fs = np.zeros((n_symbols, N_F))
        fs[:, F_CASH] = fs[:, F_PEAK] = fs[:, F_EQUITY] = initial_cash
        return cls(fs=fs, ist=np.zeros((n_symbols, N_I), dtype=np.int64))

    def apply_fill(
        self, s: int, side: int, price_ticks: int, lots: int, fee: float, *, tick: float, lot: float
    ) -> None:
        """Book one fill of symbol row ``s`` (cash, inventory, the requote-after-fill flag)."""
        self.fs[s, F_CASH] += fill_cash(side, price_ticks, lots, fee, tick=tick, lot=lot)
        self.ist[s, I_INV] += side * lots
        self.ist[s, I_FILLED] = 1

    def inventory(self, s: int) -> int:
        """Lots held in symbol row ``s``."""
        return int(self.ist[s, I_INV])

    def equity(self, s: int, *, tick: float, lot: float) -> float:
        """Cash plus the inventory at the last close, quote ccy (the kernel's equity row)."""
        return float(self.fs[s, F_CASH] + self.ist[s, I_INV] * lot * (self.ist[s, I_CLOSE] * tick))

    def to_bytes(self) -> tuple[bytes, bytes]:
        return self.fs.tobytes(), self.ist.tobytes()

    @classmethod
    def from_bytes(cls, fs: bytes, ist: bytes, n_symbols: int) -> Books:
        return cls(
            fs=np.frombuffer(fs, dtype=np.float64).reshape(n_symbols, N_F).copy(),
            ist=np.frombuffer(ist, dtype=np.int64).reshape(n_symbols, N_I).copy(),
        )
