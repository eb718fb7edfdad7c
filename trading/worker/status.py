"""A run's state read from its journal alone (``mmops trade status``; the worker may be running)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from features.errors import ConfigError
from trading.config import BacktestConfig
from trading.worker.attribution import attribute
from trading.worker.journal import Journal


def journal_status(path: Path) -> dict[str, Any]:
    """Phase, kill switch, ticks, fills, open orders, PnL by version and the recent events.

    Raises:
        ConfigError: no journal at ``path``, or not one a worker wrote.
    """
    if not path.exists():
        raise ConfigError(f"{path}: no journal here; give the run's --journal")
    j = Journal(path)
    try:
        spec = j.run_spec()
        if spec is None:
            raise ConfigError(f"{path}: a journal with no run in it yet")
        try:
            bt = BacktestConfig.model_validate(spec["backtest"])
            books = {name: j.book(name) for name in spec["books"]}
        except (KeyError, TypeError, ValidationError) as exc:
            raise ConfigError(
                f"{path}: the run recorded in this journal is not readable here ({exc})"
            ) from exc
        return {
            "journal": str(path),
            "phase": j.control("phase") or "stopped",
            "kill": j.control("kill") is not None,
            "symbols": spec["symbols"],
            "ticks_done": max((b[0] for b in books.values() if b is not None), default=0),
            "fills": len(j.fills()),
            "open_orders": len(j.open_orders()),
            "by_version": [
                v.to_dict()
                for v in attribute(
                    j, spec["symbols"], tick=bt.tick_size, lot=bt.lot_size, markout_ticks=bt.markout_bars
                )
            ],
            "events": j.events()[-50:],
        }
    finally:
        j.close()
