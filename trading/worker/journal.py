"""The worker's journal: SQLite in WAL mode with ``synchronous=FULL``, the record of truth.

Rules (what Hummingbot's lost-order reports and NautilusTrader's reconciliation teach):

* an order is written with its deterministic client order id *before* it is sent;
* a fill is unique by ``(venue, trade_id)``: seeing it twice changes nothing;
* a transport error leaves an order ``in_flight``, never "failed": a status query by client id
  resolves it;
* one transaction per tick holds that tick's fills, the books' state after them, the decisions
  and their orders, so a crash leaves either all of a tick or none of it;
* the kill switch is a row here: HALTED survives a restart until a person resumes;
* so is every per-symbol stop/start an operator asks for (``requests``): the worker takes the
  pending ones inside its tick's transaction, so none is missed and the asker can be another
  process; the last one taken for a symbol is that symbol's state, across restarts;
* the live book's quotes after each tick (``quotes``), beside the marks, for the dashboard.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from features.errors import ConfigError
from trading.worker.journal_controls import JournalControls, SymbolRequest
from trading.worker.types import Fill

__all__ = ["Journal", "JournalOrder", "SymbolRequest"]

SCHEMA = """
create table if not exists meta(key text primary key, value text not null);
create table if not exists orders(
  client_id text primary key, book text not null, symbol text not null, side integer not null,
  kind text not null, price_ticks integer not null, lots integer not null, tick integer not null,
  version text not null, alias text not null, ref_mid_ticks real not null,
  status text not null, filled_lots integer not null default 0,
  cancel_requested integer not null default 0, note text not null default '');
create index if not exists orders_open on orders(status);
create table if not exists fills(
  venue text not null, trade_id text not null, seq integer not null, book text not null,
  client_id text not null, symbol text not null, side integer not null, price_ticks integer not null,
  lots integer not null, fee real not null, maker integer not null, ts_ns integer not null,
  version text not null, ref_mid_ticks real not null, primary key (venue, trade_id));
create table if not exists books(
  book text primary key, tick integer not null, last_seq integer not null, fs blob not null, ist blob not null,
  extra text not null);
create table if not exists marks(tick integer primary key, ts_ns integer not null, closes blob not null);
create table if not exists events(
  id integer primary key, tick integer not null, ts_ns integer not null, symbol text not null,
  kind text not null, message text not null);
create table if not exists control(key text primary key, value text not null);
create table if not exists requests(
  id integer primary key, at_ns integer not null, symbol text not null, action text not null,
  by text not null, doc text not null, tick integer);
create table if not exists quotes(tick integer primary key, ts_ns integer not null, quotes blob not null);
create table if not exists signals(
  tick integer not null, ts_ns integer not null, book text not null, symbol text not null,
  value real not null, version text not null, primary key (tick, book, symbol));
