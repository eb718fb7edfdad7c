"""Typed, frozen configuration of the market-making core: ``quote``, ``risk`` and ``backtest``.

These are the three ``params.yaml`` sections the quoter, the risk engine and the fill engine
read. Every field states its unit. Prices inside the engine are integer ticks of
``BacktestConfig.tick_size`` and quantities integer lots of ``BacktestConfig.lot_size``, so the
Avellaneda-Stoikov parameters are expressed in those units too (gamma per tick per lot, kappa
per tick, sigma in ticks per sqrt(bar)).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class QuoteConfig(BaseModel):
    """How quotes are computed from the mid, inventory, volatility and the model signal."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    gamma: float = Field(
        5e-8, gt=0, description="A-S risk aversion, 1/(tick*lot); scales the inventory shift and spread"
    )
    kappa: float = Field(
        5e-4, gt=0, description="order-arrival decay with distance from mid, 1/tick (fit with calibration)"
    )
    horizon: Literal["rolling", "finite"] = Field(
        "rolling", description="rolling: tau = horizon_bars always; finite: tau = bars left in the session"
    )
    horizon_bars: float = Field(60.0, gt=0, description="tau of the rolling variant, bars")
    session_bars: int = Field(1440, gt=0, description="session length of the finite variant, bars")
    vol_halflife_bars: float = Field(
        60.0, gt=0, description="half-life of the EWMA variance of close-to-close changes, bars"
    )
    alpha_weight: float = Field(
        1.0, description="shift of the reservation price per unit pred_return (log return), x mid"
    )
    prob_skew_bps: float = Field(
        0.0, description="reservation shift at prob_up = 1 (or -shift at 0), bps of mid; linear in 2p-1"
    )
    use_pred_vol: bool = Field(True, description="widen with pred_vol when it exceeds the realised vol")
    confidence_widen: float = Field(
        0.0, ge=0, description="spread multiplier 1 + c*(1 - |2*prob_up - 1|); 0 disables"
    )
    inventory_skew_ticks: float = Field(
        0.0, ge=0, description="extra linear reservation shift per lot of inventory, ticks/lot"
    )
    pressure_ticks: float = Field(
        0.0, ge=0, description="reservation shift at full book/flow imbalance (+1 = all bids), ticks"
    )
    min_spread_ticks: int = Field(2, ge=1, description="narrowest bid-ask distance quoted, ticks")
    min_half_spread_bps: float = Field(
        0.0,
        ge=0,
        le=1000,
        description="narrowest half-spread, bps of the mid: the spread is at least 2x this x mid; 0 = off",
    )
    max_spread_ticks: int = Field(1_000_000, ge=1, description="widest bid-ask distance quoted, ticks")
    order_lots: int = Field(10, ge=1, description="order size per side before depth and limits, lots")
    depth_fraction: float = Field(
        0.0, ge=0, description="cap the size at this fraction of the last bar's volume; 0 disables"
    )

    @model_validator(mode="after")
    def _spread_bounds(self) -> QuoteConfig:
        if self.max_spread_ticks < self.min_spread_ticks:
            raise ValueError(
                f"max_spread_ticks ({self.max_spread_ticks}) < min_spread_ticks ({self.min_spread_ticks})"
            )
        return self


