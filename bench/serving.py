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
  float32 bytes (``/predict_batch``, the bulk path), and as streams (``/predict_stream``, the
  worker's path: one client one stream, each request the next row of every symbol);
* the in-process baseline: the same registered version's artifact, downloaded from the registry
  and opened with :func:`training.artifact.load_predictor` as the service does, ``predict`` on
  the same batch array, windows/s (before and after the service runs, the mean taken), and the
  service's raw bulk throughput as a fraction of it (``service_over_onnx``, goal >= 0.8; and
  ``service_stream_over_onnx`` for the streamed path);
* optionally (``--sweep-concurrency``, ``--sweep-symbols``) the raw bulk path at other client
  counts and request sizes, to see where the time goes.

Prints one JSON document with ``--json``.

    .venv/bin/python bench/serving.py --json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import numpy as np
import yaml

# This file is named like the `serving` package; run as a script, its own folder would shadow it.
sys.path[:] = [p for p in sys.path if Path(p).resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent))  # last: for worker_setup, behind the package

import worker_setup  # noqa: E402  (mmops serve started and stopped as bench/worker.py does)

if TYPE_CHECKING:
    from training.artifact import Device

REPO = Path(__file__).resolve().parents[1]
NAME = "mmops-BENCH-1m"
RAW = "application/octet-stream"
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
        model = make_model(family, "regressor", **params).fit(x, y, feature_names=names)
        folder = model.save(home / "models" / family)
        with tracking.parent_run(experiment, run_name=family, tags={}):
            versions[family] = tracking.log_signal_model(
                folder,
                registered_name=NAME,
                tags={"mmops.family": family, "mmops.task": "regressor"},
                metrics=worker_setup.FORWARD_METRICS,
            )
    return uri, versions


def promote(home: Path, uri: str, version: str) -> None:
    worker_setup.approve(home, uri, NAME, version, reason="benchmark")


def start_server(home: Path, uri: str, **serve: Any) -> tuple[subprocess.Popen[bytes], str]:
    """``mmops serve`` without a token on this bench's model, polling the registry every 0.5 s
    (a promotion between families is served within a second)."""
    return worker_setup.start_server(home, uri, None, serve={"model": NAME, "poll_interval_s": 0.5, **serve})


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


def batch_windows(symbols: int, rows: int, n_features: int, seed: int = 0) -> np.ndarray:
    """The bulk requests' windows, float32 (what the service decodes and the baseline predicts on)."""
    return np.random.default_rng(seed).normal(size=(symbols, rows, n_features)).astype(np.float32)


def bulk_body(symbols: int, rows: int, n_features: int, seed: int = 0) -> bytes:
    """A raw ``/predict_batch`` body: a JSON line (symbols, rows), then the windows as float32 bytes."""
    from serving.logic import encode_raw_batch

    windows = batch_windows(symbols, rows, n_features, seed)
    return encode_raw_batch({"symbols": [f"S{i}USDT" for i in range(symbols)], "rows": rows}, windows)


def bulk_b64_body(symbols: int, rows: int, n_features: int, seed: int = 0) -> bytes:
    """The same ``/predict_batch`` request in the JSON form (windows as base64 float32)."""
    from serving.logic import encode_windows

    windows = batch_windows(symbols, rows, n_features, seed)
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


def tree_cpu_s(root: int) -> float:
    """User + system CPU seconds of ``root`` and every process below it (the server's tree)."""
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            stats[int(stat.parent.name)] = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, f in stats.items() if int(f[1]) == pid]
        tree.update(children)
        frontier += children
    ticks = os.sysconf("SC_CLK_TCK")
    return sum(int(stats[p][11]) + int(stats[p][12]) for p in tree if p in stats) / ticks


def throughput(
    base: str,
    server_pid: int,
    path: str,
    batch_body: bytes,
    symbols: int,
    seconds: float,
    concurrency: int,
    content_type: str = "application/json",
) -> dict[str, float]:
    stop = time.monotonic() + seconds

    def worker(_i: int) -> ClientRun:
        done = 0
        with httpx.Client(base_url=base, headers={"Content-Type": content_type}, timeout=30) as c:
            while time.monotonic() < stop:
                r = c.post(path, content=batch_body)
                if r.status_code != 200:
                    return ClientRun(done, r.text[:200])
                done += 1
        return ClientRun(done)

    return run_clients(worker, base=base, concurrency=concurrency, server_pid=server_pid, symbols=symbols)


