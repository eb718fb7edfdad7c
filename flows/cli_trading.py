"""``mmops`` commands of the trading stage (registered on :data:`flows.cli_common.app`).

Each command parses options, resolves locations and params, calls one library function in
``trading/`` and reports; no trading logic lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from features.errors import ConfigError, DataError
from flows.cli_common import IntervalOpt, JsonOpt, VenueOpt, app, context, emit, reported


def _read_signals(path: Path) -> Any:
    import pandas as pd

    try:
        frame = pd.read_parquet(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"--signals {path}: file not found") from exc
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise DataError(
            f"--signals {path}: not a readable Parquet file ({type(exc).__name__}: {exc})"
        ) from exc
    if "timestamp" not in frame.columns and frame.index.name == "timestamp":
        frame = frame.reset_index()
    return frame


def _tick_backtest(
    ticks: Path, symbol: str, params: Any, strategy: str, signals: Any, decision_ms: int
) -> Any:
    """``--ticks``: the capture of ``symbol`` under ``ticks`` through the tick engine."""
    from trading.tick_backtest import run_tick_backtest
    from trading.ticks import read_ticks, select_capture

    name, files = select_capture(ticks, symbol)
    data = read_ticks(files)
    result = run_tick_backtest(
        data,
        quote=params.quote,
        risk=params.risk,
        backtest=params.backtest,
        signals=signals,
        strategy="model" if strategy == "model" else "as",
        decision_interval_ms=decision_ms,
    )
    return f"ticks:{name}:{decision_ms}ms", result


@app.command()
@reported
def backtest(
    symbol: Annotated[str, typer.Option("--symbol", help="e.g. BTCUSDT")],
    out: Annotated[Path, typer.Option("--out", help="folder for metrics.json, trades/equity Parquet, PNG")],
    strategy: Annotated[str, typer.Option("--strategy", help="as | model")] = "as",
    interval: IntervalOpt = None,
    venue: VenueOpt = None,
    start: Annotated[str | None, typer.Option("--start", help="first bar (UTC), inclusive")] = None,
    end: Annotated[str | None, typer.Option("--end", help="last bar (UTC), inclusive")] = None,
    signals: Annotated[
        Path | None, typer.Option("--signals", help="Parquet: timestamp + pred_return/pred_vol/prob_up")
    ] = None,
    ticks: Annotated[
        Path | None,
        typer.Option("--ticks", help="tick captures (.gz or folder): run the tick engine instead of bars"),
    ] = None,
    decision_ms: Annotated[
        int, typer.Option("--decision-ms", help="with --ticks: decision and state-row interval, ms")
    ] = 1000,
    as_json: JsonOpt = False,
) -> None:
    """Backtest the quoter, risk engine and fill engine on stored bars or tick captures
    (params: quote, risk, backtest)."""
    import pandas as pd

    from features.pipeline import resolve_venue
    from features.schema import normalize_interval, normalize_symbol
    from features.store import BarStore
    from trading.backtest import run_backtest

    if strategy not in ("as", "model"):
        raise ConfigError(f"--strategy must be 'as' or 'model', got {strategy!r}")
    if strategy == "model" and signals is None:
        raise ConfigError("--strategy model needs --signals FILE (Parquet with timestamp and pred_* columns)")
    for name, value in (("--start", start), ("--end", end)):
        if value is not None:
            try:
                pd.Timestamp(value)
            except ValueError as exc:
                raise ConfigError(f"{name} {value!r}: not a timestamp such as 2026-03-01T00:00") from exc
    where, params = context()
    sig = _read_signals(signals) if signals is not None and strategy == "model" else None
    if ticks is not None:
        series, result = _tick_backtest(ticks, symbol, params, strategy, sig, decision_ms)
        _report(result, out, series=series, strategy=strategy, as_json=as_json)
        return
    store = BarStore(where.bars)
    ivl = normalize_interval(interval or "1m")
    sym = normalize_symbol(symbol)
    if venue is None and not any(k.symbol == sym and k.interval == ivl for k in store.series()):
        known = ", ".join(str(k) for k in store.series()) or "none"
        raise DataError(f"no {sym} {ivl} bars in {where.bars} (stored: {known}); run `mmops ingest` first")
    ven = resolve_venue(store, sym, ivl, venue)
    bars = store.read(ven, sym, ivl, start=start, end=end)
    if len(bars) < 2:
        raise DataError(f"{ven}:{sym}:{ivl}: {len(bars)} bars between {start} and {end}; need at least 2")
    result = run_backtest(
        bars,
        quote=params.quote,
        risk=params.risk,
        backtest=params.backtest,
        signals=sig,
        strategy="model" if strategy == "model" else "as",
    )
    _report(result, out, series=f"{ven}:{sym}:{ivl}", strategy=strategy, as_json=as_json)


def _report(result: Any, out: Path, *, series: str, strategy: str, as_json: bool) -> None:
    """Write the backtest files and print the summary (bars and ticks alike)."""
    from trading.backtest import write_backtest_outputs

    paths = write_backtest_outputs(result, out)
    m = result.metrics
    payload = {
        "series": series,
        "strategy": strategy,
        "metrics": m.to_dict(),
        "files": {k: str(v) for k, v in paths.items()},
    }
    sharpe = "n/a" if m.sharpe is None else f"{m.sharpe:.2f}"
    human = (
        f"{series} {strategy}: {m.bars} bars, PnL {m.pnl:.2f} ({m.pnl_pct:.3f}%), Sharpe {sharpe}, "
        f"max DD {m.max_drawdown_pct:.3f}%, {m.n_trades} fills, fees {m.fees:.2f}, "
        f"inventory mean {m.inventory_mean:.1f} std {m.inventory_std:.1f} max {m.inventory_max_abs} lots -> {out}"
    )
    emit(payload, as_json=as_json, human=human)


@app.command()
@reported
def simulate(
    gamma: Annotated[float, typer.Option("--gamma", help="risk aversion, 1/(dollar*share)")],
    paths: Annotated[int, typer.Option("--paths", help="simulated paths per strategy")] = 1000,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """The synthetic Avellaneda-Stoikov (2008) experiment: inventory vs symmetric strategy."""
    from trading.synthetic import run_as_experiment

    if paths < 2 or gamma <= 0:
        raise ConfigError(f"need --paths >= 2 and --gamma > 0, got paths={paths}, gamma={gamma}")
    result = run_as_experiment(gamma=gamma, paths=paths, seed=seed).to_dict()
    lines = [f"A-S experiment, gamma={gamma}, {paths} paths"]
    for name in ("inventory", "symmetric"):
        s = result[name]
        lines.append(
            f"{name:>9}: profit {s['mean_profit']:.2f} +/- {s['std_profit']:.2f}, final q "
            f"{s['mean_final_q']:.2f} +/- {s['std_final_q']:.2f}, spread {s['mean_spread']:.2f}"
        )
    emit(result, as_json=as_json, human="\n".join(lines))


@app.command()
@reported
def calibrate(
    ticks: Annotated[
        Path, typer.Option("--ticks", help="a capture .gz or a folder of them (grouped by instrument)")
    ],
    out: Annotated[
        Path | None, typer.Option("--out", help="folder for calibration.json and intensity.png")
    ] = None,
    window_s: Annotated[
        float, typer.Option("--window-s", help="quote lifetime / bar length, seconds")
    ] = 60.0,
    stride_s: Annotated[float, typer.Option("--stride-s", help="spacing of the fit windows, seconds")] = 1.0,
    delta: Annotated[
        list[int] | None,
        typer.Option("--delta", help="comparison distance in ticks (repeat); default 1..3000"),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Fit lambda(delta) = A exp(-kappa delta) on tick captures; compare bar and tick fills."""
    import json

    from trading.calibration import calibrate as run_calibration
    from trading.calibration import plot_intensity
    from trading.ticks import group_tick_files, read_ticks

    _where, params = context()
    results = [
        run_calibration(
            name,
            read_ticks(files),
            window_s=window_s,
            stride_s=stride_s,
            haircut_ticks=params.backtest.queue_haircut_ticks,
            delta_ticks=delta,
        )
        for name, files in group_tick_files(ticks).items()
    ]
    payload: dict[str, Any] = {"instruments": {c.instrument: c.to_dict() for c in results}}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        plot = plot_intensity(
            {f"{c.instrument} ({ref})": fit for c in results for ref, fit in c.fits.items()},
            out / "intensity.png",
        )
        payload["files"] = {"calibration": str(out / "calibration.json"), "plot": str(plot)}
        (out / "calibration.json").write_text(json.dumps(payload, indent=2, default=str))
    human = "\n\n".join(
        "\n".join(
            [f"{c.instrument} ({c.trades} trades, {c.duration_s:.0f} s, tick {c.tick_size:g})"]
            + [f"  {f.summary()}" for f in c.fits.values()]
            + [c.bar_vs_tick.table()]
        )
        for c in results
    )
    emit(payload, as_json=as_json, human=human)
