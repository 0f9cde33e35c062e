#!/usr/bin/env bash
# GPU readiness check for one H100/H200 (issues 12, 16): fits in about 9 minutes (stage limits sum to 8.5).
#   bash bench/gpu_check.sh [OUT]      (OUT: where logs and bench tables go; default gpu_check_out/)
# 1. the suite's CUDA-relevant tests (model + trainer; tests that need CUDA skip themselves without it)
# 2. seed-s smoke grids in bf16 + torch.compile: dense and lowrank-32 on WSD with two branches (killed
#    with SIGKILL after 45 s, then resumed; rows checked: no duplicates, loss falls), and a guided
#    lowrank-32 (cosine: the guide fades over one schedule)
# 3. scalelab bench train --device cuda --preset seed-m --compile
# 4. scalelab bench ffn --device cuda at width 5120
# Each stage has its own time limit; the script goes on after a failed stage and exits 1 if any failed.
# Report only numbers this script measured, with the device, torch version and date it prints.
set -u
cd "$(dirname "$0")/.."
OUT=${1:-gpu_check_out}
mkdir -p "$OUT"
PY=${PYTHON:-python}
fail=0
stage() {  # stage NAME SECONDS CMD...
  local name=$1 secs=$2; shift 2
  echo "== $name (limit ${secs}s): $*"
  local t0=$SECONDS
  if timeout "$secs" "$@" >"$OUT/$name.log" 2>&1; then
    echo "   ok in $((SECONDS - t0)) s"
  else
    echo "   FAILED (exit $?) after $((SECONDS - t0)) s: tail of $OUT/$name.log"; tail -n 20 "$OUT/$name.log"; fail=1
  fi
}

"$PY" - <<'PYEOF' | tee "$OUT/env.txt"
import datetime, torch
print("date", datetime.date.today().isoformat(), "torch", torch.__version__, "cuda", torch.version.cuda)
assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine"
print("device", torch.cuda.get_device_name(0))
PYEOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

stage tests 120 "$PY" -m pytest -q -x -p no:cacheprovider tests/model tests/run/test_train.py tests/run/test_distributed.py

# a guided variant fades its guide over one schedule (no WSD branches), so: one WSD grid (dense and
# lowrank-32, two cooldown branches) and one cosine grid (lowrank-32 with the seeds' guide)
common='seeds = [0]
[data]
source = "stdlib"
[model]
widths = [768]
n_layers = 12
heads = 12
seq_len = 1024
vocab_size = 50304
vocab_multiple = 64
[optimizer]
lr = 6e-4
batch_size = 32
micro_batch = 16
compile = true
dtype = "bfloat16"
[eval]
points = 4
val_tokens = 65536'
cat > "$OUT/smoke-wsd.toml" <<TOML
name = "gpu-smoke-wsd"
$common
[[variants]]
structure = "dense"
[[variants]]
structure = "lowrank"
fraction = 0.32   # lowrank-32: the seeds' 32% setting (rank 192 at d 768)
[budgets]
tokens = [3276800, 6553600]   # 100 and 200 steps of 32 x 1024 tokens
[schedule]
kind = "wsd"
warmup = 0.1
cooldown = 0.2
TOML
cat > "$OUT/smoke-guided.toml" <<TOML
name = "gpu-smoke-guided"
$common
[[variants]]
structure = "lowrank"
fraction = 0.32   # lowrank-32: the seeds' 32% setting (rank 192 at d 768)
guide = true
[budgets]
tokens = [4915200]   # 150 steps
[schedule]
kind = "cosine"
warmup = 0.1
TOML
# killed mid-run (SIGKILL after 45 s), then the same command resumes from the checkpoints
echo "== smoke-wsd-killed: SIGKILL after 45 s"
timeout -s KILL 45 "$PY" -m scalelab.cli run --grid "$OUT/smoke-wsd.toml" --out "$OUT/runs" --device cuda \
  --checkpoint-every 20 >"$OUT/smoke-wsd-killed.log" 2>&1
echo "   exit $? (137 = killed as intended)"
stage smoke-wsd 150 "$PY" -m scalelab.cli run --grid "$OUT/smoke-wsd.toml" --out "$OUT/runs" --device cuda
stage smoke-rows 30 "$PY" - "$OUT/runs" <<'PYEOF'
import glob, sys
import pandas as pd
files = glob.glob(sys.argv[1] + "/gpu-smoke-wsd__*.parquet")
assert len(files) == 2, files
for f in files:  # one file per run, no duplicated rows, and the loss falls from the first to the last final
    df = pd.read_parquet(f)
    assert not df.duplicated(["run_id", "step", "budget", "final"]).any(), f
    fin = df[df["final"]].sort_values("tokens")
    assert df["val_loss"].iloc[0] > fin["val_loss"].iloc[-1], f
    print(f, "finals", list(fin["val_loss"].round(4)), "bf16" if "cuda" in str(df["device"].iloc[0]) else "")
PYEOF
stage smoke-guided 90 "$PY" -m scalelab.cli run --grid "$OUT/smoke-guided.toml" --out "$OUT/runs" --device cuda
stage bench-train 75 "$PY" -m scalelab.cli bench train --device cuda --preset seed-m --compile --out "$OUT" --name train-seed-m
stage bench-ffn 45 "$PY" -m scalelab.cli bench ffn --device cuda --widths 5120 --out "$OUT" --name ffn-5120
echo "== done: logs and tables in $OUT/ ($( [ $fail -eq 0 ] && echo all stages ok || echo SOME STAGES FAILED ))"
exit $fail
