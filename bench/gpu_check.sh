#!/usr/bin/env bash
# GPU readiness check for one H100/H200 (issues 12, 16): fits in about 9 minutes (stage limits sum to 8.5).
#   bash bench/gpu_check.sh [--device cuda|cpu] [--smoke] [--compile] [OUT]
#   (OUT: where logs and bench tables go; default gpu_check_out/)
# 1. the suite's CUDA-relevant tests (model + trainer; tests that need CUDA skip themselves without it)
# 2. seed-s smoke grids in bf16 + torch.compile: dense and lowrank-32 on WSD with two branches (killed
#    with SIGKILL at its first checkpoint, then resumed; rows checked: no duplicates, loss falls), and a
#    guided lowrank-32 (cosine: the guide fades over one schedule)
# 3. scalelab bench train --device cuda --preset seed-m --compile
# 4. scalelab bench ffn --device cuda at width 5120
# --smoke: the same stages at tiny shapes (d 32, 2 layers, 32 tokens), short limits and no stage 1, in about
# a minute. --device cpu implies --smoke and runs every stage on CPU with bf16 autocast and fused AdamW (CI
# does, tests/run/test_compile.py), so that the first GPU run can fail only on what is CUDA-specific. A smoke
# run leaves torch.compile off unless --compile is given: inductor's C++ compiles take minutes of CPU for
# these stages (the trainer's compiled path is tested on CPU in tests/run/test_compile.py).
# Each stage has its own time limit; the script goes on after a failed stage and exits 1 if any failed.
# Report only numbers this script measured, with the device, torch version and date it prints.
set -u
cd "$(dirname "$0")/.."
DEVICE=cuda SMOKE=0 COMPILE=
while [ $# -gt 0 ]; do
  case $1 in
    --device) DEVICE=${2:-}; shift; [ $# -eq 0 ] || shift ;;
    --device=*) DEVICE=${1#--device=}; shift ;;
    --smoke) SMOKE=1; shift ;;
    --compile) COMPILE=1; shift ;;
    -*) echo "gpu_check.sh: unknown option $1: use --device cuda|cpu, --smoke, --compile, then OUT" >&2; exit 2 ;;
    *) break ;;
  esac
done
case $DEVICE in
  cuda) ;;
  cpu) SMOKE=1 ;;
  *) echo "gpu_check.sh: --device ${DEVICE:-(empty)} is not cuda or cpu: use --device cuda or --device cpu" >&2; exit 2 ;;
esac
[ -n "$COMPILE" ] || COMPILE=$((1 - SMOKE))
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
lim() {  # lim GPU_SECONDS SMOKE_SECONDS: a stage's time limit in this mode
  if [ "$SMOKE" -eq 1 ]; then echo "$2"; else echo "$1"; fi
}
echo "== mode: device $DEVICE, $([ "$SMOKE" -eq 1 ] && echo "smoke (tiny shapes)" || echo "full"),\
 compile $([ "$COMPILE" -eq 1 ] && echo on || echo off)"

"$PY" - "$DEVICE" <<'PYEOF' | tee "$OUT/env.txt"
import datetime, platform, sys, torch
print("date", datetime.date.today().isoformat(), "torch", torch.__version__, "cuda", torch.version.cuda)
if sys.argv[1] == "cuda":
    assert torch.cuda.is_available(), "no CUDA device: this script is for a GPU machine (--device cpu: the CPU smoke)"
    print("device", torch.cuda.get_device_name(0))
else:
    print("device cpu", platform.processor() or platform.machine(), "threads", torch.get_num_threads())
PYEOF
[ "${PIPESTATUS[0]}" -eq 0 ] || exit 1

if [ "$SMOKE" -eq 1 ]; then
  echo "== tests: left out in smoke mode (run the suite itself: pytest)"
else
  stage tests 120 "$PY" -m pytest -q -x -p no:cacheprovider tests/model tests/run/test_train.py tests/run/test_distributed.py
fi

# a guided variant fades its guide over one schedule (no WSD branches), so: one WSD grid (dense and
# lowrank-32, two cooldown branches) and one cosine grid (lowrank-32 with the seeds' guide)
compile_toml=$([ "$COMPILE" -eq 1 ] && echo true || echo false)
if [ "$SMOKE" -eq 1 ]; then  # tiny shapes: what runs is the same code, at d 32 with 32-token sequences
  shape='widths = [32]
n_layers = 2
heads = 2
seq_len = 32
vocab_size = 256'
  run_tokens='batch_size = 8
micro_batch = 4'
  wsd_budgets='[5120, 10240]   # 20 and 40 steps of 8 x 32 tokens'
  guided_budget='[7680]   # 30 steps'
  eval_toml='points = 4
val_tokens = 2048'
  ckpt_every=4