def stream_throughput(
    base: str,
    server_pid: int,
    symbols: int,
    rows: int,
    n_features: int,
    seconds: float,
    concurrency: int,
    *,
    stream_prefix: str,
) -> dict[str, float]:
    """The worker's bulk path: each client is one stream (``/predict_stream``) of ``symbols``
    symbols; its first request sends the windows whole, every later one each symbol's next row
    (float32 normal rows, like the whole-window bodies), so the service shifts, checks and
    predicts ``symbols`` windows of ``rows`` rows a request."""
    from serving.logic import encode_raw_batch

    names = [f"S{i}USDT" for i in range(symbols)]
    rng = np.random.default_rng(2)
    first = batch_windows(symbols, rows, n_features, 1)
    # 8 blocks of next rows, cycled: the client's cost is the request, not the random numbers
    blocks = [rng.normal(size=(symbols, n_features)).astype(np.float32) for _ in range(8)]
    stop = time.monotonic() + seconds

    def worker(i: int) -> ClientRun:
        stream = f"{stream_prefix}-{i}"
        with httpx.Client(base_url=base, headers={"Content-Type": RAW}, timeout=30) as c:
            meta = {
                "stream": stream,
                "symbols": names,
                "seq": [rows - 1] * symbols,
                "full": list(range(symbols)),
            }
            r = c.post("/predict_stream", content=encode_raw_batch({**meta, "rows": rows}, first))
            if r.status_code != 200:
                return ClientRun(0, r.text[:200])
            seq, done = rows - 1, 0
            while time.monotonic() < stop:
                seq += 1
                meta = {"stream": stream, "symbols": names, "seq": [seq] * symbols}
                r = c.post("/predict_stream", content=encode_raw_batch(meta, blocks[seq % len(blocks)]))
                if r.status_code != 200:
                    return ClientRun(done, r.text[:200])
                done += 1
        return ClientRun(done)

    return run_clients(worker, base=base, concurrency=concurrency, server_pid=server_pid, symbols=symbols)


def model_calls(base: str) -> tuple[float, float, float]:
    """The service's model-call seconds, model calls and predictions so far (its /metrics)."""
    text = httpx.get(f"{base}/metrics", timeout=10).text

    def total(metric: str) -> float:
        return sum(float(v) for v in re.findall(rf"^{metric}{{[^}}]*}} (\S+)$", text, re.M))

    return (
        total("mmops_model_call_seconds_sum"),
        total("mmops_model_call_seconds_count"),
        total("mmops_predictions_total"),
    )


@dataclass(frozen=True, slots=True)
class ClientRun:
    """One client thread's requests answered, and the first failure's body if it stopped on one."""

    requests: int
    error: str | None = None


def run_clients(
    worker: Callable[[int], ClientRun], *, base: str, concurrency: int, server_pid: int, symbols: int
) -> dict[str, float]:
    """``worker(i)`` in ``concurrency`` threads until they return; their throughput, the CPU of
    the server's process tree and of this (client) process per prediction, and how busy the
    service's model thread was (its model-call metric: the calls' own time)."""
    runs: list[ClientRun] = [ClientRun(0)] * concurrency

    def run(i: int) -> None:
        runs[i] = worker(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(concurrency)]
    calls = model_calls(base)
    server_cpu, client_cpu = tree_cpu_s(server_pid), time.process_time()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    server_cpu, client_cpu = tree_cpu_s(server_pid) - server_cpu, time.process_time() - client_cpu
    model_s, n_calls, windows = (b - a for a, b in zip(calls, model_calls(base), strict=True))
    if errors := [r.error for r in runs if r.error is not None]:
        raise RuntimeError(errors[0])
    requests = sum(r.requests for r in runs)
    predictions = requests * symbols
    return {
        "predictions_per_s": predictions / elapsed,
        "requests_per_s": requests / elapsed,
        "symbols_per_request": symbols,
        "concurrency": concurrency,
        "seconds": elapsed,
        # where the 2 cores went: the server's process tree and this (client) process, per prediction
        "server_cpu_us_per_prediction": 1e6 * server_cpu / max(predictions, 1),
        "client_cpu_us_per_prediction": 1e6 * client_cpu / max(predictions, 1),
        # the model thread: its share of the wall in model calls, and a window's cost there (against
        # onnx_in_process: what sharing 2 cores with the event loop and the clients does to it)
        "model_busy": model_s / elapsed,
        "model_us_per_window": 1e6 * model_s / max(windows, 1),
        "windows_per_model_call": windows / max(n_calls, 1),
    }


