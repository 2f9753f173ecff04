#!/usr/bin/env bash
# What: EFT training across 3 "nodes" of the network-namespace cluster (cluster/netns, TCP between namespaces,
#       started with launch/train-hosts): the head matches a single-rank run on the same global batch; then a rank
#       killed mid-training (RADA_FAULT=kill on rank 1, forwarded with mpirun -x) ends the job within 30 s with a
#       message, and `--resume auto` finishes with the same final head as an uninterrupted 3-node run. Then FFT
#       across 2 nodes with the default fft.overlap (auto: on across nodes), whose gradient buckets are reduced
#       over TCP by the progress thread during backward: losses and parameters match one rank.
#       Exits 77 (skipped) where namespaces cannot be created (no root/capabilities).
# Example: bash launch/tests/netns-train.sh .build/debug/rada
# Expected: exit 0.
set -uo pipefail
rada="$(cd "$(dirname "${1:?usage: netns-train.sh RADA_BINARY}")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/launch/common.sh"
net="$root/cluster/netns"
work="$(mktemp -d /tmp/rada-netns-train.XXXXXX)"
if ! "$net/up" 3 >/dev/null 2>&1; then
  echo "skipped: cannot create network namespaces here (needs root with CAP_NET_ADMIN/CAP_SYS_ADMIN)"
  "$net/down" >/dev/null 2>&1; rm -rf "$work"; exit 77
fi
trap '"$net/down" >/dev/null 2>&1; rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

"$rada" synth --out "$work/data" --pretrain-per-class 0 --train-per-class 4 --test-per-class 2 >/dev/null || fail "rada synth"
"$rada" create-model --preset tiny --out "$work/tiny.safetensors" >/dev/null || fail "rada create-model"
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n10.77.0.3 slots=1\n' > "$work/hostfile"
# Global batch 6 = 3 ranks x 2; fixed order (--no-shuffle) so 1 rank and 3 ranks see the same batches.
train_args=(--setting eft --model "$work/tiny.safetensors" --train "imagefolder:$work/data/train"
            --eval "imagefolder:$work/data/test" --steps 6 --batch-size 6 --no-augment --checkpoint-every 1
            --log-every 1 --feature-cache "$work/cache" --threads 1)
nodes() {  # nodes RUN_DIR [train-hosts options...]: a 3-node run through launch/train-hosts
  local dir="$1"; shift
  "$root/launch/train-hosts" "$work/hostfile" --iface 10.77.0.0/24 --agent "$net/agent" --yield --rada "$rada" "$@" \
    -- "${train_args[@]}" --run-dir "$dir"
}

"$rada" train "${train_args[@]}" --run-dir "$work/single" > "$work/single.log" 2>&1 || fail "single-rank run: $(tail -5 "$work/single.log")"
nodes "$work/three" > "$work/three.log" 2>&1 || fail "3-node run: $(tail -20 "$work/three.log")"
grep -q '"size": 3' "$work/three/world.json" || fail "world.json is not 3 ranks: $(cat "$work/three/world.json")"
for h in node1 node2 node3; do grep -q "\"host\": \"$h\"" "$work/three/world.json" || fail "no rank on $h: $(cat "$work/three/world.json")"; done
# 1 rank vs 3 ranks: the same math with the batch's sums in another order (allreduce), so float rounding differs;
# 1e-5 relative is far below the change one step makes (lr x gradient), far above float32 reordering noise.
cmp="$("$rada" selftest compare "$work/single/head.safetensors" "$work/three/head.safetensors" --tolerance 1e-5)" \
  || fail "3 nodes vs 1 rank: $cmp"

# A rank killed after step 3: the job must end within 30 s with a message naming the lost rank.
start=$SECONDS
hosts=("$root/launch/train-hosts" "$work/hostfile" --iface 10.77.0.0/24 --agent "$net/agent" --yield --rada "$rada")
RADA_FAULT=kill RADA_FAULT_STEP=3 RADA_FAULT_RANK=1 timeout 90 "${hosts[@]}" -- "${train_args[@]}" --run-dir "$work/faulted" \
  > "$work/faulted.log" 2>&1; rc=$?
took=$((SECONDS - start))
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "job with a killed rank exited $rc: $(tail -10 "$work/faulted.log")"
[ $took -le 30 ] || fail "job with a killed rank took ${took}s (limit 30 s)"
grep -Eq "rank 1 .*exited on signal 9|signal 9 \(Killed\)" "$work/faulted.log" || fail "no message about the lost rank: $(tail -20 "$work/faulted.log")"
[ -e "$work/faulted/COMPLETE" ] && fail "a faulted run wrote COMPLETE"
# Resume on the same 3 nodes: the final head equals the uninterrupted run's (same steps, same reduction order).
"${hosts[@]}" -- "${train_args[@]}" --run-dir "$work/faulted" --resume auto > "$work/resumed.log" 2>&1 \
  || fail "resume: $(tail -20 "$work/resumed.log")"
grep -q "resumed from" "$work/resumed.log" || fail "the rerun did not resume from a checkpoint: $(tail -20 "$work/resumed.log")"
cmp="$("$rada" selftest compare "$work/three/head.safetensors" "$work/faulted/head.safetensors" --tolerance 1e-6)" \
  || fail "resumed vs uninterrupted: $cmp"
resumed="$cmp"

# FFT on 2 nodes, default fft.overlap, 10 KB buckets (many reductions in flight over TCP) vs 1 rank; SGD so that
# parameter differences stay lr x gradient differences (see fft-distributed.sh).
printf '10.77.0.1 slots=1\n10.77.0.2 slots=1\n' > "$work/hostfile2"
fft=(--setting fft --model "$work/tiny.safetensors" --train "imagefolder:$work/data/train" --steps 3 --batch-size 8
     --no-shuffle --no-augment --optim sgd --lr 0.05 --alpha 0.1 --threads 1 --log-every 1 --set fft.bucketMB=0.01)
"$rada" train "${fft[@]}" --run-dir "$work/fft1" > "$work/fft1.log" 2>&1 || fail "fft on 1 rank: $(tail -5 "$work/fft1.log")"
"$root/launch/train-hosts" "$work/hostfile2" --iface 10.77.0.0/24 --agent "$net/agent" --yield --rada "$rada" \
  -- "${fft[@]}" --run-dir "$work/fft2" > "$work/fft2.log" 2>&1 || fail "fft on 2 nodes: $(tail -20 "$work/fft2.log")"
grep -q "during backward on a progress thread" "$work/fft2.log" \
  || fail "the 2-node FFT run did not reduce during backward on the progress thread: $(grep -i allreduce "$work/fft2.log")"
same_losses "$work/fft1/metrics.jsonl" "$work/fft2/metrics.jsonl" || fail "fft losses, 2 nodes vs 1 rank"
for f in model head; do
  out="$("$rada" selftest compare "$work/fft1/$f.safetensors" "$work/fft2/$f.safetensors" --tolerance 1e-5)" \
    || fail "fft $f.safetensors, 2 nodes vs 1 rank: $out"
done
echo "netns train: 3 nodes match 1 rank; killed rank ended the job in ${took}s (exit $rc); resumed head matches" \
  "($resumed); FFT on 2 nodes with the allreduce during backward matches 1 rank"
