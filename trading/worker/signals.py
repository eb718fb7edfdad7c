"""The worker's signal intake: one request for every ready symbol within the budget, and
per symbol the value its quotes use, or model-free quotes with the reason (and an alert).

:class:`SignalIntake` is a part of :class:`trading.worker.loop.Worker`, split out to read on its own.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import TYPE_CHECKING

import numpy as np

from features.errors import MmopsError
from trading.worker import strategy as st
from trading.worker.journal import Journal
from trading.worker.online import OnlineFeatures
from trading.worker.orders import Book
from trading.worker.types import SignalBatch, SignalSource

if TYPE_CHECKING:
    from trading.worker.loop import WorkerSettings
    from trading.worker.paper import Replay

logger = logging.getLogger(__name__)

MODEL_FREE = "model-free"


class SignalIntake:
    """Ask the source, check the answers, tag quotes with the version behind them."""

    journal: Journal
    symbols: tuple[str, ...]
    s: WorkerSettings
    source: SignalSource | None
    features: OnlineFeatures | None
    replay: Replay
    kind: str

    async def _signals(
        self, bars: st.TickBars, sent: asyncio.Event | None = None
    ) -> tuple[SignalBatch | None, dict[int, str]]:
        """One request for every symbol with a bar and a complete window, within the budget.

        ``sent`` is set once the request has left (the source says so), or at the latest when
        this returns: the worker does the venue's work of the tick in between.
        """
        try:
            return await self._ask(bars, sent)
        finally:
            if sent is not None:
                sent.set()

    async def _ask(
        self, bars: st.TickBars, sent: asyncio.Event | None
    ) -> tuple[SignalBatch | None, dict[int, str]]:
        if self.source is None or self.features is None:
            return None, {}
        ready = self.features.ready() & bars.has_bar
        why = {
            int(s): "warming up: the feature window is not complete"
            for s in np.flatnonzero(bars.has_bar & ~ready)
        }
        rows = np.flatnonzero(ready)
        if len(rows) == 0:
            return None, why
        budget = self.s.trade.signal_budget_ms / 1000
        try:
            batch = await asyncio.wait_for(
                self.source.signals(
                    [self.symbols[s] for s in rows],
                    self.features.windows(rows).astype(np.float32),
                    seq=self.features.seen[rows] - 1,
                    sent=sent,
                ),
                timeout=budget,
            )
        except TimeoutError:  # the budget, or the source's own timeout (serving.client.ServiceTimeout)
            return None, why | {int(s): f"signal late: no answer within {budget * 1000:.0f} ms" for s in rows}
        except (MmopsError, OSError, ValueError) as exc:  # the source failed: model-free, and say why
            text = f"signal service unavailable: {type(exc).__name__}: {exc}"[:300]
            return None, why | {int(s): text for s in rows}
        n = len(rows)
        sizes = {len(batch.values), len(batch.versions), len(batch.aliases), len(batch.kinds or [None] * n)}
        if batch.shadow_values is not None:
            sizes.add(len(batch.shadow_values))
        if sizes != {n}:
            text = f"malformed signal answer: {sorted(sizes)} entries for {n} symbols"
            return None, why | {int(s): text for s in rows}
        full = np.full(len(self.symbols), np.nan)
        full[rows] = batch.values
        versions = [""] * len(self.symbols)
        aliases = [""] * len(self.symbols)
        kinds: list[str] = [batch.kind] * len(self.symbols)
        for i, s in enumerate(rows):
            versions[s] = batch.versions[i]
            aliases[s] = batch.aliases[i]
            if batch.kinds is not None:
                kinds[s] = batch.kinds[i]
        shadow = None
        if batch.shadow_values is not None:
            shadow = np.full(len(self.symbols), np.nan)
            shadow[rows] = batch.shadow_values
        return (
            SignalBatch(
                values=full,
                versions=versions,
                aliases=aliases,
                kind=batch.kind,
                shadow_values=shadow,
                shadow_version=batch.shadow_version,
                shadow_kind=batch.shadow_kind,
                kinds=kinds,
            ),
            why,
        )

    def _kind(self, book: Book, s: int, batch: SignalBatch | None) -> str:
        """What symbol ``s``'s value is: each answer says (a canary may be another task)."""
        if batch is None:
            return self.kind
        if book.name == "shadow":
            return batch.shadow_kind or batch.kind
        return batch.kinds[s] if batch.kinds is not None else batch.kind

    def _valid(self, value: float, kind: str) -> bool:
        if not math.isfinite(value):
            return False
        return 0.0 <= value <= 1.0 if kind == "prob_up" else abs(value) < 1.0

    def _tick_signals(
        self, book: Book, bars: st.TickBars, batch: SignalBatch | None, why_none: dict[int, str], j: int
    ) -> st.TickSignals:
        n = len(self.symbols)
        pred = np.full(n, np.nan)
        prob = np.full(n, np.nan)
        need = np.zeros(n, dtype=bool)
        if self.source is None:
            return st.TickSignals(pred, np.full(n, np.nan), prob, need)
        need[:] = self.s.trade.on_missing_signal == "reduce"
        values = None
        if batch is not None:
            values = batch.values if book.name == "live" else batch.shadow_values
        used: list[tuple[int, int, str, str, float, str]] = []
        ts = int(self.replay.timeline[j])
        for s in np.flatnonzero(bars.has_bar):
            s = int(s)
            kind = self._kind(book, s, batch)
            reason = why_none.get(s)
            if reason is None and values is None:
                reason = "no shadow signal: the service is not in shadow mode"
            if reason is None and values is not None and not self._valid(float(values[s]), kind):
                reason = f"invalid signal {float(values[s])!r} for {kind}"
            if reason is None and values is not None:
                (prob if kind == "prob_up" else pred)[s] = values[s]
                assert batch is not None  # values come from it
                version = batch.versions[s] if book.name == "live" else batch.shadow_version or ""
                used.append((j, ts, book.name, self.symbols[s], float(values[s]), version))
            self._note_fallback(book, s, reason, j)
        self.journal.add_signals(used)
        return st.TickSignals(pred, np.full(n, np.nan), prob, need)

    def _note_fallback(self, book: Book, s: int, reason: str | None, j: int) -> None:
        before = book.fallback.get(s)
        sym = self.symbols[s]
        ts = int(self.replay.timeline[j])
        if reason is not None and before is None:
            book.fallback[s] = reason
            self.journal.add_event(j, ts, sym, "alert", f"{book.name}: model-free quotes: {reason}")
            logger.warning("%s %s: model-free quotes: %s", book.name, sym, reason)
        elif reason is None and before is not None:
            del book.fallback[s]
            self.journal.add_event(
                j, ts, sym, "recovered", f"{book.name}: model quotes again (was: {before})"
            )
            logger.info("%s %s: model quotes again", book.name, sym)
        elif reason is not None:
            book.fallback[s] = reason

    def _tag(self, book: Book, s: int, batch: SignalBatch | None) -> tuple[str, str]:
        """The model version (and alias) whose signal priced this symbol's quotes."""
        if batch is None or s in book.fallback:
            return MODEL_FREE, MODEL_FREE
        if book.name == "shadow":
            return batch.shadow_version or MODEL_FREE, "challenger"
        return batch.versions[s] or MODEL_FREE, batch.aliases[s] or MODEL_FREE
