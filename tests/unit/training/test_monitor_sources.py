"""Where the current window comes from: the worker journal's signals and KPIs, the prediction log,
and the training window from a version's lineage."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.errors import DataError
from trading.config import BacktestConfig
from trading.worker.journal import Journal, JournalOrder
from trading.worker.types import Fill
from training.monitor.sources import journal_kpis, journal_signals, prediction_log, training_window

T0 = int(pd.Timestamp("2026-03-01", tz="UTC").value)
MIN = 60_000_000_000


def test_journal_signals_and_kpis_per_version(tmp_path: Path) -> None:
    path = tmp_path / "journal.db"
    j = Journal(path)
    j.check_run(
        {"symbols": ["BTCUSDT"], "backtest": BacktestConfig().model_dump(mode="json"), "books": ["live"]}
    )
    j.add_signals([(t, T0 + t * MIN, "live", "BTCUSDT", 1e-4 * t, "3") for t in range(5)])
    j.add_signals([(0, T0, "shadow", "BTCUSDT", 9.0, "4")])
    for t in range(5):
        j.add_mark(t, T0 + t * MIN, np.array([100_000 + t], dtype=np.int64).tobytes())
    for version, lots, price in (("3", 10, 99_990), ("4", 4, 100_010)):
        order = JournalOrder(f"mm-{version}", "live", "BTCUSDT", 1 if version == "3" else -1, "limit", price, lots,
                             1, version, "champion", 100_000.0, "open", 0, False)  # fmt: skip
        j.add_order(order)
        j.add_fill(
            Fill(
                "paper",
                f"t{version}",
                int(version),
                order.client_id,
                "BTCUSDT",
                order.side,
                price,
                lots // 2,
                0.0,
                True,
                T0 + MIN,
            ),
            book="live",
        )
    j.close()
    signals = journal_signals(path, "BTCUSDT")
    assert (
        len(signals) == 5
        and signals.index[0] == pd.Timestamp(T0, tz="UTC")
        and signals.iloc[-1] == pytest.approx(4e-4)
    )
    kpis = {k["version"]: k for k in journal_kpis(path)}
    assert set(kpis) == {"3", "4"} and kpis["3"]["fills"] == 1 and kpis["3"]["pnl"] != 0
    assert {"markouts_bps", "spread_capture_bps", "fill_rate"} <= set(kpis["3"])


def test_prediction_log_takes_served_lines_of_the_symbol_and_version(tmp_path: Path) -> None:
    path = tmp_path / "predictions.jsonl"
    lines = [
        {
            "at": "2026-03-01T00:00:01+00:00",
            "symbol": "BTCUSDT",
            "version": "3",
            "role": "served",
            "output": 0.1,
        },
        {
            "at": "2026-03-01T00:00:01+00:00",
            "symbol": "BTCUSDT",
            "version": "4",
            "role": "shadow",
            "output": 0.2,
        },
        {
            "at": "2026-03-01T00:01:01+00:00",
            "symbol": "ETHUSDT",
            "version": "3",
            "role": "served",
            "output": 0.3,
        },
    ]
    path.write_text("".join(json.dumps(x) + "\n" for x in lines) + '{"at": "cut')
    got = prediction_log(path, "BTCUSDT", version="3")
    assert got.tolist() == [0.1]


def test_training_window_from_tags_then_split_plan_else_an_error() -> None:
    tags = {"mmops.train.start": "2026-03-02T00:00:00+00:00", "mmops.train.end": "2026-03-08T23:59:00+00:00"}
    assert training_window(tags, None, where="m v1").source == "tags"
    plan = {"tuning": {"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-20T00:00:00+00:00", "rows": 9}}
    window = training_window({}, plan, where="m v1")
    assert (window.source, window.start) == ("split_plan", pd.Timestamp("2026-03-01", tz="UTC"))
    with pytest.raises(DataError, match="m v1: its lineage records no training window"):
        training_window({}, None, where="m v1")
