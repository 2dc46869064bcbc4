#!/usr/bin/env bash
# One-shot GPU benchmark of training and inference, ours against the reference (tudelft/event_flow), LIF-FireNet,
# batch 8, 128x128: prints JSON lines and fails fast. About 1-2 minutes on an H100 (two Python processes).
#
# usage, from the repository root on the GPU machine (eventflow need not be installed; torch, numpy, h5py, tqdm and
# pyyaml are enough, hdf5plugin is not needed):
#     bash benchmarks/gpu_bench.sh
# The reference must be present: third_party/event_flow (git-ignored: carry it to the machine) or $EVENTFLOW_REFERENCE.
# GPU_BENCH_CPP=1 also measures the C++/CUDA LIF operator (compiled on first use with nvcc: minutes; off by default).
# A dry run on a CPU with tiny sizes (checks the script, not the speed):
#     GPU_BENCH_DEVICE=cpu GPU_BENCH_TINY=1 bash benchmarks/gpu_bench.sh
#
# Output, one JSON object per line:
#   1. benchmarks/bench_train.py: reference vs ours (eager, torch LIF core; "torch+graph": inference replayed as CUDA
#      graphs; "cpp" with GPU_BENCH_CPP=1), rates, speedups and the parity of flows and first loss;
#   2. eventflow bench --amp: ours under float16 autocast (numbers differ from float32; reported separately).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"

DEVICE="${GPU_BENCH_DEVICE:-cuda}"
if [[ "${GPU_BENCH_TINY:-0}" == "1" ]]; then
    size=(--batch 2 --resolution 16 16); steps=(--steps 1 --warmup 1); rounds=1; infer=3
else
    size=(--batch 8 --resolution 128 128); steps=(--steps 10 --warmup 2); rounds=3; infer=50
fi

gpu="$(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
echo "{\"gpu_bench\": \"start\", \"date\": \"$(date -u +%FT%TZ)\", \"device\": \"$DEVICE\", \"gpu\": \"$gpu\"}"
"$PY" -c "
import sys, torch
assert '$DEVICE' == 'cpu' or torch.cuda.is_available(), 'CUDA is not available'
print('{\"torch\": \"%s\", \"cuda\": \"%s\", \"python\": \"%s\"}' % (torch.__version__, torch.version.cuda, sys.version.split()[0]))
"

variants="torch"
if [[ "$DEVICE" == cuda* ]]; then
    variants="$variants,torch+graph"
fi
if [[ "${GPU_BENCH_CPP:-0}" == "1" ]]; then
    variants="$variants,cpp"
fi
timeout 150 "$PY" benchmarks/bench_train.py --device "$DEVICE" "${size[@]}" "${steps[@]}" --rounds "$rounds" \
    --infer-steps "$infer" --variants "$variants"
timeout 60 "$PY" -m eventflow bench --model LIFFireNet --device "$DEVICE" "${size[@]}" "${steps[@]}" --amp \
    --lif-backend torch
echo '{"gpu_bench": "done"}'
