#!/usr/bin/env bash
# One short GPU check of chainrule's CuPy backend, for a borrowed GPU machine: at most ~4 minutes
# (the step limits add up to 235 s; expect about 2).
#
#   OUT=/path/to/results bash scripts/gpu_check.sh
#
# Needs python3 with numpy, cupy, pytest (pytest-timeout if present), hypothesis, scikit-learn,
# scipy and safetensors; chainrule is used from src/ (PYTHONPATH), not installed. Writes at most
# six files to $OUT (default /tmp/chainrule_gpu_check):
#   env.txt        GPU, driver, Python/NumPy/CuPy versions
#   cuda_api.log   tests/test_cuda.py: tensors, nn, optim, io, data, sklearn on device="cuda"
#   cuda_ops.log   tests/test_cuda.py: every registered primitive on the device vs NumPy
#   cpu_suite.log  a backend-independent part of the normal suite (run alongside, on the CPU)
#   gpu_speed.txt  samples/s of an MLP 784-256-128-10 training step, cuda vs cpu, float32
#   summary.txt    the exit status and result line of every step
# Every step runs under `timeout`, so the script always finishes; it exits 0 only when every
# step passed (and the CUDA tests ran rather than skipped).
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-/tmp/chainrule_gpu_check}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
TMP=$(mktemp -d)
T0=$(date +%s)
SUMMARY="$OUT/summary.txt"
: >"$SUMMARY"

note() { echo "$*" | tee -a "$SUMMARY"; }
elapsed() { echo $(( $(date +%s) - T0 )); }
result_line() {  # the last pytest result line of a log ("12 passed, 1 failed in 3.2s")
    grep -E "[0-9]+ (passed|failed|skipped|error|errors|deselected)" "$1" 2>/dev/null \
        | grep -E " in [0-9.]+s" | tail -1 | tr -d "="
}

