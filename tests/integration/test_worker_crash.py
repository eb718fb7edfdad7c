"""Crash safety by crashing: ``mmops trade`` killed with SIGKILL at named points and at random
moments of a paper replay, restarted each time on the same journal; the final journal has
exactly the fills of an uninterrupted run (none lost, none twice) and positions reconcile."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DUMP = Path(os.environ.get("MMOPS_SOURCE_DATA", REPO.parent / "shared" / "data")) / "binance-spot-1m"
ZIP = DUMP / "BTCUSDT-1m-2026-03.zip"
# one day of minutes, warm-up from the days before it (the features' 1440-bar windows)
ARGS = ["--replay", str(ZIP), "--symbols", "BTCUSDT", "--start", "2026-03-05", "--end", "2026-03-05T23:59"]
TICKS = 1440


def trade(home: Path, journal: Path, *, crash_at: str | None = None) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "MMOPS_CRASH_AT"}
    env["MMOPS_HOME"] = str(home)
    if crash_at:
        env["MMOPS_CRASH_AT"] = crash_at
    cmd = [sys.executable, "-m", "flows", "trade", *ARGS, "--journal", str(journal), "--json"]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def ticks_done(journal: Path) -> int:
    if not journal.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=1) as db:
            row = db.execute("select tick from books where book = 'live'").fetchone()
    except sqlite3.OperationalError:  # the tables are not there yet
        return 0
    return 0 if row is None else int(row[0])


def fills(journal: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(journal) as db:
        return db.execute(
            "select venue, trade_id, client_id, side, price_ticks, lots, fee, ts_ns, version from fills order by seq"
        ).fetchall()


def finish(home: Path, journal: Path) -> dict:
    proc = trade(home, journal)
    out, errors = proc.communicate(timeout=300)
    assert proc.returncode == 0, errors[-2000:]
    return json.loads(out)


@pytest.mark.skipif(not ZIP.exists(), reason=f"shared data not found at {ZIP}")
def test_kill_9_at_any_point_loses_and_duplicates_no_fill(tmp_path: Path) -> None:
    whole = finish(tmp_path / "a", tmp_path / "whole.db")
    assert whole["finished"] and whole["fills"]["live"] > 100
    journal = tmp_path / "crashed.db"
    # the named points: after the venue matched a tick but before its fills were journaled;
    # after the fills were journaled but before the tick's transaction applied them to the book;
    # after the tick's journal transaction but before any order was sent; between two sends
    for point in ("after_advance@100", "after_fills@200", "after_journal@300", "mid_send@500"):
        proc = trade(tmp_path / "b", journal, crash_at=point)
        _out, errors = proc.communicate(timeout=300)
        assert proc.returncode == -signal.SIGKILL, f"{point} did not crash the worker: {errors[-1000:]}"
    rng = random.Random(11)
    for _ in range(3):  # and at moments nobody chose
        target = ticks_done(journal) + rng.randint(20, 250)
        proc = trade(tmp_path / "b", journal)
        deadline = time.monotonic() + 120
        while ticks_done(journal) < target and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    assert ticks_done(journal) < TICKS  # the kills left work to do
    final = finish(tmp_path / "b", journal)
    assert final["finished"] and final["reconcile"]["resumed"]
    assert fills(journal) == fills(tmp_path / "whole.db")  # same trades, same ids, same order
    assert final["final_equity"] == whole["final_equity"]
    book = final["status"]["books"]["live"]["BTCUSDT"]
    with sqlite3.connect(journal.with_name(journal.name + ".venue.db")) as venue:
        (position,) = venue.execute("select coalesce(sum(side * lots), 0) from fills").fetchone()
    assert book["inventory_lots"] == position  # the journal's position is the venue's
    with sqlite3.connect(journal) as db:
        stuck = db.execute("select count(*) from orders where status in ('intent', 'in_flight')")
        (unresolved,) = stuck.fetchone()
        journaled = {c for (c,) in db.execute("select client_id from orders")}
    with sqlite3.connect(journal.with_name(journal.name + ".venue.db")) as venue:
        placed = {c for (c,) in venue.execute("select client_id from orders")}
    with sqlite3.connect(tmp_path / "whole.db.venue.db") as venue:
        unbroken = {c for (c,) in venue.execute("select client_id from orders")}
    assert unresolved == 0  # every order the crashes left unresolved was resolved
    assert placed <= journaled  # the venue never got an order the journal does not hold
    assert placed == unbroken  # nor one more or one less than the uninterrupted run
