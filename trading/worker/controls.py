"""Per-symbol stop and start: an operator's requests, taken by the worker inside its tick.

* **stop(symbol)**: that symbol's working orders are cancelled at once and its quote row sizes
  every quote 0 lots from then on, so it quotes nothing. Its position is kept (no flatten), fills
  of orders already on their way are still booked, and the risk engine keeps watching it (a kill
  switch still flattens it).
* **start(symbol, overrides)**: it quotes again, decided with its own rows: the position limit
  (``risk.max_position_lots``, and the REDUCING thresholds that are fractions of it) and the
  half-spread floor (``quote.min_half_spread_bps``) replaced by the overrides, params.yaml's
  numbers where none is given. The risk state still rules (HALTED quotes nothing).

Both reach the one quote decision, :func:`trading.quoting.decide_quotes`, through that
symbol's row of :func:`trading.worker.strategy.param_rows`, and apply to every book (the shadow
book too). The requests live in the journal (:meth:`~trading.worker.journal.Journal.request`);
the last one taken for a symbol is its state, across restarts. Each taken request is journaled
as a ``control`` event with who asked and the numbers.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from trading.config import QuoteConfig, RiskConfig
from trading.quoting import QuoteParams, quote_params
from trading.risk import RiskParams, risk_params
from trading.worker import strategy as st
from trading.worker.journal import Journal, SymbolRequest

if TYPE_CHECKING:
    from trading.worker.loop import WorkerSettings
    from trading.worker.orders import Book
    from trading.worker.paper import Replay


@dataclass(frozen=True, slots=True)
class Overrides:
    """A symbol's own numbers (None: params.yaml's). Lots of ``backtest.lot_size``; bps of the mid."""

    max_position_lots: int | None = None
    min_half_spread_bps: float | None = None

    @classmethod
    def of(cls, doc: dict[str, Any]) -> Overrides:
        lots, bps = doc.get("max_position_lots"), doc.get("min_half_spread_bps")
        return cls(
            max_position_lots=None if lots is None else int(lots),
            min_half_spread_bps=None if bps is None else float(bps),
        )

    def configs(self, quote: QuoteConfig, risk: RiskConfig) -> tuple[QuoteConfig, RiskConfig]:
        """params.yaml's quote and risk sections with these overrides in (validated again)."""
        if self.min_half_spread_bps is not None:
            quote = QuoteConfig.model_validate(
                quote.model_dump() | {"min_half_spread_bps": self.min_half_spread_bps}
            )
        if self.max_position_lots is not None:
            risk = RiskConfig.model_validate(
                risk.model_dump() | {"max_position_lots": self.max_position_lots}
            )
        return quote, risk


@dataclass(frozen=True, slots=True)
class SymbolState:
    """A symbol by the operator's word: quoting or stopped, with which overrides, since when, by whom."""

    symbol: str
    quoting: bool
    overrides: Overrides
    by: str | None = None  # None: never changed (quoting with params.yaml's numbers)
    at_ns: int | None = None  # when it was asked
    tick: int | None = None  # when the worker took it

    @classmethod
    def of(cls, req: SymbolRequest) -> SymbolState:
        overrides = Overrides.of(req.doc) if req.action == "start" else Overrides()
        return cls(req.symbol, req.action == "start", overrides, req.by, req.at_ns, req.tick)

    def rows(self, quote: QuoteConfig, risk: RiskConfig) -> tuple[QuoteParams, RiskParams]:
        """This symbol's rows of the quote and risk parameters."""
        q, r = self.overrides.configs(quote, risk)
        qp = quote_params(q)
        return (qp if self.quoting else qp._replace(order_lots=0)), risk_params(r)


def symbol_states(journal: Journal, symbols: tuple[str, ...] | list[str]) -> dict[str, SymbolState]:
    """Every symbol's state from the requests the worker has taken (the last one per symbol)."""
    states = {sym: SymbolState(sym, True, Overrides()) for sym in symbols}
    for req in journal.requests(pending=False):
        if req.symbol in states:
            states[req.symbol] = SymbolState.of(req)
    return states


