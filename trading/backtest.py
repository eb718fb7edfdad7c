"""Backtest entry point: canonical bars (and an optional model signal) in, result dataclass out.

This module converts at the edges (prices to integer ticks, quantities to lots, timestamps to
int ns) and back; the event loop itself is :func:`trading.fill_engine.run_kernel`.

Signal convention (for the training issue). ``signals`` is a DataFrame with a ``timestamp``
column equal to the bar OPEN timestamps of ``bars`` (datetime64[ns, UTC]) and any of:

* ``pred_return``: predicted log return over the label horizon, computed from data up to the
  CLOSE of that bar. Shifts the reservation price by ``quote.alpha_weight * pred_return * mid``.
* ``pred_vol``: predicted per-bar volatility of log returns. When ``quote.use_pred_vol`` and it
  exceeds the realised estimate, it replaces sigma in the spread and the inventory term.
* ``prob_up``: probability the price goes up. Skews by ``quote.prob_skew_bps * (2p - 1)`` and
  widens the spread by ``1 + quote.confidence_widen * (1 - |2p - 1|)``.

Row ``t`` is used only for quotes decided at the close of bar ``t``, which reach the market
after the latency, so no quote sees a signal before its bar has closed. Missing rows or NaN
mean "signal unavailable": with ``strategy="model"`` the risk engine then only lets the
inventory-reducing side quote (reason ``signal_unavailable``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from features.errors import DataError
from trading.config import BacktestConfig, QuoteConfig, RiskConfig
from trading.fill_engine import BarArrays, EngineParams, StepArrays, TradeArrays, run_kernel
from trading.metrics import BacktestMetrics, FillRecords, compute_metrics
from trading.quoting import QuoteParams, quote_params
from trading.risk import RiskParams, RiskStatus, reason_names, risk_params

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("timestamp", "open", "high", "low", "close", "volume")
SIGNAL_COLUMNS = ("pred_return", "pred_vol", "prob_up")
Strategy = Literal["as", "model"]


@dataclass(frozen=True)
class BacktestResult:
    """What one backtest produced.

    ``equity`` has one row per bar (state at the bar close): ``timestamp`` (bar open), ``cash``,
    ``inventory`` (lots), ``position`` (base ccy), ``mark`` (close price), ``equity``, the quotes
    live during the bar (``bid``/``ask`` prices, NaN when not quoted, and sizes in lots), the
    risk ``status`` name and ``reasons``. ``trades`` has one row per fill: ``timestamp``,
    ``side`` (buy/sell), ``price``, ``lots``, ``quantity`` (base ccy), ``fee`` (quote ccy,
    negative = rebate), ``liquidity`` (maker/taker), ``ref_mid``.
    """

    metrics: BacktestMetrics
    trades: pd.DataFrame
    equity: pd.DataFrame


def bar_interval_ns(bars: pd.DataFrame) -> int:
    """Bar length in ns, from the ``interval`` column (e.g. "1m") or the timestamp spacing.

    Raises:
        DataError: no usable interval.
    """
    if "interval" in bars.columns and len(bars) > 0:
        value = str(bars["interval"].iloc[0])
        try:
            return int(pd.Timedelta(value).value)
        except ValueError as exc:
            raise DataError(f"bars: interval {value!r} is not a duration such as '1m' or '1h'") from exc
    diffs = np.diff(bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64))
    if len(diffs) == 0:
        raise DataError("bars: one row and no 'interval' column, cannot tell the bar length")
    return int(np.median(diffs))


def _validate_bars(bars: pd.DataFrame, *, min_rows: int = 2) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"bars: missing columns {missing}; expected the canonical bar schema")
    if len(bars) < min_rows:
        raise DataError(f"bars: need at least {min_rows} rows, got {len(bars)}")
    prices = bars[["open", "high", "low", "close"]].to_numpy(dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(prices).all(axis=1) | (prices <= 0).any(axis=1))
    if len(bad):
        raise DataError(f"bars: non-finite or non-positive prices at rows {bad[:5].tolist()}")
    if (bars["high"] < bars["low"]).any():
        rows = np.flatnonzero((bars["high"] < bars["low"]).to_numpy())[:5].tolist()
        raise DataError(f"bars: high < low at rows {rows}")
    ts = bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64)
    if np.any(np.diff(ts) <= 0):
        raise DataError("bars: timestamps must be strictly increasing (sort and de-duplicate first)")


def signal_arrays(bars: pd.DataFrame, signals: pd.DataFrame | None) -> dict[str, np.ndarray]:
    n = len(bars)
    out = {c: np.full(n, np.nan) for c in SIGNAL_COLUMNS}
    if signals is None:
        return out
    if "timestamp" not in signals.columns:
        raise DataError("signals: need a 'timestamp' column aligned to the bar open timestamps")
    present = [c for c in SIGNAL_COLUMNS if c in signals.columns]
    if not present:
        raise DataError(f"signals: none of the columns {SIGNAL_COLUMNS} present")
    try:
        stamps = pd.to_datetime(signals["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    except (ValueError, TypeError) as exc:
        raise DataError(f"signals: 'timestamp' is not a datetime column ({exc})") from exc
    if stamps.duplicated().any():
        raise DataError("signals: duplicate timestamps")
    frame = signals[present].assign(timestamp=stamps.to_numpy())
    keys = bars[["timestamp"]].assign(
        timestamp=pd.to_datetime(bars["timestamp"], utc=True).astype("datetime64[ns, UTC]")
    )
    aligned = keys.merge(frame, on="timestamp", how="left")
    for c in present:
        out[c] = aligned[c].to_numpy(dtype=np.float64)
    return out


def bar_arrays(
    bars: pd.DataFrame, *, backtest: BacktestConfig, signals: pd.DataFrame | None = None, min_rows: int = 2
) -> BarArrays:
    """Convert canonical bars (and a signal frame) to kernel arrays in ticks and lots.

    ``min_rows``: a backtest needs two bars; a live feed's first ticks may have one or none.

    Raises:
        DataError: missing columns, bad prices, unsorted timestamps or a malformed signal frame.
    """
    _validate_bars(bars, min_rows=min_rows)

    def ticks(col: str) -> np.ndarray:
        return np.rint(bars[col].to_numpy(dtype=np.float64) / backtest.tick_size).astype(np.int64)

    volume = bars["volume"].to_numpy(dtype=np.float64) / backtest.lot_size
    if "taker_buy_volume" in bars.columns:
        buy = bars["taker_buy_volume"].to_numpy(dtype=np.float64) / backtest.lot_size
    else:
        buy = np.full(len(bars), np.nan)
    buy = np.where(np.isfinite(buy), buy, 0.5 * volume)  # unknown aggressor split: half each
    sig = signal_arrays(bars, signals)
    close = ticks("close")
    return BarArrays(
        open_ns=bars["timestamp"].to_numpy(dtype="datetime64[ns]").astype(np.int64),
        open=ticks("open"),
        high=ticks("high"),
        low=ticks("low"),
        close=close,
        volume=volume,
        buy_flow=buy,
        sell_flow=np.maximum(volume - buy, 0.0),
        pred_return=sig["pred_return"],
        pred_sigma2=(sig["pred_vol"] * close) ** 2,
        prob_up=sig["prob_up"],
    )


def ewma_alpha(halflife_steps: float) -> float:
    """EWMA weight of a new observation for a half-life in steps (bars, or decision steps)."""
    return 1.0 - 0.5 ** (1.0 / halflife_steps)


def engine_params(
    *,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    bar_ns: int,
    need_signal: bool,
    kill_from: int,
) -> EngineParams:
    """Flatten the three configs into the kernel's :class:`EngineParams`."""
    return EngineParams(
        bar_ns=bar_ns,
        tick=backtest.tick_size,
        lot=backtest.lot_size,
        maker_fee=backtest.maker_fee_bps * 1e-4,
        taker_fee=backtest.taker_fee_bps * 1e-4,
        latency_bars=int(backtest.latency_ms * 1_000_000 // bar_ns),
        refresh_bars=backtest.refresh_bars,
        requote_on_fill=backtest.requote_on_fill,
        refresh_tol=backtest.refresh_tolerance_pct / 100,
        haircut_ticks=backtest.queue_haircut_ticks,
        participation=backtest.max_participation,
        initial_cash=backtest.initial_cash,
        max_position=risk.max_position_lots,
        vol_alpha=ewma_alpha(quote.vol_halflife_bars),
        fast_alpha=ewma_alpha(risk.vol_short_halflife_bars),
        slow_alpha=ewma_alpha(risk.vol_long_halflife_bars),
        flatten_on_kill=risk.flatten_on_kill,
        need_signal=need_signal,
        kill_from=kill_from,
    )


def step_arrays(n: int) -> StepArrays:
    """Zeroed per-step outputs (cash, equity, inventory, quotes, risk status) for ``n`` steps."""
    cash, equity = np.zeros(n), np.zeros(n)
    inventory, bid, ask, bid_lots, ask_lots, status, reasons = np.zeros((7, n), dtype=np.int64)
    return StepArrays(
        cash=cash,
        equity=equity,
        inventory=inventory,
        bid=bid,
        ask=ask,
        bid_lots=bid_lots,
        ask_lots=ask_lots,
        status=status,
        reasons=reasons,
    )


def trade_arrays(capacity: int) -> TradeArrays:
    """Zeroed fill records with room for ``capacity`` fills."""
    bar, side, price, lots, maker = np.zeros((5, capacity), dtype=np.int64)
    return TradeArrays(
        bar=bar,
        side=side,
        price=price,
        lots=lots,
        fee=np.zeros(capacity),
        maker=maker,
        ref_mid=np.zeros(capacity),
    )


def fill_records(trades: TradeArrays, k: int) -> FillRecords:
    """The first ``k`` fills the kernel wrote, as :class:`FillRecords`."""
    return FillRecords(
        bar=trades.bar[:k],
        side=trades.side[:k],
        price_ticks=trades.price[:k],
        lots=trades.lots[:k],
        fee=trades.fee[:k],
        maker=trades.maker[:k],
        ref_mid_ticks=trades.ref_mid[:k],
    )


def allocate_outputs(n: int, latency_bars: int) -> tuple[StepArrays, TradeArrays, np.ndarray]:
    """Zeroed output arrays for ``n`` bars and the in-flight order ring."""
    # two maker fills a bar, and flattens only after a latched kill
    ring = np.full((latency_bars + 2, 6), -1, dtype=np.int64)
    return step_arrays(n), trade_arrays(2 * n + latency_bars + 2), ring


def simulate(
    arrays: BarArrays, qp: QuoteParams, rp: RiskParams, ep: EngineParams
) -> tuple[StepArrays, FillRecords, tuple[int, int, int]]:
    """Run the compiled kernel on prepared arrays (the fast path tuning loops call).

    Returns:
        Per-bar outputs, fill records trimmed to the fills that happened, and
        ``(n_trades, orders_placed, lots_quoted)``.
    """
    steps, trades, ring = allocate_outputs(len(arrays.close), ep.latency_bars)
    counters = run_kernel(arrays, qp, rp, ep, steps, trades, ring)
    return steps, fill_records(trades, counters[0]), counters


def run_backtest(
    bars: pd.DataFrame,
    *,
    quote: QuoteConfig,
    risk: RiskConfig,
    backtest: BacktestConfig,
    signals: pd.DataFrame | None = None,
    strategy: Strategy = "as",
    kill_at: pd.Timestamp | None = None,
) -> BacktestResult:
    """Backtest the quoter, risk engine and fill model over canonical bars.

    Args:
        bars: canonical bars of one symbol, sorted by ``timestamp`` (bar open, UTC).
        quote: quoting parameters.
        risk: risk limits.
        backtest: venue, fees, latency and fill-model settings.
        signals: model signal frame (see the module docstring); required for ``"model"``.
        strategy: ``"as"`` = model-free Avellaneda-Stoikov (signals ignored); ``"model"`` =
            A-S with the model's skew and widening.
        kill_at: press the kill switch at the close of the first bar opening at or after this.

    Returns:
        Metrics, per-bar equity and the fills.

    Raises:
        DataError: bad bars or signals.
        ValueError: ``strategy="model"`` without signals, or an unknown strategy.
    """
    if strategy not in ("as", "model"):
        raise ValueError(f"strategy must be 'as' or 'model', got {strategy!r}")
    if strategy == "model" and signals is None:
        raise ValueError("strategy='model' needs a signals frame (pred_return / pred_vol / prob_up)")
    bar_ns = bar_interval_ns(bars)
    arrays = bar_arrays(bars, backtest=backtest, signals=signals if strategy == "model" else None)
    kill_from = len(bars)
    if kill_at is not None:
        kill_from = int(np.searchsorted(arrays.open_ns, pd.Timestamp(kill_at).value))
    ep = engine_params(
        quote=quote,
        risk=risk,
        backtest=backtest,
        bar_ns=bar_ns,
        need_signal=strategy == "model",
        kill_from=kill_from,
    )
    steps, fills, (_k, placed, lots_quoted) = simulate(arrays, quote_params(quote), risk_params(risk), ep)
    metrics = compute_metrics(
        equity=steps.equity,
        inventory=steps.inventory,
        status=steps.status,
        close_ticks=arrays.close,
        fills=fills,
        bar_ns=bar_ns,
        initial_cash=backtest.initial_cash,
        tick=backtest.tick_size,
        lot=backtest.lot_size,
        orders_placed=placed,
        lots_quoted=lots_quoted,
        markout_bars=backtest.markout_bars,
    )
    logger.info("backtest: %d bars, %d fills, pnl %.2f", len(bars), len(fills.bar), metrics.pnl)
    return BacktestResult(
        metrics=metrics,
        trades=trades_frame(fills, arrays.open_ns[fills.bar], backtest),
        equity=equity_frame(steps, arrays.open_ns, arrays.close, backtest),
    )


def trades_frame(
    fills: FillRecords, stamps_ns: np.ndarray, backtest: BacktestConfig, *, index: str = "bar"
) -> pd.DataFrame:
    """The fills as the ``trades`` frame; ``stamps_ns`` one time per fill, ``index`` names the step column."""
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(stamps_ns, utc=True),
            index: fills.bar,
            "side": np.where(fills.side > 0, "buy", "sell"),
            "price": fills.price_ticks * backtest.tick_size,
            "lots": fills.lots,
            "quantity": fills.lots * backtest.lot_size,
            "fee": fills.fee,
            "liquidity": np.where(fills.maker == 1, "maker", "taker"),
            "ref_mid": fills.ref_mid_ticks * backtest.tick_size,
        }
    )


