"""What ``make demo`` shows a person: progress per step, and a one-screen summary."""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from features.progress import report
from flows.demo import summarize
from flows.progress_view import show_progress
from flows.settings import Locations


def _candidate(family: str, utility: float) -> dict[str, Any]:
    metrics = {}
    for window in ("backtest", "forward"):
        metrics |= {
            f"{window}_pnl_pct": -0.5,
            f"{window}_utility": utility,
            f"{window}_as_pnl_pct": -0.9,
            f"{window}_as_utility": -12.5,
            f"{window}_bh_pnl_pct": 4.2,
            f"{window}_skill": -0.01,
            f"{window}_n_trades": 3013.0,
        }
    return {"family": family, "task": "regressor", "trials": 8, "metrics": metrics}


def _trained(*, passed: bool) -> dict[str, Any]:
    candidates = [_candidate("rf", -11.0), _candidate("sgd", -7.4), _candidate("lstm", -6.4)]
    return {
        "version": "1",
        "chosen": candidates[1],
        "candidates": candidates,
        "gate": {
            "version": "1",
            "passed": passed,
            "report": "/h/reports/gate/mmops-BTCUSDT-1m/v1/gate_report.md",
            "failed": []
            if passed
            else ["forward Sharpe (365 d) of the model's quoter -19.41 is below the minimum 0"],
        },
    }


def _render(trained: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # this home's own SQLite registry
    console = Console(width=100, record=True, file=io.StringIO())
    where = Locations(home=tmp_path, source_data=tmp_path, params_file=tmp_path / "params.yaml")
    summarize(console, where, trained, saved=tmp_path / "reports" / "demo" / "nightly.json")
    return console.export_text().splitlines()


def test_summary_fits_one_screen_and_says_why_the_gate_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = _render(_trained(passed=False), tmp_path, monkeypatch)
    assert len(lines) <= 40  # one screen
    # lines without a path fit 100 columns (a command with its real path may be longer: no wrap)
    assert all(
        len(line.rstrip()) <= 100 for line in lines if str(tmp_path) not in line and "/bin/" not in line
    )
    rows = [line.split() for line in lines if line.strip().startswith(("rf", "sgd", "lstm"))]
    assert [r[0] for r in rows] == ["rf", "sgd", "lstm"] and rows[1][1] == "*"  # the chosen family
    assert "-7.40" in next(line for line in lines if line.startswith(" sgd"))
    text = "\n".join(lines)
    assert "Gate: refused version 1:" in text
    assert "  - forward Sharpe (365 d) of the model's quoter -19.41 is below the minimum 0" in text
    assert f"--backend-store-uri sqlite:///{tmp_path / 'mlflow.db'}" in text  # real paths, this home
    assert "gate --version 1" in text and "approve --version" not in text  # nothing to approve yet
    assert f"Full result: {tmp_path / 'reports' / 'demo' / 'nightly.json'}" in text


def test_a_passed_gate_points_at_the_approval(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "\n".join(_render(_trained(passed=True), tmp_path, monkeypatch))
    assert "Gate: passed; version 1 is @challenger" in text
    assert 'approve --version 1 --by "$USER"' in text


def test_progress_prints_a_line_per_step_off_a_terminal(tmp_path: Path) -> None:
    console = Console(width=100, record=True, file=io.StringIO(), force_terminal=False)
    with show_progress(console):
        report("ingest + validate", detail="binance:BTCUSDT:1m: 87,840 bars, 0 gaps")
        report("tune rf", done=1, total=8, detail="trial 0: -29.1, best -29.1")
        logging.getLogger("mmops.progress").info("a record without a Progress is not shown")
    report("gate", detail="after the block: not shown")
    lines = console.export_text().splitlines()
    assert len(lines) == 2
    assert lines[0].endswith("ingest + validate      binance:BTCUSDT:1m: 87,840 bars, 0 gaps")
    assert "tune rf 1/8" in lines[1] and lines[1].endswith("trial 0: -29.1, best -29.1")


def test_the_paper_replay_summary_says_what_quoted_and_what_it_made() -> None:
    from flows.demo import summarize_replay
    from trading.worker.attribution import VersionPnl
    from trading.worker.run import TradeReport

    def trade(model: str, version: str) -> TradeReport:
        part = VersionPnl("live", version, 751, 7510, 57.2, -65.45, 1.98, {"5": -0.77})
        return TradeReport(
            journal="/h/trading/demo-journal.db",
            symbols=("BTCUSDT",),
            ticks_done=1440,
            ticks_total=1440,
            model=model,
            fills={"live": 751},
            final_equity={"live": 99_934.55},
            pnl={"live": -65.45},
            by_version=[part],
            risk_events=[{"kind": "risk"}] * 3,
            alerts=[{"kind": "alert"}, {"kind": "recovered"}],
            reconcile={},
            tick_ms={},
            status={},
        )

    for model, version, says in (
        ("model-free", "model-free", "quotes from: model-free quotes (no champion approved yet)"),
        ("champion v1", "1", "quotes from: champion v1"),
    ):
        console = Console(width=100, record=True, file=io.StringIO())
        summarize_replay(console, trade(model, version), "store: BTCUSDT 1m, 1440 bars")
        text = console.export_text()
        assert says in text
        assert "751 fills, PnL -65.45 (-0.065%), 3 risk events, 1 alert" in text
        assert "store: BTCUSDT 1m, 1440 bars" in text.replace("\n", " ")
        label = "v1" if version == "1" else "model-free"
        assert f"{label}: fees 57.20, spread capture 1.98 bps, 5-bar markout -0.77 bps" in text
        assert "trade status --journal /h/trading/demo-journal.db" in text
