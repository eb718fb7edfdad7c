"""Walk-forward splits: purged, embargoed folds over the tuning range, then fixed hold-outs.

All positions index the rows of one dataset in time order (``slice`` objects, end exclusive).
A label at row ``i`` looks ``h`` rows ahead, so a training row may only be used when
``i + h < test_start``: every training window ends ``gap = h + embargo`` rows before the window
it is scored on (the purge), as in qlib's ``RollingGen`` ``trunc_days`` and Lopez de Prado's
purged K-fold. The hold-outs come after the tuning range with the same gap.

Layout over time::

    |---- tuning range (folds) ----|gap|--- backtest ---|--- forward ---|
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from training.config import SplitProfile


@dataclass(frozen=True, slots=True)
class Fold:
    """One walk-forward step: fit on ``train``, score on ``test`` (row positions)."""

    number: int
    train: slice
    test: slice


@dataclass(frozen=True, slots=True)
class SplitPlan:
    """Where everything is, for one dataset. ``gap`` = label horizon + embargo (rows)."""

    tuning: slice
    folds: tuple[Fold, ...]
    backtest: slice
    forward: slice
    gap: int

    def final_train(self, max_train_bars: int | None) -> slice:
        """Training rows of the refit after tuning: the end of the tuning range."""
        start = self.tuning.start or 0
        if max_train_bars is not None:
            start = max(start, self.tuning.stop - max_train_bars)
        return slice(start, self.tuning.stop)

    def to_dict(self, index: pd.DatetimeIndex) -> dict[str, object]:
        def span(s: slice) -> dict[str, object]:
            return {
                "rows": s.stop - s.start,
                "start": index[s.start].isoformat(),
                "end": index[s.stop - 1].isoformat(),
            }

        return {
            "gap_bars": self.gap,
            "tuning": span(self.tuning),
            "folds": [{"fold": f.number, "train": span(f.train), "test": span(f.test)} for f in self.folds],
            "backtest": span(self.backtest),
            "forward": span(self.forward),
        }


def walk_forward(
    n: int,
    *,
    n_folds: int,
    gap: int,
    test_fraction: float = 0.5,
    scheme: str = "expanding",
    rolling_train_bars: int | None = None,
    max_train_bars: int | None = None,
    start: int = 0,
) -> Iterator[Fold]:
    """Folds over rows ``[start, start + n)``: the last ``test_fraction`` is cut into ``n_folds``
    consecutive test windows; each trains on rows ending ``gap`` before its test window.

    Args:
        n: rows in the tuning range.
        n_folds: number of test windows.
        gap: rows between the end of training and the start of testing (label horizon + embargo).
        test_fraction: share of the range covered by test windows.
        scheme: ``expanding`` (train from the first row) or ``rolling`` (fixed length).
        rolling_train_bars: training length for ``rolling``.
        max_train_bars: cap on training rows (the most recent are kept), either scheme.
        start: position of the first row of the range.

    Raises:
        ValueError: the range is too short for the folds, the gap and a minimal training window.
    """
    if scheme not in ("expanding", "rolling"):
        raise ValueError(f"scheme must be 'expanding' or 'rolling', not {scheme!r}")
    if scheme == "rolling" and not rolling_train_bars:
        raise ValueError("the rolling scheme needs rolling_train_bars")
    test_len = int(n * test_fraction) // n_folds
    first_test = start + n - test_len * n_folds
    if test_len < 1 or first_test - gap - start < 10:
        raise ValueError(
            f"walk-forward: {n} rows cannot hold {n_folds} test folds ({test_fraction:.0%} of the range) "
            f"after a gap of {gap} rows and at least 10 training rows"
        )
    for k in range(n_folds):
        test_start = first_test + k * test_len
        train_stop = test_start - gap
        train_start = start if scheme == "expanding" else max(start, train_stop - (rolling_train_bars or 0))
        if max_train_bars is not None:
            train_start = max(train_start, train_stop - max_train_bars)
        yield Fold(k, slice(train_start, train_stop), slice(test_start, test_start + test_len))


def plan_splits(index: pd.DatetimeIndex, profile: SplitProfile, *, label_horizon: int) -> SplitPlan:
    """Hold-outs from dates (or from the end of the data), then folds over what precedes them.

    Args:
        index: the dataset's bar open times (UTC, increasing), one per usable row.
        profile: the split profile for this interval.
        label_horizon: bars ahead the target looks.

    Raises:
        ValueError: a window is empty or the data does not reach it (the message names which).
    """
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise ValueError("plan_splits: timestamps must be strictly increasing")
    gap = label_horizon + profile.embargo_bars
    if profile.backtest_start is not None:
        backtest = _dated(index, profile.backtest_start, profile.backtest_end, "backtest")
        forward = _dated(index, profile.forward_start, profile.forward_end, "forward")
    else:
        assert profile.backtest_days is not None  # validated with the profile
        assert profile.forward_days is not None
        end = index[-1]
        fwd_from = end - pd.Timedelta(days=profile.forward_days)
        bt_from = fwd_from - pd.Timedelta(days=profile.backtest_days)
        forward = slice(int(index.searchsorted(fwd_from, side="right")), len(index))
        backtest = slice(int(index.searchsorted(bt_from, side="right")), forward.start)
    if backtest.stop > forward.start:
        raise ValueError("split: the backtest window must end before the forward window starts")
    for name, window in (("backtest", backtest), ("forward", forward)):
        if window.stop - window.start < 2:
            raise ValueError(
                f"split: the {name} window holds {window.stop - window.start} rows of data "
                f"({index[0].date()} .. {index[-1].date()})"
            )
    tuning_stop = backtest.start - gap
    if profile.train_end is not None:
        cutoff = pd.Timestamp(profile.train_end, tz="UTC") + pd.Timedelta(days=1)
        tuning_stop = min(tuning_stop, int(index.searchsorted(cutoff, side="left")))
    tuning = slice(0, tuning_stop)
    folds = tuple(
        walk_forward(
            tuning_stop,
            n_folds=profile.n_folds,
            gap=gap,
            test_fraction=profile.test_fraction,
            scheme=profile.scheme,
            rolling_train_bars=profile.rolling_train_bars,
            max_train_bars=profile.max_train_bars,
        )
    )
    return SplitPlan(tuning=tuning, folds=folds, backtest=backtest, forward=forward, gap=gap)


def validation_tail(train: slice, fraction: float, *, gap: int) -> tuple[slice, slice | None]:
    """Split a training window into fit rows and an early-stopping tail, purged by ``gap``."""
    n = train.stop - train.start
    n_val = int(n * fraction)
    if n_val < 10 or n - n_val - gap < 10:
        return train, None
    return slice(train.start, train.stop - n_val - gap), slice(train.stop - n_val, train.stop)


def _dated(index: pd.DatetimeIndex, first: object, last: object, name: str) -> slice:
    lo = pd.Timestamp(first, tz="UTC")  # type: ignore[arg-type]
    hi = pd.Timestamp(last, tz="UTC") + pd.Timedelta(days=1)  # type: ignore[arg-type]
    window = slice(int(index.searchsorted(lo, side="left")), int(index.searchsorted(hi, side="left")))
    if window.stop <= window.start:
        raise ValueError(
            f"split: no data in the {name} window {first}..{last} (data covers {index[0].date()} .. {index[-1].date()})"
        )
    return window
