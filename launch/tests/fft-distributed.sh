#!/usr/bin/env bash
# What: FFT and contrastive pretraining are exact under data parallelism. (1) `rada pretrain` for one step:
#       2 ranks x B against 1 rank x 2B (features all-gathered, gradients summed back through the gather): the
#       loss and every averaged gradient agree. (2) `rada train --setting fft` for 3 steps on 1, 2 and 3 ranks
#       (3 oversubscribed; 2 with fft.overlap=always) with --no-shuffle --no-augment: per-step losses agree within 1e-5 relative, the final
#       model and head within tolerance. Skips (77) without mpirun.
# Example: bash launch/tests/fft-distributed.sh .build/debug/rada
# Expected: exit 0 and a final "fft-distributed: ..." line. Takes about 30-60 s on 2 cores (debug build).
set -uo pipefail
rada="${1:?usage: fft-distributed.sh RADA_BINARY}"
source "$(cd "$(dirname "$0")/.." && pwd)/common.sh"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: no mpirun"; exit 77; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
mpi=(mpirun --mca mpi_yield_when_idle 1 --oversubscribe)

"$rada" synth --out "$tmp/synth" --pretrain-per-class 2 --train-per-class 2 --test-per-class 1 >/dev/null || fail "rada synth"
"$rada" create-model --preset tiny --out "$tmp/tiny.safetensors" >/dev/null || fail "rada create-model"

# (1) the contrastive gather: 2 ranks x 8 vs 1 rank x 16, one step, averaged gradients dumped by the coordinator
pre=(pretrain --model "$tmp/tiny.safetensors" --data "manifest:$tmp/synth/pretrain/captions.csv" --steps 1
     --batch-size 16 --no-shuffle --threads 1 --log-every 1)
"$rada" "${pre[@]}" --run-dir "$tmp/p1" --dump-gradients "$tmp/p1.grad.safetensors" >"$tmp/p1.log" 2>&1 \
  || fail "pretrain on 1 rank: $(tail -5 "$tmp/p1.log")"
"${mpi[@]}" -np 2 "$rada" "${pre[@]}" --run-dir "$tmp/p2" --dump-gradients "$tmp/p2.grad.safetensors" >"$tmp/p2.log" 2>&1 \
  || fail "pretrain on 2 ranks: $(tail -5 "$tmp/p2.log")"
same_losses "$tmp/p1/metrics.jsonl" "$tmp/p2/metrics.jsonl" || fail "pretrain loss, 2 ranks x 8 vs 1 rank x 16"
# gradients are O(1e-2..1); 2e-6 absolute allows float summation order, a dropped gather term is far larger
out="$("$rada" selftest compare "$tmp/p1.grad.safetensors" "$tmp/p2.grad.safetensors" --tolerance 2e-6)" \
  || fail "pretrain gradients, 2 ranks x 8 vs 1 rank x 16: $out"
gather="$out"

# (2) FFT: 3 steps on 1, 2 and 3 ranks (global batch 12)
fft=(train --setting fft --model "$tmp/tiny.safetensors" --train "imagefolder:$tmp/synth/train" --steps 3
     --batch-size 12 --no-shuffle --no-augment --optim sgd --lr 0.05 --alpha 0.1 --threads 1 --log-every 1
     --set optim.clipGradNorm=1 --set run.checksumEvery=1 --set optim.groups.head.lr=0.05)
"$rada" "${fft[@]}" --run-dir "$tmp/f1" >"$tmp/f1.log" 2>&1 || fail "fft on 1 rank: $(tail -5 "$tmp/f1.log")"
# 2 ranks with buckets reduced during backward (fft.overlap=always), 3 ranks with the one-node default (after backward)
for n in 2 3; do
  overlap=(); [ $n = 2 ] && overlap=(--set fft.overlap=always)
  "${mpi[@]}" -np $n "$rada" "${fft[@]}" "${overlap[@]}" --run-dir "$tmp/f$n" >"$tmp/f$n.log" 2>&1 \
    || fail "fft on $n ranks: $(tail -5 "$tmp/f$n.log")"
  same_losses "$tmp/f1/metrics.jsonl" "$tmp/f$n/metrics.jsonl" || fail "fft losses, $n ranks vs 1"
  # SGD (momentum 0.9): parameter differences are lr x gradient differences, so 1e-5 allows float summation
  # order but not a wrong gradient. (Adam is unsuitable here: it scales the round-off of gradients that are zero
  # in exact arithmetic, e.g. attention key biases, up to lr-sized steps.)
  for f in model head; do
    out="$("$rada" selftest compare "$tmp/f1/$f.safetensors" "$tmp/f$n/$f.safetensors" --tolerance 1e-5)" \
      || fail "fft $f.safetensors, $n ranks vs 1: $out"
  done
done
echo "fft-distributed: pretrain gather gradients ($gather), fft losses and parameters agree on 1/2/3 ranks"
