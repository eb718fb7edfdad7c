"""The risk engine: ACTIVE / REDUCING / HALTED, with reasons, returned as data.

One compiled core, :func:`risk_core`, decides; the fill engine calls it every bar and the worker
calls it through :func:`check` with the clock passed in. Reasons are bit flags in the core and
names at the edge.

* Kill switch (latched HALT, cancels everything, optionally flattens): manual kill, loss from
  the start beyond ``max_loss``, drawdown from the equity peak beyond ``max_drawdown_pct``.
  Only a person clears it (start again from ``previous=None``).
* Pause (HALT, cancels everything, resumes by itself): volatility spike, stale market data,
  order reject rate. Resumes only after ``cooldown_ms`` and once the condition is back under its
  resume threshold (hysteresis).
* Reduce (quote only the side that reduces inventory): position or notional beyond its reduce
  threshold (hysteresis down to the resume threshold), model signal unavailable.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import NamedTuple

from numba import njit

from trading.config import RiskConfig

# The states as plain ints: numba folds module-level ints into the compiled code as constants.
ACTIVE = 0
REDUCING = 1
HALTED = 2


class RiskStatus(IntEnum):
    """Trading state; the integer values are what the fill engine stores per step."""

    ACTIVE = ACTIVE
    REDUCING = REDUCING
    HALTED = HALTED


R_POSITION = 1
R_NOTIONAL = 2
R_MAX_LOSS = 4
R_DRAWDOWN = 8
R_VOL_SPIKE = 16
R_STALE_DATA = 32
R_SIGNAL_UNAVAILABLE = 64
R_REJECT_RATE = 128
R_KILL_SWITCH = 256
LATCHED = R_MAX_LOSS | R_DRAWDOWN | R_KILL_SWITCH
PAUSES = R_VOL_SPIKE | R_STALE_DATA | R_REJECT_RATE
REDUCES = R_POSITION | R_NOTIONAL | R_SIGNAL_UNAVAILABLE

REASON_NAMES: dict[int, str] = {
    R_POSITION: "position_limit",
    R_NOTIONAL: "notional_limit",
    R_MAX_LOSS: "max_loss",
    R_DRAWDOWN: "drawdown",
    R_VOL_SPIKE: "volatility_spike",
    R_STALE_DATA: "stale_market_data",
    R_SIGNAL_UNAVAILABLE: "signal_unavailable",
    R_REJECT_RATE: "reject_rate",
    R_KILL_SWITCH: "kill_switch",
}


def reason_names(reasons: int) -> tuple[str, ...]:
    """Decode a reason bit set into names, in a fixed order."""
    return tuple(name for bit, name in REASON_NAMES.items() if reasons & bit)


@dataclass(frozen=True, slots=True)
class RiskObservation:
    """The numbers one risk decision was taken on (what :func:`explain` quotes back)."""

    inventory_lots: int
    notional: float  # |inventory| value at the mark, quote ccy
    pnl: float  # equity minus initial equity, quote ccy
    drawdown: float  # fraction of the equity peak
    var_ratio: float  # fast / slow EWMA variance of mid changes
    data_age_ns: int
    reject_rate: float

    @classmethod
    def of_book(
        cls,
        *,
        inventory_lots: int,
        mark: float,
        lot: float,
        equity: float,
        initial_equity: float,
        peak_equity: float,
        var_ratio: float,
        data_age_ns: int = 0,
        reject_rate: float = 0.0,
    ) -> RiskObservation:
        """The observation of a book from its state: ``mark`` in quote ccy, ``lot`` base ccy per lot."""
        return cls(
            inventory_lots=int(inventory_lots),
            notional=abs(inventory_lots * lot * mark),
            pnl=float(equity - initial_equity),
            drawdown=float((peak_equity - equity) / peak_equity),
            var_ratio=float(var_ratio),
            data_age_ns=int(data_age_ns),
            reject_rate=float(reject_rate),
        )


def explain(reasons: int, seen: RiskObservation, risk: RiskConfig) -> tuple[str, ...]:
    """Each reason as a sentence with its numbers, e.g. ``"drawdown 5.21% >= 5.00% of peak"``.

    Args:
        reasons: the decision's reason bits.
        seen: the observations the decision was taken on.
        risk: the limits (the thresholds quoted back).

    Returns:
        One sentence per reason, in the order of :data:`REASON_NAMES`.
    """
    reduce_lots = risk.reduce_at_fraction * risk.max_position_lots
    sentences = {
        R_POSITION: f"position {seen.inventory_lots:+d} lots, |q| >= {reduce_lots:g} "
        f"({risk.reduce_at_fraction:.0%} of max {risk.max_position_lots}): reducing only",
        R_NOTIONAL: f"exposure {seen.notional:,.2f} >= max_notional {risk.max_notional:,.2f}: reducing only",
        R_MAX_LOSS: f"loss {-seen.pnl:,.2f} >= max_loss {risk.max_loss:,.2f}: kill switch",
        R_DRAWDOWN: f"drawdown {seen.drawdown:.2%} >= {risk.max_drawdown_pct / 100:.2%} of peak: kill switch",
        R_VOL_SPIKE: f"volatility fast/slow {seen.var_ratio:.2f} >= {risk.vol_spike_ratio:g}: paused",
        R_STALE_DATA: f"market data {seen.data_age_ns / 1e9:.1f} s old > {risk.stale_after_ms / 1000:g} s: paused",
        R_SIGNAL_UNAVAILABLE: "model signal unavailable: reducing only",
        R_REJECT_RATE: f"reject rate {seen.reject_rate:.2f} >= {risk.max_reject_rate:.2f}: paused",
        R_KILL_SWITCH: "kill switch pressed: cancel all"
        + (", flatten" if risk.flatten_on_kill else "")
        + "; cleared only by a person",
    }
    return tuple(sentences[bit] for bit in REASON_NAMES if reasons & bit)


class RiskParams(NamedTuple):
    """The :class:`RiskConfig` flattened into plain numbers for the compiled core."""

    reduce_lots: float
    resume_lots: float
    max_notional: float
    resume_notional: float
    max_loss: float
    max_drawdown: float  # fraction of the peak
    spike_ratio: float
    resume_ratio: float
    stale_ns: int
    max_reject_rate: float
    cooldown_ns: int
    max_position: int  # lots: the hard limit the quote sizes respect (the worker's per-symbol rows)


def risk_params(cfg: RiskConfig) -> RiskParams:
    """Flatten a :class:`RiskConfig` for :func:`risk_core`."""
    hysteresis = cfg.resume_at_fraction / cfg.reduce_at_fraction
    return RiskParams(
        reduce_lots=cfg.reduce_at_fraction * cfg.max_position_lots,
        resume_lots=cfg.resume_at_fraction * cfg.max_position_lots,
        max_notional=cfg.max_notional,
        resume_notional=cfg.max_notional * hysteresis,
        max_loss=cfg.max_loss,
        max_drawdown=cfg.max_drawdown_pct / 100.0,
        spike_ratio=cfg.vol_spike_ratio,
        resume_ratio=cfg.vol_resume_ratio,
        stale_ns=cfg.stale_after_ms * 1_000_000,
        max_reject_rate=cfg.max_reject_rate,
        cooldown_ns=cfg.cooldown_ms * 1_000_000,
        max_position=cfg.max_position_lots,
    )


@njit(cache=True, error_model="numpy", inline="always")
def _above(value: float, enter: float, stay: float, was_on: bool) -> bool:
    """Hysteresis: on at ``value >= enter``; once on, stays on while ``value > stay``."""
    return value > stay if was_on else value >= enter


@njit(cache=True, error_model="numpy", inline="always")
def _soft_reasons(
    prev: int,
    inventory: int,
    notional: float,
    var_ratio: float,
    data_age_ns: int,
    signal_ok: bool,
    reject_rate: float,
    rp: RiskParams,
) -> int:
    reasons = 0
    if _above(abs(inventory), rp.reduce_lots, rp.resume_lots, prev & R_POSITION != 0):
        reasons |= R_POSITION
    if _above(notional, rp.max_notional, rp.resume_notional, prev & R_NOTIONAL != 0):
        reasons |= R_NOTIONAL
    if _above(var_ratio, rp.spike_ratio, rp.resume_ratio, prev & R_VOL_SPIKE != 0):
        reasons |= R_VOL_SPIKE
    if data_age_ns > rp.stale_ns:
        reasons |= R_STALE_DATA
    if not signal_ok:
        reasons |= R_SIGNAL_UNAVAILABLE
    if _above(reject_rate, rp.max_reject_rate, 0.5 * rp.max_reject_rate, prev & R_REJECT_RATE != 0):
        reasons |= R_REJECT_RATE
    return reasons


@njit(cache=True, error_model="numpy", inline="always")
def risk_core(
    prev_reasons: int,
    paused_until_ns: int,
    now_ns: int,
    inventory: int,
    notional: float,
    pnl: float,
    drawdown: float,
    var_ratio: float,
    data_age_ns: int,
    signal_ok: bool,
    reject_rate: float,
    kill: bool,
    rp: RiskParams,
) -> tuple[int, int, int]:
    """Decide the risk state at ``now_ns`` from the previous decision and current observations.

    Args:
        prev_reasons: reason bits of the previous decision (0 at start).
        paused_until_ns: end of the current pause cooldown, ns since epoch (0 if none).
        now_ns: the clock, ns since epoch.
        inventory: signed inventory, lots.
        notional: absolute inventory value at the mark, quote ccy.
        pnl: equity minus initial equity, quote ccy.
        drawdown: (peak equity - equity) / peak equity, fraction.
        var_ratio: fast / slow EWMA variance of mid changes (1 = calm).
        data_age_ns: now minus the time of the latest market data, ns.
        signal_ok: the model signal (if the strategy needs one) is available.
        reject_rate: EWMA fraction of rejected orders.
        kill: the manual kill switch is pressed.
        rp: thresholds.

    Returns:
        ``(status, reasons, paused_until_ns)``, status a :class:`RiskStatus` value.
    """
    reasons = prev_reasons & LATCHED
    if kill:
        reasons |= R_KILL_SWITCH
    if pnl <= -rp.max_loss:
        reasons |= R_MAX_LOSS
    if drawdown >= rp.max_drawdown:
        reasons |= R_DRAWDOWN
    soft = _soft_reasons(
        prev_reasons, inventory, notional, var_ratio, data_age_ns, signal_ok, reject_rate, rp
    )
    until = paused_until_ns
    if soft & PAUSES:
        if not prev_reasons & PAUSES:
            until = now_ns + rp.cooldown_ns
    elif now_ns < until:
        soft |= prev_reasons & PAUSES  # still cooling down: keep the pause and its reasons
    reasons |= soft
    if reasons & (LATCHED | PAUSES):
        return HALTED, reasons, until
    if reasons & REDUCES:
        return REDUCING, reasons, until
    return ACTIVE, reasons, until


@njit(cache=True, error_model="numpy", inline="always")
def allowed_sides(status: int, inventory: int) -> tuple[bool, bool]:
    """Which sides may be quoted: both when ACTIVE, the reducing one when REDUCING, none when HALTED."""
    if status == ACTIVE:
        return True, True
    if status == REDUCING:
        return inventory < 0, inventory > 0
    return False, False


@dataclass(frozen=True, slots=True)
class RiskSnapshot:
    """What the risk engine looks at. Money in quote ccy, inventory in lots, times in ns since epoch."""

    inventory_lots: int
    notional: float
    equity: float
    initial_equity: float
    peak_equity: float
    var_ratio: float
    last_data_ns: int
    signal_available: bool = True
    reject_rate: float = 0.0
    kill_switch: bool = False


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """A risk verdict: the state, why, until when a pause lasts, and what the worker must do."""

    status: RiskStatus
    reasons: tuple[str, ...]
    reason_bits: int
    details: tuple[str, ...]  # each reason with its numbers (:func:`explain`)
    paused_until_ns: int
    allow_bid: bool
    allow_ask: bool
    cancel_all: bool
    flatten: bool


def check(
    snapshot: RiskSnapshot, now_ns: int, *, risk: RiskConfig, previous: RiskDecision | None = None
) -> RiskDecision:
    """Evaluate the risk engine once (the worker's entry point; the fill engine runs the same core).

    Args:
        snapshot: current position, equity and market-health observations.
        now_ns: the clock, ns since epoch (passed in so tests and replays control time).
        risk: limits and thresholds.
        previous: the previous decision (hysteresis, cooldown, latched kill); None at start.

    Returns:
        The decision. ``cancel_all`` is set whenever HALTED; ``flatten`` on a latched kill when
        ``risk.flatten_on_kill``.

    Raises:
        ValueError: ``peak_equity`` is not positive.
    """
    if snapshot.peak_equity <= 0:
        raise ValueError(f"peak_equity must be > 0, got {snapshot.peak_equity}")
    prev_bits = 0 if previous is None else previous.reason_bits
    prev_until = 0 if previous is None else previous.paused_until_ns
    seen = RiskObservation(
        inventory_lots=snapshot.inventory_lots,
        notional=abs(snapshot.notional),
        pnl=snapshot.equity - snapshot.initial_equity,
        drawdown=(snapshot.peak_equity - snapshot.equity) / snapshot.peak_equity,
        var_ratio=snapshot.var_ratio,
        data_age_ns=now_ns - snapshot.last_data_ns,
        reject_rate=snapshot.reject_rate,
    )
    status, bits, until = risk_core(
        prev_bits,
        prev_until,
        now_ns,
        seen.inventory_lots,
        seen.notional,
        seen.pnl,
        seen.drawdown,
        seen.var_ratio,
        seen.data_age_ns,
        snapshot.signal_available,
        seen.reject_rate,
        snapshot.kill_switch,
        risk_params(risk),
    )
    allow_bid, allow_ask = allowed_sides(status, snapshot.inventory_lots)
    halted = status == RiskStatus.HALTED
    return RiskDecision(
        status=RiskStatus(status),
        reasons=reason_names(bits),
        reason_bits=int(bits),
        details=explain(int(bits), seen, risk),
        paused_until_ns=int(until),
        allow_bid=bool(allow_bid),
        allow_ask=bool(allow_ask),
        cancel_all=halted,
        flatten=halted and bool(bits & LATCHED) and risk.flatten_on_kill,
    )
