"""A scripted exchange with ccxt's async method signatures, for the ccxt venue's tests.

It answers as a ccxt async exchange does (the unified method names and arguments, ccxt's
exception classes, ccxt-shaped dicts for markets, orders, trades and balances, amounts and
prices as floats), holds orders by exchange id and by client id, and fills resting limit
orders against the bars a test feeds it (:meth:`FakeExchange.bar`; ``fill_share`` < 1 fills
only part of an order per bar). A market order fills at once at the last close.

Each method can be scripted per call (:meth:`FakeExchange.on`) to do what exchanges do:
refuse (``reject``, ``insufficient``, ``permission``, ``bad_request``), fail before acting
(``timeout``, ``unavailable`` = a 503, ``rate_limit``, ``exchange_error`` = an unclassified
error), or act and then fail (``timeout_after_accept``; ``lose_ack``: the order is placed, the
connection drops, and the order does not show in queries for ``hide_ms``). Fill reports can come
twice (``duplicate_reports``), shuffled (``shuffle_reports``) and late (``report_delay_ms``: a
trade appears in ``fetch_my_trades`` that long after it happened, with its own older
timestamp). :meth:`inject_order` puts an order on the book that no journal knows, and
:meth:`bust` takes a trade back.

For live runs it also serves ``fetch_ohlcv`` from recorded bars (:meth:`FakeExchange.record`)
on a test clock (``clock``, seconds, the exchange's time): every call first plays the bars that
clock has closed through :meth:`bar`, so orders fill as time passes, and serves the closed bars
and, as Binance does, the bar still open (half formed: flat at its open, tiny volume).
``hide_bars`` holds back bars (by open ms) from ``fetch_ohlcv`` until removed.

The state lives in the object: a test restarts "the worker" by rebuilding the worker, its
journal and its venue on the same files while this exchange carries on, as a real one would.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ccxt.async_support as ccxt
from ccxt.base.decimal_to_precision import TICK_SIZE

NAME = "fakex"
DAY_MS = 86_400_000
BEFORE: dict[str, Callable[[], Exception]] = {  # nothing happened on the exchange
    "reject": lambda: ccxt.InvalidOrder(f'{NAME} {{"code":-1013,"msg":"Filter failure: PRICE_FILTER"}}'),
    "insufficient": lambda: ccxt.InsufficientFunds(
        f'{NAME} {{"code":-2010,"msg":"Account has insufficient balance for requested action."}}'
    ),
    "permission": lambda: ccxt.PermissionDenied(f'{NAME} {{"code":-2015,"msg":"Invalid API-key, IP"}}'),
    "bad_request": lambda: ccxt.BadRequest(f'{NAME} {{"code":-1102,"msg":"Mandatory parameter"}}'),
    "timeout": lambda: ccxt.RequestTimeout(
        f"{NAME} POST https://api.{NAME}.test/v3/order?timestamp=1&signature=SECRETSIG request timeout (10000 ms)"
    ),
    "unavailable": lambda: ccxt.ExchangeNotAvailable(f"{NAME} 503 Service Unavailable"),
    "rate_limit": lambda: ccxt.RateLimitExceeded(f'{NAME} 429 {{"code":-1003,"msg":"Too many requests"}}'),
    "ddos": lambda: ccxt.DDoSProtection(f"{NAME} 418 I'm a teapot"),
    "exchange_error": lambda: ccxt.ExchangeError(
        f'{NAME} {{"code":-1000,"msg":"An unknown error occurred"}}'
    ),
}
AFTER = ("timeout_after_accept", "lose_ack")  # the exchange acted, then the caller heard nothing


class ManualClock:
    """A test's wall clock, seconds since the epoch; ``sleep`` moves it instead of waiting."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    async def sleep(self, s: float) -> None:
        self.t += max(s, 0.0)


@dataclass
class Rule:
    """One scripted fault: on ``method`` calls for which ``when(n, args)`` holds, ``times`` times."""

    method: str
    fault: str
    when: Callable[[int, dict[str, Any]], bool]
    times: int | None  # None: every time


