"""Signal service latency and throughput: predict per family vs the service's own floor (info).

Builds a throw-away MLflow registry with production-sized SGD, RF and LSTM versions (67
features like the real feature set; LSTM lookback 32, 32 units), starts ``mmops serve`` on a free
port, and for each family in turn (the champion alias moves sgd -> rf -> lstm; the service picks
it up without a restart):

* single-request latency: ``predict`` for one symbol in the client's form (raw float32 after a
  JSON line, what :class:`serving.client.SignalClient` sends), ``predict`` with JSON items (the
  human form, reported beside it) and ``info`` (no model, no input: the framework's floor),
  interleaved request by request so all see the same machine;
* batched throughput: concurrent clients each sending multi-symbol requests, both as JSON items
  (``/predict``), as base64 float32 in JSON and as a raw ``application/octet-stream`` body of
  float32 bytes (``/predict_batch``, the bulk path).

Prints one JSON document with ``--json``.

    .venv/bin/python bench/serving.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

# This file is named like the `serving` package; run as a script, its own folder would shadow it.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]

REPO = Path(__file__).resolve().parents[1]
NAME = "mmops-BENCH-1m"
FAMILIES = {
    "sgd": {"max_iter": 200},
    "rf": {"n_estimators": 200, "max_depth": 12},
    "lstm": {"lookback": 32, "units": 32, "epochs": 2, "batch_size": 256},
}


def build_registry(home: Path, n_features: int, rows: int) -> tuple[str, dict[str, str]]:
    """Fit and register one version per family; approve the first. Returns (uri, family -> version)."""
    from training import tracking
    from training.models import make_model

    uri = f"sqlite:///{home / 'mlflow.db'}"
    tracking.use_tracking(uri)
    experiment = tracking.ensure_experiment("bench", artifact_root=(home / "mlartifacts").as_uri())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, n_features))
    y = 1e-3 * x[:, 0] + 1e-3 * rng.normal(size=rows)
    names = [f"feature_{i}" for i in range(n_features)]
    versions = {}
    for family, params in FAMILIES.items():
        model = make_model(family, "regressor", **params).fit(x, y, feature_names=names)  # type: ignore[arg-type]
        folder = model.save(home / "models" / family)
        with tracking.parent_run(experiment, run_name=family, tags={}):
            versions[family] = tracking.log_signal_model(
                folder,
                registered_name=NAME,
                tags={"mmops.family": family, "mmops.task": "regressor"},
                metrics={
                    "forward_sharpe": 1.0,
                    "forward_max_drawdown_pct": 1.0,
                    "forward_sharpe_diff": 0.1,
                    "forward_n_trades": 100.0,
                },
            )
    return uri, versions


def promote(home: Path, uri: str, version: str) -> None:
    from training.gate import GateConfig
    from training.registry import Registry

    reg = Registry(uri, audit_log=home / "logs" / "audit.jsonl", reports=home / "reports")
    reg.gate(
        NAME, version, config=GateConfig(min_sharpe_over_champion=-1e9), evaluate=lambda _: {"sharpe": 0.0}
    )
    reg.approve(NAME, version, by="bench", reason="benchmark")


def start_server(home: Path, uri: str) -> tuple[subprocess.Popen[bytes], str]:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["serve"].update(model=NAME, poll_interval_s=0.5)
    (home / "params.yaml").write_text(yaml.safe_dump(params))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "MMOPS_HOME": str(home),
        "MMOPS_PARAMS": str(home / "params.yaml"),
        "MLFLOW_TRACKING_URI": uri,
        "BENTOML_HOME": str(home / "bentoml"),
    }
    env.pop("MMOPS_SERVE_TOKEN", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "flows", "serve", "--port", str(port)],
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
            raise RuntimeError((home / "server.log").read_text()[-3000:])
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server not ready in 240 s")


def body(symbols: int, rows: int, n_features: int, seed: int = 0) -> bytes:
    """A ``/predict`` body: JSON windows, one item per symbol."""
    rng = np.random.default_rng(seed)
    items = [
        {"symbol": f"S{i}USDT", "window": rng.normal(size=(rows, n_features)).round(6).tolist()}
        for i in range(symbols)
    ]
    return json.dumps({"items": items}).encode()


def raw_body(symbols: int, rows: int, n_features: int, seed: int = 0) -> bytes:
    """The same ``/predict`` request in the client's raw form (JSON line, then float32 windows)."""
    doc = json.loads(body(symbols, rows, n_features, seed))
    windows = np.array([item["window"] for item in doc["items"]])
    return bulk_body_of([item["symbol"] for item in doc["items"]], windows)


def bulk_body_of(symbols: list[str], windows: np.ndarray) -> bytes:
    from serving.logic import encode_raw_batch

    return encode_raw_batch({"symbols": symbols, "rows": int(windows.shape[1])}, windows)


def bulk_body(symbols: int, rows: int, n_features: int, seed: int = 0) -> bytes:
    """A raw ``/predict_batch`` body: a JSON line (symbols, rows), then the windows as float32 bytes."""
    from serving.logic import encode_raw_batch

    windows = np.random.default_rng(seed).normal(size=(symbols, rows, n_features))
    return encode_raw_batch({"symbols": [f"S{i}USDT" for i in range(symbols)], "rows": rows}, windows)


def bulk_b64_body(symbols: int, rows: int, n_features: int, seed: int = 0) -> bytes:
    """The same ``/predict_batch`` request in the JSON form (windows as base64 float32)."""
    from serving.logic import encode_windows

    windows = np.random.default_rng(seed).normal(size=(symbols, rows, n_features))
    doc = {
        "symbols": [f"S{i}USDT" for i in range(symbols)],
        "windows_b64": encode_windows(windows),
        "rows": rows,
    }
    return json.dumps(doc).encode()


