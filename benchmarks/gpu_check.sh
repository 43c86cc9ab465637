#!/usr/bin/env bash
# GPU checks for issue 8 (speed and scale), in well under 5 minutes on one H100/H200:
#   1. throughput: pytorch/examples DCGAN (fp32) vs ganforge dcgan at 32x32 and 64x64, bf16 and fp16
#      (benchmarks/throughput.py: img/s, ratio, FLOP/s vs the measured bf16 matmul peak, peak memory,
#      sampling and FID feature-extraction throughput);
#   2. mixed precision on the GPU: wgan_gp (gradient penalty) and dcgan with r1 under fp32 / bf16 / fp16
#      (fp16 runs with the GradScaler): penalties and losses side by side, all finite;
#   3. DDP over NCCL with torchrun when more than one GPU is visible (skipped otherwise).
# Run from the repository root:
#   bash benchmarks/gpu_check.sh            # logs to $OUT/gpu_check.log when $OUT is set
# Needs a CUDA build of torch plus numpy, pillow, safetensors, pyyaml, tqdm, matplotlib, scikit-learn.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG=${OUT:-/tmp}/gpu_check.log
exec > >(tee "$LOG") 2>&1
status=0
step() { echo; echo "=== $* ($(date +%T))"; }

step "environment"
nvidia-smi -L || true
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'gpus', torch.cuda.device_count(), torch.cuda.get_device_name(0), 'bf16', torch.cuda.is_bf16_supported())" || exit 1

step "throughput, bf16 (ganforge precision=bf16; the reference is fp32 as the tutorial writes it)"
timeout 150 $PY benchmarks/throughput.py --device cuda --precision bf16 --res 32 64 --rounds 5 --steps 20 || status=1

step "throughput, fp16 with GradScaler, 64x64"
timeout 90 $PY benchmarks/throughput.py --device cuda --precision fp16 --res 64 --rounds 5 --steps 20 --skip-features || status=1

step "penalties under autocast vs fp32 (20 steps each, same seed)"
timeout 120 $PY - <<'EOF' || status=1
import json, tempfile, ganforge
from pathlib import Path
common = dict(device="cuda", steps=20, batch_size=64, sample_every=20, checkpoint_every=20, log_every=20, num_samples=16)
runs = {"wgan_gp": ("D/gp", {}), "dcgan": ("D/r1", {"r1_gamma": 10.0})}
with tempfile.TemporaryDirectory() as tmp:
    for recipe, (key, extra) in runs.items():
        vals = {}
        for precision in ("fp32", "bf16", "fp16"):
            s = ganforge.train(recipe, out=Path(tmp) / f"{recipe}-{precision}", progress=False,
                               precision=precision, **common, **extra)
            row = s["last_log"]
            vals[precision] = (row[key], row["D/loss"], row["images_per_s"])
        print(recipe, " ".join(f"{p}: {key}={v[0]:.4f} D/loss={v[1]:.4f} ({v[2]:.0f} img/s)" for p, v in vals.items()))
        assert all(abs(v) < float("inf") for t in vals.values() for v in t), vals
EOF

ngpu=$($PY -c "import torch; print(torch.cuda.device_count())")
if [ "$ngpu" -ge 2 ]; then
  step "DDP over NCCL: torchrun --nproc_per_node=2 -m ganforge train dcgan"
  out=$(mktemp -d)
  timeout 120 $PY -m torch.distributed.run --standalone --nproc_per_node=2 -m ganforge train dcgan --device cuda \
      --steps 200 --out "$out/ddp" --quiet resolution=32 sample_every=200 checkpoint_every=100 log_every=50 || status=1
  $PY -c "import json,sys; s=json.load(open('$out/ddp/summary.json')); print(json.dumps(s['performance']), s['last_log'])" || status=1
else
  step "DDP over NCCL skipped: $ngpu GPU visible (needs 2)"
fi
echo; echo "gpu_check finished with status $status (log: $LOG)"
exit $status