def open_version(home: Path, uri: str, version: str, device: Device) -> Any:
    """The registered version's artifact, downloaded and opened the way the service opens it (on the
    providers ``serve.device`` picks, so the baseline runs on the service's device)."""
    from training.artifact import load_predictor, select_providers
    from training.registry import Registry

    reg = Registry(uri, audit_log=home / "logs" / "audit.jsonl", reports=home / "reports")
    folder = reg.download(reg.ref(NAME, version), home / "baseline")
    return load_predictor(folder, providers=select_providers(device).providers)


def onnx_throughput(predictor: Any, windows: np.ndarray, seconds: float) -> dict[str, float]:
    """In-process ``predict`` on one batch, back to back for ``seconds``: windows/s (one thread)."""
    predictor.predict(windows)  # warm-up
    calls = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        predictor.predict(windows)
        calls += 1
    return {"windows_per_s": calls * len(windows) / elapsed, "calls": calls, "batch": len(windows)}


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
    parser.add_argument(
        "--sweep-concurrency", default="", help="comma list: raw bulk at these client counts, e.g. 1,2,8"
    )
    parser.add_argument(
        "--sweep-symbols",
        default="",
        help="comma list: raw bulk with these symbols per request, e.g. 128,2048",
    )
    parser.add_argument(
        "--no-prediction-log",
        action="store_true",
        help="serve with log_predictions off (to see what the log costs; production logs)",
    )
    parser.add_argument(
        "--device",
        choices=["cpu", "auto", "cuda"],
        default="cpu",
        help="serve.device for the service and the in-process baseline (cuda: bench/gpu.sh)",
    )
    parser.add_argument(
        "--families", default=",".join(FAMILIES), help="comma list of the families to run (default: all)"
    )
    parser.add_argument(
        "--serve",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a serve setting for this run (YAML value), e.g. max_batch_windows=512; repeatable",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    families = [f for f in args.families.split(",") if f]
    if unknown := set(families) - set(FAMILIES):
        parser.error(f"--families: unknown {sorted(unknown)}; known: {', '.join(FAMILIES)}")
    serve_overrides = {k: yaml.safe_load(v) for k, _, v in (o.partition("=") for o in args.serve)}

    with tempfile.TemporaryDirectory(prefix="mmops-bench-serving-") as tmp:
        home = Path(tmp)
        t0 = time.perf_counter()
        uri, versions = build_registry(home, args.features, args.train_rows)
        promote(home, uri, versions["sgd"])
        setup_s = time.perf_counter() - t0
        sweep_conc = [int(c) for c in args.sweep_concurrency.split(",") if c]
        sweep_symbols = [int(n) for n in args.sweep_symbols.split(",") if n]
        # The bench's largest bodies (JSON items of 512 LSTM windows of 32 x 67, ~13 MB) are over the
        # 8 MiB serve.max_body_bytes default; the cap is raised here so the forms stay comparable
        # with the earlier rounds (the cap is checked per request, it does not cost throughput).
        proc, base = start_server(
            home,
            uri,
            max_body_bytes=256 * 1024 * 1024,
            log_predictions=not args.no_prediction_log,
            device=args.device,
            **serve_overrides,
        )
        results: dict[str, Any] = {}
        try:
            champion = versions["sgd"]  # approved by build_registry
            for family in families:
                version = versions[family]
                if version != champion:
                    promote(home, uri, version)
                    champion = version
                info = wait_for_version(base, version)
                rows = int(info["window_rows"])
                single = latency(
                    base, body(1, rows, args.features), raw_body(1, rows, args.features), args.requests
                )
                n, secs, conc = args.symbols, args.seconds, args.concurrency
                batched = {
                    "json_items": throughput(
                        base, proc.pid, "/predict", body(n, rows, args.features, 1), n, secs, conc
                    ),
                    "bulk_b64": throughput(
                        base,
                        proc.pid,
                        "/predict_batch",
                        bulk_b64_body(n, rows, args.features, 1),
                        n,
                        secs,
                        conc,
                    ),
                    "bulk_float32": throughput(
                        base,
                        proc.pid,
                        "/predict_batch",
                        bulk_body(n, rows, args.features, 1),
                        n,
                        secs,
                        conc,
                        RAW,
                    ),
                    "bulk_stream": stream_throughput(
                        base, proc.pid, n, rows, args.features, secs, conc, stream_prefix=f"bench-{family}"
                    ),
                }
                predictor = open_version(home, uri, version, args.device)
                same = batch_windows(n, rows, args.features, 1)  # the bulk bodies' windows
                before = onnx_throughput(predictor, same, secs / 2)
                sweep = {}
                for c in sweep_conc:
                    sweep[f"c{c}_n{n}"] = throughput(
                        base,
                        proc.pid,
                        "/predict_batch",
                        bulk_body(n, rows, args.features, 1),
                        n,
                        secs,
                        c,
                        RAW,
                    )
                for m in sweep_symbols:
                    sweep[f"c{conc}_n{m}"] = throughput(
                        base,
                        proc.pid,
                        "/predict_batch",
                        bulk_body(m, rows, args.features, 1),
                        m,
                        secs,
                        conc,
                        RAW,
                    )
                    sweep[f"c{conc}_n{m}"]["onnx_windows_per_s"] = onnx_throughput(
                        predictor, batch_windows(m, rows, args.features, 1), secs / 2
                    )["windows_per_s"]
                after = onnx_throughput(predictor, same, secs / 2)
                onnx = {
                    "windows_per_s": (before["windows_per_s"] + after["windows_per_s"]) / 2,
                    "before_per_s": before["windows_per_s"],
                    "after_per_s": after["windows_per_s"],
                    "batch": n,
                }
                ratio = batched["bulk_float32"]["predictions_per_s"] / onnx["windows_per_s"]
                results[family] = {
                    "version": version,
                    "window_rows": rows,
                    "service_provider": info["champion"]["provider"],
                    "onnx_in_process_provider": predictor.provider,
                    **single,
                    "batched": batched,
                    "onnx_in_process": onnx,
                    "service_over_onnx": ratio,
                    # the worker's path: each symbol's newest row, the windows kept by the service
                    "service_stream_over_onnx": batched["bulk_stream"]["predictions_per_s"]
                    / onnx["windows_per_s"],
                    "bulk_sweep": sweep,
                }
        finally:
            worker_setup.stop_server(proc)
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
        "device": args.device,
        "features": args.features,
        "prediction_log": not args.no_prediction_log,
        "serve_overrides": serve_overrides,
        "setup_s": setup_s,
        "families": results,
        "goals": {
            "lstm_p99_ratio_le_1_5": results["lstm"]["p99_ratio"] <= 1.5 if "lstm" in results else None,
            "service_over_onnx_ge_0_8": {f: r["service_over_onnx"] >= 0.8 for f, r in results.items()},
            "service_stream_over_onnx_ge_0_8": {
                f: r["service_stream_over_onnx"] >= 0.8 for f, r in results.items()
            },
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
                f"bulk raw {r['batched']['bulk_float32']['predictions_per_s']:,.0f}/s, "
                f"stream {r['batched']['bulk_stream']['predictions_per_s']:,.0f}/s | in-process ONNX "
                f"{r['onnx_in_process']['windows_per_s']:,.0f}/s, service/ONNX {r['service_over_onnx']:.2f} "
                f"(stream {r['service_stream_over_onnx']:.2f}) | model thread busy "
                f"{r['batched']['bulk_float32']['model_busy']:.2f}, "
                f"{r['batched']['bulk_float32']['model_us_per_window']:.1f} us a window "
                f"(in-process {1e6 / r['onnx_in_process']['windows_per_s']:.1f})"
            )


if __name__ == "__main__":
    main()