def pct(samples: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(samples) * 1000, q))


def latency(base: str, json_body: bytes, raw_body: bytes, n: int) -> dict[str, float]:
    """``predict`` (client's raw form, and JSON items) and ``info``, interleaved one by one."""
    raw_ms: list[float] = []
    json_ms: list[float] = []
    info_ms: list[float] = []
    calls = (
        ("/predict", raw_body, "application/octet-stream", raw_ms),
        ("/predict", json_body, "application/json", json_ms),
        ("/info", b"{}", "application/json", info_ms),
    )
    with httpx.Client(base_url=base, timeout=10) as c:
        for i in range(n + n // 10):  # the first tenth warms up
            for path, content, media_type, sink in calls:
                start = time.perf_counter()
                r = c.post(path, content=content, headers={"Content-Type": media_type})
                elapsed = time.perf_counter() - start
                r.raise_for_status()
                if i >= n // 10:
                    sink.append(elapsed)
    return {
        "predict_p50_ms": pct(raw_ms, 50),
        "predict_p99_ms": pct(raw_ms, 99),
        "info_p50_ms": pct(info_ms, 50),
        "info_p99_ms": pct(info_ms, 99),
        "p99_ratio": pct(raw_ms, 99) / pct(info_ms, 99),
        "json_predict_p50_ms": pct(json_ms, 50),
        "json_predict_p99_ms": pct(json_ms, 99),
        "json_p99_ratio": pct(json_ms, 99) / pct(info_ms, 99),
        "requests": n,
    }


def throughput(
    base: str,
    path: str,
    batch_body: bytes,
    symbols: int,
    seconds: float,
    concurrency: int,
    content_type: str = "application/json",
) -> dict[str, float]:
    done = [0] * concurrency
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        with httpx.Client(base_url=base, headers={"Content-Type": content_type}, timeout=30) as c:
            while time.monotonic() < stop:
                r = c.post(path, content=batch_body)
                if r.status_code != 200:
                    errors.append(r.text[:200])
                    return
                done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(concurrency)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    if errors:
        raise RuntimeError(errors[0])
    return {
        "predictions_per_s": sum(done) * symbols / elapsed,
        "requests_per_s": sum(done) / elapsed,
        "symbols_per_request": symbols,
        "concurrency": concurrency,
        "seconds": elapsed,
    }


def wait_for_version(base: str, version: str) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = httpx.post(f"{base}/info", json={}, timeout=5).json()
        if info["champion"]["version"] == version:
            return dict(info)
        time.sleep(0.2)
    raise RuntimeError(f"the service did not move to version {version}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", type=int, default=67)
    parser.add_argument("--train-rows", type=int, default=5000)
    parser.add_argument("--requests", type=int, default=2000, help="latency samples per endpoint per family")
    parser.add_argument("--symbols", type=int, default=512, help="symbols per batched request")
    parser.add_argument("--seconds", type=float, default=6.0, help="throughput run per family")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="mmops-bench-serving-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        uri, versions = build_registry(home, args.features, args.train_rows)
        promote(home, uri, versions["sgd"])
        setup_s = time.perf_counter() - t0
        proc, base = start_server(home, uri)
        results: dict[str, Any] = {}
        try:
            for family, version in versions.items():
                if family != "sgd":
                    promote(home, uri, version)
                info = wait_for_version(base, version)
                rows = int(info["window_rows"])
                single = latency(
                    base, body(1, rows, args.features), raw_body(1, rows, args.features), args.requests
                )
                n, secs, conc = args.symbols, args.seconds, args.concurrency
                batched = {
                    "json_items": throughput(
                        base, "/predict", body(n, rows, args.features, 1), n, secs, conc
                    ),
                    "bulk_b64": throughput(
                        base, "/predict_batch", bulk_b64_body(n, rows, args.features, 1), n, secs, conc
                    ),
                    "bulk_float32": throughput(
                        base,
                        "/predict_batch",
                        bulk_body(n, rows, args.features, 1),
                        n,
                        secs,
                        conc,
                        "application/octet-stream",
                    ),
                }
                results[family] = {"version": version, "window_rows": rows, **single, "batched": batched}
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    import onnxruntime

    report = {
        "bench": "serving",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_avg_1m": os.getloadavg()[0],
            "onnx_providers": onnxruntime.get_available_providers(),
        },
        "features": args.features,
        "setup_s": setup_s,
        "families": results,
        "goals": {
            "lstm_p99_ratio_le_1_5": results["lstm"]["p99_ratio"] <= 1.5,
            "batched_ge_20k_per_s": {
                f: max(b["predictions_per_s"] for b in r["batched"].values()) >= 20_000
                for f, r in results.items()
            },
        },
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for family, r in results.items():
            print(
                f"{family}: predict p50 {r['predict_p50_ms']:.2f} ms p99 {r['predict_p99_ms']:.2f} ms | info p50 "
                f"{r['info_p50_ms']:.2f} p99 {r['info_p99_ms']:.2f} | ratio {r['p99_ratio']:.2f} "
                f"(JSON items {r['json_p99_ratio']:.2f}) | "
                f"batched json {r['batched']['json_items']['predictions_per_s']:,.0f}/s, "
                f"bulk b64 {r['batched']['bulk_b64']['predictions_per_s']:,.0f}/s, "
                f"bulk raw {r['batched']['bulk_float32']['predictions_per_s']:,.0f}/s"
            )


if __name__ == "__main__":
    main()
