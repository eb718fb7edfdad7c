#!/usr/bin/env bash
# The GPU measurement of issue 16, prepared to run once on a machine with an NVIDIA GPU. NOT RUN YET:
# no session working on issue 16 has been lent a GPU machine; nothing here has run on a GPU.
#
#   cp -r ../shared/data/binance-spot-1m .gpu-data/     # the LSTM trial's bars (4 MB), once
#   OUT=/tmp/gpu-out bash bench/gpu.sh                  # or through the device tool (below)
#
# What it does, each step under its own time limit and all under GPU_BENCH_BUDGET_S (480 s), so it
# stops by itself; every step's outcome goes to $OUT/gpu.json, also when a step fails or is skipped:
#   1. preflight: the GPU (nvidia-smi), Python 3.11, and a package index or a filled uv cache;
#   2. install: make install GPU=1 (the `gpu` group of uv.lock: onnxruntime-gpu, TensorFlow's CUDA);
#   3. providers: what onnxruntime offers, whether a CUDA session opens, what TensorFlow sees;
#   4. serving: bench/serving.py --device cuda (single-request p99 against the /info no-op endpoint,
#      bulk throughput against in-process ONNX Runtime on the same device);
#   5. one LSTM tuning trial (mmops tune --model lstm --trials 1, real BTCUSDT 1m bars) on the GPU and
#      on the CPU (CUDA_VISIBLE_DEVICES=""), the trial's wall time read from each Optuna study (the
#      command goes on to refit, evaluate and register: its limit may cut that, not the trial). On
#      the 2-core development machine the CPU trial took 40 s, the whole command 138 s.
#
# On this workplace's device machines it stops at step 1: they reach no network, carry at most 64 MiB
# (the GPU variant is ~4 GB of wheels: onnxruntime-gpu alone 256 MB, TensorFlow 572 MB) and hold
# Python 3.12, not the 3.11 the lock is for. It needs a GPU machine that can install the lock.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu.log") 2>&1
export PYTHONUNBUFFERED=1 GPU=1
BUDGET=${GPU_BENCH_BUDGET_S:-480}
START=$(date +%s)
STEPS=$OUT/steps.jsonl
: >"$STEPS"
SRC=${MMOPS_SOURCE_DATA:-$PWD/.gpu-data}
WORK=$(mktemp -d /tmp/mmops-gpu-XXXX)
export OUT SRC WORK

# step NAME LIMIT_S CMD...: run CMD under min(LIMIT_S, what is left of BUDGET); record rc and seconds
step() {
  local name=$1 limit=$2 left rc t0
  shift 2
  left=$((BUDGET - ($(date +%s) - START)))
  ((left < limit)) && limit=$left
  if ((limit < 15)); then
    echo "{\"step\": \"$name\", \"rc\": null, \"ms\": 0, \"note\": \"skipped: out of budget\"}" >>"$STEPS"
    return 1
  fi
  echo "== $name (at most $limit s)"
  t0=$(date +%s%N)
  timeout --kill-after=10 "$limit" bash -c '"$@"' _ "$@"  # the steps are shell functions (export -f)
  rc=$?
  echo "{\"step\": \"$name\", \"rc\": $rc, \"ms\": $((($(date +%s%N) - t0) / 1000000))}" >>"$STEPS"
  return $rc
}

preflight() {
  exec > >(tee "$OUT/preflight.txt") 2>&1  # its one-line reason also lands in gpu.json
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader >"$OUT/gpu_device.txt" ||
    { echo "no NVIDIA GPU here (nvidia-smi failed)"; return 1; }
  cat "$OUT/gpu_device.txt"
  command -v python3.11 >/dev/null || uv python find 3.11 >/dev/null 2>&1 ||
    { echo "no Python 3.11 here (python3 is $(python3 --version 2>&1)); uv.lock is for 3.11"; return 1; }
  timeout 10 python3 -c "import urllib.request as u; u.urlopen('https://pypi.org/simple/onnxruntime-gpu/', timeout=8)" ||
    UV_OFFLINE=1 uv sync --frozen --dry-run --no-group cpu --group gpu >/dev/null 2>&1 ||
    { echo "no package index reachable and no uv cache holding the GPU variant: it cannot be installed"; return 1; }
  [ -d "$SRC/binance-spot-1m" ] || { echo "$SRC/binance-spot-1m is missing: cp -r ../shared/data/binance-spot-1m .gpu-data/"; return 1; }
}

providers() {
  .venv/bin/python - <<'EOF' | tee "$OUT/providers.json"
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import onnxruntime as ort
from training.artifact import cuda_starts, select_providers
from training.models import model_class
doc = {"onnxruntime": ort.__version__, "available": ort.get_available_providers(), "cuda_starts": cuda_starts(),
       "auto": select_providers("auto").reason, "tensorflow": model_class("lstm").compute_device()}
print(json.dumps(doc, indent=2))
EOF
}

serving() {
  .venv/bin/python bench/serving.py --device cuda --requests 500 --seconds 3 --json >"$OUT/serving_gpu.json"
}

# tune_once LABEL [ENV...]: one LSTM trial in a fresh MMOPS_HOME (the same seed: the same first trial)
tune_once() {
  local label=$1 home=$WORK/$1
  shift
  mkdir -p "$home"
  env MMOPS_HOME="$home" "$@" .venv/bin/mmops ingest --source binance-dump --path "$SRC/binance-spot-1m" >/dev/null &&
    env MMOPS_HOME="$home" "$@" .venv/bin/mmops tune --model lstm --trials 1 2>&1 | tee "$OUT/tune_$label.log"
}

summary() {
  python3 - "$OUT" "$WORK" <<'EOF'
import json, pathlib, sqlite3, sys
out, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
def load(name):
    p = out / name
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError):
        return None
trials = {}
for label in ("gpu", "cpu"):
    db = work / label / "optuna.db"
    if db.exists():
        rows = sqlite3.connect(db).execute(
            "select state, (julianday(datetime_complete) - julianday(datetime_start)) * 86400 from trials").fetchall()
        trials[label] = [{"state": s, "s": t} for s, t in rows]
def text(name):
    p = out / name
    return p.read_text().strip() if p.exists() else ""
steps = [json.loads(l) for l in (out / "steps.jsonl").read_text().splitlines() if l.strip()]
# a tune step cut by its limit after the trial (in the refit or the evaluation) still measured it
measured = [s["step"] for s in steps if s["step"] == "serving" and s["rc"] == 0]
measured += [f"tune_{k}" for k, v in trials.items() if any(t["state"] == "COMPLETE" for t in v)]
doc = {"bench": "gpu", "device": text("gpu_device.txt") or None, "measured": measured,
       "preflight": text("preflight.txt").splitlines()[-1:] , "steps": steps,
       "providers": load("providers.json"), "serving": load("serving_gpu.json"), "lstm_trial_s": trials}
(out / "gpu.json").write_text(json.dumps(doc, indent=2))
print(json.dumps({k: doc[k] for k in ("device", "steps", "lstm_trial_s")}, indent=2))
EOF
}

export -f preflight providers serving tune_once
if step preflight 30 preflight && step install 240 make install GPU=1 && step providers 60 providers; then
  step serving 180 serving
  step tune_gpu 100 tune_once gpu
  step tune_cpu 100 tune_once cpu CUDA_VISIBLE_DEVICES=
fi
summary
rm -rf "$WORK"
grep -q '"step": "serving", "rc": 0' "$STEPS"  # the exit status: 0 only when the service was measured
