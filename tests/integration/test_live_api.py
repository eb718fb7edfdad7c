"""The control API beside a live run (``mmops trade --venue ccxt --api-port``): the exchange is
the scripted fake (no network), the rest is the real path of ``trade_live``."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
from fake_exchange import FakeExchange

from flows.params import load_params
from flows.trade_steps import ApiOptions, trade_live
from serving.control.api import Tokens
from trading.worker.feed import BarFeed

TOKEN = "operator-token-for-the-live-api-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_live_run_serves_the_control_api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """While the live run starts (its feed held for 2 s), the API answers on the given port with
    the operator's role."""
    n = 2000  # minutes up to the one open now (the wiring is under test here, not the prices)
    close = 65_000 + np.cumsum(np.random.default_rng(0).normal(0, 5, n)).round(2)
    stamps = pd.date_range(end=pd.Timestamp.now(tz="UTC").floor("1min"), periods=n, freq="1min")
    bars = pd.DataFrame(
        {
            "timestamp": stamps,
            "open": close,
            "high": close + 3,
            "low": close - 3,
            "close": close,
            "volume": 1.0,
        }
    )
    ex = FakeExchange(symbols={"BTCUSDT": "BTC/USDT"}, clock=time.time)
    cols = ["timestamp", "open", "high", "low", "close", "volume"]
    ex.record("BTC/USDT", [[int(t.value // 1_000_000), *r] for t, *r in bars[cols].itertuples(index=False)])
    monkeypatch.setattr("trading.worker.ccxt_exchange.make_exchange", lambda *_a, **_k: ex)

    start = BarFeed.start
    answers: dict[str, Any] = {}

    async def held(self: BarFeed, **kw: Any) -> Any:
        await asyncio.sleep(2.0)  # the loop is free: the API must answer now
        return await start(self, **kw)

    monkeypatch.setattr(BarFeed, "start", held)
    port = _free_port()

    def ask(url: str) -> None:
        def go() -> None:
            r = httpx.get(f"{url}/maker/whoami", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
            answers["whoami"] = (r.status_code, r.json())

        threading.Thread(target=go, daemon=True).start()

    api = ApiOptions(host="127.0.0.1", port=port, tokens=Tokens(operator=TOKEN), on_start=ask)
    report = asyncio.run(
        trade_live(
            load_params(Path(__file__).resolve().parents[2] / "params.yaml"),
            venue="ccxt",
            exchange_id="fakex",
            sandbox=False,
            symbols=["BTC/USDT"],
            interval="1m",
            journal=tmp_path / "live.db",
            source=None,
            max_ticks=1,
            api=api,
        )
    )
    assert report.ticks_done >= 1
    assert answers["whoami"][0] == 200 and answers["whoami"][1]["role"] == "operator", answers
