"""A bounded soak of the real service: N clients for D seconds of good, bad and token-less requests.

``mmops serve --shadow`` over a real MLflow registry (an LSTM champion, an SGD challenger in
shadow), on 127.0.0.1 only. Each client thread sends, at random: valid raw ``/predict_batch``
and ``/predict`` requests (80 %), bad ones (15 %: a wrong feature count, NaN, a window over
``max_window_rows``, a body over ``max_body_bytes``, broken JSON) and valid ones without a token
(5 %). It stops by itself after D seconds or ``MAX_PER_CLIENT`` requests, whichever comes first.

Defaults keep the normal run short (16 clients x 10 s); the full soak is

    MMOPS_SOAK_CLIENTS=50 MMOPS_SOAK_SECONDS=60 MMOPS_SOAK_REPORT=soak.json \
        .venv/bin/pytest -q --log-cli-level=INFO tests/integration/test_serving_soak.py
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import pytest
from model_seed import FEATURES, fit_tiny, register
from test_serving import MAX_BODY, MAX_ROWS, NAME, TOKEN, promote, running_server

from serving.logic import encode_raw_batch
from training.gate import GateConfig
from training.registry import Registry

logger = logging.getLogger(__name__)
CLIENTS = int(os.environ.get("MMOPS_SOAK_CLIENTS", "16"))
SECONDS = float(os.environ.get("MMOPS_SOAK_SECONDS", "10"))
# The count bound: far above what a client gets through in D seconds on this machine (about 20
# requests/s each at 16 clients), so time is what normally stops the run; it only matters if the
# server answers much faster than it can here.
MAX_PER_CLIENT = int(200 * SECONDS)
LOOKBACK = 8  # the LSTM champion's (model_seed.LOOKBACK)
BAD_SHARE, NO_TOKEN_SHARE = 0.15, 0.05
# RSS growth allowed between the first and the last third of the run. Without a leak the server
# may still grow by what requests in flight hold at the busiest moment (each client one body of
# at most MAX_BODY, plus its decoded windows and the JSON answer: under 2 x MAX_BODY) that the
# allocator keeps, and by a backlog of the prediction log's queue (records reference the windows),
# so N x 2 x MAX_BODY; 32 MiB on top for Python arenas, thread stacks and the first-use growth of
# onnxruntime's and pydantic's caches that fall in the first third. Measured 2026-12-01: +13 MiB
# at 16 x 10 s (bound 40), +9 MiB at 50 x 60 s (bound 57). What it can catch: a leak of the median
# valid request's body (32 symbols x 8 rows x 6 features x 4 B = 6 KB) per request is ~120 MB over
# the full soak's ~20,000 requests, over the bound; over the default run's ~3,000 requests (~18 MB)
# it is not, which is what the full run is for.
RSS_SLACK = CLIENTS * 2 * MAX_BODY + 32 * 1024 * 1024


@pytest.fixture(scope="module")
def shadow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    home = tmp_path_factory.mktemp("soak")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    register(fit_tiny("lstm", home / "models"), tracking_uri=uri, name=NAME, family="lstm")  # v1
    register(fit_tiny("sgd", home / "models"), tracking_uri=uri, name=NAME, family="sgd")  # v2
    reg = Registry(uri, audit_log=home / "logs" / "registry_audit.jsonl", reports=home / "reports")
    promote(reg, "1")
    reg.gate(  # a pass sets @challenger
        NAME,
        "2",
        config=GateConfig(min_utility_over_champion=-10),
        evaluate=lambda uri: {"utility": float(uri.rsplit("/", 1)[1])},
    )
    serve = {"model": NAME, "max_body_bytes": MAX_BODY, "max_window_rows": MAX_ROWS, "log_flush_s": 0.2}
    with running_server(home, uri, serve=serve, args=["--shadow"]) as running:
        yield running


@dataclass(frozen=True, slots=True)
class Request:
    kind: str
    path: str
    body: bytes
    expect: int
    token: bool = True
    media_type: str = "application/octet-stream"


def raw(
    n_symbols: int, rows: int, n_features: int, rng: np.random.Generator, fill: float | None = None
) -> bytes:
    windows = rng.normal(size=(n_symbols, rows, n_features))
    if fill is not None:
        windows[-1, -1, -1] = fill
    return encode_raw_batch({"symbols": [f"K{i}USDT" for i in range(n_symbols)], "rows": rows}, windows)


def oversized(rng: np.random.Generator) -> bytes:
    """A raw bulk body just over MAX_BODY (the smallest refused size is the one most likely wrong)."""
    per_symbol = MAX_ROWS * len(FEATURES) * 4
    return raw(MAX_BODY // per_symbol + 1, MAX_ROWS, len(FEATURES), rng)


def pick(rng: np.random.Generator) -> Request:
    draw = rng.random()
    n = int(rng.integers(1, 65))
    if draw < NO_TOKEN_SHARE:
        return Request("no token", "/predict_batch", raw(n, LOOKBACK, len(FEATURES), rng), 401, token=False)
    if draw < NO_TOKEN_SHARE + BAD_SHARE:
        bad = [
            Request("wrong shape", "/predict_batch", raw(n, LOOKBACK, len(FEATURES) - 1, rng), 400),
            Request("nan", "/predict", raw(n, LOOKBACK, len(FEATURES), rng, fill=float("nan")), 400),
            Request("too many rows", "/predict_batch", raw(n, MAX_ROWS + 1, len(FEATURES), rng), 422),
            Request("oversized body", "/predict_batch", oversized(rng), 413),
            Request(
                "bad json",
                "/predict",
                b'{"items": [{"symbol": "A", "window": [[0.1,',
                400,
                media_type="application/json",
            ),
        ]
        return bad[int(rng.integers(len(bad)))]
    path = "/predict_batch" if rng.random() < 0.5 else "/predict"
    return Request("valid", path, raw(n, LOOKBACK, len(FEATURES), rng), 200)


def valid_answer(request: Request, doc: dict) -> str | None:
    """Why a 200 answer is wrong (None when it is right)."""
    if request.path == "/predict":
        values = [s["value"] for s in doc["signals"]]
        return None if values and np.isfinite(values).all() else f"non-finite signals {values[:4]}"
    n = len(doc["symbols"])
    if not (len(doc["values"]) == n and np.isfinite(doc["values"]).all()):
        return f"bad values {doc['values'][:4]}"
    if doc["shadow_version"] != "2" or not (
        len(doc["shadow_values"]) == n and np.isfinite(doc["shadow_values"]).all()
    ):
        return f"bad shadow answer {doc['shadow_version']} {doc['shadow_values'][:4]}"
    return None


def wrong(request: Request, r: httpx.Response) -> str | None:
    """What is wrong with the answer to ``request`` (None when it is right)."""
    if r.status_code != request.expect:
        return f"HTTP {r.status_code}, expected {request.expect}: {r.text[:200]}"
    if r.status_code == 200:
        return valid_answer(request, r.json())
    if r.status_code in (413, 422) and "serve.max_" not in r.text:
        return f"HTTP {r.status_code} without the limit named: {r.text[:200]}"
    return None


def tree_rss_bytes(root: int) -> int:
    """VmRSS of ``root`` and every process below it (mmops serve -> bentoml serve -> its workers)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended while we looked
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    tree, frontier = {root}, [root]
    while frontier:
        pid = frontier.pop()
        children = [c for c, p in parents.items() if p == pid]
        tree.update(children)
        frontier += children
    total = 0
    for pid in tree:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        total += next(
            (int(line.split()[1]) * 1024 for line in status.splitlines() if line.startswith("VmRSS:")), 0
        )
    return total


