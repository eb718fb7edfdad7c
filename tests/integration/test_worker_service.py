"""The worker against a real ``mmops serve`` over a real MLflow registry, on real minutes.

A small SGD regressor is trained on the real feature set of BTCUSDT March 2026 and approved as
champion, a second one passes the gate as challenger, and ``mmops serve --shadow`` runs both.
``mmops trade --service-url`` then quotes a day of minutes on the champion's signals; the fills
equal a model backtest of the very predictions the worker received, those predictions equal the
model's own on the batch features, and the challenger trades a shadow paper book that never
reaches the venue. A toggling TCP proxy takes the service away mid-run and
brings it back: model-free quotes with an alert, then model quotes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from helpers import summation_order_atol
from model_seed import register
from test_serving import TOKEN, free_port, running_server

from features.build import compute_features, make_labels
from features.config import FeaturesConfig
from features.sources.binance import read_dump
from trading.backtest import run_backtest
from trading.config import BacktestConfig, QuoteConfig, RiskConfig, TradeConfig
from trading.worker.journal import Journal
from trading.worker.loop import WorkerSettings
from trading.worker.run import PaperRun, build_worker
from training.gate import GateConfig
from training.registry import Registry

REPO = Path(__file__).resolve().parents[2]
ZIP = (
    Path(os.environ.get("MMOPS_SOURCE_DATA", REPO.parent / "shared" / "data"))
    / "binance-spot-1m"
    / "BTCUSDT-1m-2026-03.zip"
)
NAME = "mmops-WORKER-1m"
DAY = ["--start", "2026-03-05", "--end", "2026-03-05T23:59"]

pytestmark = pytest.mark.skipif(not ZIP.exists(), reason=f"shared data not found at {ZIP}")


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return read_dump(ZIP)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, bars: pd.DataFrame) -> Iterator[dict]:
    from training.models import make_model

    home = tmp_path_factory.mktemp("worker-service")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    train = bars.loc[bars["timestamp"] < "2026-03-04"]
    feats = compute_features(train, FeaturesConfig())
    labels = make_labels(train, horizon=15)
    ok = feats.notna().all(axis=1).to_numpy() & labels["fwd_return"].notna().to_numpy()
    model = make_model("sgd", "regressor", max_iter=200)
    model.fit(feats.to_numpy()[ok], labels["fwd_return"].to_numpy()[ok], feature_names=list(feats.columns))
    folder = model.save(home / "models" / "sgd")
    version = register(folder, tracking_uri=uri, name=NAME, family="sgd")
    reg = Registry(uri, audit_log=home / "logs" / "registry_audit.jsonl", reports=home / "reports")
    reg.gate(NAME, version, config=GateConfig(), evaluate=lambda _uri: {"utility": 1.0})
    reg.approve(NAME, version, by="tests", reason="the worker's champion")
    rival = make_model("sgd", "regressor", max_iter=200, alpha=1e-2, random_state=1)  # a challenger
    rival.fit(feats.to_numpy()[ok], -labels["fwd_return"].to_numpy()[ok], feature_names=list(feats.columns))
    challenger = register(rival.save(home / "models" / "rival"), tracking_uri=uri, name=NAME, family="sgd")
    reg.gate(NAME, challenger, config=GateConfig(), evaluate=lambda _uri: {"utility": 2.0})  # -> @challenger
    with running_server(home, uri, serve={"model": NAME, "log_flush_s": 0.1}, args=["--shadow"]) as server:
        env = {
            **os.environ,
            "MMOPS_HOME": str(home),
            "MMOPS_PARAMS": str(home / "params.yaml"),
            "MLFLOW_TRACKING_URI": uri,
            "MMOPS_SERVE_TOKEN": TOKEN,
        }
        yield {
            "base": server["base"],
            "home": home,
            "env": env,
            "port": int(server["base"].rsplit(":", 1)[1]),
            "model": folder,
            "version": version,
            "challenger": challenger,
        }


def test_served_signals_give_the_fills_of_a_backtest_on_the_same_predictions(
    service: dict, bars: pd.DataFrame, tmp_path: Path
) -> None:
    journal = tmp_path / "j.db"
    cmd = [sys.executable, "-m", "flows", "trade", "--replay", str(ZIP), "--symbols", "BTCUSDT", *DAY]
    cmd += ["--journal", str(journal), "--service-url", service["base"], "--json"]
    done = subprocess.run(cmd, cwd=REPO, env=service["env"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["model"] == f"champion v{service['version']}, shadow challenger v{service['challenger']}"
    assert report["finished"]
    j = Journal(journal)
    used = j.signals()
    fills = j.fills("live")
    j.close()
    assert len(used) == 1440 and not report["alerts"]  # a warm start: every tick had its signal
    signals = pd.DataFrame(
        {"timestamp": pd.to_datetime([u[0] for u in used], utc=True), "pred_return": [u[2] for u in used]}
    )
    day = bars.loc[(bars["timestamp"] >= "2026-03-05") & (bars["timestamp"] < "2026-03-06")].reset_index(
        drop=True
    )
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    q, r, b = (
        QuoteConfig(**params["quote"]),
        RiskConfig(**params["risk"]),
        BacktestConfig(**params["backtest"]),
    )
    ref = run_backtest(day, quote=q, risk=r, backtest=b, signals=signals, strategy="model")
    got = [
        (f["ts_ns"], "buy" if f["side"] > 0 else "sell", f["price_ticks"], f["lots"], f["fee"]) for f in fills
    ]
    want = [
        (t.value, side, round(p / b.tick_size), lots, fee)
        for t, side, p, lots, fee in ref.trades[["timestamp", "side", "price", "lots", "fee"]].itertuples(
            index=False
        )
    ]
    assert got == want and len(got) > 100
    assert report["final_equity"]["live"] == ref.metrics.final_equity
    versions = {(v["book"], v["version"]) for v in report["by_version"]}
    assert versions == {("live", service["version"]), ("shadow", service["challenger"])}
    assert report["fills"]["shadow"] > 0  # the challenger traded on paper, on the same minutes
    with sqlite3.connect(journal.with_name(journal.name + ".venue.db")) as venue:
        sent = [c for (c,) in venue.execute("select client_id from orders")]
    assert sent and all(c.startswith("mm-L") for c in sent)  # and never reached the venue
    # the service's answers are the model's own predictions on the batch features
    from training.artifact import load_predictor

    upto = bars.loc[bars["timestamp"] < "2026-03-06"]
    feats = compute_features(upto, FeaturesConfig())
    offline = load_predictor(service["model"]).predict_frame(feats.to_numpy()[-1440:])
    served = np.array([u[2] for u in used])
    # float32 inputs either way; only the batch size (1 vs 1440 rows) changes the sum order
    atol = summation_order_atol(depth=feats.shape[1], scale=float(np.abs(offline).max()))
    np.testing.assert_allclose(served, offline, rtol=0, atol=atol)


class Proxy:
    """A TCP forwarder on 127.0.0.1 that can be switched off (connections refused) and on."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.on = True
        self.server: asyncio.Server | None = None
        self.port = free_port()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.on:
            writer.close()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(a: asyncio.StreamReader, b: asyncio.StreamWriter) -> None:
            with contextlib.suppress(ConnectionError):
                while data := await a.read(65536):
                    if not self.on:
                        break
                    b.write(data)
                    await b.drain()
            b.close()

        await asyncio.gather(pipe(reader, up_w), pipe(up_r, writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


def test_the_service_going_away_and_coming_back(service: dict, bars: pd.DataFrame, tmp_path: Path) -> None:
    from serving.worker_source import HttpSignalSource

    history = bars.loc[bars["timestamp"] < "2026-03-05"].tail(3000).reset_index(drop=True)
    day = bars.loc[
        (bars["timestamp"] >= "2026-03-05") & (bars["timestamp"] < "2026-03-05T06:00")
    ].reset_index(drop=True)
    s = WorkerSettings(
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        trade=TradeConfig(signal_budget_ms=500),
        features=FeaturesConfig().for_interval("1m"),
    )

    async def main() -> tuple[list[dict], list[str]]:
        proxy = Proxy(service["port"])
        await proxy.start()
        source = HttpSignalSource(f"http://127.0.0.1:{proxy.port}", token=TOKEN, timeout_s=0.5)
        run = PaperRun(
            frames={"BTCUSDT": day},
            interval="1m",
            settings=s,
            journal=tmp_path / "j.db",
            history={"BTCUSDT": history},
        )
        worker, journal, venues = build_worker(run, source, shadow=False)
        await worker.start()
        await worker.run(max_ticks=100)
        proxy.on = False  # the service is gone
        await worker.run(max_ticks=50)
        proxy.on = True  # and back
        await worker.run()
        events = journal.events(("alert", "recovered"))
        versions = [o.version for o in journal.orders() if o.kind == "limit"]
        for v in venues:
            v.close()
        journal.close()
        await source.close()
        await proxy.stop()
        return events, versions

    events, versions = asyncio.run(main())
    kinds = [e["kind"] for e in events]
    assert kinds == ["alert", "recovered"], events
    assert "signal service unavailable" in events[0]["message"] and 100 <= events[0]["tick"] <= 101
    assert "model-free" in versions and versions[-1] == service["version"]
