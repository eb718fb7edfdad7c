"""The gate report's order (verdict, headline, checks, decomposition, plots, appendix) and the
one-line verdict that goes into the version's description."""

from __future__ import annotations

from training.gate import GateCheck, GateVerdict
from training.gate_report import headline_table, render_markdown, verdict_line

METRICS = {
    "forward_pnl_pct": -0.77,
    "forward_as_pnl_pct": -0.88,
    "forward_tas_pnl_pct": -0.41,
    "forward_bh_pnl_pct": -2.49,
    "forward_pnl_bps_day": -11.0,
    "forward_as_pnl_bps_day": -12.6,
    "forward_tas_pnl_bps_day": -0.37,
    "forward_pnl_diff": 1.6,
    "forward_pnl_diff_lo": -0.7,
    "forward_pnl_diff_hi": 3.9,
    "forward_tas_pnl_diff": -10.63,
    "forward_tas_pnl_diff_lo": -12.1,
    "forward_tas_pnl_diff_hi": -9.2,
    "forward_sharpe": -30.95,
    "forward_as_sharpe": -82.96,
    "forward_n_trades": 3849.0,
    "forward_as_n_trades": 5427.0,
    "forward_mae_ratio": 1.086,
    "forward_accuracy": 0.52,
    "forward_accuracy_lo": 0.50,
    "forward_accuracy_hi": 0.54,
    "forward_pnl_net": -770.0,
    "forward_pnl_spread": 1300.0,
    "forward_pnl_fees": -418.0,
    "forward_as_pnl_net": -876.0,
    "backtest_pnl_pct": -0.81,
    "backtest_zz_last": 1.0,
}


def _verdict(passed: bool) -> GateVerdict:
    checks = (
        GateCheck(
            "forward_pnl", -0.77, -0.41, ">=", passed=passed, label="forward PnL % over the tuned A-S quoter"
        ),
        GateCheck("forward_n_trades", 3849.0, 10.0, ">=", passed=True, label="forward fills"),
        GateCheck(
            "forward_mae", None, 0.01, "<=", passed=True, skipped=True, note="not checked for a classifier"
        ),
    )
    return GateVerdict(
        passed=passed, checks=checks, candidate={}, champion=None, champion_version=None, auto_approve=False
    )


def test_the_verdict_line_names_each_failing_check_with_its_numbers() -> None:
    line = verdict_line(_verdict(False))
    assert line == (
        "Gate FAILED (1 of 2 checks): forward PnL % over the tuned A-S quoter -0.77 is below the minimum -0.41."
    )
    assert "\n" not in line
    assert verdict_line(_verdict(True)) == "Gate passed: all 2 checks hold."


def test_the_report_reads_verdict_then_headline_then_detail() -> None:
    text = render_markdown(
        _verdict(False),
        name="mmops-BTCUSDT-1m",
        version="3",
        metrics=METRICS,
        gated_at="2026-12-01T00:00:00+00:00",
        plots=["tear_sheet_forward.png"],
    )
    order = [
        "**Verdict: FAILED.** Gate FAILED (1 of 2 checks)",
        "## Headline: forward window",
        "## Headline: backtest window",
        "## Checks",
        "## Where the PnL comes from",
        "## Plots",
        "## Head-to-head with the champion",
        "## Appendix: every logged metric",
    ]
    positions = [text.index(heading) for heading in order]
    assert positions == sorted(positions)
    assert (
        "| net PnL, bps of capital/day | -11.00 | -12.60 | -0.37 | — | 1.60 [-0.70, 3.90] | -10.63 [-12.10, -9.20] |"
        in text
    )
    assert "| net PnL, % of equity over the window | -0.770 | -0.880 | -0.410 | -2.490 |  |  |" in text
    assert (
        "accuracy [Wilson 95%] 0.520 [0.500, 0.540]" in text
        and "MAE / no-information forecast 1.0860" in text
    )
    assert "| forward | model | 1,300.00 |" in text and "| forward | A-S | – |" in text
    assert "| zz_last | 1 | — |" in text  # the appendix keeps every metric


def test_a_column_nobody_logged_is_left_out() -> None:
    table = headline_table({"forward_pnl_pct": 0.1, "forward_as_pnl_pct": 0.2}, "forward")
    assert table[0] == "|  | model quoter | A-S default |"
    assert "A-S tuned" not in table[0] and "buy & hold" not in table[0]
    assert headline_table({}, "forward") == []