else
  shape='widths = [768]
n_layers = 12
heads = 12
seq_len = 1024
vocab_size = 50304
vocab_multiple = 64'
  run_tokens='batch_size = 32
micro_batch = 16'
  wsd_budgets='[3276800, 6553600]   # 100 and 200 steps of 32 x 1024 tokens'
  guided_budget='[4915200]   # 150 steps'
  eval_toml='points = 4
val_tokens = 65536'
  ckpt_every=20
fi
common="seeds = [0]
[data]
source = \"stdlib\"
[model]
$shape
[optimizer]
lr = 6e-4
$run_tokens
compile = $compile_toml
dtype = \"bfloat16\"
[eval]
$eval_toml"
cat > "$OUT/smoke-wsd.toml" <<TOML
name = "gpu-smoke-wsd"
$common
[[variants]]
structure = "dense"
[[variants]]
structure = "lowrank"
fraction = 0.32   # lowrank-32: the seeds' 32% setting (rank 192 at d 768)
[budgets]
tokens = $wsd_budgets
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
tokens = $guided_budget
[schedule]
kind = "cosine"
warmup = 0.1
TOML
# killed mid-run with SIGKILL once its first checkpoint is written (or after the limit), then the same command
# resumes from the checkpoints
kill_limit=$(lim 90 60)
echo "== smoke-wsd-killed: SIGKILL at the first checkpoint (at most ${kill_limit}s)"
rm -rf "$OUT/runs"
"$PY" -m scalelab.cli run --grid "$OUT/smoke-wsd.toml" --out "$OUT/runs" --device "$DEVICE" \
  --checkpoint-every "$ckpt_every" >"$OUT/smoke-wsd-killed.log" 2>&1 &
pid=$!
t0=$SECONDS
while kill -0 "$pid" 2>/dev/null && [ $((SECONDS - t0)) -lt "$kill_limit" ]; do
  compgen -G "$OUT/runs/.ckpt/*.pt" >/dev/null && break
  sleep 0.05
done
{ kill -KILL "$pid" && wait "$pid"; } 2>/dev/null  # (no "Killed" note from the shell)
echo "   exit $? after $((SECONDS - t0)) s (137 = killed as intended)"
stage smoke-wsd "$(lim 150 90)" "$PY" -m scalelab.cli run --grid "$OUT/smoke-wsd.toml" --out "$OUT/runs" --device "$DEVICE"
stage smoke-rows 30 "$PY" - "$OUT/runs" "$OUT/smoke-wsd.log" <<'PYEOF'
import glob, json, sys
import pandas as pd
files = glob.glob(sys.argv[1] + "/gpu-smoke-wsd__*.parquet")
assert len(files) == 2, files
for f in files:  # one file per run, no duplicated rows, and the loss falls from the first to the last final
    df = pd.read_parquet(f)
    assert not df.duplicated(["run_id", "step", "budget", "final"]).any(), f
    fin = df[df["final"]].sort_values("tokens")
    assert len(fin) == 2 and df["val_loss"].iloc[0] > fin["val_loss"].iloc[-1], f
    dtype = json.loads(df["config"].iloc[0])["train"]["dtype"]
    print(f, "finals", list(fin["val_loss"].round(4)), dtype, df["device"].iloc[0])
# the killed run was resumed from its checkpoint, not trained again from the start
assert "resumed" in open(sys.argv[2]).read(), "no run was resumed: the kill came before the first checkpoint"
PYEOF
stage smoke-guided "$(lim 90 60)" "$PY" -m scalelab.cli run --grid "$OUT/smoke-guided.toml" --out "$OUT/runs" \
  --device "$DEVICE"
compile_flag=$([ "$COMPILE" -eq 1 ] && echo --compile)
if [ "$SMOKE" -eq 1 ]; then
  stage bench-train 60 "$PY" -m scalelab.cli bench train --device "$DEVICE" --preset tiny --variants dense,lowrank-32 \
    --batch 4 --seq-len 32 --steps 2 --warmup 1 $compile_flag --out "$OUT" --name train-tiny
  stage bench-ffn 60 "$PY" -m scalelab.cli bench ffn --device "$DEVICE" --widths 64 --tokens 256 --kinds lowrank \
    --fractions 32 --repeats 2 ${compile_flag} --out "$OUT" --name ffn-64
else
  stage bench-train 75 "$PY" -m scalelab.cli bench train --device cuda --preset seed-m --compile --out "$OUT" \
    --name train-seed-m
  stage bench-ffn 45 "$PY" -m scalelab.cli bench ffn --device cuda --widths 5120 --out "$OUT" --name ffn-5120
fi
echo "== done: logs and tables in $OUT/ ($( [ $fail -eq 0 ] && echo all stages ok || echo SOME STAGES FAILED ))"
exit $fail
