"""Avellaneda-Stoikov quoting with model skew, in integer ticks and lots.

Units used throughout: prices in ticks, quantities in lots, time in bars, ``sigma2`` the variance
of the mid's change per bar in ticks^2, ``gamma`` in 1/(tick*lot), ``kappa`` in 1/tick.

The formulas (Avellaneda & Stoikov 2008, eq. 29-30):

* reservation price ``r = s - q * gamma * sigma^2 * tau``
* total spread ``delta = gamma * sigma^2 * tau + (2 / gamma) * ln(1 + gamma / kappa)``

``tau`` is ``T - t`` in the finite-horizon variant and a constant horizon in the rolling
(infinite-horizon) variant. :func:`quote_core` prices a quote; :func:`decide_quotes` is the whole
decision (price, depth and pressure inputs, the risk state's side filter, the post-only clamp to
the touch). Both are compiled with numba; :func:`decide_quotes` is the one decision the bar
kernel, the tick kernel, the worker and :func:`compute_quotes` call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from numba import njit

from trading.config import QuoteConfig
from trading.risk import ACTIVE, HALTED, allowed_sides

# the touch when no book is known: far enough that the post-only clamp never binds
NO_BID = -(2**62)
NO_ASK = 2**62

FloatLike = float | npt.NDArray[np.float64]


def reservation_price(
    *, mid: FloatLike, inventory: FloatLike, gamma: float, sigma: float, tau: FloatLike
) -> FloatLike:
    """A-S reservation (indifference) price ``r = s - q*gamma*sigma^2*tau``.

    Args:
        mid: mid price ``s`` (any price unit: ticks in the engine, dollars in the paper).
        inventory: signed inventory ``q`` (lots; shares in the paper).
        gamma: risk aversion, 1/(price unit * inventory unit).
        sigma: volatility of the mid, price units per sqrt(time unit).
        tau: time to the horizon, in the time unit of ``sigma``.

    Returns:
        The reservation price in the unit of ``mid``.
    """
    return mid - inventory * gamma * sigma**2 * tau


def total_spread(*, gamma: float, sigma: float, tau: FloatLike, kappa: float) -> FloatLike:
    """A-S optimal bid-ask spread ``gamma*sigma^2*tau + (2/gamma)*ln(1 + gamma/kappa)``.

    Args:
        gamma: risk aversion, 1/(price unit * inventory unit).
        sigma: volatility, price units per sqrt(time unit).
        tau: time to the horizon (the rolling variant passes a constant).
        kappa: decay of the fill intensity with distance from the mid, 1/price unit.

    Returns:
        The distance between the bid and the ask, price units (before rounding to ticks).

    Raises:
        ValueError: gamma or kappa is not positive.
    """
    if gamma <= 0 or kappa <= 0:
        raise ValueError(f"gamma and kappa must be positive, got gamma={gamma}, kappa={kappa}")
    return gamma * sigma**2 * tau + (2.0 / gamma) * math.log1p(gamma / kappa)


class QuoteParams(NamedTuple):
    """The :class:`QuoteConfig` flattened into plain numbers the numba kernel can take."""

    gamma: float
    log_term: float  # (2/gamma) * ln(1 + gamma/kappa), ticks; constant, so computed once
    rolling: bool
    horizon_bars: float
    session_bars: int
    alpha_weight: float
    prob_skew_frac: float
    use_pred_vol: bool
    confidence_widen: float
    inventory_skew_ticks: float
    pressure_ticks: float
    min_spread_ticks: int
    min_half_spread_frac: float  # the bps floor of the half-spread, as a fraction of the mid
    max_spread_ticks: int
    order_lots: int
    depth_fraction: float


def quote_params(cfg: QuoteConfig) -> QuoteParams:
    """Flatten a :class:`QuoteConfig` for :func:`quote_core`."""
    return QuoteParams(
        gamma=cfg.gamma,
        log_term=(2.0 / cfg.gamma) * math.log1p(cfg.gamma / cfg.kappa),
        rolling=cfg.horizon == "rolling",
        horizon_bars=cfg.horizon_bars,
        session_bars=cfg.session_bars,
        alpha_weight=cfg.alpha_weight,
        prob_skew_frac=cfg.prob_skew_bps * 1e-4,
        use_pred_vol=cfg.use_pred_vol,
        confidence_widen=cfg.confidence_widen,
        inventory_skew_ticks=cfg.inventory_skew_ticks,
        pressure_ticks=cfg.pressure_ticks,
        min_spread_ticks=cfg.min_spread_ticks,
        min_half_spread_frac=cfg.min_half_spread_bps * 1e-4,
        max_spread_ticks=cfg.max_spread_ticks,
        order_lots=cfg.order_lots,
        depth_fraction=cfg.depth_fraction,
    )


@njit(cache=True, error_model="numpy", inline="always")
def horizon_tau(bar_index: int, qp: QuoteParams) -> float:
    """Time to the horizon in bars: constant (rolling) or bars left in the session (finite)."""
    if qp.rolling:
        return qp.horizon_bars
    return float(qp.session_bars - bar_index % qp.session_bars)


@njit(cache=True, error_model="numpy", inline="always")
def quote_core(
    mid: float,
    inventory: int,
    sigma2: float,
    tau: float,
    pred_return: float,
    pred_sigma2: float,
    prob_up: float,
    pressure: float,
    size_cap: float,
    max_position: int,
    qp: QuoteParams,
) -> tuple[int, int, int, int, float, float]:
    """Compute one two-sided quote. NaN signal/pressure inputs mean "not available".

    Returns:
        ``(bid_ticks, ask_ticks, bid_lots, ask_lots, reservation_ticks, spread_ticks)``; a side
        with 0 lots is not quoted (it would breach ``max_position``).
    """
    if qp.use_pred_vol and pred_sigma2 > sigma2:  # NaN compares False: falls back to realised
        sigma2 = pred_sigma2
    inv_term = qp.gamma * sigma2 * tau
    r = mid - inventory * (inv_term + qp.inventory_skew_ticks)
    if pred_return == pred_return:
        r += qp.alpha_weight * pred_return * mid
    widen = 1.0
    if prob_up == prob_up:
        edge = 2.0 * prob_up - 1.0
        r += qp.prob_skew_frac * edge * mid
        widen += qp.confidence_widen * (1.0 - abs(edge))
    if pressure == pressure:
        r += qp.pressure_ticks * pressure
    floor = max(qp.min_spread_ticks, 2.0 * qp.min_half_spread_frac * mid)  # off (0): min_spread_ticks
    spread = min(max((inv_term + qp.log_term) * widen, floor), qp.max_spread_ticks)
    bid = math.floor(r - 0.5 * spread)
    ask = math.ceil(r + 0.5 * spread)
    if ask - bid > qp.max_spread_ticks:
        ask = bid + qp.max_spread_ticks
    size = qp.order_lots
    if size_cap < size:
        size = int(max(size_cap, 0.0))
    bid_lots = max(0, min(size, max_position - inventory))
    ask_lots = max(0, min(size, max_position + inventory))
    return bid, ask, bid_lots, ask_lots, r, spread


@njit(cache=True, error_model="numpy", inline="always")
def depth_cap(volume: float, qp: QuoteParams) -> float:
    """The order-size cap from recent volume (lots); infinite when ``depth_fraction`` is 0."""
    return qp.depth_fraction * volume if qp.depth_fraction > 0.0 else math.inf


@njit(cache=True, error_model="numpy", inline="always")
def imbalance(up: float, down: float, qp: QuoteParams) -> float:
    """Flow or book imbalance in [-1, 1] (+1 = all ``up``); NaN when unused or nothing to weigh.

    Skipped (a division a step) when ``pressure_ticks`` is 0: nothing reads it then.
    """
    total = up + down
    if qp.pressure_ticks == 0.0 or not total > 0.0:
        return math.nan
    return (up - down) / total


@njit(cache=True, error_model="numpy", inline="always")
def decide_quotes(
    mid: float,
    inventory: int,
    sigma2: float,
    tau: float,
    pred_return: float,
    pred_sigma2: float,
    prob_up: float,
    pressure: float,
    size_cap: float,
    max_position: int,
    status: int,
    best_bid: int,
    best_ask: int,
    qp: QuoteParams,
) -> tuple[int, int, int, int, float, float]:
    """The quote decision: price it, keep the sides the risk state allows, post only.

    Args:
        mid .. max_position: as :func:`quote_core`.
        status: the risk state (:class:`trading.risk.RiskStatus` value); HALTED quotes nothing,
            REDUCING only the side that reduces the inventory.
        best_bid, best_ask: the touch, ticks. A quote that would cross it is pulled back to one
            tick inside the far touch instead of being sent and rejected (post-only). Bars have
            no book: the close stands in for both.

    Returns:
        ``(bid, ask, bid_lots, ask_lots, reservation, spread)``; a side with 0 lots is not quoted.
    """
    if status == HALTED:
        return 0, 0, 0, 0, math.nan, math.nan
    bid, ask, bl, al, r, spread = quote_core(
        mid, inventory, sigma2, tau, pred_return, pred_sigma2, prob_up, pressure, size_cap, max_position, qp
    )
    ok_bid, ok_ask = allowed_sides(status, inventory)
    bid = min(bid, best_ask - 1)
    ask = max(ask, best_bid + 1)
    return bid, ask, bl if ok_bid else 0, al if ok_ask else 0, r, spread


@dataclass(frozen=True, slots=True)
class Quotes:
    """One two-sided quote. Prices in ticks, sizes in lots; a 0-lot side is not quoted."""

    bid_ticks: int
    ask_ticks: int
    bid_lots: int
    ask_lots: int
    reservation_ticks: float
    spread_ticks: float


def compute_quotes(
    *,
    mid_ticks: float,
    inventory_lots: int,
    sigma2_ticks: float,
    quote: QuoteConfig,
    max_position_lots: int,
    bar_index: int = 0,
    pred_return: float | None = None,
    pred_vol: float | None = None,
    prob_up: float | None = None,
    pressure: float | None = None,
    size_cap_lots: float | None = None,
    status: int = ACTIVE,
    best_bid_ticks: int | None = None,
    best_ask_ticks: int | None = None,
) -> Quotes:
    """Quote one instrument now: :func:`decide_quotes` for one set of Python inputs.

    Args:
        mid_ticks: current mid, ticks.
        inventory_lots: signed inventory, lots.
        sigma2_ticks: realised variance of the mid change per bar, ticks^2.
        quote: quoting parameters.
        max_position_lots: hard inventory limit; sizes are cut so no fill can breach it.
        bar_index: bars since the session start (finite-horizon variant only).
        pred_return: model's predicted log return over its label horizon (None: no alpha skew).
        pred_vol: model's predicted per-bar volatility of log returns (None: realised only).
        prob_up: model's probability that the price goes up (None: no confidence widening).
        pressure: book or flow imbalance in [-1, 1], +1 = all bid side (None: no adjustment).
        size_cap_lots: depth-aware cap on the order size, lots (None: ``quote.order_lots``).
        status: the risk state (:class:`trading.risk.RiskStatus`): REDUCING quotes only the
            reducing side, HALTED nothing (all zeros, NaN reservation and spread).
        best_bid_ticks, best_ask_ticks: the touch; quotes are clamped inside it (post-only).
            None: no book known, no clamp on that side.

    Returns:
        The quotes, rounded outwards to whole ticks (bid down, ask up).

    Raises:
        ValueError: ``mid_ticks`` is not positive or ``sigma2_ticks`` is negative.
    """
    if not mid_ticks > 0 or not sigma2_ticks >= 0:
        raise ValueError(f"mid_ticks must be > 0 and sigma2_ticks >= 0, got {mid_ticks}, {sigma2_ticks}")
    qp = quote_params(quote)
    nan = math.nan
    pred_sigma2 = nan if pred_vol is None else (pred_vol * mid_ticks) ** 2
    out = decide_quotes(
        float(mid_ticks),
        int(inventory_lots),
        float(sigma2_ticks),
        horizon_tau(bar_index, qp),
        nan if pred_return is None else float(pred_return),
        pred_sigma2,
        nan if prob_up is None else float(prob_up),
        nan if pressure is None else float(pressure),
        math.inf if size_cap_lots is None else float(size_cap_lots),
        int(max_position_lots),
        int(status),
        NO_BID if best_bid_ticks is None else int(best_bid_ticks),
        NO_ASK if best_ask_ticks is None else int(best_ask_ticks),
        qp,
    )
    return Quotes(*out)
