"""The journal's controls: the kill switch and its resume, and per-symbol stop/start requests.

A part of :class:`trading.worker.journal.Journal` (same connection, same transactions), split
out so each reads on its own. Another process (the control API, ``mmops trade kill``) writes
them; the worker takes them inside its tick's transaction, so none is missed.
"""

from __future__ import annotations

import json
import sqlite3
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class SymbolRequest:
    """An operator's stop or start of one symbol: asked at ``at_ns``, taken at ``tick`` (None: not yet).

    ``doc`` holds the start's overrides (``max_position_lots``, ``min_half_spread_bps``) and the reason.
    """

    id: int
    at_ns: int
    symbol: str
    action: str  # "stop" | "start"
    by: str
    doc: dict[str, Any]
    tick: int | None


class JournalControls:
    """The control rows of the journal (see the module docstring)."""

    _db: sqlite3.Connection

    def transaction(self) -> AbstractContextManager[None]:
        raise NotImplementedError  # the journal's

    def add_event(self, tick: int, ts_ns: int, symbol: str, kind: str, message: str) -> None:
        raise NotImplementedError  # the journal's

    def take_controls(self) -> tuple[bool, bool]:
        """This tick's ``(kill, resume)``; call inside the tick's transaction.

        A resume clears a kill pressed before it (both rows go: the kill is handled); a kill
        pressed after the last resume wins (the resume row goes, the kill stays). Controls
        carry ``at`` (ns) as written by :meth:`press`.
        """
        kill, resume = self.control_doc("kill"), self.control_doc("resume")
        if resume is None:
            return kill is not None, False
        if kill is not None and kill.get("at", 0) > resume.get("at", 0):
            self._db.execute("delete from control where key = 'resume'")
            return True, False
        self._db.execute("delete from control where key in ('kill', 'resume')")
        return False, True

    def press(self, key: str, *, by: str, reason: str) -> None:
        """Write a ``kill`` or ``resume`` control, stamped with the time it was pressed, and an
        event saying who pressed it and why (at the tick the journal is at)."""
        at = time.time_ns()
        with self.transaction():
            self.set_control(key, json.dumps({"by": by, "reason": reason, "at": at}))
            self.add_event(self.ticks_done(), at, "", "control", f"{key} pressed by {by}: {reason}")

    def ticks_done(self) -> int:
        """The tick the run's books are at (0 before the first)."""
        row = self._db.execute("select coalesce(max(tick), 0) from books").fetchone()
        return int(row[0])

    # ---- per-symbol requests --------------------------------------------------------------------------
    def request(self, symbol: str, action: str, *, by: str, doc: dict[str, Any]) -> SymbolRequest:
        """Ask the worker to ``stop`` or ``start`` a symbol (taken at its next tick)."""
        at = time.time_ns()
        with self.transaction():
            cur = self._db.execute(
                "insert into requests(at_ns, symbol, action, by, doc) values (?,?,?,?,?)",
                (at, symbol, action, by, json.dumps(doc)),
            )
        return SymbolRequest(int(cur.lastrowid or 0), at, symbol, action, by, doc, None)

    def take_requests(self, tick: int) -> list[SymbolRequest]:
        """The requests not taken yet, oldest first, marked taken at ``tick``; call inside the
        tick's transaction (a crash before its commit leaves them pending)."""
        pending = self.requests(pending=True)
        self._db.execute("update requests set tick = ? where tick is null", (tick,))
        return pending

    def requests(self, *, pending: bool | None = None, symbol: str | None = None) -> list[SymbolRequest]:
        """Requests, oldest first: all, only pending (True) or only taken (False), of one symbol or all."""
        q, args = "select * from requests where 1", []
        if pending is not None:
            q += " and tick is null" if pending else " and tick is not null"
        if symbol is not None:
            q, args = q + " and symbol = ?", [symbol]
        rows = self._db.execute(q + " order by id", args)
        return [SymbolRequest(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6]) for r in rows]

    def control_doc(self, key: str) -> dict[str, Any] | None:
        """A control row as the document :meth:`press` wrote ({} when unreadable; None when absent)."""
        text = self.control(key)
        if text is None:
            return None
        try:
            doc = json.loads(text)
        except ValueError:
            doc = None
        return doc if isinstance(doc, dict) else {}

    def control(self, key: str) -> str | None:
        row = self._db.execute("select value from control where key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_control(self, key: str, value: str | None) -> None:
        with self.transaction():
            if value is None:
                self._db.execute("delete from control where key = ?", (key,))
            else:
                self._db.execute("insert or replace into control values (?, ?)", (key, value))