class RiskConfig(BaseModel):
    """Limits and triggers of the risk engine (ACTIVE / REDUCING / HALTED)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_position_lots: int = Field(100, ge=1, description="hard inventory limit, lots (never exceeded)")
    reduce_at_fraction: float = Field(
        0.8, gt=0, le=1, description="REDUCING when |inventory| >= this x max_position_lots"
    )
    resume_at_fraction: float = Field(
        0.5, ge=0, le=1, description="back to ACTIVE when |inventory| <= this x max_position_lots"
    )
    max_notional: float = Field(1e6, gt=0, description="REDUCING above this |inventory| value, quote ccy")
    max_loss: float = Field(5_000.0, gt=0, description="kill switch at this loss from start, quote ccy")
    max_drawdown_pct: float = Field(
        5.0, gt=0, description="kill switch at this drawdown from the equity peak, percent"
    )
    vol_short_halflife_bars: float = Field(5.0, gt=0, description="fast variance EWMA half-life, bars")
    vol_long_halflife_bars: float = Field(240.0, gt=0, description="slow variance EWMA half-life, bars")
    vol_spike_ratio: float = Field(9.0, gt=1, description="HALT when fast/slow variance >= this")
    vol_resume_ratio: float = Field(3.0, ge=1, description="resume when fast/slow variance <= this")
    stale_after_ms: int = Field(180_000, gt=0, description="HALT when market data is older than this, ms")
    max_reject_rate: float = Field(0.5, gt=0, le=1, description="HALT above this EWMA reject rate")
    reject_halflife_orders: float = Field(20.0, gt=0, description="reject-rate EWMA half-life, orders")
    cooldown_ms: int = Field(300_000, ge=0, description="minimum pause before a soft HALT resumes, ms")
    flatten_on_kill: bool = Field(True, description="kill switch also closes the inventory at the taker fee")

    @model_validator(mode="after")
    def _hysteresis(self) -> RiskConfig:
        if self.resume_at_fraction > self.reduce_at_fraction:
            raise ValueError("resume_at_fraction must be <= reduce_at_fraction (hysteresis)")
        if self.vol_resume_ratio > self.vol_spike_ratio:
            raise ValueError("vol_resume_ratio must be <= vol_spike_ratio (hysteresis)")
        return self


class BacktestConfig(BaseModel):
    """Venue, fee, latency and fill-model settings of the bar fill engine."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tick_size: float = Field(0.01, gt=0, description="price increment, quote ccy")
    lot_size: float = Field(0.001, gt=0, description="quantity increment, base ccy")
    initial_cash: float = Field(100_000.0, gt=0, description="starting cash, quote ccy")
    maker_fee_bps: float = Field(1.0, description="maker fee, bps of notional; negative = rebate")
    taker_fee_bps: float = Field(5.0, ge=0, description="taker fee (kill-switch flatten), bps of notional")
    latency_ms: int = Field(
        50, ge=0, description="order placement/cancel latency, ms; live from bar close + 1 + latency//bar"
    )
    refresh_bars: int = Field(1, ge=1, description="requote cadence, bars")
    requote_on_fill: bool = Field(True, description="requote at the close of a bar that had a fill")
    refresh_tolerance_pct: float = Field(
        0.0,
        ge=0,
        lt=100,
        description="keep a working quote of the new size whose price is within this % of the new "
        "quote's instead of replacing it (Hummingbot's order_refresh_tolerance_pct; fewer order "
        "actions, a staler quote); 0 = keep only an identical one; bar engine and worker, with "
        "latency under one bar",
    )
    queue_haircut_ticks: int = Field(
        1, ge=0, description="market must trade this far through the quote to fill, ticks (0 = on touch)"
    )
    max_participation: float = Field(
        0.0, ge=0, le=1, description="partial fills: cap at this share of the bar's opposite flow; 0 = off"
    )
    markout_bars: tuple[int, ...] = Field((1, 5, 15, 60), description="markout horizons, bars")

    @model_validator(mode="after")
    def _markouts(self) -> BacktestConfig:
        if any(h <= 0 for h in self.markout_bars):
            raise ValueError(f"markout_bars must be positive, got {self.markout_bars}")
        return self


class TradeConfig(BaseModel):
    """How the quoting worker runs (the ``trade`` section of params.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    signal_budget_ms: int = Field(
        250, ge=1, description="the whole signal request for all symbols must answer within this, ms"
    )
    on_missing_signal: Literal["model_free", "reduce"] = Field(
        "model_free",
        description="a symbol without a valid, timely signal: model_free = plain A-S quotes (and an alert); "
        "reduce = quote only the side that reduces inventory (what a model backtest does)",
    )
    client_prefix: str = Field(
        "mm",
        pattern=r"^[A-Za-z0-9]{1,8}$",
        description="client order ids start with this; others are not ours",
    )
    shadow_book: bool = Field(True, description="in shadow mode, run the challenger's quotes on a paper book")
    live_settle_ms: int = Field(
        2000,
        ge=0,
        le=60_000,
        description="live bars: ask the exchange for a bar this long after it closes (it publishes it a moment later), ms",
    )


class CanaryConfig(BaseModel):
    """The ``canary`` section of params.yaml (:mod:`trading.worker.canary`): the interval of the
    challenger - champion difference and how much evidence a decision needs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    level: float = Field(0.95, gt=0.5, lt=1.0, description="two-sided confidence level of the interval")
    block_ticks: int = Field(60, ge=1, description="moving-block length of the bootstrap, ticks")
    bootstrap_samples: int = Field(2000, ge=200, description="bootstrap resamples")
    seed: int = Field(0, description="the bootstrap generator's seed")
    min_fills: int = Field(100, ge=1, description="fills each version needs in the window to decide")
    min_ticks: int = Field(1440, ge=2, description="ticks the window needs to decide")
    min_symbols: int = Field(
        3,
        ge=1,
        description="where the versions quote different symbols (canary by symbol), each needs at least "
        "this many to decide: with fewer the interval cannot tell the model from the symbol",
    )
