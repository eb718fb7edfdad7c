"""Where a quoter's PnL comes from: spread capture, adverse selection, inventory and fees.

A book that starts flat and is marked at ``P_T`` at the end has PnL
``sum_j s_j q_j (P_T - p_j) - f_j`` over its fills ``j`` (side ``s`` = +1 buy / -1 sell,
quantity ``q`` in base ccy, price ``p``, fee ``f`` in quote ccy, negative = rebate). With ``m_j``
the mid when the order was decided and ``P_{j+h}`` the mark ``h`` steps (bars) after the fill's
step, each fill's term splits exactly into::

    s q (m - p)             spread capture: the quote's edge against the mid (> 0 for a maker)
  + s q (P_{j+H} - m)       adverse selection at H: the mid's move over the first H steps
                            (< 0 when the fill was picked off by informed flow)
  + s q (P_T - P_{j+H})     inventory: the mark-to-market of the position once it is older
                            than H steps (held through later price moves)
  - f                       fees

so ``spread + adverse[H] + inventory + fees == net`` for every horizon ``H`` (here ``fees`` is
the contribution, ``-sum f``). The identity is stated at the shortest horizon; the longer ones are
points on the markout curve (in money, the same fills), each of which would move PnL between
"adverse" and "inventory" without changing the total. A horizon past the end of the marks is
capped at the last mark (the move to the end of the window), so every fill has every horizon.

The backtest (:func:`trading.metrics.compute_metrics`) and the worker's per-version attribution
(:mod:`trading.worker.attribution`) both call :func:`decompose_pnl`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class PnlDecomposition:
    """The parts of one book's net PnL, all in quote ccy (USDT for BTCUSDT), as contributions.

    ``spread + adverse[str(horizon)] + inventory + fees + residual == net``. ``fees`` is minus the
    fees paid (positive only under rebates); ``adverse`` has one entry per markout horizon (steps,
    bars on bar data); ``inventory`` pairs with ``adverse[str(horizon)]``; ``residual`` is the
    caller's net PnL (from the equity curve) minus the sum of the parts: float rounding when the
    fills and the marks are those the equity was computed from.
    """

    net: float
    spread: float
    inventory: float
    fees: float
    residual: float
    horizon: int
    adverse: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """``pnl_net``, ``pnl_spread``, ``pnl_adverse_<h>`` per horizon, ``pnl_inventory``,
        ``pnl_fees``, ``pnl_residual`` (quote ccy), each key with ``prefix`` in front."""
        out = {"pnl_net": self.net, "pnl_spread": self.spread}
        out.update({f"pnl_adverse_{h}": v for h, v in self.adverse.items()})
        out.update({"pnl_inventory": self.inventory, "pnl_fees": self.fees, "pnl_residual": self.residual})
        return {f"{prefix}{k}": v for k, v in out.items()}

    def relabel(self, labels: dict[str, str]) -> PnlDecomposition:
        """The same parts with the adverse horizons renamed (a tick run's steps back to bars)."""
        return PnlDecomposition(
            net=self.net,
            spread=self.spread,
            inventory=self.inventory,
            fees=self.fees,
            residual=self.residual,
            horizon=int(labels.get(str(self.horizon), str(self.horizon))),
            adverse={labels.get(h, h): v for h, v in self.adverse.items()},
        )


def decompose_pnl(
    *,
    step: npt.ArrayLike,
    side: npt.ArrayLike,
    price_ticks: npt.ArrayLike,
    lots: npt.ArrayLike,
    fee: npt.ArrayLike,
    ref_mid_ticks: npt.ArrayLike,
    marks_ticks: npt.ArrayLike,
    tick: float,
    lot: float,
    horizons: Sequence[int],
    net: float | None = None,
) -> PnlDecomposition:
    """Split a book's PnL over its fills into spread, adverse selection, inventory and fees.

    Args:
        step: per fill, the index into ``marks_ticks`` of the step (bar) it filled in.
        side: per fill, +1 buy / -1 sell.
        price_ticks: per fill, the fill price in ticks.
        lots: per fill, the size in lots.
        fee: per fill, the fee in quote ccy (negative = rebate).
        ref_mid_ticks: per fill, the mid (ticks) when the order was decided.
        marks_ticks: the mark (close or mid, ticks) at the end of each step; the last one is the
            mark the net PnL is taken at.
        tick, lot: the price (quote ccy per tick) and size (base ccy per lot) units.
        horizons: markout horizons in steps, positive; the identity uses the smallest.
        net: the book's net PnL from its equity, quote ccy (None: the fills' own
            ``sum s q (P_T - p) - f``, leaving a residual of rounding only).

    Returns:
        The parts; ``adverse`` keyed by ``str(h)`` in the order of ``horizons``.

    Raises:
        ValueError: no horizon or a non-positive one, no marks, mismatched fill arrays, or a
            fill step outside the marks.
    """
    if not horizons or min(horizons) <= 0:
        raise ValueError(f"decompose_pnl: horizons must be positive steps, got {tuple(horizons)}")
    marks = np.asarray(marks_ticks, dtype=np.float64)
    if marks.ndim != 1 or len(marks) == 0:
        raise ValueError("decompose_pnl: need at least one mark")
    at = np.asarray(step, dtype=np.int64)
    cols = [np.asarray(a, dtype=np.float64) for a in (side, price_ticks, lots, fee, ref_mid_ticks)]
    if any(c.shape != at.shape for c in cols):
        raise ValueError(
            f"decompose_pnl: fill arrays differ in length ({[c.shape for c in cols]} vs {at.shape})"
        )
    s, price, size, fees, ref = cols
    if len(at) and (at.min() < 0 or at.max() >= len(marks)):
        raise ValueError(
            f"decompose_pnl: fill steps must lie in [0, {len(marks)}), got {at.min()}..{at.max()}"
        )
    qty = s * size * lot * tick  # signed base quantity times quote ccy per tick
    last = len(marks) - 1
    adverse = {str(h): float(np.sum(qty * (marks[np.minimum(at + h, last)] - ref))) for h in horizons}
    first = min(horizons)
    held = float(np.sum(qty * (marks[last] - marks[np.minimum(at + first, last)])))
    spread = float(np.sum(qty * (ref - price)))
    paid = 0.0 - float(np.sum(fees))  # 0.0 - x: no fee reads 0.0, not -0.0
    own_net = float(np.sum(qty * (marks[last] - price))) + paid
    total = net if net is not None else own_net
    parts = spread + adverse[str(first)] + held + paid
    return PnlDecomposition(
        net=float(total),
        spread=spread,
        inventory=held,
        fees=paid,
        residual=float(total - parts),
        horizon=first,
        adverse=adverse,
    )


def combine(parts: Sequence[PnlDecomposition]) -> PnlDecomposition:
    """The sum of several books' (or symbols') decompositions over the same horizons.

    Raises:
        ValueError: nothing to combine, or the parts' horizons differ.
    """
    if not parts:
        raise ValueError("combine: no decomposition to add up")
    keys = [tuple(p.adverse) for p in parts]
    if len(set(keys)) > 1 or len({p.horizon for p in parts}) > 1:
        raise ValueError(f"combine: decompositions over different horizons {sorted(set(keys))}")
    return PnlDecomposition(
        net=sum(p.net for p in parts),
        spread=sum(p.spread for p in parts),
        inventory=sum(p.inventory for p in parts),
        fees=sum(p.fees for p in parts),
        residual=sum(p.residual for p in parts),
        horizon=parts[0].horizon,
        adverse={h: sum(p.adverse[h] for p in parts) for h in parts[0].adverse},
    )