# ----------------------------------------------------------------------------- 1. environment
{
    echo "date: $(date -u +%FT%TZ)   host: $(hostname)"
    echo "git: $(git rev-parse --short HEAD 2>/dev/null) $(git status --short 2>/dev/null | wc -l) changed file(s)"
    timeout 10 nvidia-smi -L 2>&1
    timeout 10 nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm \
        --format=csv 2>&1
    timeout 20 "$PY" - <<'EOF' 2>&1
import platform, sys
import numpy
print("python", platform.python_version(), sys.executable)
print("numpy", numpy.__version__)
try:
    import cupy
    print("cupy", cupy.__version__)
    rt = cupy.cuda.runtime
    print("CUDA runtime", rt.runtimeGetVersion(), "driver", rt.driverGetVersion(),
          "devices", rt.getDeviceCount())
    props = rt.getDeviceProperties(0)
    print("device 0:", props["name"].decode() if isinstance(props["name"], bytes)
          else props["name"], "cc", f"{props['major']}.{props['minor']}",
          f"{props['totalGlobalMem'] / 2**30:.1f} GiB")
    a = cupy.arange(10.0)
    print("cupy smoke test: sum(arange(10)) =", float(a.sum()))
except Exception as exc:  # reported, and the CUDA tests will say they skipped
    print("CUPY NOT USABLE:", type(exc).__name__, exc)
for name in ("scipy", "sklearn", "safetensors", "pytest", "hypothesis", "pytest_timeout"):
    try:
        mod = __import__(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:
        print(name, "MISSING", exc)
EOF
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"
note "env: done at $(elapsed)s"

TIMEOUT_OPT=""
if "$PY" -c "import pytest_timeout" 2>/dev/null; then
    TIMEOUT_OPT="--timeout 60"  # per test: a hung test fails and the run goes on
fi
PYTEST=("$PY" -m pytest -p no:cacheprovider -o addopts="" --tb=short -rfEs $TIMEOUT_OPT)

# ----------------------------------------------------------------------------- 2. CPU suite
# Runs in the background while the GPU tests run (it uses the CPU only): a backend-independent
# part of the normal suite, here under this machine's NumPy.
(
    timeout -k 5 90 "${PYTEST[@]}" -q tests/test_ops.py tests/test_autograd.py \
        tests/test_tensor.py tests/test_creation.py tests/test_gradcheck.py tests/test_optim.py \
        tests/test_nn_loss.py tests/test_nn_module.py >"$OUT/cpu_suite.log" 2>&1
    echo $? >"$TMP/cpu_rc"
) &
CPU_PID=$!

# ----------------------------------------------------------------------------- 3. CUDA tests
SWEEP="test_unary or test_binary or test_reduce or test_other or test_nondifferentiable or test_float32_stays or test_every_primitive"
set -o pipefail
echo "=== CUDA tests: tensors, nn, optim, io, data, sklearn ==="
timeout -k 5 70 "${PYTEST[@]}" -v --durations=15 tests/test_cuda.py -k "not ($SWEEP)" 2>&1 \
    | tee "$OUT/cuda_api.log"
API_RC=$?
note "cuda_api: rc=$API_RC  $(result_line "$OUT/cuda_api.log")  (at $(elapsed)s)"

echo "=== CUDA tests: every registered primitive ==="
timeout -k 5 85 "${PYTEST[@]}" -v --durations=15 tests/test_cuda.py -k "$SWEEP" 2>&1 \
    | tee "$OUT/cuda_ops.log"
OPS_RC=$?
note "cuda_ops: rc=$OPS_RC  $(result_line "$OUT/cuda_ops.log")  (at $(elapsed)s)"
set +o pipefail

wait "$CPU_PID"
CPU_RC=$(cat "$TMP/cpu_rc" 2>/dev/null || echo 124)
note "cpu_suite: rc=$CPU_RC  $(result_line "$OUT/cpu_suite.log")  (at $(elapsed)s)"

# ----------------------------------------------------------------------------- 4. speed
cat >"$TMP/speed.py" <<'EOF'
"""Training-step throughput of an MLP 784-256-128-10 (ReLU, float32, SGD, cross-entropy):
median of timed steps after warm-up, the device synchronised around each step."""
import time

import numpy as np

import chainrule as cr

try:
    import cupy
    has_gpu = cupy.cuda.runtime.getDeviceCount() > 0
except Exception:
    has_gpu = False


def bench(device, batch, steps, host_batch=False, optimizer="sgd"):
    model = cr.nn.MLP([784, 256, 128, 10], activation="relu", generator=cr.Generator(0))
    model.to(device)
    opt = (cr.optim.SGD(model.parameters(), lr=0.01) if optimizer == "sgd"
           else cr.optim.Adam(model.parameters(), lr=1e-3))
    rng = np.random.default_rng(0)
    X = rng.standard_normal((batch, 784)).astype(np.float32)
    Y = rng.integers(0, 10, batch)
    x, y = cr.tensor(X, device=device), cr.tensor(Y, device=device)
    sync = cupy.cuda.Device().synchronize if device != "cpu" else (lambda: None)

    def step():
        xb, yb = (cr.tensor(X, device=device), cr.tensor(Y, device=device)) if host_batch \
            else (x, y)
        opt.zero_grad()
        loss = cr.nn.functional.cross_entropy(model(xb), yb)
        loss.backward()
        opt.step()
        return loss

    for _ in range(3):
        step()
    sync()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    loss = float(step().item())
    assert np.isfinite(loss)
    med = float(np.median(times))
    return batch / med, med * 1e3


rows = []
for batch in (1024, 8192):
    cpu = bench("cpu", batch, 10 if batch == 1024 else 5)
    rows.append(("cpu", "sgd", "resident", batch, *cpu, 1.0))
    if has_gpu:
        for opt_name in ("sgd", "adam"):
            for host in (False, True):
                g = bench("cuda", batch, 30, host_batch=host, optimizer=opt_name)
                rows.append(("cuda", opt_name, "from host" if host else "resident", batch, *g,
                             g[0] / cpu[0]))
print("MLP 784-256-128-10 relu, float32, one training step (forward, cross_entropy, backward, "
      "optimizer step); batch 'resident' on the device or copied 'from host' each step")
print(f"{'device':<6} {'optim':<5} {'batch data':<10} {'batch':>6} {'samples/s':>12} "
      f"{'ms/step':>9} {'x cpu-sgd':>9}")
for dev, opt_name, where, batch, sps, ms, ratio in rows:
    print(f"{dev:<6} {opt_name:<5} {where:<10} {batch:>6} {sps:>12,.0f} {ms:>9.3f} {ratio:>9.1f}")
if not has_gpu:
    print("NO GPU: only the CPU rows were measured")
EOF
echo "=== speed ==="
timeout -k 5 40 "$PY" "$TMP/speed.py" >"$OUT/gpu_speed.txt" 2>&1
SPEED_RC=$?
cat "$OUT/gpu_speed.txt"
note "speed: rc=$SPEED_RC  (at $(elapsed)s)"

# ----------------------------------------------------------------------------- 5. summary
STATUS=0
for rc in "$API_RC" "$OPS_RC" "$CPU_RC" "$SPEED_RC"; do
    [ "$rc" = 0 ] || STATUS=1
done
for log in cuda_api cuda_ops; do
    if ! grep -qE "[0-9]+ (passed|failed)" "$OUT/$log.log"; then
        note "WARNING: $log ran no test on the GPU (skipped: no CuPy or no CUDA device?)"
        STATUS=1
    fi
    grep -E "^(FAILED|ERROR) " "$OUT/$log.log" | sed "s/^/  $log: /" | tee -a "$SUMMARY"
done
grep -E "^(FAILED|ERROR) " "$OUT/cpu_suite.log" 2>/dev/null | sed "s/^/  cpu_suite: /" \
    | tee -a "$SUMMARY"
note "total: $(elapsed)s, status $STATUS (0: all steps passed)"
echo "=== summary ($SUMMARY) ==="
cat "$SUMMARY"
rm -rf "$TMP"
exit "$STATUS"