@pytest.mark.slow
@pytest.mark.timeout(int(SECONDS) + 300)
def test_soak_mixed_traffic_gets_the_right_status_and_the_server_does_not_grow(shadow_server: dict) -> None:
    base, root = shadow_server["base"], shadow_server["proc"].pid
    results: list[tuple[str, str, int, int, float]] = []  # kind, path, expected, status, seconds
    failures: list[str] = []
    lock = threading.Lock()
    start = time.monotonic()
    deadline = start + SECONDS

    def client(i: int) -> None:
        rng = np.random.default_rng(1000 + i)
        mine: list[tuple[str, str, int, int, float]] = []
        with httpx.Client(base_url=base, timeout=30) as c:
            while time.monotonic() < deadline and len(mine) < MAX_PER_CLIENT:
                request = pick(rng)
                headers = {"Content-Type": request.media_type}
                if request.token:
                    headers["Authorization"] = f"Bearer {TOKEN}"
                t0 = time.perf_counter()
                try:
                    r = c.post(request.path, content=request.body, headers=headers)
                except httpx.TransportError as exc:
                    with lock:
                        failures.append(f"{request.kind} {request.path}: {exc!r}")
                    continue
                mine.append(
                    (request.kind, request.path, request.expect, r.status_code, time.perf_counter() - t0)
                )
                why = wrong(request, r)
                if why is not None:
                    with lock:
                        failures.append(f"{request.kind} {request.path}: {why}")
        with lock:
            results.extend(mine)

    rss: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.25):
            rss.append((time.monotonic() - start, tree_rss_bytes(root)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 120)
    stop.set()
    sampler.join()
    elapsed = time.monotonic() - start

    assert not any(t.is_alive() for t in threads), "a client did not stop"
    valid_s = [s for kind, _, _, status, s in results if kind == "valid" and status == 200]
    counts = Counter((kind, status) for kind, _, _, status, _ in results)
    thirds = len(rss) // 3
    first = float(np.mean([b for _, b in rss[:thirds]]))
    last = float(np.mean([b for _, b in rss[-thirds:]]))
    summary = {
        "clients": CLIENTS,
        "seconds": round(elapsed, 1),
        "requests": len(results),
        "per_kind_status": {f"{k} {s}": n for (k, s), n in sorted(counts.items())},
        "valid_p50_ms": round(1000 * float(np.percentile(valid_s, 50)), 1),
        "valid_p99_ms": round(1000 * float(np.percentile(valid_s, 99)), 1),
        "rss_first_third_mib": round(first / 2**20, 1),
        "rss_last_third_mib": round(last / 2**20, 1),
        "rss_max_mib": round(max(b for _, b in rss) / 2**20, 1),
        "rss_slack_mib": round(RSS_SLACK / 2**20, 1),
        "failures": len(failures),
    }
    if report := os.environ.get("MMOPS_SOAK_REPORT"):  # where to keep the figures (a JSON file)
        Path(report).write_text(json.dumps(summary, indent=2))
    logger.info("soak: %s", json.dumps(summary))
    assert failures == [], f"{len(failures)} wrong answers, first: {failures[:5]}"
    assert elapsed < SECONDS + 60  # it stopped by itself (the slowest request is bounded by timeout=30)
    kinds = {"valid", "no token", "wrong shape", "nan", "too many rows", "oversized body", "bad json"}
    assert {kind for kind, _ in counts} == kinds  # each bad kind is ~3 % of hundreds of draws at least
    assert len(valid_s) > 0.7 * len(results)  # ~80 % of the draws are valid, all answered 200
    assert thirds >= 3, f"only {len(rss)} RSS samples"
    assert last - first <= RSS_SLACK, (
        f"server RSS grew {(last - first) / 2**20:.1f} MiB between the first and last third "
        f"(allowed {RSS_SLACK / 2**20:.1f} MiB): {summary}"
    )