class SymbolControls:
    """The worker's side of stop/start: rows per symbol, requests taken in the tick, the quotes kept."""

    journal: Journal
    symbols: tuple[str, ...]
    _row: dict[str, int]
    _pull: Callable[[Book, int], list[Any]]  # OrderFlow's: cancel a symbol's working orders
    s: WorkerSettings
    books: list[Book]
    replay: Replay
    qrows: np.ndarray
    rrows: np.ndarray

    def _load_controls(self) -> None:
        """On start: each symbol's rows from the requests taken before (a stop survives a restart)."""
        for sym, state in symbol_states(self.journal, self.symbols).items():
            self._set_rows(self._row[sym], state)

    def _set_rows(self, s: int, state: SymbolState) -> None:
        qp, rp = state.rows(self.s.quote, self.s.risk)
        self.qrows[s], self.rrows[s] = tuple(qp), tuple(rp)

    def quoting(self, s: int) -> bool:
        return bool(self.qrows[s]["order_lots"] > 0)

    def _take_requests(self, j: int) -> dict[str, list[Any]]:
        """Apply the pending stop/start requests (inside the tick's transaction); returns, per
        book, the cancels of the stopped symbols' working orders, to send with the tick's orders."""
        cancels: dict[str, list[Any]] = {}
        now = int(self.replay.timeline[j])
        for req in self.journal.take_requests(j):
            s = self._row.get(req.symbol)
            if s is None:  # the API refuses these; another writer may not have
                self.journal.add_event(
                    j, now, req.symbol, "control", f"{req.action} by {req.by}: not traded here"
                )
                continue
            was = self.quoting(s)
            state = SymbolState.of(req)
            self._set_rows(s, state)
            pulled = 0
            for book in self.books:
                book.books.ist[s, st.I_REFRESH] = 0  # decide afresh at its next close, with the new rows
                if not state.quoting:
                    mine = self._pull(book, s)
                    cancels.setdefault(book.name, []).extend(mine)
                    pulled += len(mine)
            message = self._describe(
                req, state, was=was, pulled=pulled, inventory=int(self.books[0].books.ist[s, st.I_INV])
            )
            self.journal.add_event(j, now, req.symbol, "control", message)
        return cancels

    def _describe(
        self, req: SymbolRequest, state: SymbolState, *, was: bool, pulled: int, inventory: int
    ) -> str:
        reason = f"; reason: {req.doc['reason']}" if req.doc.get("reason") else ""
        if not state.quoting:
            return (
                f"stop by {req.by}: quoting off{' (it was already)' if not was else ''}, {pulled} working "
                f"order(s) cancelled; position {inventory:+d} lots kept (no flatten), fills of orders "
                f"already sent still booked{reason}"
            )
        o, quote, risk = state.overrides, self.s.quote, self.s.risk
        lots = (
            f"max_position_lots {o.max_position_lots} (override; params {risk.max_position_lots})"
            if o.max_position_lots is not None
            else f"max_position_lots {risk.max_position_lots} (params)"
        )
        bps = (
            f"min_half_spread_bps {o.min_half_spread_bps:g} (override; params {quote.min_half_spread_bps:g})"
            if o.min_half_spread_bps is not None
            else f"min_half_spread_bps {quote.min_half_spread_bps:g} (params)"
        )
        return f"start by {req.by}: quoting {'on' if not was else 'on (it was)'} with {lots}, {bps}{reason}"

    def _live_quotes(self) -> bytes:
        """The live book's working quotes: int64 (symbols, 4) bid, ask ticks, bid, ask lots left."""
        out = np.zeros((len(self.symbols), 4), dtype=np.int64)
        for (s, side), o in self.books[0].live.items():
            out[s, 0 if side > 0 else 1] = o.price_ticks
            out[s, 2 if side > 0 else 3] = o.remaining
        return out.tobytes()
