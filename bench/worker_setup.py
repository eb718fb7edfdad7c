"""bench/worker.py's set-up, shared with the benches beside it: the replayed symbols, the registry
with the LSTM champion, a real ``mmops serve``, and the memory and percentile helpers.

The symbols and the registry are described in bench/worker.py's docstring (what runs, 1 and the
replayed data); bench/worker_parts.py, bench/http_clients.py and bench/request_logging.py use the
same ones, so their figures are on the same data and the same service.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # the repository's packages (first, unless a caller put a tree there)
    sys.path.insert(0, str(REPO))
NAME = "mmops-BENCHWORKER-1m"
LSTM = {"lookback": 32, "units": 32, "epochs": 1, "batch_size": 256, "patience": 1}
GOLDEN = (math.sqrt(5) - 1) / 2


def pct(values: np.ndarray) -> dict[str, float]:
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99))}


def source_dir() -> Path:
    return Path(os.environ.get("MMOPS_SOURCE_DATA", REPO.parent / "shared" / "data")) / "binance-spot-1m"


def load_base() -> pd.DataFrame:
    """The real BTCUSDT 1m bars, both months, in time order (canonical schema)."""
    from features.sources.binance import dump_files, read_dumps

    files = [f for f in dump_files(source_dir()) if f.name.startswith("BTCUSDT-1m-")]
    return read_dumps(files).sort_values("timestamp", ignore_index=True)


def symbol_frames(
    base: pd.DataFrame, n: int, *, warmup: int, ticks: int
) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """``n`` distinct symbols from ``base`` (see the module docstring): (traded bars, history).

    Raises:
        ValueError: ``base`` is too short for ``warmup + ticks`` bars per symbol.
    """
    need = warmup + ticks
    if len(base) < need + n:
        raise ValueError(f"{len(base)} source bars; need {need + n} for {n} symbols of {need} bars")
    step = (len(base) - need) // n
    first = base["timestamp"].iloc[-need]
    stamps = pd.Series(pd.date_range(first, periods=need, freq="1min")).astype(base["timestamp"].dtype)
    frames, history = {}, {}
    for k in range(n):
        part = base.iloc[k * step : k * step + need].reset_index(drop=True)
        scale = 2.0 ** (4.0 * ((k * GOLDEN) % 1.0) - 2.0)
        part = part.assign(
            **{c: (part[c] * scale).round(2) for c in ("open", "high", "low", "close")},
            timestamp=stamps,
            symbol=f"S{k:04d}USDT",
        )
        sym = f"S{k:04d}USDT"
        history[sym] = part.iloc[:warmup].reset_index(drop=True)
        frames[sym] = part.iloc[warmup:].reset_index(drop=True)
    return frames, history


FORWARD_METRICS = {
    "forward_utility": 1.0,
    "forward_pnl_diff": 0.1,
    "forward_utility_diff": 0.1,
    "forward_sharpe": 1.0,
    "forward_max_drawdown_pct": 1.0,
    "forward_sharpe_diff": 0.1,
    "forward_n_trades": 100.0,
}
"""The forward-test metrics a bench's version is registered with (what the gate reads; the benches
measure speed, not the model)."""


# ---- the registry (child process) ----------------------------------------------------------------
def build_registry(home: str, train_rows: int) -> tuple[str, str, int]:
    """Fit the LSTM on real features, register it and approve it. Returns (uri, version, n features).

    Runs in a spawned child: TensorFlow and MLflow stay out of the worker's process.
    """
    from features.build import compute_features, make_labels
    from flows.params import load_params
    from training import tracking
    from training.models import make_model

    root = Path(home)
    config = load_params(REPO / "params.yaml").features
    bars = load_base().iloc[-(train_rows + 1440 + config.label_horizon) :].reset_index(drop=True)
    feats = compute_features(bars, config)
    labels = make_labels(bars, horizon=config.label_horizon)
    ok = feats.notna().all(axis=1).to_numpy() & labels["fwd_return"].notna().to_numpy()
    x, y = feats.to_numpy()[ok], labels["fwd_return"].to_numpy()[ok]
    model = make_model("lstm", "regressor", random_state=0, **LSTM)
    folder = model.fit(x, y, feature_names=list(feats.columns)).save(root / "models" / "lstm")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    tracking.use_tracking(uri)
    experiment = tracking.ensure_experiment("bench-worker", artifact_root=(root / "mlartifacts").as_uri())
    with tracking.parent_run(experiment, run_name="lstm", tags={}):
        version = tracking.log_signal_model(
            folder,
            registered_name=NAME,
            tags={"mmops.family": "lstm", "mmops.task": "regressor", "mmops.interval": "1m"},
            metrics=FORWARD_METRICS,
        )
    approve(root, uri, NAME, version, reason="worker benchmark")
    return uri, version, x.shape[1]


def approve(root: Path, uri: str, name: str, version: str, *, reason: str) -> None:
    """Pass ``version`` through a gate that admits anything and approve it: the champion alias."""
    from training.gate import GateConfig
    from training.registry import Registry

    reg = Registry(uri, audit_log=root / "logs" / "audit.jsonl", reports=root / "reports")
    reg.gate(
        name,
        version,
        config=GateConfig(min_utility_over_champion=-1e9),
        evaluate=lambda _: {"utility": 0.0, "sharpe": 0.0},
    )
    reg.approve(name, version, by="bench", reason=reason)


# ---- the service ---------------------------------------------------------------------------------
def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the kernel's pick)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(
    home: Path,
    uri: str,
    token: str | None,
    *,
    request_logging: bool = False,
    serve: Mapping[str, Any] | None = None,
) -> tuple[subprocess.Popen[bytes], str]:
    """``mmops serve`` on a free 127.0.0.1 port, in its own process group; waits for /readyz.
    ``token``: the service's bearer token (None: served without one, whatever the environment
    says). ``request_logging``: BentoML's access log and tracing spans on (``serve.access_log``,
    ``serve.trace_requests``; both off in params.yaml). ``serve``: other ``serve`` settings
    (``model`` and ``poll_interval_s`` included: the defaults are this file's model, 5 s)."""
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["serve"].update(
        model=NAME, poll_interval_s=5.0, access_log=request_logging, trace_requests=request_logging
    )
    params["serve"].update(serve or {})
    (home / "params.yaml").write_text(yaml.safe_dump(params))
    port = free_port()
    env = {
        **os.environ,
        "MMOPS_HOME": str(home),
        "MMOPS_PARAMS": str(home / "params.yaml"),
        "MLFLOW_TRACKING_URI": uri,
        "BENTOML_HOME": str(home / "bentoml"),
    }
    if token is None:
        env.pop("MMOPS_SERVE_TOKEN", None)
    else:
        env["MMOPS_SERVE_TOKEN"] = token
    with (home / "server.log").open("w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows", "serve", "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"mmops serve exited: {(home / 'server.log').read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    stop_server(proc)
    raise RuntimeError(f"mmops serve not ready in 240 s: {(home / 'server.log').read_text()[-3000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


# ---- memory --------------------------------------------------------------------------------------
def rss_mb(pid: int) -> float:
    """Resident set of one process, MB (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def tree_rss_mb(root: int) -> tuple[float, int]:
    """Resident set of ``root`` and all its descendants (the service and its workers), MB, and
    how many processes that is."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, frontier = {root}, [root]
    while frontier:
        kids = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in tree]
        tree.update(kids)
        frontier = kids
    return sum(rss_mb(pid) for pid in tree), len(tree)


def trend(samples: list[tuple[float, float]]) -> dict[str, float]:
    """Start, end, max and the least-squares slope (MB/min, with its standard error) over the
    last two thirds of ``(seconds, MB)`` samples."""
    t = np.array([s[0] for s in samples])
    mb = np.array([s[1] for s in samples])
    tail = slice(len(samples) // 3, None)
    tt, mm = t[tail] / 60.0, mb[tail]
    out = {"start_mb": float(mb[0]), "end_mb": float(mb[-1]), "max_mb": float(mb.max()), "samples": len(mb)}
    if len(tt) >= 3 and np.ptp(tt) > 0:
        slope, icept = np.polyfit(tt, mm, 1)
        resid = mm - (slope * tt + icept)
        se = float(np.sqrt(resid.var(ddof=2) / ((tt - tt.mean()) ** 2).sum()))
        out |= {"slope_mb_per_min": float(slope), "slope_se_mb_per_min": se}
    return out
