"""The PnL decomposition in a window's metrics (``pnl_*``, ``as_pnl_*``) and the tear sheet.

Money is quote ccy (USDT); the parts are rebuilt from the fills and compared with the equity
curve's PnL, whose float64 rounding at 100,000 of cash is ~1e-11 an operation: 1e-6 over a day
of fills leaves room for that and is far below a cent.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from training.config import EvaluateConfig
from training.evaluate import evaluate_window, markout_horizons, pnl_decomposition_table
from training.plots import tear_sheet


@pytest.fixture(scope="module")
def day_report(btc_bars: pd.DataFrame):  # type: ignore[no-untyped-def]
    day = btc_bars.iloc[:1440].reset_index(drop=True)
    close = day["close"].to_numpy(float)
    pred = np.append(np.diff(np.log(close)), np.nan)  # the next bar's return: a signal that foresees
    fwd = np.append(np.diff(np.log(close)), np.nan)
    return evaluate_window(
        day,
        pred,
        fwd,
        task="regressor",
        quote=QuoteConfig(),
        risk=RiskConfig(),
        backtest=BacktestConfig(),
        config=EvaluateConfig(bootstrap_samples=100),
    )


@pytest.mark.parametrize("prefix", ["", "as_"])
def test_each_quoters_parts_add_up_to_its_pnl(day_report, prefix: str) -> None:  # type: ignore[no-untyped-def]
    m = day_report.metrics
    horizons = BacktestConfig().markout_bars
    assert markout_horizons(m, prefix) == sorted(horizons)
    parts = m[f"{prefix}pnl_spread"] + m[f"{prefix}pnl_adverse_{min(horizons)}"]
    parts += m[f"{prefix}pnl_inventory"] + m[f"{prefix}pnl_fees"]
    assert parts == pytest.approx(m[f"{prefix}pnl_net"], abs=1e-6)
    assert abs(m[f"{prefix}pnl_residual"]) < 1e-6
    assert m[f"{prefix}pnl_net"] == pytest.approx(m[f"{prefix}pnl_pct"] / 100 * BacktestConfig().initial_cash)
    assert m[f"{prefix}pnl_fees"] == pytest.approx(-m[f"{prefix}fees"])
    assert m[f"{prefix}pnl_spread"] > 0  # a maker buys under and sells over the mid it quoted


def test_the_model_and_the_free_quoter_are_decomposed_apart(day_report) -> None:  # type: ignore[no-untyped-def]
    m = day_report.metrics
    assert m["pnl_net"] != m["as_pnl_net"]  # a skewing signal changes the fills
    # the free quoter is picked off; the signal knows the next bar, so its fills are not
    assert m["as_pnl_adverse_1"] < 0 < m["pnl_adverse_1"]
    inv = day_report.inventory
    assert list(inv.columns) == ["model", "as"] and inv.index.equals(day_report.equity.index)


def test_the_tear_sheet_draws_one_png_and_refuses_metrics_without_parts(day_report, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tear_sheet(
        metrics=day_report.metrics,
        equity=day_report.equity,
        inventory=day_report.inventory,
        path=tmp_path / "tear_sheet_forward.png",
        title="BTCUSDT test: one day",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000
    with pytest.raises(ValueError, match="no pnl_adverse_<h> key"):
        tear_sheet(
            metrics={"pnl_net": 1.0},
            equity=day_report.equity,
            inventory=None,
            path=tmp_path / "x.png",
            title="x",
        )


def test_the_gate_reports_table_has_a_row_per_window_and_quoter(day_report) -> None:  # type: ignore[no-untyped-def]
    logged = {f"forward_{k}": v for k, v in day_report.metrics.items()}
    lines = pnl_decomposition_table(logged, windows=["backtest", "forward"])
    assert lines[0] == (
        "| window | quoter | spread | adverse_1 | adverse_5 | adverse_15 | adverse_60 | inventory | fees | residual | net |"
    )
    assert len(lines) == 2 + 4
    assert lines[2].startswith("| backtest | model | – |")  # a window not logged: dashes, not zeros
    net = day_report.metrics["as_pnl_net"]
    assert lines[5].startswith("| forward | A-S |") and lines[5].endswith(f"| {net:,.2f} |")