"""

NON_TERMINAL = ("intent", "in_flight", "pending", "open")
SCHEMA_VERSION = "mmops-journal-1"


class JournalOrder(NamedTuple):
    """One journaled order (what the worker decided and what it knows of it), in the journal's
    column order. A named tuple rather than a frozen dataclass: the worker makes one per order
    it sends, a few hundred a tick, and a frozen dataclass of 14 fields cost about 9 us each to
    build (a tuple about 1), a millisecond and a half a tick at 100 symbols."""

    client_id: str
    book: str
    symbol: str
    side: int
    kind: str
    price_ticks: int
    lots: int
    tick: int
    version: str
    alias: str
    ref_mid_ticks: float
    status: str
    filled_lots: int
    cancel_requested: bool


@dataclass(frozen=True, slots=True)
class _FillRef:
    """An order's columns a fill's booking reads."""

    version: str
    ref_mid_ticks: float
    lots: int
    filled_lots: int
    status: str


class Journal(JournalControls):
    """The journal file (see the module docstring).

    Args:
        path: the SQLite file (created with its folder when missing).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(str(path), isolation_level=None, timeout=30)
            tables = {r[0] for r in self._db.execute("select name from sqlite_master where type = 'table'")}
            marked = "meta" in tables and self._db.execute(
                "select value from meta where key = 'schema'"
            ).fetchone() == (SCHEMA_VERSION,)
            if tables and not marked:  # another program's database: touch nothing
                self._db.close()
                raise ConfigError(
                    f"{path}: an SQLite file that is not an mmops worker journal; give another --journal"
                )
            # what the module docstring promises; SQLite's default is a rollback journal, whose
            # commit syncs the journal and the database file (several fsyncs; WAL's is one)
            self._db.execute("pragma journal_mode=wal")
            self._db.execute("pragma synchronous=full")
            self._db.executescript(SCHEMA)
            self._db.execute("insert or ignore into meta values ('schema', ?)", (SCHEMA_VERSION,))
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: not a journal this worker can open ({exc})") from exc
        self._in_tx = False

    @classmethod
    def reader(cls, path: Path) -> Journal:
        """A read-only connection to an existing journal (another process may be writing it: WAL).

        Raises:
            ConfigError: no journal at ``path``, or not one this worker wrote.
        """
        if not path.exists():
            raise ConfigError(f"{path}: no journal here; give the run's --journal")
        self = cls.__new__(cls)
        self.path, self._in_tx = path, False
        try:
            # a web framework may open it in one thread and close it in another (one user at a time)
            uri = f"{path.resolve().as_uri()}?mode=ro"
            self._db = sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)
            mark = self._db.execute("select value from meta where key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{path}: not a journal this worker can open ({exc})") from exc
        if mark != (SCHEMA_VERSION,):
            self._db.close()
            raise ConfigError(f"{path}: an SQLite file that is not an mmops worker journal")
        return self

    def close(self) -> None:
        self._db.close()

    def defer_checkpoints(self) -> WalCheckpoints:
        """Checkpoint only when the returned :class:`WalCheckpoints` says (the worker: between
        ticks, not inside a tick's commit)."""
        return WalCheckpoints(self._db)

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """One atomic, durable write (nested calls join the outer one)."""
        if self._in_tx:
            yield
            return
        self._db.execute("begin immediate")
        self._in_tx = True
        try:
            yield
        except BaseException:
            self._db.execute("rollback")
            raise
        else:
            self._db.execute("commit")
        finally:
            self._in_tx = False

    # ---- run identity ----------------------------------------------------------------------------
    def run_spec(self) -> dict[str, Any] | None:
        """The spec of the run this journal belongs to (None: no run has started in it)."""
        row = self._db.execute("select value from meta where key = 'run'").fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def run_tag(self) -> str:
        """A short id of this journal's run, made once. A live run's client ids carry it, so a new
        journal on the same account never reuses an earlier run's ids (an exchange would answer
        "duplicate order" with that run's order)."""
        row = self._db.execute("select value from meta where key = 'tag'").fetchone()
        if row is not None:
            return str(row[0])
        tag = secrets.token_hex(3)
        with self.transaction():
            self._db.execute("insert into meta values ('tag', ?)", (tag,))
        return tag

    def check_run(self, spec: dict[str, Any]) -> bool:
        """Record the run's spec, or check a resumed run has the same. True when resuming.

        Raises:
            ConfigError: the journal belongs to a different run (symbols, data, settings).
        """
        row = self._db.execute("select value from meta where key = 'run'").fetchone()
        text = json.dumps(spec, sort_keys=True)
        if row is None:
            with self.transaction():
                self._db.execute("insert into meta values ('run', ?)", (text,))
            return False
        old = json.loads(row[0])
        diff = sorted(k for k in set(old) | set(spec) if old.get(k) != spec.get(k))
        if diff:
            detail = "; ".join(f"{k}: journal {old.get(k)!r}, now {spec.get(k)!r}" for k in diff[:4])
            raise ConfigError(
                f"{self.path} is the journal of another run ({detail}); give a new --journal or the same settings"
            )
        return True

    # ---- orders ----------------------------------------------------------------------------------
    def add_order(self, o: JournalOrder) -> None:
        self.add_orders([o])

    def add_orders(self, orders: Sequence[JournalOrder]) -> None:
        """:meth:`add_order` for many, in order, as one statement (a tick's intents)."""
        rows = [tuple(o) for o in orders]  # sqlite3 binds a plain tuple faster than a named one
        self._db.executemany("insert or ignore into orders values (?,?,?,?,?,?,?,?,?,?,?,?,?,?,'')", rows)

    def set_status(self, client_id: str, status: str, note: str = "") -> None:
        self._db.execute(
            "update orders set status = ?, note = ? where client_id = ?", (status, note, client_id)
        )

    def set_statuses(self, updates: Sequence[tuple[str, str, str]]) -> None:
        """:meth:`set_status` for many ``(client_id, status, note)``, in order, as one statement."""
        self._db.executemany(
            "update orders set status = ?, note = ? where client_id = ?", ((s, n, c) for c, s, n in updates)
        )

    def request_cancel(self, client_id: str) -> None:
        self.request_cancels([client_id])

    def request_cancels(self, client_ids: Sequence[str]) -> None:
        """:meth:`request_cancel` for many, as one statement."""
        self._db.executemany(
            "update orders set cancel_requested = 1 where client_id = ?", [(c,) for c in client_ids]
        )

    def open_orders(self, book: str | None = None) -> list[JournalOrder]:
        """Orders not known to be finished (``intent``, ``in_flight``, ``pending``, ``open``)."""
        q = f"select * from orders where status in ({','.join('?' * len(NON_TERMINAL))})"
        args: list[Any] = list(NON_TERMINAL)
        if book is not None:
            q += " and book = ?"
            args.append(book)
        return [_order(r) for r in self._db.execute(q + " order by rowid", args)]

    def order(self, client_id: str) -> JournalOrder | None:
        row = self._db.execute("select * from orders where client_id = ?", (client_id,)).fetchone()
        return None if row is None else _order(row)

    def orders(self) -> list[JournalOrder]:
        return [_order(r) for r in self._db.execute("select * from orders order by rowid")]

    # ---- fills -----------------------------------------------------------------------------------
    def add_fill(self, fill: Fill, *, book: str) -> bool:
        """Journal a fill; False when it was already there (unique by venue and trade id)."""
        return bool(self.add_fills([fill], book=book))

    def add_fills(self, fills: Sequence[Fill], *, book: str) -> list[Fill]:
        """Journal a poll's fills, in order; returns those that were new (unique by venue and
        trade id: one seen before changes nothing). Each new fill carries its order's model
        version and reference mid, and moves the order's filled lots (and to ``filled`` when
        complete). A few statements for the lot, not three per fill."""
        if not fills:
            return []
        seen = self._known_trades(fills)
        new: list[Fill] = []
        for f in fills:  # a trade id twice in one poll counts once, as one already journaled does
            if (f.venue, f.trade_id) not in seen:
                seen.add((f.venue, f.trade_id))
                new.append(f)
        if not new:
            return []
        orders = self._fill_refs({f.client_id for f in new})
        self._db.executemany(
            "insert into fills values (?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    f.venue,
                    f.trade_id,
                    f.seq,
                    book,
                    f.client_id,
                    f.symbol,
                    f.side,
                    f.price_ticks,
                    f.lots,
                    f.fee,
                    int(f.maker),
                    f.ts_ns,
                    o.version if (o := orders.get(f.client_id)) else "unknown",
                    o.ref_mid_ticks if o else float(f.price_ticks),
                )
                for f in new
            ],
        )
        filled: dict[str, int] = {}
        for f in new:
            if f.client_id in orders:
                filled[f.client_id] = filled.get(f.client_id, orders[f.client_id].filled_lots) + f.lots
        self._db.executemany(
            "update orders set filled_lots = ?, status = ? where client_id = ?",
            [
                (lots, "filled" if lots >= orders[cid].lots else orders[cid].status, cid)
                for cid, lots in filled.items()
            ],
        )
        return new

    def _fill_refs(self, client_ids: set[str]) -> dict[str, _FillRef]:
        """What booking a fill reads of its order, for these client ids (those journaled)."""
        out: dict[str, _FillRef] = {}
        for part in _chunks(sorted(client_ids)):
            q = (
                "select client_id, version, ref_mid_ticks, lots, filled_lots, status from orders"
                f" where client_id in ({','.join('?' * len(part))})"
            )
            out.update((r[0], _FillRef(*r[1:])) for r in self._db.execute(q, part))
        return out

    def _known_trades(self, fills: Sequence[Fill]) -> set[tuple[str, str]]:
        """Which of these fills' (venue, trade id) the journal already holds."""
        out: set[tuple[str, str]] = set()
        for venue in {f.venue for f in fills}:
            ids = [f.trade_id for f in fills if f.venue == venue]
            for part in _chunks(ids):
                q = f"select trade_id from fills where venue = ? and trade_id in ({','.join('?' * len(part))})"
                out.update((venue, r[0]) for r in self._db.execute(q, (venue, *part)))
        return out

    def fills(self, book: str | None = None) -> list[dict[str, Any]]:
        cols = [d[1] for d in self._db.execute("pragma table_info(fills)")]
        q = "select * from fills"
        args: tuple[str, ...] = ()
        if book is not None:
            q, args = q + " where book = ?", (book,)
        return [dict(zip(cols, r, strict=True)) for r in self._db.execute(q + " order by venue, seq", args)]

    # ---- books, marks, events, quotes -----------------------------------------------------------------
    def save_book(
        self, book: str, *, tick: int, last_seq: int, fs: bytes, ist: bytes, extra: dict[str, Any]
    ) -> None:
        self._db.execute(
            "insert or replace into books values (?,?,?,?,?,?)",
            (book, tick, last_seq, fs, ist, json.dumps(extra)),
        )

    def save_arrays(self, book: str, *, fs: bytes, ist: bytes) -> None:
        """Update a saved book's state arrays only (after the send answers moved them)."""
        self._db.execute("update books set fs = ?, ist = ? where book = ?", (fs, ist, book))

    def book(self, book: str) -> tuple[int, int, bytes, bytes, dict[str, Any]] | None:
        row = self._db.execute(
            "select tick, last_seq, fs, ist, extra from books where book = ?", (book,)
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2], row[3], json.loads(row[4]))

    def add_mark(self, tick: int, ts_ns: int, closes: bytes) -> None:
        self._db.execute("insert or replace into marks values (?,?,?)", (tick, ts_ns, closes))

    def marks(self, *, since_tick: int = 0) -> list[tuple[int, int, bytes]]:
        q = "select tick, ts_ns, closes from marks where tick >= ? order by tick"
        return list(self._db.execute(q, (since_tick,)))

    def add_event(self, tick: int, ts_ns: int, symbol: str, kind: str, message: str) -> None:
        self._db.execute(
            "insert into events(tick, ts_ns, symbol, kind, message) values (?,?,?,?,?)",
            (tick, ts_ns, symbol, kind, message),
        )

    def events(self, kinds: Sequence[str] | None = None) -> list[dict[str, Any]]:
        rows = self._db.execute(
            "select tick, ts_ns, symbol, kind, message from events order by id"
        ).fetchall()
        out = [dict(zip(("tick", "ts_ns", "symbol", "kind", "message"), r, strict=True)) for r in rows]
        return [e for e in out if kinds is None or e["kind"] in kinds]

    def add_signals(self, rows: Sequence[tuple[int, int, str, str, float, str]]) -> None:
        """The signals a tick's quotes used: (tick, bar open ns, book, symbol, value, version)."""
        self._db.executemany("insert or replace into signals values (?,?,?,?,?,?)", rows)

    def signals(self, book: str = "live") -> list[tuple[int, str, float, str]]:
        """(bar open ns, symbol, value, version) of every signal a book's quotes used, in time order."""
        q = "select ts_ns, symbol, value, version from signals where book = ? order by tick, symbol"
        return list(self._db.execute(q, (book,)))

    def add_quotes(self, tick: int, ts_ns: int, quotes: bytes) -> None:
        """The live book's working quotes after a tick: int64 (symbols, 4) bid, ask, bid lots, ask lots."""
        self._db.execute("insert or replace into quotes values (?,?,?)", (tick, ts_ns, quotes))

    def quotes(self, *, since_tick: int = 0) -> list[tuple[int, int, bytes]]:
        q = "select tick, ts_ns, quotes from quotes where tick >= ? order by tick"
        return list(self._db.execute(q, (since_tick,)))


