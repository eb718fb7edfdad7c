"""The ccxt edge of the live venue: the exchange object, the error rule, the units.

Three decisions live here, each once: how an exchange is built (``enableRateLimit``, the
sandbox, keys from the environment only), which ccxt errors are a definitive venue answer
(:func:`classify`), and how the worker's integer ticks and lots meet ccxt's floats
(:func:`market_of` checks the run's units are the market's steps; :func:`to_units` and
:func:`from_units` convert). :mod:`trading.worker.ccxt_venue` builds on them.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol

import ccxt.async_support as ccxt
from ccxt.base.decimal_to_precision import DECIMAL_PLACES, TICK_SIZE

from features.errors import ConfigError, DataError
from trading.config import BacktestConfig
from trading.worker.types import OrderStatus, VenueAmbiguous, VenueRejected

# A definitive venue answer: the request was refused (OrderNotFound and OrderNotCached, though
# InvalidOrder's, say nothing of an order being placed); every other failure is ambiguous.
REJECTS: tuple[type[BaseException], ...] = (
    ccxt.InvalidOrder,
    ccxt.InsufficientFunds,
    ccxt.BadRequest,
    ccxt.AuthenticationError,
    ccxt.OperationRejected,
    ccxt.ArgumentsRequired,
    ccxt.NotSupported,
)
NOT_AN_ANSWER = (ccxt.OrderNotFound, ccxt.OrderNotCached)
FAILURES = (ccxt.BaseError, OSError)  # what a request may raise (OSError: a socket error ccxt did not wrap)
STATUS: dict[str, OrderStatus] = {"open": "open", "closed": "filled", "rejected": "rejected"}
STATUS |= {"canceled": "canceled", "cancelled": "canceled", "expired": "canceled"}  # ccxt's -> ours
SIDES = {1: "buy", -1: "sell"}
SIDE_OF = {"buy": 1, "sell": -1}


class Exchange(Protocol):
    """The part of a ccxt async exchange the venue uses (the tests pass a scripted fake)."""

    id: str
    markets: dict[str, Any]
    precisionMode: int  # noqa: N815 - ccxt's name

    def milliseconds(self) -> int: ...
    async def close(self) -> None: ...
    async def load_markets(self, reload: bool = False) -> dict[str, Any]: ...
    async def fetch_ohlcv(
        self,
        symbol: str,
        timeframe: str = ...,
        since: int | None = ...,
        limit: int | None = ...,
        params: Any = ...,
    ) -> list[list[Any]]: ...
    async def create_order(
        self, symbol: str, type: str, side: str, amount: float, price: float | None = None, params: Any = None
    ) -> dict[str, Any]: ...
    async def cancel_order(
        self, id: str, symbol: str | None = None, params: Any = None
    ) -> dict[str, Any]: ...
    async def fetch_order(self, id: str, symbol: str | None = None, params: Any = None) -> dict[str, Any]: ...
    async def fetch_open_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]: ...
    async def fetch_closed_orders(
        self, symbol: str | None = None, since: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]: ...
    async def fetch_my_trades(
        self,
        symbol: str | None = None,
        since: int | None = None,
        limit: int | None = None,
        params: Any = None,
    ) -> list[dict[str, Any]]: ...


def make_exchange(
    exchange_id: str, *, sandbox: bool, keys_from_env: bool = True, env: Mapping[str, str] | None = None
) -> Exchange:
    """A rate-limited (``enableRateLimit``) ccxt async exchange, in its sandbox when asked.

    API keys come only from the environment, ``MMOPS_<ID>_API_KEY`` and ``MMOPS_<ID>_SECRET``
    (and ``MMOPS_<ID>_PASSWORD`` where the exchange has one), never from params; no message
    names their values. The caller closes the exchange (``await exchange.close()``).

    Raises:
        ConfigError: an unknown exchange id, keys missing, or a sandbox the exchange lacks.
    """
    if exchange_id not in ccxt.exchanges:
        raise ConfigError(f"unknown ccxt exchange {exchange_id!r} (ccxt.exchanges lists the ids)")
    config: dict[str, Any] = {"enableRateLimit": True}
    if keys_from_env:
        config |= _keys(exchange_id, os.environ if env is None else env)
    exchange: Any = getattr(ccxt, exchange_id)(config)
    if sandbox:
        if not exchange.urls.get("test"):  # ccxt would swap in an empty URL for some (e.g. kraken)
            raise ConfigError(f"--sandbox: ccxt has no sandbox (testnet) for {exchange_id}; run without it")
        exchange.set_sandbox_mode(True)
    result: Exchange = exchange
    return result


def _keys(exchange_id: str, env: Mapping[str, str]) -> dict[str, str]:
    prefix = f"MMOPS_{exchange_id.upper()}_"
    key, secret = env.get(prefix + "API_KEY"), env.get(prefix + "SECRET")
    if not key or not secret:
        raise ConfigError(f"{exchange_id}: set {prefix}API_KEY and {prefix}SECRET in the environment")
    keys = {"apiKey": key, "secret": secret}
    if env.get(prefix + "PASSWORD"):
        keys["password"] = env[prefix + "PASSWORD"]
    return keys


def classify(exc: BaseException, what: str) -> VenueRejected | VenueAmbiguous:
    """The rule, in one place: only a definitive venue answer rejects (see the module docstring)."""
    text = f"{what}: {reason(exc)}"
    if isinstance(exc, REJECTS) and not isinstance(exc, NOT_AN_ANSWER):
        return VenueRejected(text)
    return VenueAmbiguous(text)


def reason(exc: BaseException) -> str:
    """An error as a message: its class and text, less any request query string (signature,
    timestamp: nothing of a request's credentials reaches a message or a log)."""
    text = re.sub(r"[?]\S*", "?...", str(exc))
    return f"{type(exc).__name__}: {text}"[:300]


@dataclass(frozen=True, slots=True)
class Market:
    """One run symbol on the exchange: its ccxt name and the units both sides agree on."""

    symbol: str  # the worker's: the exchange's market id (BTCUSDT)
    ccxt_symbol: str  # BTC/USDT
    base: str
    quote: str
    tick: float  # quote ccy per tick
    lot: float  # base ccy per lot


def market_of(exchange: Exchange, symbol: str, backtest: BacktestConfig) -> Market:
    """The market of a worker symbol (an exchange market id or a ccxt symbol), units checked.

    Raises:
        ConfigError: no such market, or its steps differ from ``backtest.tick_size``/``lot_size``.
    """
    m = _market(exchange, symbol)
    steps = {}
    for key, ours, setting in (
        ("price", backtest.tick_size, "tick_size"),
        ("amount", backtest.lot_size, "lot_size"),
    ):
        value = (m.get("precision") or {}).get(key)
        if value is None or exchange.precisionMode not in (TICK_SIZE, DECIMAL_PLACES):
            raise ConfigError(
                f"{exchange.id} {m['symbol']}: no fixed {key} step to check backtest.{setting} with"
            )
        step = float(value) if exchange.precisionMode == TICK_SIZE else 10.0 ** -int(value)
        if not math.isclose(step, ours, rel_tol=1e-9):
            raise ConfigError(
                f"{exchange.id} {m['symbol']}: backtest.{setting} {ours:g} != the market's {key} step {step:g}; "
                f"set backtest.{setting}: {step:g} in params.yaml (sizes in lots follow it)"
            )
        steps[key] = step
    return Market(symbol, m["symbol"], m["base"], m["quote"], steps["price"], steps["amount"])


def to_units(value: float, step: float, what: str) -> int:
    """A venue number in whole steps. Raises DataError when it is not on the step grid."""
    n = round(value / step)
    if abs(value / step - n) > 1e-6:
        raise DataError(f"{what} {value!r} is not a whole number of {step:g}: did the market's step change?")
    return int(n)


def from_units(n: int, step: float) -> float:
    """Whole steps as the float ccxt takes, without binary noise (7 x 0.001 -> 0.007)."""
    return float(Decimal(n) * Decimal(repr(step)))


async def resolve_markets(exchange: Exchange, symbols: Sequence[str]) -> dict[str, str]:
    """The run's symbols by the exchange's market id (the worker's name), each its ccxt symbol.

    Args:
        symbols: ccxt symbols (``BTC/USDT``) or market ids (``BTCUSDT``), as a person types them.

    Raises:
        VenueAmbiguous: the markets could not be loaded (network, 5xx: try again).
        ConfigError: a symbol the exchange does not list.
    """
    try:
        await exchange.load_markets()
    except FAILURES as exc:
        raise VenueAmbiguous(f"{exchange.id}: load_markets: {reason(exc)}") from exc
    markets = [_market(exchange, s) for s in symbols]
    return {str(m["id"]): str(m["symbol"]) for m in markets}


def _market(exchange: Exchange, symbol: str) -> dict[str, Any]:
    """The exchange's market named ``symbol`` (market id or ccxt symbol), spot first."""
    found = [m for m in exchange.markets.values() if symbol in (m["id"], m["symbol"])]
    if not found:
        raise ConfigError(f"{exchange.id} has no market {symbol!r} (by market id or ccxt symbol)")
    return next((m for m in found if m.get("spot")), found[0])


async def close_exchange(exchange: Exchange) -> None:
    """Close ``exchange`` for good. Twice: ccxt's ``load_markets`` asks several endpoints at
    once (Binance: spot, margin, futures), and a sibling request still failing after the first
    error opens a new HTTP session during the first close's wait; measured here with no network,
    a single close left "Unclosed client session" on stderr at exit."""
    await exchange.close()
    await exchange.close()
