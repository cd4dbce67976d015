#!/usr/bin/env bash
# The GPU checks in one unattended run, under 10 minutes on one GPU:
#   bash benchmarks/gpu_check.sh            # figures to $OUT/gpu_check.md (or ./gpu_check.md)
# 1. the tests marked cuda; 2. the speed table on CUDA, fp32 and bf16, toy and MNIST conv
# (MNIST rows when the digits are at $WGANLAB_MNIST_DIR or ~/.cache/wganlab/mnist); 3. the sweep
# against sequential runs; 4. one time-to-quality row (ring8 bar). Each step has its own time
# limit, and a step that fails or runs out of time is written as such; the others still run.
# Run from the repository root after the README's set-up.
set -u
out="${OUT:-.}/gpu_check.md"
mkdir -p "$(dirname "$out")"
step() {  # step TITLE SECONDS COMMAND...: runs it with a limit, its output's tail into the report
    local title=$1 limit=$2; shift 2
    echo "## $title" >> "$out"
    local started=$SECONDS
    { echo '```'; timeout "$limit" "$@" 2>&1 | tail -n 25; echo "exit ${PIPESTATUS[0]} after $((SECONDS - started)) s"; echo '```'; } >> "$out"
    echo "gpu_check: $title done ($((SECONDS - started)) s)" >&2
}
echo "# wganlab GPU check, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')" > "$out"
if ! python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "no CUDA GPU visible to torch: nothing measured" | tee -a "$out"
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >> "$out" 2>&1
python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >> "$out"
rows="toy512 toy512-bf16 toy128 toy128-bf16"
mnist_dir="${WGANLAB_MNIST_DIR:-$HOME/.cache/wganlab/mnist}"
if [ -f "$mnist_dir/train-images-idx3-ubyte" ]; then
    export WGANLAB_MNIST_DIR="$mnist_dir"
    rows="$rows mnist mnist-bf16"
else
    echo "no MNIST digits at $mnist_dir: the MNIST rows are left out" >> "$out"
fi
step "tests marked cuda" 150 python -m pytest -q -m cuda tests
step "speed table on CUDA (steps/s, naive loop on the same GPU)" 200 \
    python benchmarks/speed.py --device cuda --rows $rows --repeats 2 --toy-steps 100 --small-toy-steps 300 --mnist-steps 50
step "sweep of 32 runs against the same runs one after another" 100 \
    python benchmarks/speed.py --device cuda --rows sweep32 --repeats 1 --sweep-steps 50
step "time to the ring8 bar (default preset against the naive loop)" 120 \
    python benchmarks/time_to_quality.py --device cuda --budget 90 --check-every 15
echo "gpu_check: figures in $out" >&2
