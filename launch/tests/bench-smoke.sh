#!/usr/bin/env bash
# What: `rada bench` end to end at its smallest sizes. Never timed: it checks that each subcommand runs and writes
#       one JSON object per measurement with the documented fields (positive median, min <= median <= max, a
#       measured sgemm ceiling, peak RSS), not how fast anything is. Covers clip (small image forward), rada (head
#       at K = 100, EFT step of the small model), data (decode + augment of generated PNGs), scaling on 2 ranks
#       (blocking and overlapped fine-tuning step, with the allreduce time and the hidden fraction in [0, 1]), ttt
#       and the EFT sweep (cached losses equal to uncached; --keep-data keeps the images). The steps are production's EFTModel and FFTModel
#       (Sources/rada/BenchStep.swift; `clip`'s fine-tuning step is the scaling step on one rank), so this also
#       runs them end to end. Skips (77) without mpirun.
# Example: bash launch/tests/bench-smoke.sh .build/debug/rada
# Expected: exit 0 and a final "bench smoke: ..." line; about 55 s with a debug build on 2 shared cores.
set -uo pipefail
rada="${1:?usage: bench-smoke.sh RADA_BINARY}"
source "$(cd "$(dirname "$0")/.." && pwd)/common.sh"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: no mpirun"; exit 77; }
fail() { echo "FAILED: $*"; exit 1; }
once=(--repeats 1 --warmup 0 --json)

# field NAME LINE: the value of a top-level number field of one JSON line
field() { sed -n "s/.*\"$1\":\([-0-9.e+]*\).*/\1/p" <<< "$2"; }
# valid WORKLOAD OUTPUT [no-flops]: OUTPUT has a line for WORKLOAD with every documented field and consistent
# numbers (gflops and fraction_of_ceiling only for workloads with matrix products)
valid() {
  local line; line="$(grep "\"workload\":\"$1\"" <<< "$2" | head -1)"
  [ -n "$line" ] || { echo "no $1 line in: $2"; return 1; }
  local flops="gflops fraction_of_ceiling"; [ "${3:-}" = no-flops ] && flops=""
  for f in config threads ranks repeats median_s min_s max_s items items_per_s sgemm_ceiling_gflops peak_rss_mb \
           tool $flops; do
    grep -q "\"$f\":" <<< "$line" || { echo "$1 lacks $f: $line"; return 1; }
  done
  awk -v med="$(field median_s "$line")" -v lo="$(field min_s "$line")" -v hi="$(field max_s "$line")" \
      -v ceil="$(field sgemm_ceiling_gflops "$line")" -v rss="$(field peak_rss_mb "$line")" \
      'BEGIN { exit !(med > 0 && lo <= med && med <= hi && ceil > 0 && rss > 0) }' \
    || { echo "$1 has inconsistent numbers: $line"; return 1; }
}

out="$("$rada" bench clip --models small --only image_forward "${once[@]}" 2>&1)" || fail "bench clip: $out"
valid clip/image_forward "$out" || fail "bench clip"
out="$("$rada" bench rada --model small --only head_step+k100 --only eft_step "${once[@]}" 2>&1)" || fail "bench rada: $out"
valid rada/head_step "$out" || fail "bench rada"
valid rada/eft_step "$out" || fail "bench rada (EFT step through EFTModel + TowerFeatureSource)"
out="$("$rada" bench data --count 4 --loader-threads 2 "${once[@]}" 2>&1)" || fail "bench data: $out"
valid data/decode_augment "$out" no-flops || fail "bench data"
# PNG at 1 and 2 loader threads (JPEG too where ImageMagick can write the test JPEGs)
grep -q '"config":"png 224 w1"' <<< "$out" && grep -q '"config":"png 224 w2"' <<< "$out" \
  || fail "bench data: expected PNG at 1 and 2 loader threads: $out"

out="$(mpirun --mca mpi_yield_when_idle 1 -np 2 "$rada" bench scaling --threads 1 --batch 2 "${once[@]}" 2>&1)" \
  || fail "bench scaling on 2 ranks: $out"
valid scaling/finetune_step "$out" || fail "bench scaling"
valid scaling/finetune_step_overlap "$out" || fail "bench scaling (overlap)"
overlap="$(grep '"workload":"scaling/finetune_step_overlap"' <<< "$out")"
[ "$(grep -c '"workload":"scaling/' <<< "$out")" = 2 ] || fail "bench scaling: only the coordinator should print, once per measurement: $out"
awk -v a="$(field allreduce_s "$overlap")" -v h="$(field hidden_fraction "$overlap")" \
  'BEGIN { exit !(a > 0 && h >= 0 && h <= 1) }' || fail "bench scaling: allreduce_s / hidden_fraction: $overlap"
out="$("$rada" bench ttt --model small --views 8 --classes 10 --selected 2 "${once[@]}" 2>&1)" || fail "bench ttt: $out"
valid ttt/image "$out" || fail "bench ttt"
scratch="$(mktemp -d)"; trap 'rm -rf "$scratch"' EXIT
out="$("$rada" bench sweep --preset tiny --shots 1 --epochs 2 --batch-size 8 --lrs 1e-3 --alphas 0 1 --json \
  --keep-data "$scratch/images" 2>&1)" || fail "bench sweep: $out"
# --keep-data keeps the 16 classes x 1 shot for torch_bench.py sweep, and refuses a folder that is not empty
[ "$(ls "$scratch"/images/train/*/*.png 2>/dev/null | wc -l)" = 16 ] || fail "bench sweep --keep-data: expected 16 PNGs in $scratch/images/train"
refused="$("$rada" bench sweep --preset tiny --keep-data "$scratch/images" 2>&1)" \
  && fail "bench sweep --keep-data accepted a folder that is not empty: $refused"
grep -q "images exists and is not empty" <<< "$refused" || fail "bench sweep --keep-data: unclear refusal: $refused"
valid sweep/eft_uncached "$out" no-flops || fail "bench sweep (uncached)"
valid sweep/eft_cached "$out" no-flops || fail "bench sweep (cached)"
cached="$(grep '"workload":"sweep/eft_cached"' <<< "$out")"
awk -v s="$(field speedup "$cached")" -v d="$(field max_rel_loss_diff "$cached")" 'BEGIN { exit !(s > 0 && d >= 0 && d < 1e-6) }' \
  || fail "bench sweep: speedup / max_rel_loss_diff (cached and uncached losses must agree): $cached"
echo "bench smoke: clip, rada, ttt, data, 2-rank scaling and the EFT sweep write the documented JSON fields"