@dataclass
class Order:
    id: str
    client_id: str
    symbol: str  # ccxt symbol
    type: str
    side: str
    price: int  # price steps (limit), 0 for a market order
    amount: int  # amount steps
    timestamp: int
    post_only: bool
    filled: int = 0
    status: str = "open"
    cost: float = 0.0
    hidden_until: int = 0
    answered: bool = True  # False: accepted, but the caller got an error instead of this order


@dataclass
class Trade:
    id: str
    order: Order
    timestamp: int
    price: int
    amount: int
    maker: bool
    fee: float
    visible_at: int
    busted: bool = False


@dataclass
class FakeExchange:
    """See the module docstring. ``symbols`` maps market ids (BTCUSDT) to ccxt symbols (BTC/USDT)."""

    symbols: dict[str, str]
    now: int = 0  # ms: the exchange's clock (the open of the bar fed last, plus one bar)
    price_step: float = 0.01
    amount_step: float = 0.001
    maker_fee: float = 1e-4
    taker_fee: float = 5e-4
    fill_share: float = 1.0
    hide_ms: int = 0
    report_delay_ms: int = 0
    duplicate_reports: bool = False
    shuffle_reports: bool = False
    balances: dict[str, float] = field(default_factory=dict)
    seed: int = 0
    clock: Callable[[], float] | None = None  # live runs: the test's wall clock, seconds
    id: str = NAME
    precisionMode: int = TICK_SIZE  # noqa: N815 - ccxt's name
    has: dict[str, Any] = field(
        default_factory=lambda: {
            "fetchOrder": True,
            "fetchOpenOrders": True,
            "fetchMyTrades": True,
            "fetchTime": True,
        }
    )

    def __post_init__(self) -> None:
        self.markets = {
            sym: {
                "id": mid,
                "symbol": sym,
                "base": sym.split("/")[0],
                "quote": sym.split("/")[1],
                "type": "spot",
                "spot": True,
                "active": True,
                "precision": {"price": self.price_step, "amount": self.amount_step},
                "limits": {
                    "amount": {"min": self.amount_step, "max": None},
                    "price": {"min": self.price_step},
                },
                "maker": self.maker_fee,
                "taker": self.taker_fee,
            }
            for mid, sym in self.symbols.items()
        }
        self.orders: dict[str, Order] = {}
        self.by_client: dict[str, Order] = {}
        self.trades: list[Trade] = []
        self.last_close: dict[str, int] = {}
        self.rules: list[Rule] = []
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.peak_open: dict[tuple[str, str], int] = {}  # most orders of one side resting in one bar
        self._ids = 1000
        self.recorded: dict[str, list[list[Any]]] = {}  # ccxt symbol -> fetch_ohlcv rows
        self.played: dict[str, int] = {}  # ccxt symbol -> rows played through bar()
        self.hide_bars: set[int] = set()
        self._trade_ids = dict.fromkeys(self.markets, 0)
        self._rng = random.Random(self.seed)
        for m in self.markets.values():
            self.balances.setdefault(m["base"], 1_000.0)
            self.balances.setdefault(m["quote"], 1e9)

    # ---- scripting -------------------------------------------------------------------------------
    def on(
        self,
        method: str,
        fault: str,
        *,
        when: Callable[[int, dict[str, Any]], bool] | None = None,
        times: int | None = 1,
    ) -> None:
        """Script ``fault`` on calls of ``method`` (call numbers count from 1 per method)."""
        if fault not in BEFORE and fault not in AFTER:
            raise ValueError(f"unknown fault {fault!r}")
        self.rules.append(Rule(method, fault, when or (lambda _n, _a: True), times))

    def _call(self, method: str, **args: Any) -> str | None:
        self._play()
        self.calls.append((method, args))
        n = sum(1 for m, _ in self.calls if m == method)
        for rule in self.rules:
            if rule.method == method and rule.times != 0 and rule.when(n, args):
                if rule.times is not None:
                    rule.times -= 1
                if rule.fault in BEFORE:
                    raise BEFORE[rule.fault]()
                return rule.fault
        return None

    def count(self, method: str) -> int:
        return sum(1 for m, _ in self.calls if m == method)

    # ---- the market ------------------------------------------------------------------------------
    def bar(
        self, symbol: str, *, ts: int, high: float, low: float, close: float, bar_ms: int = 60_000
    ) -> None:
        """One bar of ``symbol`` (market id or ccxt symbol): resting limit orders that the bar
        traded through fill at their price (maker), ``fill_share`` of their size per bar."""
        sym = self.symbols.get(symbol, symbol)
        self.now = max(self.now, ts)
        hi, lo = round(high / self.price_step), round(low / self.price_step)
        for side in ("buy", "sell"):
            resting = [
                o for o in self.orders.values() if o.symbol == sym and o.side == side and o.status == "open"
            ]
            key = (sym, side)
            self.peak_open[key] = max(self.peak_open.get(key, 0), sum(o.type == "limit" for o in resting))
            for o in resting:
                if o.type == "limit" and (
                    (side == "buy" and lo < o.price) or (side == "sell" and hi > o.price)
                ):
                    size = max(1, int(o.amount * self.fill_share))
                    self._fill(o, min(size, o.amount - o.filled), o.price, maker=True, ts=ts)
        self.last_close[sym] = round(close / self.price_step)
        self.now = ts + bar_ms

    def record(self, symbol: str, rows: list[list[Any]], bar_ms: int = 60_000) -> None:
        """Bars ``[[open ms, o, h, l, c, v], ...]`` of ``symbol`` (market id or ccxt symbol) that
        the clock plays and ``fetch_ohlcv`` serves once closed."""
        sym = self.symbols.get(symbol, symbol)
        self.recorded[sym] = sorted(rows)
        self.played[sym] = 0
        self.bar_ms = bar_ms

    def _play(self) -> None:
        if self.clock is None:
            return
        now = int(self.clock() * 1000)
        for sym, rows in self.recorded.items():
            k = self.played[sym]
            while k < len(rows) and rows[k][0] + self.bar_ms <= now:
                t, _o, h, lo, c, _v = rows[k]
                self.bar(sym, ts=int(t), high=h, low=lo, close=c, bar_ms=self.bar_ms)
                k += 1
            self.played[sym] = k
        self.now = max(self.now, now)

    def _fill(self, o: Order, amount: int, price: int, *, maker: bool, ts: int) -> None:
        self._trade_ids[o.symbol] += 1
        notional = price * self.price_step * amount * self.amount_step
        fee = notional * (self.maker_fee if maker else self.taker_fee)
        self.trades.append(
            Trade(str(self._trade_ids[o.symbol]), o, ts, price, amount, maker, fee, ts + self.report_delay_ms)
        )
        o.filled += amount
        o.cost += notional
        if o.filled >= o.amount:
            o.status = "closed"
        m = self.markets[o.symbol]
        sign = 1 if o.side == "buy" else -1
        self.balances[m["base"]] += sign * amount * self.amount_step
        self.balances[m["quote"]] -= sign * notional + fee

    def inject_order(self, client_id: str, symbol: str, side: str, amount: float, price: float) -> Order:
        """An order on the book that no journal knows (a manual order, another worker's)."""
        o = self._new(
            client_id, self.symbols.get(symbol, symbol), "limit", side, amount, price, post_only=True
        )
        return o

    def bust(self, trade: Trade) -> None:
        """The exchange takes a trade back: it is no longer reported."""
        trade.busted = True

    def ours(self, prefix: str) -> list[Trade]:
        """The trades of orders whose client id starts with ``prefix`` (busted ones left out)."""
        return [t for t in self.trades if t.order.client_id.startswith(prefix) and not t.busted]

    def net(self, prefix: str, symbol: str, *, reported: bool = False) -> int:
        """Net amount steps of ``prefix``'s trades in ``symbol`` (market id or ccxt symbol);
        ``reported``: only those ``fetch_my_trades`` shows by now."""
        sym = self.symbols.get(symbol, symbol)
        trades = [
            t
            for t in self.ours(prefix)
            if t.order.symbol == sym and (not reported or t.visible_at <= self.now)
        ]
        return sum((1 if t.order.side == "buy" else -1) * t.amount for t in trades)

    # ---- ccxt's unified API ----------------------------------------------------------------------
    def milliseconds(self) -> int:
        return self.now

    async def load_markets(
        self, reload: bool = False, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        self._call("load_markets")
        return self.markets

    async def close(self) -> None:
        return None

    async def create_order(
        self,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        params = dict(params or {})
        after = self._call(
            "create_order", symbol=symbol, type=type, side=side, amount=amount, price=price, params=params
        )
        if symbol not in self.markets:
            raise ccxt.BadSymbol(f"{NAME} does not have market symbol {symbol}")
        cid = str(params.get("clientOrderId") or f"x-{self._ids}")
        if cid in self.by_client:
            raise ccxt.DuplicateOrderId(f'{NAME} {{"code":-2010,"msg":"Duplicate order sent."}}')
        o = self._new(cid, symbol, type, side, amount, price, post_only=bool(params.get("postOnly")))
        o.answered = after is None
        if after == "lose_ack":
            o.hidden_until = self.now + self.hide_ms
            raise ccxt.NetworkError(f"{NAME} POST https://api.{NAME}.test/v3/order connection reset by peer")
        if after == "timeout_after_accept":
            raise ccxt.RequestTimeout(
                f"{NAME} POST https://api.{NAME}.test/v3/order request timeout (10000 ms)"
            )
        return self._order(o)

    def _new(
        self,
        cid: str,
        symbol: str,
        type: str,
        side: str,
        amount: float,
        price: float | None,
        *,
        post_only: bool,
    ) -> Order:
        steps = amount / self.amount_step
        if amount <= 0 or abs(steps - round(steps)) > 1e-9:
            raise ccxt.InvalidOrder(
                f'{NAME} {{"code":-1013,"msg":"Filter failure: LOT_SIZE"}} amount {amount!r}'
            )
        close = self.last_close.get(symbol)
        if type == "market":
            if close is None:
                raise ccxt.InvalidOrder(f"{NAME} no price yet for a market order in {symbol}")
            ticks = 0
        else:
            ticks_f = (price or 0.0) / self.price_step
            if not price or price <= 0 or abs(ticks_f - round(ticks_f)) > 1e-9:
                raise ccxt.InvalidOrder(
                    f'{NAME} {{"code":-1013,"msg":"Filter failure: PRICE_FILTER"}} {price!r}'
                )
            ticks = round(ticks_f)
            crosses = close is not None and (ticks >= close if side == "buy" else ticks <= close)
            if post_only and crosses:
                raise ccxt.OrderImmediatelyFillable(
                    f'{NAME} {{"code":-2010,"msg":"Order would immediately match and take."}}'
                )
        self._ids += 1
        o = Order(str(self._ids), cid, symbol, type, side, ticks, round(steps), self.now, post_only)
        self.orders[o.id] = o
        self.by_client[cid] = o
        if type == "market":
            assert close is not None
            self._fill(o, o.amount, close, maker=False, ts=self.now)
        return o

    async def cancel_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        after = self._call("cancel_order", id=id, symbol=symbol)
        o = self.orders.get(id)
        if o is None or o.status != "open" or self._hidden(o):
            raise ccxt.OrderNotFound(f'{NAME} {{"code":-2011,"msg":"Unknown order sent."}}')
        o.status = "canceled"
        if after:
            raise ccxt.RequestTimeout(f"{NAME} DELETE https://api.{NAME}.test/v3/order request timeout")
        return self._order(o)

    async def fetch_order(
        self, id: str, symbol: str | None = None, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        params = dict(params or {})
        self._call("fetch_order", id=id, symbol=symbol, params=params)
        cid = params.get("clientOrderId")
        o = self.by_client.get(cid) if cid else self.orders.get(id)
        if o is None or self._hidden(o) or (symbol is not None and o.symbol != symbol):
            raise ccxt.OrderNotFound(f'{NAME} {{"code":-2013,"msg":"Order does not exist."}}')
        return self._order(o)

    async def fetch_open_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self._call("fetch_open_orders", symbol=symbol)
        return [self._order(o) for o in self._listed(symbol, since) if o.status == "open"]

    async def fetch_closed_orders(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self._call("fetch_closed_orders", symbol=symbol)
        return [self._order(o) for o in self._listed(symbol, since) if o.status != "open"]

    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        self._call("fetch_my_trades", symbol=symbol, since=since, limit=limit)
        start = since or 0
        # Binance: at most 24 h from the start time, to ``until`` (ccxt's name for endTime) if sooner
        until = min(start + DAY_MS, (params or {}).get("until", start + DAY_MS))
        rows = [
            t
            for t in self.trades
            if (symbol is None or t.order.symbol == symbol)
            and start <= t.timestamp < until
            and t.visible_at <= self.now
            and not t.busted
        ]
        rows = sorted(rows, key=lambda t: (t.timestamp, int(t.id)))[: limit or None]
        if self.duplicate_reports:
            rows += rows[::2]
        if self.shuffle_reports:
            self._rng.shuffle(rows)
        return [self._trade(t) for t in rows]

    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = "1m",
        since: int | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
    ) -> list[list[Any]]:
        self._call("fetch_ohlcv", symbol=symbol, since=since, limit=limit)
        rows = self.recorded.get(symbol)
        if rows is None:
            raise ccxt.BadSymbol(f"{NAME} does not have market symbol {symbol}")
        served = [list(r) for r in rows if (since or 0) <= r[0] <= self.now and r[0] not in self.hide_bars]
        if (
            served and served[-1][0] + self.bar_ms > self.now
        ):  # the bar still open, half formed, as Binance serves it
            t, o = served[-1][0], served[-1][1]
            served[-1] = [t, o, o, o, o, 0.001]
        return served[: limit or 500]

    async def fetch_time(self, params: dict[str, Any] | None = None) -> int:
        self._call("fetch_time")
        return self.now

    async def fetch_balance(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        self._call("fetch_balance")
        out: dict[str, Any] = {"info": {}, "free": {}, "used": {}, "total": {}}
        for ccy, total in self.balances.items():
            out[ccy] = {"free": total, "used": 0.0, "total": total}
            out["free"][ccy], out["used"][ccy], out["total"][ccy] = total, 0.0, total
        return out

    # ---- ccxt-shaped answers ---------------------------------------------------------------------
    def _hidden(self, o: Order) -> bool:
        return self.now < o.hidden_until

    def _listed(self, symbol: str | None, since: int | None) -> list[Order]:
        return [
            o
            for o in self.orders.values()
            if (symbol is None or o.symbol == symbol) and o.timestamp >= (since or 0) and not self._hidden(o)
        ]

    def _order(self, o: Order) -> dict[str, Any]:
        filled = round(o.filled * self.amount_step, 12)
        amount = round(o.amount * self.amount_step, 12)
        return {
            "id": o.id,
            "clientOrderId": o.client_id,
            "timestamp": o.timestamp,
            "datetime": None,
            "lastTradeTimestamp": None,
            "symbol": o.symbol,
            "type": o.type,
            "timeInForce": "PO" if o.post_only else "GTC",
            "postOnly": o.post_only,
            "side": o.side,
            "price": round(o.price * self.price_step, 12) if o.type == "limit" else None,
            "amount": amount,
            "filled": filled,
            "remaining": round(amount - filled, 12),
            "cost": o.cost,
            "average": o.cost / filled if filled else None,
            "status": o.status,
            "fee": None,
            "trades": [],
            "info": {"orderId": o.id, "clientOrderId": o.client_id},
        }

    def _trade(self, t: Trade) -> dict[str, Any]:
        m = self.markets[t.order.symbol]
        price, amount = round(t.price * self.price_step, 12), round(t.amount * self.amount_step, 12)
        return {
            "id": t.id,
            "order": t.order.id,
            "timestamp": t.timestamp,
            "datetime": None,
            "symbol": t.order.symbol,
            "type": t.order.type,
            "side": t.order.side,
            "takerOrMaker": "maker" if t.maker else "taker",
            "price": price,
            "amount": amount,
            "cost": price * amount,
            "fee": {"cost": t.fee, "currency": m["quote"]},
            "info": {"id": t.id, "orderId": t.order.id},
        }
