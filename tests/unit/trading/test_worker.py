"""The quoting worker on paper replays of real BTCUSDT minutes: parity with the backtest, online
features, faults, risk limits, the kill switch and restarts (in process; kill -9 is in
tests/integration/test_worker_crash.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from worker_helpers import FakeSource, journal_fills, paper, same_fills, settings, signals_frame

from features.build import compute_features
from features.config import FeaturesConfig
from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.worker.attribution import attribute
from trading.worker.journal import Journal
from trading.worker.paper import PaperFaults
from trading.worker.run import paper_paths

DAY = 1440


@pytest.fixture(scope="module")
def week(btc_march: pd.DataFrame) -> pd.DataFrame:
    return btc_march.iloc[: 7 * DAY].reset_index(drop=True)


def test_a_model_free_week_gives_the_backtests_fills_and_equity(week: pd.DataFrame, tmp_path: Path) -> None:
    s = settings()
    ref = run_backtest(week, quote=s.quote, risk=s.risk, backtest=s.backtest)
    report, _worker = paper({"BTCUSDT": week}, tmp_path / "j.db", s)
    assert report.finished and report.ticks_done == len(week)
    same_fills(journal_fills(tmp_path / "j.db"), ref.trades)
    assert ref.metrics.n_trades > 5000  # a week of minutes trades a lot: the comparison has content
    assert report.final_equity["live"] == ref.metrics.final_equity  # the same float operations, in order
    assert report.model == "model-free" and {v.version for v in report.by_version} == {"model-free"}
    # PnL by version splits the book's PnL exactly (one version here: all of it), to rounding
    assert sum(v.pnl for v in report.by_version) == pytest.approx(report.pnl["live"], abs=1e-6)
    # and its decomposition is the backtest's: one function on the same fills and marks
    (share,) = report.by_version
    assert share.decomposition is not None and ref.metrics.decomposition is not None
    for key, value in ref.metrics.decomposition.flat().items():
        assert share.decomposition.flat()[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize(
    ("quote", "backtest", "risk"),
    [
        (
            QuoteConfig(pressure_ticks=3.0, depth_fraction=0.02),
            BacktestConfig(max_participation=0.2),
            RiskConfig(),
        ),
        (
            QuoteConfig(),
            BacktestConfig(latency_ms=120_000, refresh_bars=3, requote_on_fill=False),
            RiskConfig(),
        ),
        # limits that bind: position (REDUCING), exposure (REDUCING), drawdown (kill, flatten)
        (
            QuoteConfig(order_lots=20),
            BacktestConfig(),
            RiskConfig(max_position_lots=40, max_notional=2_000.0),
        ),
        (QuoteConfig(), BacktestConfig(), RiskConfig(max_drawdown_pct=0.05)),
        (QuoteConfig(), BacktestConfig(refresh_tolerance_pct=0.05), RiskConfig()),
    ],
    ids=[
        "pressure-depth-partial",
        "latency-cadence",
        "position-exposure",
        "drawdown-kill",
        "refresh-tolerance",
    ],
)
def test_parity_holds_under_every_fill_and_risk_setting(
    btc_march: pd.DataFrame, tmp_path: Path, quote: QuoteConfig, backtest: BacktestConfig, risk: RiskConfig
) -> None:
    day = btc_march.iloc[2 * DAY : 3 * DAY].reset_index(drop=True)
    s = settings(quote=quote, backtest=backtest, risk=risk)
    ref = run_backtest(day, quote=quote, risk=risk, backtest=backtest)
    report, _ = paper({"BTCUSDT": day}, tmp_path / "j.db", s)
    same_fills(journal_fills(tmp_path / "j.db"), ref.trades)
    assert report.final_equity["live"] == ref.metrics.final_equity


def test_a_refresh_tolerance_keeps_quotes_that_barely_moved(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    """backtest.refresh_tolerance_pct: a working quote within the tolerance of the new one stays
    (no cancel, no re-send); the worker sends fewer orders and still fills as the backtest."""
    day = btc_march.iloc[2 * DAY : 2 * DAY + 240].reset_index(drop=True)
    placed = {}
    for tol in (0.0, 0.05):
        s = settings(backtest=BacktestConfig(refresh_tolerance_pct=tol))
        ref = run_backtest(day, quote=s.quote, risk=s.risk, backtest=s.backtest)
        paper({"BTCUSDT": day}, tmp_path / f"{tol}.db", s)
        same_fills(journal_fills(tmp_path / f"{tol}.db"), ref.trades)
        journal = Journal(tmp_path / f"{tol}.db")
        placed[tol] = len(journal.orders())
        journal.close()
    # 0.05% of ~$70k is ~$35: many minutes move a quote less than that (these 4 hours: 480 orders
    # at 0, 339 at 0.05%); a fifth fewer is the least a working tolerance must show here
    assert placed[0.05] < 0.8 * placed[0.0], placed


def test_risk_limits_hold_and_every_decision_says_why_with_its_numbers(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    day = btc_march.iloc[2 * DAY : 3 * DAY].reset_index(drop=True)
    risk = RiskConfig(max_position_lots=40, max_notional=2_000.0, max_loss=60.0)
    report, _ = paper(
        {"BTCUSDT": day}, tmp_path / "j.db", settings(quote=QuoteConfig(order_lots=20), risk=risk)
    )
    fills = journal_fills(tmp_path / "j.db")
    signed = np.where(fills["side"] == "buy", 1, -1) * fills["lots"]
    position = np.cumsum(signed.to_numpy())
    assert np.abs(position).max() <= risk.max_position_lots  # the hard limit is never crossed
    messages = " | ".join(e["message"] for e in report.risk_events)
    assert "-> REDUCING: position" in messages  # 0.8 x 40 = 32 lots reached: reducing only
    assert "lots, |q| >= 32" in messages
    assert "loss " in messages and ">= max_loss 60.00: kill switch" in messages
    assert position[-1] == 0  # the kill flattened the book
    last = report.status["books"]["live"]["BTCUSDT"]
    assert last["status"] == "HALTED" and "max_loss" in last["reasons"]


def test_online_features_equal_batch_features_bit_for_bit(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    history = btc_march.iloc[:2000].reset_index(drop=True)
    traded = btc_march.iloc[2000 : 2000 + 600].reset_index(drop=True)
    _, worker = paper(
        {"BTCUSDT": traded}, tmp_path / "j.db", settings(), history={"BTCUSDT": history}, record_features=True
    )
    assert worker.feature_log is not None and len(worker.feature_log) == len(traded)
    online = np.stack([row for _s, _t, row in worker.feature_log])
    both = pd.concat([history, traded], ignore_index=True)
    batch = compute_features(both, FeaturesConfig()).to_numpy()[len(history) :]
    assert online.shape == batch.shape
    assert np.array_equal(online, batch, equal_nan=True)  # bit for bit, not approximately
    assert np.isfinite(online).all()  # 2000 bars of history: every window is warm


def test_model_signals_give_the_fills_of_a_model_backtest_on_the_same_predictions(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    history = btc_march.iloc[:1600].reset_index(drop=True)
    traded = btc_march.iloc[1600 : 1600 + DAY].reset_index(drop=True)
    names = ["ret_5", "rv_15", "ofi_60"]
    source = FakeSource(names=names, rows=3)
    # "reduce": a tick without a signal is quoted reduce-only, as a model backtest does
    s = settings(trade=TradeConfig(on_missing_signal="reduce"))
    report, worker = paper(
        {"BTCUSDT": traded}, tmp_path / "j.db", s, source=source, history={"BTCUSDT": history}
    )
    # the venue's work ran while the requests were out (and the fills below are still the backtest's)
    assert sum(t.hidden > 0 for t in worker.timings) > 0.9 * len(traded)
    signals = signals_frame(tmp_path / "j.db")
    assert len(signals) == len(traded) and signals["pred_return"].abs().max() > 0
    ref = run_backtest(
        traded, quote=s.quote, risk=s.risk, backtest=s.backtest, signals=signals, strategy="model"
    )
    same_fills(journal_fills(tmp_path / "j.db"), ref.trades)
    assert report.final_equity["live"] == ref.metrics.final_equity
    assert {v.version for v in report.by_version} == {"7"}  # every fill tagged with the quoting version
    model_free = run_backtest(traded, quote=s.quote, risk=s.risk, backtest=s.backtest)
    assert model_free.metrics.n_trades != ref.metrics.n_trades  # the signal changed the quotes


def test_service_down_or_slow_falls_back_alerts_and_recovers(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    history = btc_march.iloc[:1600].reset_index(drop=True)
    traded = btc_march.iloc[1600:1900].reset_index(drop=True)
    source = FakeSource(names=["ret_5"], rows=2, down=lambda c: 50 <= c < 60, slow=lambda c: 120 <= c < 125)
    s = settings(trade=TradeConfig(signal_budget_ms=100))
    report, worker = paper(
        {"BTCUSDT": traded}, tmp_path / "j.db", s, source=source, history={"BTCUSDT": history}
    )
    assert report.finished  # no crash
    kinds = [(e["kind"], e["message"]) for e in report.alerts]
    assert (
        "alert",
        "live: model-free quotes: signal service unavailable: ConnectionError: connection refused (scripted)",
    ) in kinds
    assert any(k == "alert" and "signal late: no answer within 100 ms" in m for k, m in kinds)
    assert sum(k == "recovered" for k, _m in kinds) == 2  # model quotes resumed after each outage
    j = Journal(tmp_path / "j.db")
    tags = {o.tick: o.version for o in j.orders() if o.kind == "limit"}
    j.close()
    assert tags[49 + 5] == "model-free" and tags[119 + 2] == "model-free" and tags[200] == "7"
    # a late answer costs the budget, not more: the slow ticks stayed near 100 ms
    slow = sorted(t.model for t in worker.timings)[-5:]
    assert max(slow) < 1.0e9, "a late signal must not hold the tick for the source's full 5 s"


def test_bad_market_data_quotes_nothing_for_that_symbol(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    day = btc_march.iloc[:400].reset_index(drop=True).copy()
    day.loc[100, "close"] = np.nan
    day.loc[200, ["high", "low"]] = day.loc[200, ["low", "high"]].to_numpy()  # crossed: high < low
    day.loc[300, "open"] = -1.0
    report, _ = paper({"BTCUSDT": day}, tmp_path / "j.db", settings())
    notes = [e["message"] for e in report.risk_events if e["kind"] == "market_data"]
    assert len(notes) == 3
    assert "a missing (NaN) price" in notes[0] and "high below low" in notes[1] and "non-positive" in notes[2]
    j = Journal(tmp_path / "j.db")
    placed_at = {o.tick for o in j.orders()}
    j.close()
    assert not {100, 200, 300} & placed_at  # nothing was quoted on a bad bar


def test_faults_lose_no_order_and_duplicate_none(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    day = btc_march.iloc[:DAY].reset_index(drop=True)
    faults = PaperFaults(reject=0.05, timeout_after_accept=0.05, drop_ack=0.05, seed=3)
    report, _ = paper({"BTCUSDT": day}, tmp_path / "j.db", settings(), faults=faults)
    assert report.finished
    j = Journal(tmp_path / "j.db")
    orders = {o.client_id: o for o in j.orders()}
    fills = j.fills()
    j.close()
    venue_db, _ = paper_paths(tmp_path / "j.db")
    import sqlite3

    v = sqlite3.connect(venue_db)
    venue_orders = dict(v.execute("select client_id, status from orders").fetchall())
    venue_fills = v.execute("select trade_id from fills").fetchall()
    v.close()
    assert set(venue_orders) <= set(orders)  # no order on the venue the journal does not know
    rejected = {cid for cid, o in orders.items() if o.status == "rejected"}
    assert rejected and not rejected & set(venue_orders)  # rejected means: not on the venue
    assert all(o.status not in ("intent", "in_flight") for o in orders.values())  # every ambiguity resolved
    assert sorted(f["trade_id"] for f in fills) == sorted(t for (t,) in venue_fills)  # none lost, none twice
    notes = [o for o in orders.values() if o.status != "rejected" and o.client_id in venue_orders]
    assert len(notes) == len(venue_orders)


def test_kill_switch_halts_flattens_survives_a_restart_and_resumes_on_a_person(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    day = btc_march.iloc[:600].reset_index(drop=True)
    path = tmp_path / "j.db"
    paper({"BTCUSDT": day}, path, settings(), max_ticks=200)
    j = Journal(path)
    j.set_control("kill", '{"by": "test", "reason": "drill"}')
    j.close()
    report, _ = paper({"BTCUSDT": day}, path, settings(), max_ticks=100)  # a new process: restart
    last = report.status["books"]["live"]["BTCUSDT"]
    assert last["status"] == "HALTED" and "kill_switch" in last["reasons"] and last["inventory_lots"] == 0
    j = Journal(path)
    after = [o for o in j.orders() if o.tick > 200 and o.kind == "limit"]
    j.close()
    assert not after  # no quote while killed
    report, _ = paper({"BTCUSDT": day}, path, settings(), max_ticks=50)  # and again: still halted
    assert report.status["books"]["live"]["BTCUSDT"]["status"] == "HALTED"
    j = Journal(path)
    j.set_control("resume", '{"by": "test", "reason": "drill over"}')
    j.close()
    report, _ = paper({"BTCUSDT": day}, path, settings())
    assert report.status["books"]["live"]["BTCUSDT"]["status"] != "HALTED"
    j = Journal(path)
    quoted_again = [o for o in j.orders() if o.tick > 350 and o.kind == "limit"]
    j.close()
    assert quoted_again


def test_a_stopped_replay_resumes_where_it_stopped(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    day = btc_march.iloc[:DAY].reset_index(drop=True)
    whole, _ = paper({"BTCUSDT": day}, tmp_path / "whole.db", settings())
    for _ in range(3):
        paper({"BTCUSDT": day}, tmp_path / "parts.db", settings(), max_ticks=400)
    parts, _ = paper({"BTCUSDT": day}, tmp_path / "parts.db", settings())
    assert parts.reconcile["resumed"] and parts.finished
    pd.testing.assert_frame_equal(journal_fills(tmp_path / "parts.db"), journal_fills(tmp_path / "whole.db"))
    assert parts.final_equity == whole.final_equity


def test_shadow_mode_trades_the_challenger_on_paper_only(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    history = btc_march.iloc[:1600].reset_index(drop=True)
    traded = btc_march.iloc[1600:2200].reset_index(drop=True)
    source = FakeSource(names=["ret_5"], rows=2, mode="shadow")
    report, _ = paper(
        {"BTCUSDT": traded}, tmp_path / "j.db", settings(), source=source, history={"BTCUSDT": history}
    )
    assert report.fills["shadow"] > 0 and report.fills["live"] > 0
    versions = {(v.book, v.version) for v in report.by_version}
    assert versions == {("live", "7"), ("shadow", "8")}
    venue_db, shadow_db = paper_paths(tmp_path / "j.db")
    import sqlite3

    live_venue = {r[0] for r in sqlite3.connect(venue_db).execute("select client_id from orders")}
    assert all("-L" in c for c in live_venue)  # the challenger's orders never reached the venue
    assert shadow_db.exists()
    for book in ("live", "shadow"):  # each book's PnL is the sum of its versions' parts
        parts = sum(v.pnl for v in report.by_version if v.book == book)
        assert parts == pytest.approx(report.pnl[book], abs=1e-6)


def test_a_journal_of_another_run_is_refused_with_the_difference(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    from features.errors import ConfigError

    day = btc_march.iloc[:300].reset_index(drop=True)
    paper({"BTCUSDT": day}, tmp_path / "j.db", settings(), max_ticks=10)
    with pytest.raises(ConfigError, match=r"journal of another run \(quote: journal .*order_lots"):
        paper({"BTCUSDT": day}, tmp_path / "j.db", settings(quote=QuoteConfig(order_lots=3)))


def test_a_position_the_venue_does_not_confirm_fails_closed(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    from trading.worker.loop import ReconcileError

    day = btc_march.iloc[:400].reset_index(drop=True)
    path = tmp_path / "j.db"
    paper({"BTCUSDT": day}, path, settings(), max_ticks=300)
    import sqlite3

    venue_db, _ = paper_paths(path)
    with sqlite3.connect(venue_db) as v:  # a fill the journal never saw and cannot back-fill
        v.execute("delete from fills where seq = (select max(seq) from fills)")
    with sqlite3.connect(venue_db) as v:
        before = v.execute("select count(*), coalesce(max(placed), -1) from orders").fetchone()
    with pytest.raises(
        ReconcileError, match=r"live BTCUSDT: journal position [+-]\d+ lots, venue [+-]\d+ lots"
    ):
        paper({"BTCUSDT": day}, path, settings())
    with sqlite3.connect(venue_db) as v:  # nothing was sent before the positions were compared
        assert v.execute("select count(*), coalesce(max(placed), -1) from orders").fetchone() == before
    j = Journal(path)
    assert j.control("phase") == "halted" and j.events(("fail_closed",))
    j.close()


def test_an_order_of_ours_the_journal_never_held_is_cancelled_and_said(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    import sqlite3

    day = btc_march.iloc[:400].reset_index(drop=True)
    path = tmp_path / "j.db"
    paper({"BTCUSDT": day}, path, settings(), max_ticks=300)
    venue_db, _ = paper_paths(path)
    stray = "mm-L9999b-BTCUSDT"  # our prefix, never journaled (another process of ours, a lost journal)
    with sqlite3.connect(venue_db) as v:
        (placed,) = v.execute("select max(placed) + 1 from orders").fetchone()
        v.execute(
            "insert into orders values (?, 'BTCUSDT', 1, 'limit', 1, 1, 0, 'open', 0, -1, ?)", (stray, placed)
        )
    report, _ = paper({"BTCUSDT": day}, path, settings())
    assert report.reconcile["cancelled_unknown"] == 1 and report.finished
    j = Journal(path)
    said = [e["message"] for e in j.events(("reconcile",))]
    assert f"cancelled unknown order {stray}" in said, said  # the paper venue cancels at its next bar
    assert j.order(stray) is None  # still not one of the journal's orders
    j.close()
    with sqlite3.connect(venue_db) as v:
        assert v.execute("select status from orders where client_id = ?", (stray,)).fetchone() == (
            "canceled",
        )


def test_multi_symbol_replay_quotes_each_symbol_on_its_own_book(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    a = btc_march.iloc[:600].reset_index(drop=True)
    b = btc_march.iloc[600:1200].reset_index(drop=True).assign(symbol="ETHUSDT")
    b["timestamp"] = a["timestamp"]  # two symbols on one clock
    s = settings()
    paper({"BTCUSDT": a, "ETHUSDT": b}, tmp_path / "j.db", s)
    for sym, bars in (("BTCUSDT", a), ("ETHUSDT", b)):
        ref = run_backtest(bars, quote=s.quote, risk=s.risk, backtest=s.backtest)
        same_fills(journal_fills(tmp_path / "j.db", symbol=sym), ref.trades)


def test_a_symbol_whose_data_stops_has_its_quotes_pulled(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    a = btc_march.iloc[:400].reset_index(drop=True)
    b = btc_march.iloc[400:600].reset_index(drop=True).assign(symbol="ETHUSDT")
    b["timestamp"] = a["timestamp"].iloc[:200].to_numpy()  # ETHUSDT's feed stops after 200 minutes
    report, _ = paper(
        {"BTCUSDT": a, "ETHUSDT": b}, tmp_path / "j.db", settings(risk=RiskConfig(stale_after_ms=180_000))
    )
    stale = [e for e in report.risk_events if e["kind"] == "market_data"]
    assert [e["symbol"] for e in stale] == ["ETHUSDT"]
    # its last bar closed at minute 200; more than 180 s later (at minute 204's open) its orders go
    assert stale[0]["tick"] == 204
    assert "stale market data: the last bar closed 240 s ago > 180 s" in stale[0]["message"]
    j = Journal(tmp_path / "j.db")
    eth = [o for o in j.orders() if o.symbol == "ETHUSDT"]
    j.close()
    assert eth and all(
        o.cancel_requested or o.status in ("filled", "canceled") for o in eth if o.kind == "limit"
    )
    assert report.status["books"]["live"]["BTCUSDT"]["status"] == "ACTIVE"  # the other symbol trades on


def _venue_open(journal_path: Path) -> set[str]:
    import sqlite3

    venue_db, _ = paper_paths(journal_path)
    with sqlite3.connect(venue_db) as v:
        return {c for (c,) in v.execute("select client_id from orders where status in ('pending', 'open')")}


def test_a_kill_on_the_last_bar_is_booked_like_the_backtest(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    day = btc_march.iloc[2 * DAY : 3 * DAY].reset_index(drop=True)
    risk = RiskConfig(max_drawdown_pct=0.05)
    full = run_backtest(day, quote=QuoteConfig(), risk=risk, backtest=BacktestConfig())
    killed = int(np.flatnonzero(full.equity["status"].to_numpy() == "HALTED")[0])
    cut = day.iloc[: killed + 1]  # the kill and its flatten happen on the last bar
    ref = run_backtest(cut, quote=QuoteConfig(), risk=risk, backtest=BacktestConfig())
    assert ref.trades["liquidity"].iloc[-1] == "taker"
    report, _ = paper({"BTCUSDT": cut}, tmp_path / "j.db", settings(risk=risk))
    same_fills(journal_fills(tmp_path / "j.db"), ref.trades)
    assert report.final_equity["live"] == ref.metrics.final_equity
    assert report.status["books"]["live"]["BTCUSDT"]["inventory_lots"] == 0


def test_latency_counts_each_symbols_own_bars_on_a_gappy_timeline(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    a = btc_march.iloc[:900].reset_index(drop=True)
    b = a.drop(index=list(range(30, 900, 37))).reset_index(drop=True).assign(symbol="ETHUSDT")  # holes
    s = settings(backtest=BacktestConfig(latency_ms=120_000))  # two bars of latency
    paper({"BTCUSDT": a, "ETHUSDT": b}, tmp_path / "j.db", s)
    for sym, bars in (("BTCUSDT", a), ("ETHUSDT", b)):
        ref = run_backtest(bars, quote=s.quote, risk=s.risk, backtest=s.backtest)
        same_fills(journal_fills(tmp_path / "j.db", symbol=sym), ref.trades)
        # the symbol's share decomposes like its backtest, its holes in the marks carried over;
        # horizons count the timeline's ticks, ETHUSDT's bars skip the holes: compare their sum
        j = Journal(tmp_path / "j.db")
        bt = s.backtest
        (share,) = attribute(
            j,
            ["BTCUSDT", "ETHUSDT"],
            tick=bt.tick_size,
            lot=bt.lot_size,
            markout_ticks=bt.markout_bars,
            symbol=sym,
        )
        j.close()
        got, want = share.decomposition, ref.metrics.decomposition
        assert got is not None and want is not None
        assert (got.net, got.spread, got.fees) == pytest.approx((want.net, want.spread, want.fees), abs=1e-6)
        assert got.adverse["1"] + got.inventory == pytest.approx(want.adverse["1"] + want.inventory, abs=1e-6)


def test_lost_cancels_are_resent_and_a_kill_leaves_nothing_working(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    day = btc_march.iloc[:500].reset_index(drop=True)
    path = tmp_path / "j.db"
    faults = PaperFaults(cancel_lost=0.4, seed=5)
    paper({"BTCUSDT": day}, path, settings(), max_ticks=200, faults=faults)
    j = Journal(path)
    j.press("kill", by="test", reason="drill")
    j.close()
    report, _ = paper({"BTCUSDT": day}, path, settings(), max_ticks=20, faults=faults)
    assert report.status["books"]["live"]["BTCUSDT"]["status"] == "HALTED"
    assert _venue_open(path) == set()  # every cancel reached the venue in the end
    j = Journal(path)
    working = {o.client_id for o in j.open_orders()}
    j.close()
    assert working == set()


def test_a_kill_pressed_after_a_resume_stays_pressed(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    day = btc_march.iloc[:300].reset_index(drop=True)
    path = tmp_path / "j.db"
    paper({"BTCUSDT": day}, path, settings(), max_ticks=50)
    j = Journal(path)
    j.press("kill", by="ops", reason="one")
    j.press("resume", by="ops", reason="two")
    j.press("kill", by="ops", reason="three")  # pressed last: it wins
    j.close()
    report, _ = paper({"BTCUSDT": day}, path, settings(), max_ticks=10)
    assert report.status["books"]["live"]["BTCUSDT"]["status"] == "HALTED"
    j = Journal(path)
    assert j.control("kill") is not None and j.control("resume") is None
    j.close()


def test_intents_journaled_but_not_sent_are_dropped_while_killed(
    btc_march: pd.DataFrame, tmp_path: Path
) -> None:
    import sqlite3

    day = btc_march.iloc[:300].reset_index(drop=True)
    path = tmp_path / "j.db"
    paper({"BTCUSDT": day}, path, settings(), max_ticks=100)
    venue_db, _ = paper_paths(path)
    with sqlite3.connect(path) as db:  # as after a crash between journaling and sending
        unsent = [c for (c,) in db.execute("select client_id from orders where tick = 99 and kind = 'limit'")]
        db.execute("update orders set status = 'intent' where tick = 99")
    with sqlite3.connect(venue_db) as v:
        v.execute("delete from orders where client_id like 'mm-L99%'")
    j = Journal(path)
    j.press("kill", by="ops", reason="while it was down")
    j.close()
    report, _ = paper({"BTCUSDT": day}, path, settings(), max_ticks=5)
    assert unsent and report.reconcile["resent"] == 0
    j = Journal(path)
    notes = {o.client_id: o.status for o in j.orders() if o.client_id in unsent}
    j.close()
    assert set(notes.values()) == {"canceled"}
    with sqlite3.connect(venue_db) as v:
        sent = {c for (c,) in v.execute("select client_id from orders")}
    assert not set(unsent) & sent  # a stale quote never reached the venue


def test_a_canary_of_another_task_is_read_as_what_it_is(btc_march: pd.DataFrame, tmp_path: Path) -> None:
    history = btc_march.iloc[:1600].reset_index(drop=True)
    a = btc_march.iloc[1600:2000].reset_index(drop=True)
    b = a.assign(symbol="ETHUSDT")
    source = FakeSource(names=["ret_5"], rows=2, kinds={"ETHUSDT": "prob_up"})
    s = settings(quote=QuoteConfig(prob_skew_bps=5.0), trade=TradeConfig(on_missing_signal="reduce"))
    report, _ = paper(
        {"BTCUSDT": a, "ETHUSDT": b},
        tmp_path / "j.db",
        s,
        source=source,
        history={"BTCUSDT": history, "ETHUSDT": history},
    )
    assert not [e for e in report.alerts if e["kind"] == "alert"]
    eth = signals_frame(tmp_path / "j.db", symbol="ETHUSDT").rename(columns={"pred_return": "prob_up"})
    assert eth["prob_up"].between(0, 1).all() and (eth["prob_up"] != 0.5).any()
    ref = run_backtest(b, quote=s.quote, risk=s.risk, backtest=s.backtest, signals=eth, strategy="model")
    same_fills(journal_fills(tmp_path / "j.db", symbol="ETHUSDT"), ref.trades)  # priced as P(up)
