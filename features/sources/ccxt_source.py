"""Live venues through ccxt: incremental ``fetch_ohlcv`` from the last stored bar to now.

ccxt is imported lazily: it is large, and only this adapter needs it. The parsing of a
``fetch_ohlcv`` response (``[[ms, open, high, low, close, volume], ...]``) is a pure function
so it is tested on a recorded response without a network.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol

import pandas as pd
from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from features.errors import SourceError, TemporaryError
from features.schema import conform, interval_ns, normalize_interval

log = logging.getLogger(__name__)


class OhlcvExchange(Protocol):
    """The part of a ccxt exchange this adapter uses."""

    id: str

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | None, limit: int | None
    ) -> list[list[Any]]: ...


def parse_ohlcv(rows: Sequence[Sequence[Any]], *, symbol: str, venue: str, interval: str) -> pd.DataFrame:
    """Turn a ccxt ``fetch_ohlcv`` response into canonical bars.

    Raises:
        SourceError: a row does not have 6 numeric fields.
    """
    for index, row in enumerate(rows):
        if len(row) != 6:
            raise SourceError(
                f"{venue} fetch_ohlcv row {index}: expected 6 fields [ms, o, h, l, c, v], got {row!r}"
            )
    frame = pd.DataFrame(list(rows), columns=["ms", "open", "high", "low", "close", "volume"])
    try:
        frame = frame.apply(pd.to_numeric, errors="raise")
    except (ValueError, TypeError) as exc:
        raise SourceError(f"{venue} fetch_ohlcv: non-numeric field ({exc})") from exc
    frame["timestamp"] = pd.to_datetime(frame["ms"].astype("int64"), unit="ms", utc=True)
    return conform(frame, symbol=symbol, venue=venue, interval=interval)


def make_exchange(exchange_id: str) -> OhlcvExchange:
    """A rate-limited ccxt exchange by id (``binance``, ``kraken``, ...)."""
    import ccxt

    if exchange_id not in ccxt.exchanges:
        raise SourceError(f"unknown ccxt exchange {exchange_id!r}")
    exchange: OhlcvExchange = getattr(ccxt, exchange_id)({"enableRateLimit": True})
    return exchange


def fetch_incremental(
    exchange: OhlcvExchange,
    *,
    market: str,
    interval: str,
    since: pd.Timestamp,
    until: pd.Timestamp,
    page_limit: int = 1000,
) -> pd.DataFrame:
    """Fetch closed bars with open time in ``[since, until)`` page by page.

    Args:
        market: the ccxt market symbol, e.g. ``BTC/USDT``.
        since: first bar open time wanted (usually the last stored bar + one interval).
        until: stop before this open time; pass "now" floored to the interval so the still
            open bar is never stored.
    """
    step_ms = interval_ns(interval) // 1_000_000
    cursor = int(since.value // 1_000_000)
    stop = int(until.value // 1_000_000)
    pages: list[list[Any]] = []
    while cursor < stop:
        page = _fetch_page(exchange, market, normalize_interval(interval), cursor, page_limit)
        page = [row for row in page if cursor <= int(row[0]) < stop]
        if not page:
            break
        pages.extend(page)
        cursor = int(page[-1][0]) + step_ms
    log.info("fetched %d %s bars of %s from %s", len(pages), interval, market, exchange.id)
    return parse_ohlcv(pages, symbol=market, venue=exchange.id, interval=interval)


@retry(
    retry=retry_if_exception_type(TemporaryError),
    wait=wait_exponential(multiplier=1, max=30),
    stop=stop_after_attempt(5),
    reraise=True,
)
def _fetch_page(
    exchange: OhlcvExchange, market: str, interval: str, since_ms: int, limit: int
) -> list[list[Any]]:
    import ccxt

    try:
        return exchange.fetch_ohlcv(market, interval, since_ms, limit)
    except (ccxt.NetworkError, ccxt.RateLimitExceeded) as exc:
        raise TemporaryError(f"{exchange.id} fetch_ohlcv {market} {interval}: {exc}") from exc
    except ccxt.BaseError as exc:
        raise SourceError(f"{exchange.id} fetch_ohlcv {market} {interval}: {exc}") from exc
