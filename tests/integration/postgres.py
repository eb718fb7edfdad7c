"""A real PostgreSQL for the scale-out tests: ``initdb`` into a temporary folder, ``pg_ctl start``
on a free loopback port, databases created on demand, stopped and removed at the end.

Debian's ``postgresql`` package provides the binaries (``make test`` installs it when it is
missing and it runs as root). PostgreSQL refuses to run as root: a root test run starts the
server as the ``postgres`` system user the package creates (``nobody`` without it) through
``runuser``, in a folder under ``/tmp`` it owns (pytest's own temporary folders are private to
root). Clients connect over TCP on 127.0.0.1 as the ``mmops`` superuser with ``trust`` auth: a
throwaway cluster on the loopback, nothing to guard.

Missing binaries skip the tests on a developer's machine and fail them under ``CI=true``; a
server that is there but will not start always fails, with the tail of its log.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "mmops"  # the cluster's superuser (``initdb -U``), not a system account
START_S = 120  # pg_ctl -w waits this long: a first start on a loaded 2-core machine is slow, not broken
# Connections for 3 tuners, 4 MLflow server workers (a pool of 5 + 10 each) and the test process.
SERVER_SETTINGS = {"listen_addresses": "127.0.0.1", "max_connections": "200"}
# A test cluster needs no durability: without fsync and full-page writes a commit costs no disk flush.
NOT_DURABLE = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@dataclass(frozen=True)
class Postgres:
    """A running cluster: where it listens and how to reach a database in it."""

    host: str
    port: int
    root: Path

    def url(self, database: str) -> str:
        """A SQLAlchemy URL (psycopg2 driver), as ``MMOPS_OPTUNA_STORAGE`` or MLflow take it."""
        return f"postgresql+psycopg2://{USER}@{self.host}:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create ``name`` (empty) and return its URL."""
        import psycopg2

        conn = psycopg2.connect(host=self.host, port=self.port, user=USER, dbname="postgres")
        try:
            conn.autocommit = True  # CREATE DATABASE cannot run inside a transaction
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


def find_bin_dir() -> Path | None:
    """The folder of ``initdb``/``pg_ctl``: on PATH, else Debian's newest ``/usr/lib/postgresql/N/bin``."""
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        return Path(on_path).resolve().parent
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parents[1].name), reverse=True
    )
    return found[0].parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _run_as() -> list[str]:
    """The command prefix that drops root: ``runuser -u postgres --`` (or nobody); none otherwise."""
    if os.geteuid() != 0:
        return []
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return ["runuser", "-u", name, "--"]
    pytest.fail("running as root and neither a postgres nor a nobody user exists to run PostgreSQL")


def _chown_for(prefix: list[str], path: Path) -> None:
    if prefix:
        entry = pwd.getpwnam(prefix[2])
        os.chown(path, entry.pw_uid, entry.pw_gid)


@contextmanager
def postgres_server(*, durable: bool = False) -> Iterator[Postgres]:
    """Start a throwaway cluster; yields it; stops it and removes its folder afterwards.

    Args:
        durable: keep PostgreSQL's default durability (every commit flushed to disk), as a real
            server runs; off by default, for speed (benchmarks comparing it with SQLite want it on).
    """
    bin_dir = find_bin_dir()
    if bin_dir is None:
        message = "PostgreSQL is not installed (initdb, pg_ctl): `make test` installs Debian's postgresql"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    prefix = _run_as()
    root = Path(tempfile.mkdtemp(prefix="mmops-pg-"))  # under /tmp, reachable by the server's user
    _chown_for(prefix, root)
    data, log = root / "data", root / "server.log"
    started = False
    try:
        _check(
            [
                *prefix,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            what="initdb",
        )
        port = free_port()
        options = " ".join(
            f"-c {k}={v}"
            for k, v in {**SERVER_SETTINGS, **({} if durable else NOT_DURABLE), "port": port}.items()
        )
        options += f" -k {root}"  # the unix socket beside the data, not in /var/run/postgresql
        pg_ctl = [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data)]
        _check(
            [*pg_ctl, "-o", options, "-l", str(log), "-w", "-t", str(START_S), "start"],
            what="pg_ctl start",
            log=log,
        )
        started = True
        yield Postgres(host="127.0.0.1", port=port, root=root)
    finally:
        if started:
            subprocess.run([*pg_ctl, "-m", "fast", "-w", "stop"], capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _check(cmd: list[str], *, what: str, log: Path | None = None) -> None:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=START_S + 30)
    if done.returncode != 0:
        tail = log.read_text()[-3000:] if log is not None and log.exists() else ""
        pytest.fail(f"{what} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}\n{tail}")
