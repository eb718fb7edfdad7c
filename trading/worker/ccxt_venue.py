"""The live venue over ccxt: the paper venue's interface on an exchange's REST API.

What it promises the worker (NautilusTrader's rules, against what Hummingbot's issues #3374,
#1357 and #8457 report: orders the exchange accepted, marked failed after a network error, then
filled untracked):

* only a definitive venue answer rejects (:func:`trading.worker.ccxt_exchange.classify`);
  timeouts, disconnects, 5xx and rate limits raise :class:`VenueAmbiguous`: the order stays in
  flight until a status query resolves it;
* "not found" is believed only from the venue's own ``OrderNotFound`` to a status query, and
  only ``not_found_grace_ms`` after the order was sent (an exchange may not yet show an order it
  has accepted: NautilusTrader's in-flight threshold); a transport error never means "not found";
* each order is recorded in the state file before it is sent, so a restart knows what it may
  have sent; it is queried by exchange id once known, else by client id
  (``params={"clientOrderId": ...}``), else in the open and closed order lists.

Positions are the net lots of the exchange's trades of this run's orders (client ids with the
run's prefix) since the run began, not spot balances, which also move with holdings from before
the run, deposits, withdrawals, other bots and fees taken in the base asset. The first call
after opening reads the run's trades again in full, so reconcile compares the journal with what
the exchange reports now: a booked trade it no longer reports (a bust) is a difference.

Fills come from polling ``fetch_my_trades`` (ccxt's free API has no websocket), each poll going
back ``overlap_ms`` before the newest trade seen, so a trade reported late or out of order is
still found. A trade is kept once by its id (``SYMBOL:id``: exchange trade ids are per market)
and numbered as first seen: ``seq`` lives in the state file, stable across restarts. Trades of
orders without the prefix are not this run's; an order with it that this file never sent (in the
open orders, or behind a trade) is recorded when first seen.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import ccxt.async_support as ccxt

from features.errors import ConfigError
from trading.config import BacktestConfig
from trading.worker.ccxt_exchange import (
    FAILURES,
    SIDE_OF,
    SIDES,
    STATUS,
    Exchange,
    Market,
    classify,
    from_units,
    market_of,
    reason,
    to_units,
)
from trading.worker.paper import FILLS_SCHEMA, read_fills
from trading.worker.types import (
    TERMINAL,
    Fill,
    OrderRequest,
    OrderState,
    VenueAmbiguous,
    VenueError,
    VenueRejected,
    cancels_one_by_one,
    places_one_by_one,
)

logger = logging.getLogger(__name__)

SCHEMA = (
    FILLS_SCHEMA
    + """
create table if not exists orders(
  client_id text primary key, symbol text not null, side integer not null, price_ticks integer not null,
  lots integer not null, filled_lots integer not null, status text not null, kind text not null,
  order_id text, sent_ms integer not null);
create index if not exists orders_by_id on orders(order_id);
create table if not exists foreign_orders(order_id text primary key);
create table if not exists meta(k text primary key, v integer not null);
"""
)


MAX_CLIENT_ID = (
    36  # Binance's newClientOrderId limit (the strictest of the venues ccxt maps clientOrderId for)
)
TICK_DIGITS = 7  # a tick number up to 9,999,999: 19 years of 1m bars
TRADES_WINDOW_MS = 86_400_000  # fetch_my_trades asks at most this span at once (Binance's cap: 24 h)


def state_path(journal: Path) -> Path:
    """The ccxt venue's state file beside a run's journal."""
    return journal.with_name(journal.name + ".ccxt.db")


@dataclass(frozen=True)
class CcxtOptions:
    """Polling and belief settings, ms on the exchange's clock."""

    overlap_ms: int = 300_000  # each fills poll re-reads this far before the newest trade seen
    not_found_grace_ms: int = 30_000  # "not found" sooner than this after sending is not believed
    page_limit: int = 500  # trades per fetch_my_trades page


@dataclass(frozen=True, slots=True)
class _Sent:
    """What the state file knows of one order of this run: its state, the exchange's id for it
    (None until an answer says), when it was last sent (ms, the exchange's clock)."""

    state: OrderState
    order_id: str | None
    sent_ms: int