def equity_frame(
    steps: StepArrays, stamps_ns: np.ndarray, mark_ticks: np.ndarray, backtest: BacktestConfig
) -> pd.DataFrame:
    """The per-step state as the ``equity`` frame, marked at ``mark_ticks`` (close or mid)."""
    tick = backtest.tick_size
    statuses = np.array([s.name for s in RiskStatus])
    codes, inverse = np.unique(steps.reasons, return_inverse=True)
    names = np.array([",".join(reason_names(int(c))) for c in codes], dtype=object)
    return pd.DataFrame(
        {
            "timestamp": pd.to_datetime(stamps_ns, utc=True),
            "cash": steps.cash,
            "inventory": steps.inventory,
            "position": steps.inventory * backtest.lot_size,
            "mark": mark_ticks * tick,
            "equity": steps.equity,
            "bid": np.where(steps.bid_lots > 0, steps.bid * tick, np.nan),
            "ask": np.where(steps.ask_lots > 0, steps.ask * tick, np.nan),
            "bid_lots": steps.bid_lots,
            "ask_lots": steps.ask_lots,
            "status": statuses[steps.status],
            "reasons": names[inverse.reshape(-1)],
        }
    )


def write_backtest_outputs(result: BacktestResult, out_dir: Path) -> dict[str, Path]:
    """Write ``metrics.json``, ``trades.parquet``, ``equity.parquet`` and ``equity.png``.

    Args:
        result: a backtest result.
        out_dir: target folder (created if missing).

    Returns:
        Paths written, keyed ``metrics``, ``trades``, ``equity``, ``plot``.
    """
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "metrics": out_dir / "metrics.json",
        "trades": out_dir / "trades.parquet",
        "equity": out_dir / "equity.parquet",
        "plot": out_dir / "equity.png",
    }
    paths["metrics"].write_text(json.dumps(_json_safe(result.metrics.to_dict()), indent=2, sort_keys=True))
    result.trades.to_parquet(paths["trades"], index=False)
    result.equity.to_parquet(paths["equity"], index=False)
    fig, (ax_eq, ax_inv) = plt.subplots(2, 1, sharex=True, figsize=(10, 6))
    ax_eq.plot(result.equity["timestamp"], result.equity["equity"], lw=0.8)
    ax_eq.set_ylabel("equity (quote ccy)")
    ax_inv.plot(result.equity["timestamp"], result.equity["inventory"], lw=0.8, color="tab:orange")
    ax_inv.set_ylabel("inventory (lots)")
    fig.tight_layout()
    fig.savefig(paths["plot"], dpi=100)
    plt.close(fig)
    return paths


def _json_safe(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
