"""The ccxt venue against a scripted fake exchange (tests/fake_exchange.py), never the network.

First the venue alone, one rule a test: what rejects and what stays in flight, when "not found"
is believed, client ids, units, fills kept once with a stable seq, positions. Then the real
worker on it over a short replay of real minutes, one exchange fault a test, each with a restart
in the middle: no order or fill lost or doubled, positions reconciled, and a venue the journal
cannot be reconciled with leaves every book HALTED with the numbers.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import pandas as pd
import pytest
from ccxt.base.decimal_to_precision import DECIMAL_PLACES
from ccxt.base.errors import NotSupported
from fake_exchange import FakeExchange, ManualClock
from worker_helpers import settings

from features.errors import ConfigError
from trading.config import BacktestConfig
from trading.worker.ccxt_exchange import make_exchange
from trading.worker.ccxt_venue import CcxtOptions, CcxtVenue, state_path
from trading.worker.journal import Journal
from trading.worker.loop import ReconcileError, Worker
from trading.worker.paper import Replay
from trading.worker.types import OrderRequest, VenueAmbiguous, VenueRejected

T = TypeVar("T")
T0 = 1_772_323_200_000  # 2026-03-01 00:00 UTC, ms
PREFIX = "mm-"
BID = OrderRequest("mm-L5b-BTCUSDT", "BTCUSDT", 1, 7, 6_500_001)


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(scenario())  # type: ignore[arg-type]


def exchange(**kw: Any) -> FakeExchange:
    return FakeExchange(symbols={"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"}, **({"now": T0} | kw))


async def venue(ex: FakeExchange, db: Path | None = None, **options: int) -> CcxtVenue:
    return await CcxtVenue.open(
        ex,
        symbols=("BTCUSDT", "ETHUSDT"),
        backtest=BacktestConfig(),
        db=db,
        client_prefix=PREFIX,
        options=CcxtOptions(**options),
    )


def sent(ex: FakeExchange, method: str) -> list[dict[str, Any]]:
    return [args for m, args in ex.calls if m == method]


# ---- the exchange object and the units ------------------------------------------------------------
def test_make_exchange_is_rate_limited_sandboxed_and_reads_keys_only_from_the_environment() -> None:
    env = {"MMOPS_BINANCE_API_KEY": "key-123", "MMOPS_BINANCE_SECRET": "secret-456"}
    ex: Any = make_exchange("binance", sandbox=True, env=env)
    assert ex.enableRateLimit and ex.apiKey == "key-123" and ex.secret == "secret-456"
    assert ex.isSandboxModeEnabled and ex.urls["api"] == ex.urls["test"]
    asyncio.run(ex.close())
    plain: Any = make_exchange("binance", sandbox=False, keys_from_env=False)
    assert not plain.apiKey and not plain.isSandboxModeEnabled
    asyncio.run(plain.close())
    with pytest.raises(ConfigError, match="set MMOPS_BINANCE_API_KEY and MMOPS_BINANCE_SECRET") as missing:
        make_exchange("binance", sandbox=False, env={"MMOPS_BINANCE_API_KEY": "key-123"})
    assert "key-123" not in str(missing.value)  # a message never carries a key
    with pytest.raises(ConfigError, match=r"no sandbox .* for kraken"):  # ccxt would swap in an empty URL
        make_exchange("kraken", sandbox=True, keys_from_env=False)
    with pytest.raises(ConfigError, match="unknown ccxt exchange 'nosuchx'"):
        make_exchange("nosuchx", sandbox=False)


def test_the_runs_units_must_be_the_markets_steps() -> None:
    async def scenario() -> None:
        ex = exchange()
        for bt, expected in (
            (BacktestConfig(lot_size=0.01), r"backtest.lot_size 0.01 != the market's amount step 0.001"),
            (BacktestConfig(tick_size=0.1), r"backtest.tick_size 0.1 != the market's price step 0.01"),
        ):
            with pytest.raises(ConfigError, match=expected):
                await CcxtVenue.open(ex, symbols=["BTCUSDT"], backtest=bt, db=None, client_prefix=PREFIX)
        with pytest.raises(ConfigError, match="fakex has no market 'DOGEUSDT'"):
            await CcxtVenue.open(
                ex, symbols=["DOGEUSDT"], backtest=BacktestConfig(), db=None, client_prefix=PREFIX
            )
        ex.precisionMode = DECIMAL_PLACES  # precision as decimal places: 2 -> 0.01, 3 -> 0.001
        for m in ex.markets.values():
            m["precision"] = {"price": 2, "amount": 3}
        v = await CcxtVenue.open(
            ex, symbols=["BTC/USDT"], backtest=BacktestConfig(), db=None, client_prefix=PREFIX
        )
        assert (v.markets["BTC/USDT"].tick, v.markets["BTC/USDT"].lot) == (0.01, 0.001)

    run(scenario)


def test_a_quote_goes_post_only_with_its_client_id_in_exact_units_and_a_flatten_at_market() -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        state = await v.place(BID)
        (args,) = sent(ex, "create_order")
        assert args == {
            "symbol": "BTC/USDT",
            "type": "limit",
            "side": "buy",
            "amount": 0.007,  # 7 lots of 0.001, not 0.007000000000000001
            "price": 65000.01,
            "params": {"clientOrderId": "mm-L5b-BTCUSDT", "postOnly": True},
        }
        assert (state.status, state.lots, state.price_ticks, state.filled_lots) == ("open", 7, 6_500_001, 0)
        assert await v.place(BID) == state and ex.count("create_order") == 1  # the same client id: that order
        ex.bar("BTCUSDT", ts=T0, high=65010.0, low=64990.0, close=65002.5)  # trades through the bid
        flat = await v.place(OrderRequest("mm-L6f-BTCUSDT", "BTCUSDT", -1, 7, 0, "market"))
        args = sent(ex, "create_order")[-1]
        assert (args["type"], args["price"], args["params"]) == (
            "market",
            None,
            {"clientOrderId": "mm-L6f-BTCUSDT"},
        )
        assert flat.status == "filled"
        fills = await v.fills_since(0)
        assert [(f.client_id, f.side, f.lots, f.price_ticks, f.maker) for f in fills] == [
            ("mm-L5b-BTCUSDT", 1, 7, 6_500_001, True),
            ("mm-L6f-BTCUSDT", -1, 7, 6_500_250, False),  # the taker fill at the last close
        ]
        assert fills[0].fee == pytest.approx(65000.01 * 0.007 * 1e-4)
        assert await v.positions() == {"BTCUSDT": 0, "ETHUSDT": 0}

    run(scenario)


@pytest.mark.parametrize(
    ("fault", "error"),
    [
        ("reject", VenueRejected),
        ("insufficient", VenueRejected),
        ("permission", VenueRejected),
        ("bad_request", VenueRejected),
        ("timeout", VenueAmbiguous),
        ("unavailable", VenueAmbiguous),
        ("rate_limit", VenueAmbiguous),
        ("ddos", VenueAmbiguous),
        ("exchange_error", VenueAmbiguous),  # an error nobody classified: it may have been placed
    ],
)
def test_only_a_definitive_venue_answer_rejects(fault: str, error: type[Exception]) -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        ex.on("create_order", fault)
        with pytest.raises(error) as raised:
            await v.place(BID)
        message = str(raised.value)
        # the venue's message and the order's numbers, and never a request's signature
        assert "place mm-L5b-BTCUSDT buy 7 lots @ 6500001 ticks (0.007 BTC/USDT @ 65000.01)" in message
        assert ex.id in message and "SECRETSIG" not in message
        if error is VenueRejected:
            assert (await v.order(BID.client_id)).status == "rejected"  # type: ignore[union-attr]

    run(scenario)


def test_a_post_only_quote_that_would_take_is_rejected() -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        ex.bar("BTCUSDT", ts=T0, high=65001.0, low=64999.0, close=65000.0)
        with pytest.raises(VenueRejected, match=r"OrderImmediatelyFillable: .*would immediately match"):
            await v.place(OrderRequest("mm-L1b-BTCUSDT", "BTCUSDT", 1, 1, 6_500_000))

    run(scenario)


def test_a_timeout_after_acceptance_stays_in_flight_until_a_query_by_client_id_resolves_it() -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        ex.on("create_order", "timeout_after_accept")
        with pytest.raises(VenueAmbiguous, match="RequestTimeout"):
            await v.place(BID)
        state = await v.order(BID.client_id)
        assert state is not None and state.status == "open"
        (query,) = sent(ex, "fetch_order")
        assert query["params"] == {"clientOrderId": BID.client_id}  # no exchange id was known yet
        assert (await v.cancel("BTCUSDT", BID.client_id)).status == "canceled"  # type: ignore[union-attr]
        assert sent(ex, "cancel_order")[0]["id"] == ex.by_client[BID.client_id].id  # learnt from the answer

    run(scenario)


def test_not_found_is_believed_only_from_the_venue_and_only_after_the_grace() -> None:
    async def scenario() -> None:
        ex = exchange(hide_ms=60_000)  # an accepted order the exchange does not show for a minute
        v = await venue(ex, not_found_grace_ms=90_000)
        ex.on("create_order", "lose_ack")
        with pytest.raises(VenueAmbiguous, match="connection reset"):
            await v.place(BID)
        with pytest.raises(VenueAmbiguous, match="not found 0 ms after it was sent; believed after 90000 ms"):
            await v.order(BID.client_id)
        ex.now += 61_000
        assert (await v.order(BID.client_id)).status == "open"  # type: ignore[union-attr]

        lost = OrderRequest("mm-L7a-BTCUSDT", "BTCUSDT", -1, 3, 6_600_000)
        ex.on("create_order", "unavailable")  # a 503: it never reached the matching engine
        with pytest.raises(VenueAmbiguous, match="ExchangeNotAvailable"):
            await v.place(lost)
        with pytest.raises(VenueAmbiguous, match="not found"):
            await v.order(lost.client_id)
        ex.now += 120_000
        ex.on("fetch_order", "timeout")
        with pytest.raises(VenueAmbiguous, match="RequestTimeout"):  # a transport error is never "not found"
            await v.order(lost.client_id)
        assert await v.order(lost.client_id) is None  # the venue's own answer, after the grace
        assert await v.order("mm-L9b-BTCUSDT") is None  # never sent from here: no question asked
        assert ex.count("fetch_order") == 5

    run(scenario)


def test_cancel_finds_a_lost_order_first_and_reports_what_a_filled_one_became() -> None:
    async def scenario() -> None:
        ex = exchange(hide_ms=30_000)
        v = await venue(ex, not_found_grace_ms=60_000)
        await v.place(BID)
        ex.bar("BTCUSDT", ts=T0, high=65010.0, low=64990.0, close=65000.0)  # filled in full
        done = await v.cancel("BTCUSDT", BID.client_id)  # the exchange: unknown order; the query: filled
        assert done is not None and (done.status, done.filled_lots) == ("filled", 7)
        ask = OrderRequest("mm-L8a-BTCUSDT", "BTCUSDT", -1, 2, 6_600_000)
        ex.on("create_order", "lose_ack")
        with pytest.raises(VenueAmbiguous):
            await v.place(ask)
        with pytest.raises(VenueAmbiguous, match="not found"):  # not shown yet: nothing to cancel by id
            await v.cancel("BTCUSDT", ask.client_id)
        ex.now += 31_000
        ex.on("cancel_order", "timeout")  # the cancel never reached it
        with pytest.raises(VenueAmbiguous, match="cancel mm-L8a-BTCUSDT: RequestTimeout"):
            await v.cancel("BTCUSDT", ask.client_id)
        assert ex.by_client[ask.client_id].status == "open"
        assert (await v.cancel("BTCUSDT", ask.client_id)).status == "canceled"  # type: ignore[union-attr]
        assert await v.cancel("BTCUSDT", "mm-L1b-BTCUSDT") is None  # never sent

    run(scenario)


def test_a_query_falls_back_to_the_order_lists_where_fetch_order_by_client_id_is_unsupported() -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        ex.on("create_order", "timeout_after_accept")
        with pytest.raises(VenueAmbiguous):
            await v.place(BID)
        real = ex.fetch_order

        async def no_client_ids(id: str, symbol: str | None = None, params: Any = None) -> dict[str, Any]:
            if params:
                raise NotSupported("fakex fetchOrder() does not support clientOrderId")
            return await real(id, symbol, params)

        ex.fetch_order = no_client_ids  # type: ignore[method-assign]
        assert (await v.order(BID.client_id)).status == "open"  # type: ignore[union-attr]
        assert ex.count("fetch_open_orders") == 1

    run(scenario)


def test_fills_are_kept_once_numbered_as_first_seen_and_the_numbers_survive_a_reopen(tmp_path: Path) -> None:
    async def scenario() -> None:
        ex = exchange(fill_share=0.5, duplicate_reports=True, shuffle_reports=True, report_delay_ms=150_000)
        v = await venue(ex, tmp_path / "v.db")
        got = []
        for i in range(8):
            if i < 4:
                await v.place(OrderRequest(f"mm-L{i}b-BTCUSDT", "BTCUSDT", 1, 4, 6_500_000 - i))
                await v.place(OrderRequest(f"mm-L{i}a-ETHUSDT", "ETHUSDT", -1, 4, 200_000 + i))
            ts = T0 + i * 60_000
            ex.bar("BTCUSDT", ts=ts, high=65100.0, low=64900.0, close=65000.0)
            ex.bar("ETHUSDT", ts=ts, high=2100.0, low=1900.0, close=2000.0)
            got += await v.fills_since(got[-1].seq if got else 0)
        expected = sorted(f"{t.order.symbol.replace('/', '')}:{t.id}" for t in ex.ours(PREFIX))
        assert sorted(f.trade_id for f in got) == expected  # each once, though reported twice and shuffled
        assert {"BTCUSDT:1", "ETHUSDT:1"} <= set(expected)  # the exchange's ids are per market
        assert [f.seq for f in got] == list(range(1, len(got) + 1))
        assert sum(f.lots for f in got if f.symbol == "BTCUSDT") == ex.net(PREFIX, "BTCUSDT")
        v.close()
        again = await venue(ex, tmp_path / "v.db")  # a restart: the same numbers, nothing new
        assert await again.fills_since(0) == got
        assert await again.positions() == {
            "BTCUSDT": ex.net(PREFIX, "BTCUSDT"),
            "ETHUSDT": ex.net(PREFIX, "ETHUSDT"),
        }

    run(scenario)


def test_trades_are_read_in_24_hour_windows_so_a_quiet_day_or_a_long_run_loses_none(tmp_path: Path) -> None:
    """The exchange answers at most 24 h of trades from a start time (Binance's cap, in the fake):
    a symbol with no fill for two days still has its next fill found, and a restart of a
    three-day run re-reads every one of them and agrees on the positions."""

    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex, tmp_path / "v.db")
        got = []
        for day in range(3):
            ts = T0 + day * 30 * 3_600_000  # 30 h apart: each fill beyond the last one's window
            await v.place(OrderRequest(f"mm-L{day}b-BTCUSDT", "BTCUSDT", 1, 4, 6_499_000))
            ex.bar("BTCUSDT", ts=ts, high=65100.0, low=64900.0, close=65000.0)
            got += await v.fills_since(got[-1].seq if got else 0)
        assert len(got) == 3 and sum(f.lots for f in got) == ex.net(PREFIX, "BTCUSDT") == 12
        v.close()
        again = await venue(ex, tmp_path / "v.db")
        assert await again.positions() == {"BTCUSDT": 12, "ETHUSDT": 0}
        assert [f.trade_id for f in await again.fills_since(0)] == [f.trade_id for f in got]

    run(scenario)


def test_a_trade_reported_later_than_the_overlap_is_found_by_the_next_starts_full_read(
    tmp_path: Path,
) -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex, tmp_path / "v.db", overlap_ms=120_000)
        early, later = OrderRequest("mm-L0b-BTCUSDT", "BTCUSDT", 1, 1, 6_400_000), BID

        def bar(i: int, low: float) -> None:
            ex.bar("BTCUSDT", ts=T0 + i * 60_000, high=65100.0, low=low, close=65075.0)

        await v.place(early)
        bar(0, 65050.0)
        ex.report_delay_ms = 600_000  # this fill is reported ten minutes late...
        bar(1, 63900.0)
        ex.report_delay_ms = 0
        await v.place(later)
        for i in range(2, 12):
            bar(i, 64900.0 if i == 5 else 65050.0)  # ...after a later one was seen: beyond the overlap
            await v.fills_since(0)
        assert [f.client_id for f in await v.fills_since(0)] == [later.client_id]
        v.close()
        again = await venue(ex, tmp_path / "v.db", overlap_ms=120_000)
        assert [f.client_id for f in await again.fills_since(0)] == [later.client_id, early.client_id]

    run(scenario)


def test_trades_not_of_this_run_are_neither_fills_nor_position_and_are_asked_about_once() -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        ex.inject_order("manual-1", "BTCUSDT", "buy", 0.5, 64000.0)  # someone else's order
        for i in range(3):
            ex.bar("BTCUSDT", ts=T0 + i * 60_000, high=64100.0, low=63900.0, close=64000.0)
            assert await v.fills_since(0) == []
        assert await v.positions() == {"BTCUSDT": 0, "ETHUSDT": 0}
        assert ex.count("fetch_order") == 1  # whose order it is was asked once

    run(scenario)


def test_an_order_with_the_prefix_this_venue_never_sent_is_recorded_and_can_be_cancelled() -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex)
        ex.inject_order("mm-L99b-BTCUSDT", "BTCUSDT", "buy", 0.002, 64000.0)
        ex.inject_order("other-1", "BTCUSDT", "buy", 0.002, 64000.0)
        (state,) = await v.open_orders()
        assert (state.client_id, state.side, state.lots, state.price_ticks) == (
            "mm-L99b-BTCUSDT",
            1,
            2,
            6_400_000,
        )
        assert (await v.cancel("BTCUSDT", "mm-L99b-BTCUSDT")).status == "canceled"  # type: ignore[union-attr]
        assert ex.by_client["other-1"].status == "open"  # not ours: left alone

    run(scenario)


def test_positions_are_the_exchanges_trades_so_a_busted_trade_shows(tmp_path: Path) -> None:
    async def scenario() -> None:
        ex = exchange()
        v = await venue(ex, tmp_path / "v.db")
        await v.place(BID)
        await v.place(OrderRequest("mm-L5b-ETHUSDT", "ETHUSDT", 1, 3, 199_000))
        ex.bar("BTCUSDT", ts=T0, high=65100.0, low=64900.0, close=65000.0)
        ex.bar("ETHUSDT", ts=T0, high=2000.0, low=1980.0, close=1995.0)
        assert await v.positions() == {"BTCUSDT": 7, "ETHUSDT": 3}
        v.close()
        ex.bust(ex.ours(PREFIX)[0])  # the exchange takes the BTC trade back
        again = await venue(ex, tmp_path / "v.db")
        assert len(await again.fills_since(0)) == 2  # still in the state file (and the journal)
        assert await again.positions() == {"BTCUSDT": 0, "ETHUSDT": 3}  # but not on the exchange

    run(scenario)


# ---- the worker on the venue -----------------------------------------------------------------------
TICKS = 300
SETTINGS = settings()


@pytest.fixture(scope="module")
def frames(btc_march: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Two symbols on one clock: 300 real BTCUSDT minutes, and 300 later ones as ETHUSDT."""
    a = btc_march.iloc[:TICKS].reset_index(drop=True)
    b = btc_march.iloc[600 : 600 + TICKS].reset_index(drop=True).assign(symbol="ETHUSDT")
    b["timestamp"] = a["timestamp"]
    return {"BTCUSDT": a, "ETHUSDT": b}


@dataclass
class LiveRun:
    """The real worker on a CcxtVenue over the fake, on journal files that outlive each process."""

    ex: FakeExchange
    replay: Replay
    path: Path
    options: CcxtOptions
    worker: Worker = field(init=False)
    journal: Journal = field(init=False)
    venue: CcxtVenue = field(init=False)
    starts_retried: int = 0

    async def start(self) -> dict[str, Any]:
        """A new process on the same files: journal, venue and worker rebuilt, then reconciled."""
        self.journal = Journal(self.path)
        self.venue = await CcxtVenue.open(
            self.ex,
            symbols=self.replay.symbols,
            backtest=SETTINGS.backtest,
            db=state_path(self.path),
            client_prefix=PREFIX,
            options=self.options,
        )
        self.worker = Worker(replay=self.replay, venue=self.venue, journal=self.journal, settings=SETTINGS)
        for _attempt in range(5):  # what a supervisor does with a TemporaryError: start again
            try:
                return await self.worker.start()
            except VenueAmbiguous:
                self.starts_retried += 1
        raise AssertionError("the venue never answered at start")

    async def until(self, tick: int, *, unsent_last: bool = False) -> None:
        """Tick to ``tick``; the fake trades each bar before the worker's tick (as the paper venue
        matches it). ``unsent_last``: the last tick's orders are journaled but never sent (a crash
        between the journal and the send)."""
        while self.worker.next_tick < tick:
            j = self.worker.next_tick
            for s, sym in enumerate(self.replay.symbols):
                if self.replay.has[j, s]:
                    tick_size = SETTINGS.backtest.tick_size
                    bar = {
                        k: float(getattr(self.replay, k)[j, s]) * tick_size for k in ("high", "low", "close")
                    }
                    self.ex.bar(sym, ts=int(self.replay.timeline[j]) // 1_000_000, **bar)
            if unsent_last and j == tick - 1:
                self.worker._send = _nothing_sent  # type: ignore[method-assign]
            await self.worker.tick()

    async def stop(self, *, crash: bool) -> None:
        """End this process: ``crash`` leaves the last tick's venue answers unjournaled."""
        if not crash:
            await self.worker.finish()
        self.journal.close()
        self.venue.close()

    async def finish(self) -> None:
        """After the last bar: late reports come in, the journal is final, and one more start
        resolves what the last tick left in flight (no tick follows it to ask)."""
        self.ex.now += 900_000
        await self.worker.run()
        await self.stop(crash=False)
        await self.start()
        await self.stop(crash=False)


async def _nothing_sent(*_args: Any) -> None:
    return None


async def reconciled(r: LiveRun) -> None:
    """After a start: the journal's position plus the fills not yet booked is, per symbol, the
    net of this run's trades the exchange reports (what reconcile compared, checked here apart)."""
    pending = await r.venue.fills_since(r.worker.books[0].last_seq)
    for sym in r.replay.symbols:
        journal = r.worker.status()["books"]["live"][sym]["inventory_lots"]
        assert journal + sum(f.side * f.lots for f in pending if f.symbol == sym) == r.ex.net(
            PREFIX, sym, reported=True
        )


def live_run(frames: dict[str, pd.DataFrame], tmp_path: Path, **options: int) -> LiveRun:
    replay = Replay.from_frames(frames, interval="1m", backtest=SETTINGS.backtest)
    ex = exchange(now=int(replay.timeline[0]) // 1_000_000)
    return LiveRun(ex, replay, tmp_path / "journal.db", CcxtOptions(**options))


def audit(r: LiveRun, *, injected: frozenset[str] = frozenset(), prefix: str = PREFIX) -> dict[str, Any]:
    """The journal against the exchange: every fill of this run once, every order accounted for,
    nothing unresolved, the same open orders, the same positions. Returns what it read."""
    j = Journal(r.path)
    fills, orders, working, events = (
        j.fills("live"),
        {o.client_id: o for o in j.orders()},
        j.open_orders(),
        j.events(),
    )
    j.close()
    with sqlite3.connect(r.path) as db:
        notes = dict(db.execute("select client_id, note from orders").fetchall())
    booked = sorted((f["trade_id"], f["client_id"], f["side"], f["price_ticks"], f["lots"]) for f in fills)
    traded = sorted(
        (
            f"{t.order.symbol.replace('/', '')}:{t.id}",
            t.order.client_id,
            1 if t.order.side == "buy" else -1,
            t.price,
            t.amount,
        )
        for t in r.ex.ours(prefix)
    )
    assert booked == traded, "the journal's fills are not exactly the exchange's trades of this run"
    accepted = {cid for cid in r.ex.by_client if cid.startswith(prefix)}
    assert accepted - injected <= set(orders)  # the exchange has no order of ours the journal lacks
    assert not {c for c, o in orders.items() if o.status == "rejected"} & accepted  # rejected: not there
    assert not [o for o in orders.values() if o.status in ("intent", "in_flight")]  # all resolved
    on_exchange = {
        o.client_id for o in r.ex.orders.values() if o.status == "open" and o.client_id.startswith(prefix)
    }
    assert on_exchange == {o.client_id for o in working}  # no order left hanging, none forgotten
    for sym in r.replay.symbols:
        assert r.worker.status()["books"]["live"][sym]["inventory_lots"] == r.ex.net(prefix, sym)
    return {"fills": fills, "orders": orders, "events": events, "notes": notes}


def every(k: int, r: int = 0) -> Callable[[int, dict[str, Any]], bool]:
    return lambda n, _args: n % k == r


FAULTS: dict[str, Callable[[FakeExchange], object]] = {
    "rejects": lambda ex: (
        ex.on("create_order", "reject", when=every(7, 3), times=None),
        ex.on("create_order", "insufficient", when=every(11, 5), times=None),
    ),
    "partial_fills": lambda ex: setattr(ex, "fill_share", 0.34),
    "timeouts_after_acceptance": lambda ex: (
        ex.on("create_order", "timeout_after_accept", when=every(5, 2), times=None),
        ex.on("cancel_order", "timeout", when=every(9, 4), times=None),
        ex.on("fetch_my_trades", "unavailable", when=every(13), times=None),
    ),
    "lost_acks": lambda ex: (
        setattr(ex, "hide_ms", 70_000),  # longer than a bar: the first status query says "not found"
        ex.on("create_order", "lose_ack", when=every(6, 1), times=None),
        ex.on("create_order", "unavailable", when=every(10, 7), times=None),
    ),
    "duplicate_and_late_reports": lambda ex: (
        setattr(ex, "duplicate_reports", True),
        setattr(ex, "shuffle_reports", True),
        setattr(ex, "report_delay_ms", 150_000),
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_the_worker_loses_and_doubles_nothing_through_a_fault_and_two_restarts(
    frames: dict[str, pd.DataFrame], tmp_path: Path, fault: str
) -> None:
    r = live_run(frames, tmp_path, not_found_grace_ms=120_000)

    async def scenario() -> dict[str, Any]:
        FAULTS[fault](r.ex)
        assert not (await r.start())["resumed"]
        await r.until(100, unsent_last=True)  # a crash between journaling and sending
        await r.stop(crash=True)
        found = await r.start()
        assert found["resumed"] and found["resent"] > 0  # the journaled intents went out on restart
        await reconciled(r)
        await r.until(200)
        await r.stop(crash=True)  # a crash after sending: the venue's answers were not journaled
        r.ex.on("fetch_my_trades", "unavailable")  # and the exchange is down as it starts again
        found = await r.start()
        assert r.starts_retried == 1  # a TemporaryError: nothing decided, started again
        assert found["resolved"] > 0  # they were asked for again by client id
        await reconciled(r)
        await r.until(TICKS)
        await r.finish()
        return audit(r)

    seen = run(scenario)
    fills, orders = seen["fills"], seen["orders"]
    assert len(fills) > 100  # the comparison has content
    notes = " | ".join(seen["notes"].values())
    if fault == "rejects":
        assert len([o for o in orders.values() if o.status == "rejected"]) > 20
        assert "InvalidOrder: fakex" in notes and "InsufficientFunds" in notes and "lots @" in notes
    if fault == "partial_fills":
        assert len([o for o in orders.values() if 0 < o.filled_lots < o.lots]) > 50
    unanswered = [o.client_id for o in r.ex.orders.values() if not o.answered]
    if fault in ("timeouts_after_acceptance", "lost_acks"):  # accepted, though the caller heard an error:
        assert len(unanswered) > 10 and all(
            orders[c].status != "rejected" for c in unanswered
        )  # none "failed"
        assert {f["client_id"] for f in fills} & set(unanswered)  # and their fills were booked
    if fault == "lost_acks":
        # the 503s were believed gone only after the grace, from the venue's own answer
        assert "never reached the venue" in seen["notes"].values()


def test_an_order_of_ours_the_journal_does_not_know_is_cancelled_at_restart_and_its_fills_adopted(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    r = live_run(frames, tmp_path)
    stray, foreign = "mm-L9999b-BTCUSDT", "manual-7"

    async def scenario() -> dict[str, Any]:
        r.ex.fill_share = 0.25  # the stray order fills a quarter at a time: still working at the restart
        await r.start()
        await r.until(149)
        close = r.ex.last_close["BTC/USDT"] * r.ex.price_step
        r.ex.inject_order(stray, "BTCUSDT", "buy", 0.04, round(close - 0.01, 2))  # e.g. a journal restored
        r.ex.inject_order(foreign, "BTCUSDT", "buy", 0.04, round(close - 0.01, 2))  # from a backup; a person
        await r.until(150)
        await r.stop(crash=True)
        found = await r.start()
        assert found["cancelled_unknown"] == 1
        await reconciled(r)
        await r.until(TICKS)
        await r.finish()
        return audit(r, injected=frozenset({stray}))

    seen = run(scenario)
    adopted = [f for f in seen["fills"] if f["client_id"] == stray]
    assert adopted and {f["version"] for f in adopted} == {"unknown"}  # booked: the inventory is real
    assert r.ex.by_client[stray].status == "canceled"  # the journal holds no decision behind it
    assert 0 < r.ex.by_client[stray].filled < r.ex.by_client[stray].amount
    assert r.ex.by_client[foreign].status in ("open", "closed")  # not ours: untouched...
    assert not [f for f in seen["fills"] if f["client_id"] == foreign]  # ...and not our position
    assert any(e["message"] == f"cancelled unknown order {stray}" for e in seen["events"])


def test_a_venue_the_journal_cannot_be_reconciled_with_halts_every_book_with_the_numbers(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    r = live_run(frames, tmp_path)

    async def scenario() -> None:
        await r.start()
        await r.until(120)
        await r.stop(crash=False)
        busted = next(t for t in reversed(r.ex.ours(PREFIX)) if t.order.symbol == "BTC/USDT")
        r.ex.bust(busted)  # the exchange takes back a trade the journal booked
        sent_before = r.ex.count("create_order"), r.ex.count("cancel_order")
        sign = 1 if busted.order.side == "buy" else -1
        for _restart in range(2):  # and again: it stays halted until a person sorts it out
            with pytest.raises(
                ReconcileError,
                match=r"live BTCUSDT: journal position [+-]\d+ lots, venue [+-]\d+ lots; every book halted",
            ) as failed:
                await r.start()
            journal = r.worker.status()["books"]["live"]["BTCUSDT"]["inventory_lots"]
            assert (
                f"journal position {journal:+d} lots, venue {journal - sign * busted.amount:+d} lots"
                in str(failed.value)
            )
            assert r.worker.halted_everywhere()
            assert {
                row["status"] for book in r.worker.status()["books"].values() for row in book.values()
            } == {"HALTED"}
            await r.stop(crash=True)
        assert (r.ex.count("create_order"), r.ex.count("cancel_order")) == sent_before  # nothing was sent
        j = Journal(r.path)
        events = j.events(("fail_closed",))
        assert j.control("phase") == "halted"
        j.close()
        assert len(events) == 2 and events[0]["symbol"] == "BTCUSDT"
        assert events[0]["message"].startswith("reconcile live BTCUSDT: journal position ")
        assert events[0]["message"].endswith(": halted")

    run(scenario)


def test_the_kill_switch_flattens_at_market_and_leaves_nothing_working_on_the_exchange(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    r = live_run(frames, tmp_path)

    async def scenario() -> dict[str, Any]:
        r.ex.fill_share = 0.5
        await r.start()
        await r.until(150)
        assert any(r.ex.net(PREFIX, sym) for sym in r.replay.symbols)  # inventory to flatten
        r.journal.press("kill", by="test", reason="drill")
        await r.until(160)
        await r.finish()
        return audit(r)

    seen = run(scenario)
    flattens = [o for o in r.ex.orders.values() if o.type == "market"]
    assert flattens and all(o.status == "closed" and o.client_id.startswith(PREFIX) for o in flattens)
    assert all(r.ex.net(PREFIX, sym) == 0 for sym in r.replay.symbols)  # flat on the exchange...
    assert not [o for o in r.ex.orders.values() if o.status == "open"]  # ...and nothing left working
    assert {row["status"] for row in r.worker.status()["books"]["live"].values()} == {"HALTED"}
    assert not [o for o in seen["orders"].values() if o.tick >= 150 and o.kind == "limit"]


@dataclass
class Live:
    """The whole live path, as ``mmops trade --venue ccxt`` runs it: bars from the exchange's
    fetch_ohlcv as the test clock closes them (BarFeed), orders to it (CcxtVenue), ``run_live``
    ticking; each :meth:`once` is one process on the same journal files."""

    ex: FakeExchange
    clock: ManualClock
    path: Path
    prefix: str
    markets: dict[str, str]

    @classmethod
    def on(cls, frames: dict[str, pd.DataFrame], tmp_path: Path) -> Live:
        from trading.worker.live import run_tag
        from trading.worker.orders import order_prefix

        first_ms = int(frames["BTCUSDT"]["timestamp"].iloc[0].value // 1_000_000)
        clock = ManualClock(first_ms / 1000 + 60 + 2.5)
        ex = exchange(now=first_ms, clock=clock)
        cols = ["timestamp", "open", "high", "low", "close", "volume"]
        for sym, f in frames.items():
            ex.record(
                sym, [[int(t.value // 1_000_000), *rest] for t, *rest in f[cols].itertuples(index=False)]
            )
        path = tmp_path / "journal.db"
        prefix = order_prefix(SETTINGS.trade, run_tag(path))  # mm.<tag>-: this run's ids, no other's
        return cls(ex, clock, path, prefix, {"BTCUSDT": "BTC/USDT", "ETHUSDT": "ETH/USDT"})

    def once(self, ticks: int) -> Worker:
        from trading.worker.feed import BarFeed
        from trading.worker.live import LiveRun, run_live

        async def go() -> Worker:
            bt = SETTINGS.backtest
            venue = await CcxtVenue.open(
                self.ex,
                symbols=list(self.markets),
                backtest=bt,
                db=state_path(self.path),
                client_prefix=self.prefix,
            )
            feed = BarFeed(
                self.ex,
                markets=self.markets,
                interval="1m",
                backtest=bt,
                clock=self.clock,
                sleep=self.clock.sleep,
            )
            spec = LiveRun(
                markets=self.markets, interval="1m", settings=SETTINGS, journal=self.path, max_ticks=ticks
            )
            try:
                _report, worker = await run_live(spec, exchange=self.ex, venue=venue, feed=feed)
            finally:
                venue.close()
            return worker

        return run(go)

    def resting(self) -> list[str]:
        return [
            o.client_id
            for o in self.ex.orders.values()
            if o.status == "open" and o.client_id.startswith(self.prefix)
        ]


def test_a_live_run_on_the_exchanges_bars_and_orders_resumes_after_a_stop_and_loses_nothing(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """Stopped after 120 ticks (its quotes pulled), down for 10 minutes, restarted on the same
    files: the journal's fills are exactly the exchange's trades and the positions agree."""
    live = Live.on(frames, tmp_path)
    live.once(120)
    assert live.resting() == []  # a stop pulls the quotes: none rests while nobody watches it
    live.clock.t += 600  # down for 10 minutes: 10 ticks are due when it starts again
    live.ex.on(
        "fetch_my_trades", "unavailable"
    )  # and the exchange blinks as it does: the start is asked again
    worker = live.once(100)
    assert worker.next_tick == 220
    live.clock.t += 900  # late reports come in; one more start books them and resolves what is in flight
    worker = live.once(1)  # its first tick books them
    seen = audit(
        SimpleNamespace(path=live.path, ex=live.ex, worker=worker, replay=worker.replay), prefix=live.prefix
    )  # type: ignore[arg-type]
    assert len(seen["fills"]) > 50
    assert all(cid.startswith(live.prefix) for cid in seen["orders"]) and live.prefix.startswith("mm.")
    # The 10 ticks missed while down were booked but quoted nothing: orders priced on bars more
    # than risk.stale_after_ms (180 s) old never went out; the ticks after them quoted again.
    placed = {int(re.match(r"mm\.\w+-L(\d+)", cid).group(1)) for cid in seen["orders"]}  # type: ignore[union-attr]
    stale = set(range(120, 127))  # closed more than 180 s before the restart at tick 130's close
    assert not placed & stale and placed & set(range(127, 135))
    messages = [e["message"] for e in seen["events"]]
    assert any("catching up 10 tick(s) missed while down" in m for m in messages)
    assert any(m.startswith("stopped: quotes pulled; position kept: ") for m in messages)
    assert live.ex.count("fetch_ohlcv") > 220  # the bars came from the exchange, polled tick by tick


def test_a_live_run_killed_between_journal_and_send_does_not_send_stale_intents_on_restart(
    frames: dict[str, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after journaling tick 59's orders and before sending anything more (the
    sends are cut from then on), and comes back 10 minutes later: those intents are cancelled as
    stale, with the numbers, never sent; the quotes that were resting are cancelled at start."""
    live = Live.on(frames, tmp_path)
    send = Worker._send

    async def cut(self: Worker, book: Any, actions: list[Any], j: int) -> None:
        if self.next_tick < 60:  # after tick 59's journal: the crash
            await send(self, book, actions, j)

    monkeypatch.setattr(Worker, "_send", cut)
    live.once(60)
    monkeypatch.setattr(Worker, "_send", send)
    assert live.resting()  # the crash left quotes on the exchange
    live.clock.t += 600
    worker = live.once(1)
    j = Journal(live.path)
    intents = [o for o in j.orders() if "-L59" in o.client_id]
    j.close()
    assert intents and all(o.status == "canceled" for o in intents)
    with sqlite3.connect(live.path) as db:
        notes = dict(db.execute("select client_id, note from orders").fetchall())
    assert all(
        re.fullmatch(r"not sent: priced on the bar of tick 59, closed \d+ s ago > 180 s", notes[o.client_id])
        for o in intents
    )
    assert not {o.client_id for o in intents} & set(live.ex.by_client)  # never reached the exchange
    assert worker.next_tick == 61 and live.resting() == []  # and nothing rests after its clean stop


def test_a_kill_pressed_between_live_ticks_pulls_the_quotes_at_once(
    frames: dict[str, pd.DataFrame], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill pressed while the worker waits for the next bar (a minute on 1m bars) cancels the
    resting quotes within CONTROL_POLL_S, not at the next tick; the flatten follows at the tick."""
    from trading.worker.feed import BarFeed

    live = Live.on(frames, tmp_path)
    nxt = BarFeed.next
    seen: dict[str, list[str]] = {}

    async def slow(self: BarFeed) -> Any:
        if self.ticks == 30:  # tick 29 is done; the next bar is a while away
            seen["before"] = live.resting()
            j = Journal(live.path)
            j.press("kill", by="ops", reason="venue incident")
            j.close()
            await asyncio.sleep(1.5)
            seen["after"] = live.resting()
        return await nxt(self)

    monkeypatch.setattr(BarFeed, "next", slow)
    live.once(35)
    assert seen["before"] and seen["after"] == []  # pulled while waiting, before tick 30
    j = Journal(live.path)
    events = [e for e in j.events() if e["message"].startswith("kill switch pressed between ticks")]
    j.close()
    assert len(events) == 1 and events[0]["tick"] == 30
    assert f"{len(seen['before'])} working order(s) cancelled" in events[0]["message"]


def test_client_ids_that_would_outgrow_the_exchanges_limit_are_refused_at_open() -> None:
    async def scenario() -> None:
        ex = exchange()
        long_prefix = "abcdefgh.ab12cd-"  # an 8-character trade.client_prefix and a run tag
        with pytest.raises(ConfigError, match=r"up to 49 characters .* > 36 \(Binance.s limit\)"):
            await CcxtVenue.open(
                ex, symbols=["BTCUSDT"], backtest=BacktestConfig(), db=None, client_prefix=long_prefix * 2
            )
        v = await CcxtVenue.open(
            ex, symbols=["BTCUSDT"], backtest=BacktestConfig(), db=None, client_prefix=long_prefix
        )
        v.close()  # 16 + 1 + 7 + 2 + 7 = 33: fits

    run(scenario)
