#!/usr/bin/env bash
# What: `rada eval` writes byte-identical logits (.npy) on 1, 2 and 3 ranks (fixed global blocks, whatever the
#       BLAS kernel), and the top-1 it prints equals the argmax accuracy recomputed from that .npy (od + awk, no
#       numpy); `rada ttt` on 1, 2 and 3 ranks writes identical predictions.csv (and adapts: some predictions
#       change). Tiny random CLIP, a small `rada synth` set of 16 test images: 2 and 3 ranks split it unevenly.
# Example: bash launch/tests/ttt-eval.sh .build/debug/rada
# Expected: "ttt-eval: ok ..." and exit 0 (77 = skipped when mpirun is missing). About 20 s on 2 idle cores.
set -uo pipefail
rada="${1:?usage: ttt-eval.sh RADA_BINARY}"
source "$(cd "$(dirname "$0")/.." && pwd)/common.sh"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
mpi=(mpirun --mca mpi_yield_when_idle 1 -np 2)
mpi3=(mpirun --mca mpi_yield_when_idle 1 -np 3 --oversubscribe)

tiny_task "$rada" "$tmp" || fail "the tiny task"
model="$tmp/tiny.safetensors"; test="imagefolder:$tmp/data/test"

# A head that is not the identity mask, so that eval exercises the head path (a few EFT steps).
"$rada" train --setting eft --model "$model" --train "imagefolder:$tmp/data/train" --run-dir "$tmp/eft" --steps 4 \
  --batch-size 8 --no-augment --lr 0.05 --threads 1 --feature-cache "$tmp/cache0" >"$tmp/train.log" 2>&1 \
  || { cat "$tmp/train.log"; fail "rada train (eft) for a head"; }
head_file="$tmp/eft/head.safetensors"

# --- rada eval: 1 rank vs 2 and 3 ranks (separate feature caches, so each run encodes its own features). Blocks of
# 5 of the 16 images (5, 5, 5, 1): 2 ranks take 10 + 6 images, 3 ranks 10 + 5 + 1.
out1="$("$rada" eval --model "$model" --head "$head_file" --data "$test" --out-logits "$tmp/l1.npy" --threads 1 \
  --batch-size 5 --feature-cache "$tmp/cache1" 2>&1)" || fail "eval on 1 rank: $out1"
out2="$("${mpi[@]}" "$rada" eval --model "$model" --head "$head_file" --data "$test" --out-logits "$tmp/l2.npy" \
  --threads 1 --batch-size 5 --feature-cache "$tmp/cache2" 2>&1)" || fail "eval on 2 ranks: $out2"
out3="$("${mpi3[@]}" "$rada" eval --model "$model" --head "$head_file" --data "$test" --out-logits "$tmp/l3.npy" \
  --threads 1 --batch-size 5 --feature-cache "$tmp/cache3" 2>&1)" || fail "eval on 3 ranks: $out3"
cmp -s "$tmp/l1.npy" "$tmp/l2.npy" || fail "eval logits differ between 1 and 2 ranks"
cmp -s "$tmp/l1.npy" "$tmp/l3.npy" || fail "eval logits differ between 1 and 3 ranks"
line1="$(echo "$out1" | grep -m1 '^top-1')"; line2="$(echo "$out2" | grep -m1 '^top-1')"
line3="$(echo "$out3" | grep -m1 '^top-1')"
[ -n "$line1" ] && [ "$line1" = "$line2" ] && [ "$line1" = "$line3" ] \
  || fail "printed accuracy differs: '$line1' vs '$line2' vs '$line3'"

# Recompute top-1 from the .npy: header length at bytes 8-9 (npy v1), then K float32 per row.
header="$(head -c 200 "$tmp/l1.npy" | tr -d '\0')"
echo "$header" | grep -q "'descr': '<f4'" || fail "logits are not float32: $header"
shape="$(echo "$header" | sed -n "s/.*'shape': (\([0-9]*\), \([0-9]*\)).*/\1 \2/p")"
read -r rows classes <<<"$shape"
[ -n "${classes:-}" ] || fail "cannot read the shape from: $header"
hlen=$(od -A n -t u2 -j 8 -N 2 "$tmp/l1.npy" | tr -d ' ')
# Labels in dataset order: image folders sorted, files sorted (the same order `rada ttt` writes below).
labels="$tmp/labels.txt"; : >"$labels"; k=0
for d in $(cd "$tmp/data/test" && ls -d -- */ | LC_ALL=C sort); do
  n=$(ls "$tmp/data/test/$d" | wc -l); for _ in $(seq "$n"); do echo $k >>"$labels"; done; k=$((k + 1))
done
[ "$k" = "$classes" ] || fail "the .npy has $classes classes, the folder $k"
correct=$(od -A n -v -t f4 -j $((10 + hlen)) -w$((4 * classes)) "$tmp/l1.npy" | awk -v labels="$labels" '
  { getline label < labels; best = 1; for (i = 2; i <= NF; i++) if ($i + 0 > $best + 0) best = i
    if (best - 1 == label) c++; n++ }
  END { print c + 0 "/" n }')
echo "$line1" | grep -q "($correct)" || fail "printed '$line1' but the .npy's argmax gives $correct"

# --- rada ttt: 1 rank vs 2 ranks on the shifted split, large steps so that predictions change
ttt=(ttt --model "$model" --head "$head_file" --data "imagefolder:$tmp/data/shifted" --views 12 --keep 0.25 \
     --steps 2 --lr 0.05 --threads 1)
"$rada" "${ttt[@]}" --run-dir "$tmp/t1" >"$tmp/t1.log" 2>&1 || { cat "$tmp/t1.log"; fail "ttt on 1 rank"; }
"${mpi[@]}" "$rada" "${ttt[@]}" --run-dir "$tmp/t2" >"$tmp/t2.log" 2>&1 || { cat "$tmp/t2.log"; fail "ttt on 2 ranks"; }
"${mpi3[@]}" "$rada" "${ttt[@]}" --run-dir "$tmp/t3" >"$tmp/t3.log" 2>&1 || { cat "$tmp/t3.log"; fail "ttt on 3 ranks"; }
cmp -s "$tmp/t1/predictions.csv" "$tmp/t2/predictions.csv" || fail "ttt predictions differ between 1 and 2 ranks"
cmp -s "$tmp/t1/predictions.csv" "$tmp/t3/predictions.csv" || fail "ttt predictions differ between 1 and 3 ranks"
grep -q '"ttt/top1"' "$tmp/t1/metrics.jsonl" && grep -q '"zeroshot/top1"' "$tmp/t1/metrics.jsonl" \
  || fail "metrics.jsonl lacks ttt/top1 or zeroshot/top1: $(cat "$tmp/t1/metrics.jsonl")"
changed=$(awk -F, 'NR > 1 && $3 != $4 { c++ } END { print c + 0 }' "$tmp/t1/predictions.csv")
[ "$changed" -gt 0 ] || fail "ttt changed no prediction (the 1-vs-2-rank comparison would be trivial)"
echo "ttt-eval: ok (eval $line1 on 1, 2 and 3 ranks, recomputed $correct; ttt identical on 1, 2 and 3 ranks, $changed changed)"
