"""The control API (FastAPI's TestClient, and a real uvicorn server) over the journal of a real
two-symbol paper run: every answer checked against the journal's rows, the roles, the 4xx
messages, and controls that change the worker's quotes (that symbol's, and only its)."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from control_helpers import (
    AS_OPERATOR,
    AS_VIEWER,
    TOKENS,
    app,
    context,
    quotes,
    rows,
    run,
    settings,
    two_symbols,
)
from fastapi.testclient import TestClient

from features.errors import ConfigError
from serving.control.api import Tokens, create_app
from serving.control.server import serving
from trading.worker import strategy as st
from trading.worker.run import PaperRun, build_worker

TICKS = 240
AT = 120
OPEN = "('intent', 'in_flight', 'pending', 'open')"


@pytest.fixture(scope="module")
def frames(source_data: Path) -> dict[str, pd.DataFrame]:
    return two_symbols(source_data / "binance-spot-1m" / "BTCUSDT-1m-2026-03.zip", TICKS)


@pytest.fixture(scope="module")
def done(frames: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run stopped at tick 200 (orders still working), never written to by the tests."""
    journal = tmp_path_factory.mktemp("done") / "j.db"
    run(frames, journal, max_ticks=200)
    return journal


@pytest.fixture(scope="module")
def whole(frames: dict[str, pd.DataFrame], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole replay with no control pressed: what the controlled runs are compared with."""
    journal = tmp_path_factory.mktemp("whole") / "j.db"
    run(frames, journal)
    return journal


def client(frames: dict[str, pd.DataFrame], journal: Path) -> TestClient:
    return TestClient(app(frames, journal))


def test_tokens_are_required_compared_in_constant_time_and_never_printed() -> None:
    with pytest.raises(
        ConfigError, match="MMOPS_API_OPERATOR_TOKEN is not set: the control API will not start"
    ):
        Tokens.from_env({"MMOPS_API_VIEWER_TOKEN": "v"})
    with pytest.raises(ConfigError, match="are the same token"):
        Tokens.from_env({"MMOPS_API_VIEWER_TOKEN": "same", "MMOPS_API_OPERATOR_TOKEN": "same"})
    tokens = Tokens.from_env({"MMOPS_API_OPERATOR_TOKEN": " op ", "MMOPS_API_VIEWER_TOKEN": ""})
    assert tokens.role("op") == "operator" and tokens.role("") is None and tokens.role("\0") is None
    assert "op" not in repr(tokens).replace("operator", "")


def test_roles_401_without_or_with_a_wrong_token_403_for_a_viewer_writing(
    frames: dict[str, pd.DataFrame], done: Path
) -> None:
    c = client(frames, done)
    before = rows(done, "select count(*) from requests")
    for headers, message in (
        ({}, "no bearer token"),
        ({"Authorization": "Bearer nope"}, "token not recognised"),
        ({"Authorization": f"Basic {TOKENS.operator}"}, "token not recognised"),
    ):
        r = c.get("/maker/active", headers=headers)
        assert r.status_code == 401 and message in r.json()["detail"], r.text
        assert r.headers["www-authenticate"] == "Bearer"
    assert c.get("/maker/active", headers=AS_VIEWER).status_code == 200
    assert c.get("/maker/whoami", headers=AS_VIEWER).json() == {"role": "viewer"}
    writes = [
        ("/maker/start", {"symbol": "BTCUSDT"}),
        ("/maker/stop", {"symbol": "BTCUSDT"}),
        ("/maker/kill", {"reason": "x"}),
        ("/maker/resume", {"reason": "x"}),
    ]
    for path, body in writes:
        r = c.post(path, json=body, headers=AS_VIEWER)
        assert r.status_code == 403, (path, r.text)
        assert r.json() == {"detail": "this needs the operator token; the viewer token only reads"}
        assert c.post(path, json=body).status_code == 401
    assert rows(done, "select count(*) from requests") == before  # nothing was written
    assert rows(done, "select count(*) from control where key in ('kill', 'resume')") == [(0,)]


def test_each_read_answers_what_the_journal_holds(frames: dict[str, pd.DataFrame], done: Path) -> None:
    c = client(frames, done)
    ctx = context(frames, done)
    get = lambda path: c.get(path, headers=AS_VIEWER).json()  # noqa: E731
    active = get("/maker/active")
    ((tick, fs, ist),) = rows(done, "select tick, fs, ist from books where book = 'live'")
    books = st.Books.from_bytes(fs, ist, 2)
    assert active["tick"] == tick == 200 and active["symbols"] == list(frames)
    assert active["phase"] == rows(done, "select value from control where key = 'phase'")[0][0] == "stopped"
    assert active["time"] == pd.Timestamp(frames["BTCUSDT"]["timestamp"][199]).isoformat()
    for s, sym in enumerate(frames):
        status = get(f"/maker/status/{sym}")
        equity = books.equity(s, tick=0.01, lot=0.001)
        assert status["inventory_lots"] == books.inventory(s) and status["equity"] == equity
        assert status["pnl"] == equity - 100_000.0 and status["quoting"] and status["risk_status"] == "ACTIVE"
        working = rows(
            done,
            f"select client_id from orders where book = 'live' and symbol = ? and status in {OPEN} "
            "and cancel_requested = 0 order by rowid",
            sym,
        )
        assert [o["client_id"] for o in status["orders"]] == [w[0] for w in working] and working
        last = quotes(done, s)[-1]
        assert last[0] == 199 and (status["bid"], status["ask"]) == (last[1] * 0.01, last[2] * 0.01)
        assert status["spread_ticks"] == last[2] - last[1]

        perf = get(f"/maker/performance/{sym}")
        fills = rows(
            done, "select count(*), sum(lots), sum(fee) from fills where book = 'live' and symbol = ?", sym
        )
        assert (perf["fills"], perf["lots_traded"]) == fills[0][:2] and perf["fees"] == pytest.approx(
            fills[0][2]
        )
        ((filled, placed),) = rows(
            done, "select sum(filled_lots), sum(lots) from orders where symbol = ? and kind = 'limit'", sym
        )
        assert perf["fill_rate"] == filled / placed and perf["pnl"] == status["pnl"]
        assert sum(v["pnl"] for v in perf["by_version"]) == pytest.approx(perf["pnl"], abs=1e-6)
        q = quotes(done, s)
        assert perf["avg_spread_ticks"] == pytest.approx(
            (q[:, 2] - q[:, 1])[(q[:, 3] > 0) & (q[:, 4] > 0)].mean()
        )

        se = get(f"/maker/series/{sym}?points=50")
        assert se["tick"] == list(range(150, 200)) and len(se["mid"]) == 50
        assert se["inventory_lots"][-1] == status["inventory_lots"]
        assert se["pnl"][-1] == status["pnl"]  # the book's own float operations, in its order
        assert se["bid"][-1] == status["bid"] and max(se["drawdown"]) <= perf["max_drawdown"]
    alerts = get("/maker/risk/alerts?limit=5")
    kinds = "('risk', 'market_data', 'fail_closed', 'alert', 'recovered', 'control', 'resume', 'reconcile')"
    journal = rows(done, f"select tick, symbol, kind, message from events where kind in {kinds} order by id")
    assert [(e["tick"], e["symbol"], e["kind"], e["message"]) for e in alerts["events"]] == journal[-5:]
    halted = alerts["open"]
    assert [o["symbol"] for o in halted] == [
        sym for s, sym in enumerate(ctx.symbols) if books.ist[s, st.I_STATUS] != 0
    ]


def test_bad_symbols_and_limits_get_a_4xx_that_says_which_and_why(
    frames: dict[str, pd.DataFrame], done: Path
) -> None:
    c = client(frames, done)
    r = c.get("/maker/status/DOGEUSDT", headers=AS_VIEWER)
    assert r.status_code == 404
    assert r.json()["detail"] == "unknown symbol 'DOGEUSDT': this worker trades BTCUSDT, ETHUSDT"
    assert c.get("/maker/performance/XRP", headers=AS_VIEWER).status_code == 404
    assert c.get("/maker/status/btc-usdt", headers=AS_VIEWER).json()["symbol"] == "BTCUSDT"
    cases = [
        ({"symbol": "DOGEUSDT"}, "symbol: unknown symbol 'DOGEUSDT': this worker trades BTCUSDT, ETHUSDT"),
        (
            {"symbol": "BTCUSDT", "limits": {"max_position_lots": 0}},
            "limits.max_position_lots: Input should be greater than or equal to 1",
        ),
        (
            {"symbol": "BTCUSDT", "limits": {"max_position_lots": 500}},
            "limits.max_position_lots 500 > risk.max_position_lots 100 in params.yaml: an override tightens the limit, it cannot loosen it",
        ),
        (
            {"symbol": "BTCUSDT", "limits": {"max_position_lots": 5, "max_position_base": 0.005}},
            "limits: give exactly one of max_position_lots or max_position_base",
        ),
        (
            {"symbol": "BTCUSDT", "limits": {"max_position_base": 0.0405}},
            "limits.max_position_base 0.0405: not a whole number of lots of 0.001 (backtest.lot_size): 40.5 lots",
        ),
        (
            {"symbol": "BTCUSDT", "spread": {"min_half_spread_bps": -1}},
            "spread.min_half_spread_bps: Input should be greater than or equal to 0",
        ),
        ({"symbol": "BTCUSDT", "spread": {}}, "spread.min_half_spread_bps: Field required"),
        ({"symbol": "BTCUSDT", "limit": {"max_position_lots": 5}}, "limit: Extra inputs are not permitted"),
        ({}, "symbol: Field required"),
    ]
    for body, message in cases:
        r = c.post("/maker/start", json=body, headers=AS_OPERATOR)
        assert r.status_code == 422 and r.json() == {"detail": message}, (body, r.text)
    r = c.get("/maker/series/BTCUSDT?points=1", headers=AS_VIEWER)
    assert r.status_code == 422 and r.json()["detail"] == "points: Input should be greater than or equal to 2"
    r = c.post("/maker/resume", json={"reason": ""}, headers=AS_OPERATOR)
    assert r.status_code == 422 and "reason: String should have at least 1 character" in r.json()["detail"]
    assert rows(done, "select count(*) from requests") == [(0,)]


def test_a_failure_inside_the_api_is_a_json_sentence_not_a_traceback(
    frames: dict[str, pd.DataFrame], done: Path
) -> None:
    wrong = dataclasses.replace(
        context(frames, done), symbols=("BTCUSDT", "ETHUSDT", "SOLUSDT")
    )  # not the run's
    c = TestClient(create_app(wrong, TOKENS), raise_server_exceptions=False)
    r = c.get("/maker/status/SOLUSDT", headers=AS_VIEWER)
    assert r.status_code == 500 and r.json()["detail"].startswith("the control API failed on this request (")
    assert "Traceback" not in r.text and r.json()["detail"].endswith("the worker goes on")


def test_start_with_overrides_changes_that_symbols_quotes_and_only_its(
    frames: dict[str, pd.DataFrame], whole: Path, tmp_path: Path
) -> None:
    journal = tmp_path / "j.db"
    run(frames, journal, max_ticks=AT)
    c = client(frames, journal)
    body = {"symbol": "ETHUSDT", "limits": {"max_position_base": 0.02}, "spread": {"min_half_spread_bps": 5}}
    r = c.post("/maker/start", json={**body, "reason": "wider for the news"}, headers=AS_OPERATOR)
    assert r.status_code == 202, r.text
    ack = r.json()
    assert (ack["max_position_lots"], ack["min_half_spread_bps"], ack["by"]) == (20, 5.0, "operator")
    assert c.get("/maker/status/ETHUSDT", headers=AS_VIEWER).json()["pending"] == ["start"]
    run(frames, journal)
    status = c.get("/maker/status/ETHUSDT", headers=AS_VIEWER).json()
    assert status["pending"] == [] and status["overridden"] == ["max_position_lots", "min_half_spread_bps"]
    assert (status["max_position_lots"], status["min_half_spread_bps"], status["controlled_by"]) == (
        20,
        5.0,
        "operator",
    )
    ((tick, message),) = rows(journal, "select tick, message from events where kind = 'control'")
    assert tick == AT and message == (
        "start by operator: quoting on (it was) with max_position_lots 20 (override; params 100), "
        "min_half_spread_bps 5 (override; params 0); reason: wider for the news"
    )
    eth, ref = quotes(journal, 1), quotes(whole, 1)
    closes = {
        t: np.frombuffer(b, dtype=np.int64)[1] for t, b in rows(journal, "select tick, closes from marks")
    }
    later = (eth[:, 0] > AT) & (eth[:, 3] > 0) & (eth[:, 4] > 0)
    floor = np.floor(2 * 5e-4 * np.array([closes[t] for t in eth[later, 0]]))
    assert later.sum() > 50 and ((eth[later, 2] - eth[later, 1]) >= floor).all()
    assert not np.array_equal(eth[eth[:, 0] > AT], ref[ref[:, 0] > AT])
    np.testing.assert_array_equal(eth[eth[:, 0] < AT], ref[ref[:, 0] < AT])
    np.testing.assert_array_equal(quotes(journal, 0), quotes(whole, 0))  # BTCUSDT: exactly as without
    same = "select client_id, side, price_ticks, lots, fee from fills where symbol = 'BTCUSDT' order by seq"
    assert rows(journal, same) == rows(whole, same)


def test_stop_kill_and_resume_through_the_api_reach_the_worker(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    journal = tmp_path / "j.db"
    run(frames, journal, max_ticks=AT)
    c = client(frames, journal)
    assert (
        c.post("/maker/stop", json={"symbol": "BTCUSDT", "reason": "drill"}, headers=AS_OPERATOR).status_code
        == 202
    )
    run(frames, journal, max_ticks=5)
    btc = c.get("/maker/status/BTCUSDT", headers=AS_VIEWER).json()
    assert not btc["quoting"] and btc["orders"] == [] and btc["bid"] is None and btc["ask"] is None
    assert c.get("/maker/active", headers=AS_VIEWER).json()["stopped"] == ["BTCUSDT"]
    assert c.get("/maker/status/ETHUSDT", headers=AS_VIEWER).json()["orders"]  # the other one quotes on
    r = c.post("/maker/kill", json={"reason": "drill"}, headers=AS_OPERATOR)
    assert r.status_code == 202 and r.json()["action"] == "kill"
    run(frames, journal, max_ticks=3)
    active = c.get("/maker/active", headers=AS_VIEWER).json()
    assert active["kill"] and active["kill_by"] == "operator" and active["halted"] == ["BTCUSDT", "ETHUSDT"]
    alerts = c.get("/maker/risk/alerts", headers=AS_VIEWER).json()
    assert {o["symbol"] for o in alerts["open"]} == {"BTCUSDT", "ETHUSDT"}
    assert any(
        e["message"] == "kill pressed by operator: drill" and e["severity"] == "critical"
        for e in alerts["events"]
    )
    assert c.post("/maker/resume", json={"reason": "drill over"}, headers=AS_OPERATOR).status_code == 202
    run(frames, journal, max_ticks=3)
    assert not c.get("/maker/active", headers=AS_VIEWER).json()["kill"]
    messages = [m for (m,) in rows(journal, "select message from events where kind = 'control' order by id")]
    assert messages[0].startswith("stop by operator: quoting off, 2 working order(s) cancelled; position")
    assert messages[1:] == ["kill pressed by operator: drill", "resume pressed by operator: drill over"]


def test_the_dashboard_is_served_without_a_token_and_holds_no_data(
    frames: dict[str, pd.DataFrame], done: Path
) -> None:
    c = client(frames, done)
    page = c.get("/dashboard")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert '<script src="/dashboard/app.js">' in page.text and "http" not in page.text.replace(
        "http-equiv", ""
    )
    assert c.get("/dashboard/app.js").status_code == 200 and c.get("/dashboard/app.css").status_code == 200
    assert c.get("/dashboard/secrets.txt").status_code == 404
    assert c.get("/", follow_redirects=False).headers["location"] == "/dashboard"


def test_the_api_answers_on_the_workers_loop_while_it_runs_flat_out(
    frames: dict[str, pd.DataFrame], tmp_path: Path
) -> None:
    """A real uvicorn server on the worker's loop, the worker at full speed: answers come between ticks."""
    journal = tmp_path / "j.db"

    async def main() -> tuple[list[int], int]:
        worker, j, venues = build_worker(
            PaperRun(frames=frames, interval="1m", settings=settings(), journal=journal), None, shadow=False
        )
        seen: list[int] = []
        async with serving(app(frames, journal), host="127.0.0.1", port=0) as url:
            await worker.start()
            task = asyncio.create_task(worker.run())
            async with httpx.AsyncClient(base_url=url, headers=AS_VIEWER) as http:
                while not task.done():
                    r = await http.get("/maker/active")
                    seen.append(r.json()["tick"])
            await task
        for v in venues:
            v.close()
        j.close()
        return seen, worker.next_tick

    seen, last = asyncio.run(main())
    assert last == TICKS and len(set(seen)) >= 3  # several answers, each at a different tick
    assert seen == sorted(seen)