class WalCheckpoints:
    """Checkpoints of an SQLite connection's WAL at moments its owner chooses, instead of inside
    a commit (SQLite's own rule: when the WAL passes 1,000 pages, the commit that passed it also
    copies the WAL into the database and syncs it, several ms).

    :meth:`maybe` runs a passive checkpoint (a reader never waits on it) once ``every`` rows
    have changed since the last one: rows are what a connection counts for free
    (``total_changes``), and the worker's journal takes 64-69 WAL pages per 1,000 rows
    (measured at 100 symbols), so the default keeps its WAL near SQLite's own 1,000 pages.
    """

    def __init__(self, db: sqlite3.Connection, *, every: int = 15_000) -> None:
        self._db = db
        self.every = every
        db.execute("pragma wal_autocheckpoint=0")
        self._at = db.total_changes

    def maybe(self) -> bool:
        """Checkpoint if due; True when it did."""
        if self._db.total_changes - self._at < self.every:
            return False
        self._db.execute("pragma wal_checkpoint(passive)")
        self._at = self._db.total_changes
        return True


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    """``items`` in parts small enough for one statement's parameters (SQLite's limit)."""
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _order(row: Sequence[Any]) -> JournalOrder:
    """A journal row (``select *``: the fields, then the note) as a :class:`JournalOrder`."""
    return JournalOrder._make((*row[:13], bool(row[13])))
