#!/usr/bin/env bash
# On the emulated GPU only (its DENSERL_EMU_TRACE lines): a PRIME run allocates and frees
# device memory before and during its first RL step, and never after. On a GPU a cudaFree
# may synchronize the whole device (the driver's documentation says so) and a cudaMalloc
# can take milliseconds, so a buffer that grows with the lengths a later step brings stalls
# the run there. Checked for fp32 and for bf16
# (whose scratch buffers are sized at the model's token capacity the first time each is used).
# Prints the device waits per RL step for the record. Usage: steady_state.sh path/to/denserl
set -u
BIN=$(realpath "$1")
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fails=0
for prec in fp32 bf16; do
    heads=()
    [ $prec = bf16 ] && heads=(--set model.num_attention_heads=3 --set model.num_key_value_heads=1)
    if ! DENSERL_EMU_TRACE=1 "$BIN" train configs/demo.json --set device=cuda \
        --set precision=$prec "${heads[@]}" --set sft.steps=4 --set rl.steps=4 \
        --set rl.log_every=1 --set rl.prompts_per_step=4 --set rl.acc_lo=0 --set rl.acc_hi=1 \
        --set task.eval_size=1 --set run_dir="$W/$prec" >"$W/$prec.out" 2>&1; then
        echo "FAIL the $prec run:"
        tail -5 "$W/$prec.out"
        exit 1
    fi
    python3 - "$W/$prec.out" $prec <<'PY' || fails=$((fails + 1))
import collections, sys
path, prec = sys.argv[1], sys.argv[2]
step, before, after, waits = 0, 0, [], collections.Counter()
for line in open(path):
    if line.startswith("emu: "):
        what = line.split()[1]
        if step == 0:
            before += what == "cudaMalloc"
        elif step > 0:
            if what in ("cudaMalloc", "cudaFree"):
                after.append(f"step {step + 1}: {line.strip()}")
            if what in ("cudaMemcpy", "cudaMemcpy2D", "cudaStreamSynchronize",
                        "cudaDeviceSynchronize", "cudaEventSynchronize"):
                waits[step + 1] += 1
    elif line.startswith("rl "):
        step = int(line.split()[1].split("/")[0])
    elif line.startswith("eval | after RL"):
        step = -1
if before == 0:
    print(f"FAIL {prec}: no emulation trace before the RL steps (DENSERL_EMU_TRACE ignored?)")
    sys.exit(1)
print(f"{prec}: {before} device allocations before and in the first RL step; waits for the "
      "device in steps 2-4: " + ", ".join(str(waits[s]) for s in (2, 3, 4)))
for a in after[:5]:
    print("   ", a)
ok = not after and step == -1
print(("PASS" if ok else "FAIL") + f" {prec}: no device allocation or release in RL steps 2 to 4"
      + ("" if step == -1 else " (the run's lines were not found)"))
sys.exit(0 if ok else 1)
PY
done
exit $((fails > 0))
