"""Per-symbol stop and start on a two-symbol paper replay: requests written to the journal between
two calls (as the control API writes them from another connection), taken at the next tick."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from worker_helpers import journal_fills, paper, settings

from trading.worker.journal import Journal

TICKS = 300
AT = 100  # the tick that takes the requests


@pytest.fixture(scope="module")
def two(btc_march: pd.DataFrame) -> dict[str, pd.DataFrame]:
    a = btc_march.iloc[:TICKS].reset_index(drop=True)
    b = btc_march.iloc[TICKS : 2 * TICKS].reset_index(drop=True).assign(symbol="ETHUSDT")
    b["timestamp"] = a["timestamp"]  # two symbols on one clock
    return {"BTCUSDT": a, "ETHUSDT": b}


@pytest.fixture(scope="module")
def baseline(two: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("base") / "j.db"
    paper(two, path, settings())
    return path


def _with_requests(two: dict[str, pd.DataFrame], path: Path, *requests: tuple[str, str, dict]) -> None:
    """Run to AT, write the requests, run to the end (the worker takes them at tick AT)."""
    s = settings()
    paper(two, path, s, max_ticks=AT)
    j = Journal(path)
    for symbol, action, doc in requests:
        j.request(symbol, action, by="operator", doc=doc)
    j.close()
    paper(two, path, s)


def _quotes(path: Path, sym: int) -> np.ndarray:
    """(tick, bid, ask, bid lots, ask lots) of one symbol's working quotes after each tick."""
    j = Journal(path)
    rows = [(t, *np.frombuffer(b, dtype=np.int64).reshape(-1, 4)[sym]) for t, _ts, b in j.quotes()]
    j.close()
    return np.array(rows, dtype=np.int64)


def test_stop_cancels_that_symbol_keeps_its_position_and_leaves_the_other_alone(
    two: dict[str, pd.DataFrame], baseline: Path, tmp_path: Path
) -> None:
    path = tmp_path / "j.db"
    _with_requests(two, path, ("ETHUSDT", "stop", {"reason": "drill"}))
    j = Journal(path)
    orders = {o.client_id: o for o in j.orders() if o.symbol == "ETHUSDT"}
    eth = [o for o in orders.values() if o.kind == "limit"]
    late = [
        f
        for f in j.fills("live")
        if f["symbol"] == "ETHUSDT" and f["ts_ns"] >= two["ETHUSDT"]["timestamp"][AT].value
    ]
    (event,) = [e for e in j.events(("control",)) if e["symbol"] == "ETHUSDT"]
    (taken,) = j.requests(pending=False)
    j.close()
    assert taken.tick == AT and event["tick"] == AT
    assert "stop by operator: quoting off" in event["message"] and "kept (no flatten)" in event["message"]
    assert "reason: drill" in event["message"]
    assert eth and max(o.tick for o in eth) < AT  # nothing placed from the stop on
    assert all(o.cancel_requested or o.status in ("filled", "canceled") for o in eth if o.tick < AT)
    quotes = _quotes(path, 1)
    assert (quotes[quotes[:, 0] >= AT, 1:] == 0).all()  # no working ETHUSDT quote after it
    # its position is kept: no flatten order; what fills after the stop is orders sent before it
    assert all(o.kind == "limit" for o in orders.values())
    assert all(orders[f["client_id"]].tick < AT for f in late)
    pd.testing.assert_frame_equal(
        journal_fills(path, symbol="BTCUSDT"), journal_fills(baseline, symbol="BTCUSDT")
    )


def test_start_with_overrides_changes_that_symbols_quotes_and_only_its(
    two: dict[str, pd.DataFrame], baseline: Path, tmp_path: Path
) -> None:
    path = tmp_path / "j.db"
    doc = {"max_position_lots": 15, "min_half_spread_bps": 4.0}
    _with_requests(two, path, ("BTCUSDT", "stop", {}), ("BTCUSDT", "start", doc))
    j = Journal(path)
    events = [e["message"] for e in j.events(("control",)) if e["symbol"] == "BTCUSDT"]
    marks = {t: np.frombuffer(c, dtype=np.int64)[0] for t, _ts, c in j.marks()}
    j.close()
    assert events[0].startswith("stop by operator") and events[1].startswith("start by operator: quoting on")
    assert "max_position_lots 15 (override; params 100)" in events[1]
    assert "min_half_spread_bps 4 (override; params 0)" in events[1]
    got, ref = _quotes(path, 0), _quotes(baseline, 0)
    after = (got[:, 0] > AT) & (got[:, 2] > 0) & (got[:, 3] > 0)
    spread = got[after, 2] - got[after, 1]
    mid = np.array([marks[t] for t in got[after, 0]])
    assert len(spread) > 50 and (spread >= np.floor(2 * 4e-4 * mid)).all()  # the bps floor holds
    assert spread.mean() > (ref[ref[:, 0] > AT, 2] - ref[ref[:, 0] > AT, 1]).mean()  # wider than params'
    fills = journal_fills(path, symbol="BTCUSDT")
    signed = (np.where(fills["side"] == "buy", 1, -1) * fills["lots"]).to_numpy()
    position = np.cumsum(signed)
    later = (fills["timestamp"] > two["BTCUSDT"]["timestamp"][AT + 1]).to_numpy()
    # the tighter limit: no fill after it takes |position| beyond 15 lots (one above 15 only reduces it)
    grows = (np.abs(position) > 15) & (np.abs(position) >= np.abs(position - signed))
    assert later.sum() > 20 and not grows[later].any()
    np.testing.assert_array_equal(_quotes(path, 1), _quotes(baseline, 1))  # ETHUSDT: exactly as without
    pd.testing.assert_frame_equal(
        journal_fills(path, symbol="ETHUSDT"), journal_fills(baseline, symbol="ETHUSDT")
    )


def test_a_stop_survives_a_restart(two: dict[str, pd.DataFrame], tmp_path: Path) -> None:
    path = tmp_path / "j.db"
    s = settings()
    paper(two, path, s, max_ticks=50)
    j = Journal(path)
    j.request("ETHUSDT", "stop", by="operator", doc={})
    j.close()
    paper(two, path, s, max_ticks=10)  # takes it
    report, _ = paper(two, path, s)  # a new process: the stop is read back from the journal
    assert report.status["books"]["live"]["ETHUSDT"]["quoting"] is False
    assert report.status["books"]["live"]["BTCUSDT"]["quoting"] is True
    j = Journal(path)
    assert max(o.tick for o in j.orders() if o.symbol == "ETHUSDT" and o.kind == "limit") < 50
    j.close()
