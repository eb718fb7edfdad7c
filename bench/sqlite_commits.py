"""How long one journal-sized SQLite commit takes on this disk, ``synchronous=FULL`` and ``NORMAL``.

The worker's journal commits about 150 order rows a tick (100 symbols) in WAL mode with
``synchronous=FULL``: one ``fdatasync`` of the WAL per commit. This times 600 such commits, 50 ms
apart, to tell a slow disk from a slow worker when a tick's journal phase is slow.

    .venv/bin/python bench/sqlite_commits.py [--commits 600] [--rows 150]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import numpy as np


def commits_ms(db: sqlite3.Connection, *, commits: int, rows: int) -> np.ndarray:
    out = []
    row = b"x" * 120  # about an order row's size
    for _ in range(commits):
        t = time.perf_counter()
        db.execute("begin")
        db.executemany("insert into t values (?, ?)", [(j, row) for j in range(rows)])
        db.execute("commit")
        out.append((time.perf_counter() - t) * 1000)
        time.sleep(0.05)
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--commits", type=int, default=600)
    parser.add_argument("--rows", type=int, default=150)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "journal.db", isolation_level=None)
        db.execute("pragma journal_mode=wal")
        db.execute("create table t (a integer, b blob)")
        for mode in ("full", "normal"):
            db.execute(f"pragma synchronous={mode}")
            ms = commits_ms(db, commits=args.commits, rows=args.rows)
            p50, p99 = np.percentile(ms, [50, 99])
            print(
                f"synchronous={mode}: {args.commits} commits of {args.rows} rows, "
                f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, max {ms.max():.2f} ms, over 10 ms {(ms > 10).sum()}"
            )
        db.close()


if __name__ == "__main__":
    main()
