"""Tuning throughput with 1, 2 and 3 tuner processes on one study: PostgreSQL against SQLite.

Usage: ``python bench/tune_scale.py --total 12 --json``

Each configuration is one new study that ``--total`` SGD trials fill, split evenly over N
processes (the same work for every N). Every process is a tuner as ``mmops tune`` runs it
(:func:`training.tune.open_study` with the heartbeat on, :func:`training.tune.run_trials`, the
walk-forward objective on the fill engine), without the refit, evaluation and registration
that follow. Processes build their dataset first and start trials together (a file barrier),
so start-up is not counted: trials per minute is the study's trial count over the span from
its first trial's start to its last trial's end (Optuna's own timestamps). The data are the
shared BTCUSDT 1m months, the split params.yaml's (3 folds, 10,000 training bars each); pruning
is off so every trial does the same work; each process gets one BLAS/OpenMP thread, so N
processes want N cores.

PostgreSQL is a throwaway cluster started with the tests' harness
(``tests/integration/postgres.py``, with PostgreSQL's default durability: every commit is
flushed, as SQLite's are; Debian's ``postgresql`` must be installed) unless ``--postgres-url``
names a server database to use; SQLite is a file in the run's folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROCESSES = (1, 2, 3)


def bench_params(home: Path) -> Path:
    """The repository's params.yaml (its minute split: 3 folds, 10,000 training bars), pruning off."""
    doc: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
    doc["tune"].update(prune=False)
    path = home / "params.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def ingest(home: Path, source: Path) -> None:
    from features.pipeline import ingest_source
    from flows.params import load_params

    ingest_source(
        "binance-dump",
        source / "binance-spot-1m",  # every BTCUSDT 1m month there (March-April 2026: 87,840 bars)
        store_root=home / "data" / "bars",
        quarantine_root=home / "data" / "quarantine",
        gx_root=None,
        validation=load_params(home / "params.yaml").validation,
        now=pd.Timestamp.now(tz="UTC"),
    )


def worker(storage: str, study: str, trials: int, barrier: Path, n: int) -> None:
    """One tuner: build the job, wait for the other ``n - 1``, run ``trials`` trials."""
    from flows.params import load_params
    from flows.settings import locations
    from flows.training_steps import series_bars, study_job
    from training.tune import open_study, run_trials

    where = locations()
    params = load_params(where.params_file)
    job = study_job(params, series_bars(where, params), family="sgd", task="regressor")
    handle = open_study(storage, study, maximize=job.maximize, config=params.tune)
    (barrier / f"ready-{os.getpid()}").touch()
    while len(list(barrier.glob("ready-*"))) < n:
        time.sleep(0.05)
    run_trials(handle, job, trials=trials, timeout_s=None)


def measure(storage: str, study: str, *, n: int, total: int, home: Path) -> dict[str, Any]:
    """Run ``n`` tuners of ``total // n`` trials each on a new study; trials per minute."""
    import optuna

    barrier = Path(tempfile.mkdtemp(prefix="barrier-", dir=home))
    env = {**os.environ, "MMOPS_HOME": str(home), "MMOPS_PARAMS": str(home / "params.yaml")}
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    cmd = [sys.executable, __file__, "--worker", storage, study, str(total // n), str(barrier), str(n)]
    procs = [subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True) for _ in range(n)]
    for proc in procs:
        _, errors = proc.communicate(timeout=1800)
        if proc.returncode != 0:
            raise SystemExit(f"a tuner failed ({storage}, {n} processes):\n{errors[-3000:]}")
    trials = optuna.load_study(study_name=study, storage=storage).trials
    timed = [
        (t.datetime_start, t.datetime_complete)
        for t in trials
        if t.datetime_start is not None and t.datetime_complete is not None
    ]
    start = min(s for s, _ in timed)
    end = max(e for _, e in timed)
    span = (end - start).total_seconds()
    states = sorted({t.state.name for t in trials})
    return {
        "processes": n,
        "trials": len(trials),
        "states": states,
        "span_s": round(span, 2),
        "trials_per_min": round(len(trials) / span * 60, 2),
        "mean_trial_s": round(sum((e - s).total_seconds() for s, e in timed) / len(timed), 2),
    }


def run(total: int, postgres_url: str | None, source: Path) -> dict[str, Any]:
    from contextlib import ExitStack

    load = os.getloadavg()[0]  # other work on the machine shares its cores with the tuners
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="tune-scale-") as tmp:
        home = Path(tmp)
        bench_params(home)
        ingest(home, source)
        if postgres_url is None:
            sys.path.insert(0, str(REPO / "tests" / "integration"))
            from postgres import postgres_server

            cluster = stack.enter_context(postgres_server(durable=True))  # commits flushed, as SQLite's
            postgres_url = cluster.create_database("tune_scale")
        backends = {"postgresql": postgres_url, "sqlite": f"sqlite:///{home / 'optuna.db'}"}
        results: dict[str, list[dict[str, Any]]] = {}
        for backend, url in backends.items():
            results[backend] = [measure(url, f"scale-{n}", n=n, total=total, home=home) for n in PROCESSES]
        return {
            "total_trials": total,
            "cpus": os.cpu_count(),
            "load_1m_before": load,
            "load_1m_after": os.getloadavg()[0],
            "python": platform.python_version(),
            "results": results,
        }


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        storage, study, trials, barrier, n = sys.argv[2:7]
        worker(storage, study, int(trials), Path(barrier), int(n))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total", type=int, default=12, help="trials per configuration (split over N)")
    parser.add_argument("--postgres-url", help="a server database to use instead of a throwaway cluster")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    args = parser.parse_args()
    if args.total % 6:
        raise SystemExit("--total must be a multiple of 6, so 1, 2 and 3 processes split it evenly")
    source = Path(os.environ.get("MMOPS_SOURCE_DATA") or REPO.parent / "shared" / "data")
    doc = run(args.total, args.postgres_url, source)
    if args.json:
        print(json.dumps(doc))
        return
    print(
        f"{args.total} SGD trials per configuration, {doc['cpus']} CPUs, "
        f"load {doc['load_1m_before']:.1f} before, {doc['load_1m_after']:.1f} after"
    )
    for backend, rows in doc["results"].items():
        base = rows[0]["trials_per_min"]
        for row in rows:
            print(
                f"{backend:>10} {row['processes']} tuner(s): {row['trials_per_min']:6.1f} trials/min "
                f"(x{row['trials_per_min'] / base:.2f}), mean trial {row['mean_trial_s']:.1f} s, {row['states']}"
            )


if __name__ == "__main__":
    main()
