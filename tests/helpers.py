"""Small helpers shared by the tests (importable thanks to pytest's pythonpath)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

FLOAT32_EPS = float(np.finfo(np.float32).eps)  # 1.19e-7: one rounding of a float32 result
FLOAT64_EPS = float(np.finfo(np.float64).eps)  # 2.22e-16


def summation_order_atol(*, depth: int, scale: float, dtype: type = np.float32) -> float:
    """Absolute tolerance between two evaluations of one computation that differ only in the
    order of their floating-point sums (another batch size, thread count or BLAS blocking).

    Each of the ``depth`` accumulated terms on the way to the output adds at most one rounding of
    relative size eps, so the two results differ by at most ``depth x eps x scale``, where
    ``scale`` is the magnitude of the quantities summed (the output's scale: a probability, or the
    target's standard deviation for a regressor). A worst case: observed differences sit near
    1 eps (measured: LSTM 1.1 eps32, SGD 0.5 eps64, RF exactly 0), so a real change of the
    computation still fails it.
    """
    return depth * float(np.finfo(dtype).eps) * scale


def store_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its content, to prove a store unchanged."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
