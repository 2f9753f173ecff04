#!/usr/bin/env bash
# What: EFT with augmentation through the augmented feature cache (issue: sweep-scale EFT). A cached run trains
#       like the uncached one (the tower on every augmented micro-batch): same loss at every step within 1e-6
#       relative. A second run with another alpha reads every feature from the cache; 2 ranks extract byte-identical
#       epoch files; more epochs extract only the new one; two jobs started together extract each epoch once; a damaged epoch file is found by `rada features verify`,
#       reported by the next run and extracted again (same losses); an unwritable cache folder only warns; a sweep
#       extracts first with all cores and its runs extract nothing; a stop during the extraction exits 75 and resumes;
#       `rada features rm --all` empties the cache.
# Example: bash launch/tests/feature-cache.sh .build/debug/rada
# Expected: "feature-cache: ok ..." and exit 0 (77 = skipped when mpirun is missing). About 20 s on 2 idle cores.
set -uo pipefail
rada="${1:?usage: feature-cache.sh RADA_BINARY}"
source "$(cd "$(dirname "$0")/.." && pwd)/common.sh"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
mpi=(mpirun --mca mpi_yield_when_idle 1 -np 2)

tiny_task "$rada" "$tmp" || fail "the tiny task"
train=(train --setting eft --model "$tmp/tiny.safetensors" --train "imagefolder:$tmp/data/train" --batch-size 8
       --threads 1 --log-every 4 --progress lines --alpha 0.5)
run() {  # run NAME [flags]: one training run, its log in $tmp/NAME.log
  local name="$1"; shift
  "$rada" "${train[@]}" --run-dir "$tmp/$name" "$@" >"$tmp/$name.log" 2>&1 || { cat "$tmp/$name.log"; fail "run $name"; }
}
# close LOSSES_A LOSSES_B: the same number of steps and |a - b| <= 1e-6 · |a| + 1e-12 at each
close() {
  paste <(losses "$1") <(losses "$2") | awk '{ n++; d = $1 - $2; if (d < 0) d = -d; m = ($1 < 0 ? -$1 : $1)
      if ($2 == "" || d > 1e-6 * m + 1e-12) { printf "step %d: %s vs %s\n", n, $1, $2; bad = 1 } }
    END { if (n == 0) { print "no losses"; bad = 1 }; exit bad }'
}
said() { grep -q -- "$2" "$tmp/$1.log" || { cat "$tmp/$1.log"; fail "run $1 did not say: $2"; }; }

# 1. uncached (the frozen tower on every augmented micro-batch) against cached (extracted once): 3 epochs of 32.
run plain --epochs 3 --feature-cache "$tmp/c1" --set data.cacheAugmentedFeatures=false
run cached --epochs 3 --feature-cache "$tmp/c1"
said cached "0 read from the cache, 96 extracted"
close "$tmp/plain/metrics.jsonl" "$tmp/cached/metrics.jsonl" || fail "cached losses differ from the uncached run's"

# 2. A sweep member (another alpha) reads everything; a longer run extracts only its new epoch.
run alpha --epochs 3 --feature-cache "$tmp/c1" --alpha 1.0
said alpha "96 read from the cache, 0 extracted"
run longer --epochs 4 --feature-cache "$tmp/c1"
said longer "96 read from the cache, 32 extracted"

# 3. Two jobs started together on an empty cache (a sweep with --max-parallel 2): the epoch locks let each
#    epoch be extracted once in all (96 extractions between them), the other job reads it.
run par1 --epochs 3 --feature-cache "$tmp/c3" & p1=$!
run par2 --epochs 3 --feature-cache "$tmp/c3" --alpha 1.0 & p2=$!
wait $p1 || fail "parallel job 1"; wait $p2 || fail "parallel job 2"
extracted=$(cat "$tmp/par1.log" "$tmp/par2.log" | sed -n 's/.*from the cache, \([0-9]*\) extracted.*/\1/p' | awk '{ s += $1 } END { print s + 0 }')
[ "$extracted" = 96 ] || { cat "$tmp/par1.log" "$tmp/par2.log"; fail "two parallel jobs extracted $extracted features, not 96"; }
close "$tmp/cached/metrics.jsonl" "$tmp/par1/metrics.jsonl" || fail "a job that shared the cache trains differently"

