"""The live bar feed: closed bars from a ccxt exchange on a regular clock, for a live venue.

A replay knows its ticks in advance; a live run does not. The feed keeps the same shape: tick
``j`` is the bar that opens at ``first + j * interval`` for every symbol, due once it has
closed and ``settle_s`` has passed (exchanges publish a bar a moment after it closes). Each due
tick becomes a tick whether or not the exchange sent its bars: a symbol with no bar is a
symbol without market data at that tick, and the worker's stale-data guard pulls its quotes
once the gap exceeds ``risk.stale_after_ms``. A bar that arrives after its tick was handed out
is dropped and reported, never inserted into the past, so the worker's view of what it traded
on never changes.

Because the grid is regular, a restarted live run rebuilds the same ticks from the exchange's
history (``first`` is in the journal's run spec) and resumes where it stopped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import SourceError
from features.schema import normalize_interval
from features.sources.ccxt_source import parse_ohlcv
from trading.config import BacktestConfig
from trading.worker.ccxt_exchange import Exchange
from trading.worker.paper import Replay

logger = logging.getLogger(__name__)

PAGE = 1000  # bars per fetch_ohlcv call (Binance's and most venues' cap)
RETRIES = 3  # a failed poll is asked again twice, RETRY_PAUSE_S apart: within a 1m bar's slack
RETRY_PAUSE_S = 0.5
RESYNC_TICKS = 60  # the exchange clock's offset is measured again this often (an hour of 1m bars)


@dataclass(frozen=True, slots=True)
class FeedNote:
    """Something the worker should journal: a market whose bars did not come, or came late."""

    symbol: str
    ts_ns: int
    message: str


class BarFeed:
    """Closed bars of several markets from one exchange, one tick per interval.

    Args:
        exchange: a ccxt async exchange (or the tests' fake with its signatures).
        markets: worker symbol -> the exchange's market (``BTCUSDT`` -> ``BTC/USDT``).
        interval: the bar length (``1m``).
        backtest: unit conversion, exactly as a replay does it.
        settle_s: how long after a bar closes to ask for it.
        clock: wall clock, seconds since the epoch.
        sleep: how to wait (tests pass a fake that moves their clock).
    """

    def __init__(
        self,
        exchange: Exchange,
        *,
        markets: Mapping[str, str],
        interval: str,
        backtest: BacktestConfig,
        settle_s: float = 2.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.exchange = exchange
        self.markets = dict(markets)
        self.interval = normalize_interval(interval)
        self.bar_ns = int(pd.Timedelta(self.interval).value)
        self.backtest = backtest
        self.settle_s = settle_s
        self.clock = clock
        self.sleep = sleep
        self.first_ns = 0
        self.ticks = 0  # ticks handed out
        self.frames: dict[str, pd.DataFrame] = {}
        self.notes: list[FeedNote] = []
        self.offset_s = 0.0  # exchange clock - local clock

    def now(self) -> float:
        """The exchange's time, seconds: the local clock plus the offset measured at start (and
        every ``RESYNC_TICKS``). Exchanges serve the bar still open with the closed ones, so a
        local clock running ahead would hand out that bar, half formed, as closed."""
        return self.clock() + self.offset_s

    async def resync(self) -> None:
        """Measure the exchange clock's offset (``fetch_time``) where the exchange has one."""
        if not getattr(self.exchange, "has", {}).get("fetchTime"):
            return
        import ccxt

        before = self.clock()
        try:
            server_ms = await self.exchange.fetch_time()  # type: ignore[attr-defined]
        except ccxt.BaseError as exc:  # keep the last offset; the settle time covers small drift
            self.notes.append(FeedNote("*", int(self.now() * 1e9), f"clock offset not measured: {exc}"))
            return
        mid = (before + self.clock()) / 2  # the answer was made about half way through the request
        self.offset_s = float(server_ms) / 1000 - mid
        if abs(self.offset_s) > self.settle_s / 2:
            logger.warning("%s clock is %+.2f s from this machine's", self.exchange.id, self.offset_s)

    def due(self) -> int:
        """Ticks whose bars have closed and settled by now (the exchange's time)."""
        now_ns = int(self.now() * 1e9) - int(self.settle_s * 1e9)
        return max(0, (now_ns - self.first_ns) // self.bar_ns)

    async def start(self, *, first_ns: int | None, warmup: int) -> tuple[Replay, dict[str, pd.DataFrame]]:
        """Fetch the warm-up history and every tick due since ``first_ns``.

        Args:
            first_ns: the run's first tick (a resumed run's, from its journal), or None for a
                new run: it starts at the newest closed bar.
            warmup: bars before the first tick each symbol needs for its features.

        Returns:
            The replay of the ticks due so far (at least one) and the history per symbol.

        Raises:
            SourceError: the exchange refused a market or answered something that is not bars.
        """
        await self.resync()
        if first_ns is None:
            now_ns = int((self.now() - self.settle_s) * 1e9)
            first_ns = (now_ns // self.bar_ns - 1) * self.bar_ns
        self.first_ns = int(first_ns)
        since_ns = self.first_ns - warmup * self.bar_ns
        history: dict[str, pd.DataFrame] = {}
        for sym in self.markets:
            bars = await self._fetch(sym, since_ns=since_ns, until_ns=self._end_ns(self.due()))
            before = bars["timestamp"] < pd.Timestamp(self.first_ns, tz="UTC")
            history[sym] = bars.loc[before].reset_index(drop=True)
            self.frames[sym] = bars.loc[~before].reset_index(drop=True)
        while self.due() < 1:  # a new run asked a moment too early
            await self.sleep(self._wait_s(1))
        return self._replay(self.due()), history

    async def next(self) -> Replay:
        """Wait for the next tick to be due, fetch what is new, and return the longer replay."""
        want = self.ticks + 1
        if want % RESYNC_TICKS == 0:
            await self.resync()
        if self.due() < want:
            await self.sleep(self._wait_s(want))
        due = max(want, self.due())
        for sym in self.markets:
            frame = self.frames[sym]
            last = int(frame["timestamp"].iloc[-1].value) if len(frame) else self.first_ns - self.bar_ns
            try:
                bars = await self._fetch_retrying(
                    sym, since_ns=last + self.bar_ns, until_ns=self._end_ns(due)
                )
            except SourceError as exc:
                self.notes.append(FeedNote(sym, self._end_ns(due) - self.bar_ns, f"no bars: {exc}"))
                continue
            handed_ns = self.first_ns + self.ticks * self.bar_ns
            stamps = bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
            late = stamps < handed_ns
            for ts in stamps[late]:
                self.notes.append(
                    FeedNote(
                        sym, int(ts), f"bar {pd.Timestamp(int(ts), tz='UTC')} came after its tick: dropped"
                    )
                )
            if (~late).any():
                self.frames[sym] = pd.concat([frame, bars.loc[~late]], ignore_index=True)
        return self._replay(due)

    def take_notes(self) -> list[FeedNote]:
        notes, self.notes = self.notes, []
        return notes

    # ---- inside ----------------------------------------------------------------------------------
    def _end_ns(self, ticks: int) -> int:
        return self.first_ns + ticks * self.bar_ns

    def _wait_s(self, ticks: int) -> float:
        """Seconds until ``ticks`` ticks are due."""
        return max(0.0, (self._end_ns(ticks) / 1e9 + self.settle_s) - self.now())

    def _replay(self, ticks: int) -> Replay:
        end = pd.Timestamp(self._end_ns(ticks), tz="UTC")
        frames = {s: f.loc[f["timestamp"] < end].reset_index(drop=True) for s, f in self.frames.items()}
        for sym, f in frames.items():
            seen = set(f["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64).tolist())
            for k in range(self.ticks, ticks):
                ts = self._end_ns(k)
                if ts not in seen:
                    when = pd.Timestamp(ts, tz="UTC")
                    self.notes.append(FeedNote(sym, ts, f"no bar from the exchange for the tick of {when}"))
        self.ticks = ticks
        grid = self.first_ns + np.arange(ticks, dtype=np.int64) * self.bar_ns
        return Replay.from_frames(frames, interval=self.interval, backtest=self.backtest, grid=grid)

    async def _fetch_retrying(self, sym: str, *, since_ns: int, until_ns: int) -> pd.DataFrame:
        """:meth:`_fetch`, asked again after a short pause while the tick is still fresh: a
        bar not fetched before its tick goes out is lost to the worker (see the module doc)."""
        for attempt in range(RETRIES):
            try:
                return await self._fetch(sym, since_ns=since_ns, until_ns=until_ns)
            except SourceError:
                if attempt == RETRIES - 1:
                    raise
                await self.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")

    async def _fetch(self, sym: str, *, since_ns: int, until_ns: int) -> pd.DataFrame:
        """Closed bars of ``sym`` opening in ``[since_ns, until_ns)``, on the grid, page by page."""
        import ccxt

        market = self.markets[sym]
        cursor, rows = since_ns // 1_000_000, []
        while cursor < until_ns // 1_000_000:
            try:
                page = await self.exchange.fetch_ohlcv(market, self.interval, cursor, PAGE)
            except ccxt.BaseError as exc:  # network or venue: this symbol has no bars this tick
                raise SourceError(
                    f"{self.exchange.id} fetch_ohlcv {market}: {type(exc).__name__}: {exc}"
                ) from exc
            page = [r for r in page if cursor <= int(r[0]) < until_ns // 1_000_000]
            if not page:
                break
            rows.extend(page)
            cursor = int(page[-1][0]) + self.bar_ns // 1_000_000
        bars = parse_ohlcv(rows, symbol=sym, venue=self.exchange.id, interval=self.interval)
        bars = bars.drop_duplicates("timestamp", keep="last").sort_values("timestamp", kind="stable")
        on_grid = (
            bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64) - self.first_ns
        ) % self.bar_ns == 0
        for ts in bars.loc[~on_grid, "timestamp"]:
            self.notes.append(
                FeedNote(sym, int(ts.value), f"bar at {ts} is off the {self.interval} grid: dropped")
            )
        return bars.loc[on_grid].reset_index(drop=True)