class CcxtVenue:
    """The :class:`trading.worker.types.Venue` on a ccxt exchange (see the module docstring).

    Build it with :meth:`open`. Args: ``exchange`` (owned by the caller, who closes it), the
    run's ``markets``, the state file ``db`` (None: in memory), ``client_prefix`` (the start of
    every client id of this run: the worker's ``f"{trade.client_prefix}-"``), the fills' venue
    ``name`` (default the exchange id) and :class:`CcxtOptions`.
    """

    def __init__(
        self,
        exchange: Exchange,
        markets: Mapping[str, Market],
        *,
        db: Path | None,
        client_prefix: str,
        name: str | None = None,
        options: CcxtOptions | None = None,
    ) -> None:
        self.ex = exchange
        self.markets = dict(markets)
        self.name = name or exchange.id
        self.prefix = client_prefix
        self.options = options or CcxtOptions()
        if db is not None:
            db.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(db) if db is not None else ":memory:", isolation_level=None)
        self._db.execute("pragma journal_mode=wal")
        self._db.execute("pragma synchronous=normal")  # as the paper venue's: kill -9 safe in WAL
        self._db.executescript(SCHEMA)
        meta = dict(self._db.execute("select k, v from meta").fetchall())
        if "since_ms" not in meta:  # the run begins: older trades are not its (less a margin for clock skew)
            meta["since_ms"] = exchange.milliseconds() - self.options.overlap_ms
            self._db.execute("insert into meta values ('since_ms', ?)", (meta["since_ms"],))
        self._since = int(meta["since_ms"])
        self._cursor = {k.removeprefix("cursor:"): int(v) for k, v in meta.items() if k.startswith("cursor:")}
        self._confirmed: set[str] | None = None  # trade ids the exchange reported since the full re-read

    @classmethod
    async def open(
        cls,
        exchange: Exchange,
        *,
        symbols: Iterable[str],
        backtest: BacktestConfig,
        db: Path | None,
        client_prefix: str,
        name: str | None = None,
        options: CcxtOptions | None = None,
    ) -> CcxtVenue:
        """Load the markets, check the units, open the state file (a run resumes from it).

        Raises:
            ConfigError: a symbol the exchange lacks, or units that disagree (:func:`market_of`).
            VenueAmbiguous: the markets could not be loaded (retry).
        """
        try:
            await exchange.load_markets()
        except FAILURES as exc:
            raise VenueAmbiguous(f"{exchange.id}: load_markets: {reason(exc)}") from exc
        markets = {s: market_of(exchange, s, backtest) for s in symbols}
        longest = len(client_prefix) + len("L") + TICK_DIGITS + len("b-") + max(map(len, markets), default=0)
        if longest > MAX_CLIENT_ID:
            raise ConfigError(
                f"{exchange.id}: client order ids would be up to {longest} characters ({client_prefix!r} + book, "
                f"tick, side, symbol) > {MAX_CLIENT_ID} (Binance's limit); shorten trade.client_prefix"
            )
        return cls(exchange, markets, db=db, client_prefix=client_prefix, name=name, options=options)

    def close(self) -> None:
        self._db.close()

    def describe(self) -> dict[str, Any]:
        (fills,) = self._db.execute("select count(*) from fills").fetchone()
        return {"venue": self.name, "exchange": self.ex.id, "since_ms": self._since, "fills": fills}

    # ---- the state file --------------------------------------------------------------------------
    def _get(self, client_id: str) -> _Sent | None:
        row = self._db.execute("select * from orders where client_id = ?", (client_id,)).fetchone()
        return None if row is None else _Sent(OrderState(*row[:8]), row[8], row[9])

    def _put(self, o: _Sent) -> _Sent:
        self._db.execute(
            "insert or replace into orders values (?,?,?,?,?,?,?,?,?,?)",
            (*o.state, o.order_id, o.sent_ms),
        )
        return o

    def _update(self, o: _Sent, answer: dict[str, Any]) -> _Sent:
        """Take what a venue answer says of an order (what it leaves out stays as it was)."""
        st, filled = o.state, answer.get("filled")
        lots = (
            st.filled_lots
            if filled is None
            else to_units(float(filled), self.markets[st.symbol].lot, f"{st.client_id} filled")
        )
        new = replace(
            o,
            state=st._replace(status=STATUS.get(str(answer.get("status")), st.status), filled_lots=lots),
            order_id=str(answer["id"]) if answer.get("id") else o.order_id,
        )
        return o if new == o else self._put(new)

    def _adopt(self, answer: dict[str, Any], m: Market, client_id: str) -> _Sent:
        """Record an order with this run's prefix that this file never sent (seen on the venue)."""
        price, lots = answer.get("price"), to_units(float(answer["amount"]), m.lot, f"{client_id} amount")
        ticks = to_units(float(price), m.tick, f"{client_id} price") if price else 0
        kind: Literal["limit", "market"] = "market" if answer.get("type") == "market" else "limit"
        state = OrderState(client_id, m.symbol, SIDE_OF[answer["side"]], ticks, lots, 0, "pending", kind)
        sent = int(answer.get("timestamp") or self.ex.milliseconds())
        return self._update(_Sent(state, None, sent), answer)

    def _market(self, symbol: str) -> Market:
        if symbol not in self.markets:
            raise VenueRejected(f"{self.name}: {symbol} is not a market of this run")
        return self.markets[symbol]

    # ---- orders ------------------------------------------------------------------------------------
    async def place(self, order: OrderRequest) -> OrderState:
        m = self._market(order.symbol)
        known = self._get(order.client_id)
        if known is not None and known.order_id is not None:  # idempotent: the same client id is that order
            return known.state
        limit = order.kind == "limit"
        amount, price = (
            from_units(order.lots, m.lot),
            from_units(order.price_ticks, m.tick) if limit else None,
        )
        at = f"@ {order.price_ticks} ticks ({amount} {m.ccxt_symbol} @ {price})" if limit else "at market"
        what = f"{self.name}: place {order.client_id} {SIDES[order.side]} {order.lots} lots {at}"
        if order.lots <= 0 or (limit and order.price_ticks <= 0):
            raise VenueRejected(f"{what}: not an order")
        state = OrderState(
            order.client_id, order.symbol, order.side, order.price_ticks, order.lots, 0, "pending", order.kind
        )
        rec = self._put(_Sent(state, None, self.ex.milliseconds()))  # before the request: a restart knows
        params = {"clientOrderId": order.client_id} | ({"postOnly": True} if limit else {})
        try:
            answer = await self.ex.create_order(
                m.ccxt_symbol, order.kind, SIDES[order.side], amount, price, params
            )
        except ccxt.DuplicateOrderId as exc:  # the venue has this client id already: that order is the answer
            found = await self.order(order.client_id)
            if found is None:
                raise VenueAmbiguous(f"{what}: the venue has the client id but cannot find it") from exc
            return found
        except FAILURES as exc:
            error = classify(exc, what)
            if isinstance(error, VenueRejected):
                self._put(replace(rec, state=state._replace(status="rejected")))
            raise error from exc
        return self._update(rec, answer).state

    async def cancel(self, symbol: str, client_id: str) -> OrderState | None:
        rec = self._get(client_id)
        if rec is not None and rec.order_id is None and rec.state.status not in TERMINAL:
            await self.order(client_id)  # the acknowledgement was lost: learn the exchange's id first
            rec = self._get(client_id)
        if rec is not None and rec.state.status in TERMINAL:
            return rec.state
        if rec is None or rec.order_id is None:  # never sent, or the venue says it does not have it
            return None
        try:
            answer = await self.ex.cancel_order(rec.order_id, self.markets[rec.state.symbol].ccxt_symbol)
        except ccxt.OrderNotFound:  # not open any more (filled or cancelled meanwhile): what it became
            return await self.order(client_id)
        except FAILURES as exc:
            raise classify(exc, f"{self.name}: cancel {client_id}") from exc
        return self._update(rec, answer).state

    async def order(self, client_id: str) -> OrderState | None:
        rec = self._get(client_id)
        if rec is None:
            return None  # never sent from here: the record is written before any request
        if rec.order_id is None and rec.state.status == "rejected":
            return rec.state  # the venue refused it when it was sent
        what = f"{self.name}: status of {client_id}"
        try:
            answer = await self._fetch(rec, self.markets[rec.state.symbol])
        except ccxt.OrderNotFound as exc:
            waited, grace = self.ex.milliseconds() - rec.sent_ms, self.options.not_found_grace_ms
            if waited < grace:
                raise VenueAmbiguous(
                    f"{what}: not found {waited} ms after it was sent; believed after {grace} ms"
                ) from exc
            return None
        except FAILURES as exc:  # a query never rejects: only OrderNotFound says the order is not there
            raise VenueAmbiguous(f"{what}: {reason(exc)}") from exc
        return self._update(rec, answer).state

    async def _fetch(self, rec: _Sent, m: Market) -> dict[str, Any]:
        """The order by exchange id, else by client id, else from the open and closed order lists."""
        if rec.order_id is not None:
            return await self.ex.fetch_order(rec.order_id, m.ccxt_symbol)
        cid = rec.state.client_id
        try:
            return await self.ex.fetch_order(cid, m.ccxt_symbol, {"clientOrderId": cid})
        except (ccxt.NotSupported, ccxt.ArgumentsRequired):
            pass
        since = rec.sent_ms - self.options.overlap_ms
        for listing in (self.ex.fetch_open_orders, self.ex.fetch_closed_orders):
            for answer in await listing(m.ccxt_symbol, since):
                if answer.get("clientOrderId") == cid:
                    return answer
        raise ccxt.OrderNotFound(f"{cid} is in neither the open nor the closed orders since {since}")

    async def place_many(self, orders: Sequence[OrderRequest]) -> list[OrderState | VenueError]:
        return await places_one_by_one(self, orders)

    async def cancel_many(self, cancels: Sequence[tuple[str, str]]) -> list[OrderState | VenueError | None]:
        return await cancels_one_by_one(self, cancels)

    async def open_orders(self, symbol: str | None = None) -> list[OrderState]:
        """The venue's open orders with this run's prefix (one this file never sent is recorded)."""
        out = []
        for m in [self._market(symbol)] if symbol else list(self.markets.values()):
            try:
                answers = await self.ex.fetch_open_orders(m.ccxt_symbol)
            except FAILURES as exc:
                raise VenueAmbiguous(f"{self.name}: open orders {m.symbol}: {reason(exc)}") from exc
            for a in answers:
                cid = str(a.get("clientOrderId") or "")
                if cid.startswith(self.prefix):
                    rec = self._get(cid)
                    out.append((self._adopt(a, m, cid) if rec is None else self._update(rec, a)).state)
        return out

    async def flush(self) -> None:
        """Nothing to do: every request is final when its answer (or error) comes back."""

    # ---- fills and positions -------------------------------------------------------------------------
    async def fills_since(self, seq: int) -> list[Fill]:
        """This run's fills after ``seq``, after polling the exchange (in full on the first call)."""
        await self._sync(full=self._confirmed is None)
        return read_fills(self._db, self.name, seq)

    async def positions(self) -> dict[str, int]:
        """Net lots per symbol of this run's trades the exchange reports (see the module docstring)."""
        if self._confirmed is None:
            await self._sync(full=True)
        confirmed = self._confirmed or set()
        net = dict.fromkeys(self.markets, 0)
        for trade_id, sym, side, lots in self._db.execute("select trade_id, symbol, side, lots from fills"):
            if trade_id in confirmed:
                net[sym] += side * lots
        return net

    async def _sync(self, *, full: bool) -> None:
        """Read the exchange's trades into the state file: since the run began (full), or since
        ``overlap_ms`` before the newest trade seen of each symbol."""
        seen: set[str] = set()
        for m in self.markets.values():
            since = self._since
            if not full:
                since = max(since, self._cursor.get(m.symbol, since) - self.options.overlap_ms)
            for trade in await self._trades(m, since):
                trade_id = await self._keep(trade, m)
                if trade_id is not None:
                    seen.add(trade_id)
        if full:
            self._confirmed = seen
        elif self._confirmed is not None:
            self._confirmed |= seen

    async def _trades(self, m: Market, since: int) -> list[dict[str, Any]]:
        """This account's trades of ``m`` from ``since`` to now, in windows of ``TRADES_WINDOW_MS``
        (Binance answers at most 24 h from a start time) and pages of ``page_limit`` within each."""
        out: list[dict[str, Any]] = []
        now = self.ex.milliseconds()
        while since <= now:
            until = min(since + TRADES_WINDOW_MS, now + 1)
            try:
                page = await self.ex.fetch_my_trades(
                    m.ccxt_symbol, since, self.options.page_limit, {"until": until}
                )
            except FAILURES as exc:
                raise VenueAmbiguous(f"{self.name}: trades {m.symbol}: {reason(exc)}") from exc
            out += page
            newest = max((int(t["timestamp"]) for t in page), default=since)
            full = len(page) >= self.options.page_limit and newest > since
            since = newest if full else until  # a full page: the rest from its newest; else the next window
        return sorted(out, key=lambda t: int(t["timestamp"]))

    async def _keep(self, t: dict[str, Any], m: Market) -> str | None:
        """Store one reported trade if it is this run's (its id, else None); a repeat changes nothing."""
        client_id = await self._owner(str(t["order"]), m)
        if client_id is None:
            return None
        trade_id, ts = f"{m.symbol}:{t['id']}", int(t["timestamp"])
        self._db.execute(
            "insert or ignore into fills(trade_id, client_id, symbol, side, price_ticks, lots, fee, maker, ts_ns)"
            " values (?,?,?,?,?,?,?,?,?)",
            (
                trade_id,
                client_id,
                m.symbol,
                SIDE_OF[t["side"]],
                to_units(float(t["price"]), m.tick, f"{self.name} trade {trade_id} price"),
                to_units(float(t["amount"]), m.lot, f"{self.name} trade {trade_id} amount"),
                self._fee(t, m),
                int(t.get("takerOrMaker") == "maker"),
                ts * 1_000_000,
            ),
        )
        if ts > self._cursor.get(m.symbol, 0):
            self._cursor[m.symbol] = ts
            self._db.execute("insert or replace into meta values (?, ?)", (f"cursor:{m.symbol}", ts))
        return trade_id

    async def _owner(self, order_id: str, m: Market) -> str | None:
        """The client id of a trade's order when it is this run's. An order this file does not know
        is asked about once (the answer is kept); until the exchange answers, the poll fails
        (VenueAmbiguous) and the next one asks again, so no trade of ours is skipped."""
        row = self._db.execute("select client_id from orders where order_id = ?", (order_id,)).fetchone()
        if row is not None:
            return str(row[0])
        if self._db.execute("select 1 from foreign_orders where order_id = ?", (order_id,)).fetchone():
            return None
        try:
            answer = await self.ex.fetch_order(order_id, m.ccxt_symbol)
        except FAILURES as exc:
            raise VenueAmbiguous(f"{self.name}: order {order_id} of a trade: {reason(exc)}") from exc
        client_id = str(answer.get("clientOrderId") or "")
        if not client_id.startswith(self.prefix):
            self._db.execute("insert or ignore into foreign_orders values (?)", (order_id,))
            return None
        rec = self._get(client_id)
        if rec is None:
            self._adopt(answer, m, client_id)
        else:
            self._update(rec, answer)
        return client_id

    def _fee(self, t: dict[str, Any], m: Market) -> float:
        """The trade's fee in quote ccy (a base-ccy fee at the trade's price; other ccys: 0, warned)."""
        fee = t.get("fee") or {}
        cost, currency = float(fee.get("cost") or 0.0), fee.get("currency")
        if currency == m.base:
            return cost * float(t["price"])
        if cost and currency not in (None, m.quote):
            logger.warning(
                "%s: trade %s fee %g %s booked as 0 (not %s)", self.name, t["id"], cost, currency, m.quote
            )
            return 0.0
        return cost