# 4. Two ranks extract in the same fixed blocks: byte-identical epoch files.
"${mpi[@]}" "$rada" "${train[@]}" --epochs 3 --run-dir "$tmp/two" --feature-cache "$tmp/c2" >"$tmp/two.log" 2>&1 \
  || { cat "$tmp/two.log"; fail "2-rank run"; }
for f in "$tmp"/c2/aug-*/epoch_*.safetensors; do
  cmp -s "$f" "$tmp/c1/$(basename "$(dirname "$f")")/$(basename "$f")" || fail "2 ranks extracted another $(basename "$f")"
done

# 5. A damaged epoch: verify names it, the next run says so, extracts it again and trains the same.
epoch1="$(ls "$tmp"/c1/aug-*/epoch_00001.safetensors)"
size=$(stat -c %s "$epoch1")
printf '\xff\xff\xff\xff' | dd of="$epoch1" bs=1 seek=$((size - 8)) conv=notrunc status=none
if "$rada" features verify --dir "$tmp/c1" >"$tmp/verify.log" 2>&1; then cat "$tmp/verify.log"; fail "verify passed a damaged file"; fi
grep -q "epoch_00001.safetensors: checksum mismatch" "$tmp/verify.log" || { cat "$tmp/verify.log"; fail "verify did not name the file"; }
run repaired --epochs 3 --feature-cache "$tmp/c1"
said repaired "is damaged"
said repaired "64 read from the cache, 32 extracted"
same_losses "$tmp/cached/metrics.jsonl" "$tmp/repaired/metrics.jsonl" || fail "the repaired run trains differently"
"$rada" features verify --dir "$tmp/c1" >/dev/null || fail "verify after the repair"

# 6. A cache folder that cannot be written (a path below a regular file): a warning, and the run completes.
run nowhere --epochs 1 --feature-cache "$tmp/tiny.safetensors/cache"
said nowhere "could not write the feature cache"

# 7. `rada sweep` (2 alphas, 1 thread each on this machine's cores): its extraction phase fills the cache with all
#    cores first, so both runs read every feature and extract nothing.
cat > "$tmp/sweep.yaml" <<SPEC
args: [--setting, eft, --model, $tmp/tiny.safetensors, --train, "imagefolder:$tmp/data/train", --epochs, "2",
       --batch-size, "8", --log-every, "4", --feature-cache, $tmp/c4]
grid:
  alpha: [0, 1]
ranks: 1
threads: 1
metric: train/loss
mode: min
SPEC
if [ "$(nproc)" -ge 2 ]; then
  "$rada" sweep "$tmp/sweep.yaml" --out "$tmp/sw" --max-parallel 2 >"$tmp/sweep.log" 2>&1 || { cat "$tmp/sweep.log"; fail "sweep"; }
  grep -q "extracting image features for 2 configuration(s) first" "$tmp/sweep.log" || { cat "$tmp/sweep.log"; fail "no extraction phase"; }
  for log in "$tmp"/sw/runs/*/sweep.log; do
    grep -q "64 read from the cache, 0 extracted" "$log" || { cat "$log"; fail "a sweep run extracted features itself"; }
  done
  [ ! -e "$tmp/sw/.extraction" ] || fail "the extraction phase left its scratch folder"
fi

# 8. A stop (SIGTERM) during the extraction: exit 75 before the first step, then --resume auto trains as before.
RADA_FAULT_PHASE=encode RADA_FAULT=term "$rada" "${train[@]}" --epochs 3 --run-dir "$tmp/stopped" --feature-cache "$tmp/c5" \
  >"$tmp/stopped.log" 2>&1
rc=$?
[ $rc = 75 ] || { cat "$tmp/stopped.log"; fail "a stop during the extraction exited $rc, not 75"; }
run resumed --epochs 3 --feature-cache "$tmp/c5" --run-dir "$tmp/stopped" --resume auto
close "$tmp/cached/metrics.jsonl" "$tmp/stopped/metrics.jsonl" || fail "the run resumed after a stop trains differently"

# 9. Listing and removal.
"$rada" features ls --dir "$tmp/c1" | grep -q "augmented, 4 epoch(s)" || fail "features ls"
"$rada" features rm --all --dir "$tmp/c1" >/dev/null || fail "features rm --all"
[ -z "$(ls "$tmp/c1")" ] || fail "features rm --all left $(ls "$tmp/c1")"
echo "feature-cache: ok (cached = uncached within 1e-6 relative; reuse, 2-rank extraction, repair, unwritable folder, ls/rm)"
