#!/usr/bin/env bash
# What: `rada sweep` end to end on tiny synthetic data and a tiny model: a 4-configuration grid (lr x alpha, EFT,
#       no augmentation, a few steps) produces results.csv/md/sweep.json and a status table; then a sweep killed
#       midway (SIGKILL of the sweep and its children, as in a reboot) is rerun through the cron line in
#       cluster/schedule/rada-sweep.cron and finishes only what was left: completed runs are not rerun, the
#       interrupted one resumes from its checkpoint. Also checks --emit-slurm and the core check.
# Example: bash launch/tests/sweep.sh .build/debug/rada
# Expected: exit 0.
set -uo pipefail
rada="$(cd "$(dirname "${1:?usage: sweep.sh RADA_BINARY}")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
work="$(mktemp -d /tmp/rada-sweep-test.XXXXXX)"
sweep_pid=0
cleanup() { [ $sweep_pid -ne 0 ] && kill -9 -- -"$sweep_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAILED: $*"; exit 1; }
export RADA_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

"$rada" synth --out "$work/data" --pretrain-per-class 0 --train-per-class 4 --test-per-class 2 >/dev/null || fail "rada synth"
"$rada" create-model --preset tiny --out "$work/tiny.safetensors" >/dev/null || fail "rada create-model"

spec() {  # spec FILE STEPS
  cat > "$1" <<SPEC
args: [--setting, eft, --model, $work/tiny.safetensors, --train, "imagefolder:$work/data/train",
       --eval, "imagefolder:$work/data/test", --steps, "$2", --batch-size, "4", --no-augment,
       --checkpoint-every, "1", --log-every, "1", --feature-cache, $work/cache]
grid:
  lr: [1e-3, 1e-2]
  alpha: [0, 0.5]
ranks: 1
threads: 1
metric: val/top1
mode: max
SPEC
}

# 1. A fresh sweep runs all four configurations, two at a time.
spec "$work/grid.yaml" 3
out="$("$rada" sweep "$work/grid.yaml" --out "$work/s1" --max-parallel 2 2>&1)" || fail "sweep exited $?: $out"
[ "$(grep -c ',done,' "$work/s1/results.csv")" = 4 ] || fail "results.csv lacks 4 done rows: $(cat "$work/s1/results.csv") $out"
head -1 "$work/s1/results.csv" | grep -q '^lr,alpha,status,val/top1,' || fail "results.csv header: $(head -1 "$work/s1/results.csv")"
grep -q '^Best: lr=' "$work/s1/results.md" || fail "results.md has no best run: $(cat "$work/s1/results.md")"
"$rada" report --compare "$work/s1" --out "$work/s1/compare.html" > /dev/null || fail "rada report --compare on the sweep"
[ "$(grep -o '<polyline' "$work/s1/compare.html" | wc -l)" -ge 4 ] || fail "comparison report lacks the runs' curves"
grep -q '"best" : "lr=' "$work/s1/sweep.json" || fail "sweep.json names no best run"
status="$("$rada" sweep status "$work/grid.yaml" --out "$work/s1")" || fail "sweep status: $status"
echo "$status" | grep -q '4 done, 0 running, 0 failed, 0 interrupted, 0 pending' || fail "status: $status"
again="$("$rada" sweep "$work/grid.yaml" --out "$work/s1" 2>&1)" || fail "second sweep: $again"
echo "$again" | grep -q "running 0," || fail "a finished sweep reran something: $again"

# 2. Too many cores at once is refused with a hint.
bad="$("$rada" sweep "$work/grid.yaml" --out "$work/s0" --max-parallel 8 2>&1)" && fail "8 parallel runs on $(nproc) cores accepted"
echo "$bad" | grep -q "cores" || fail "core check message: $bad"

# 3. --emit-slurm writes an array script with one task per configuration.
"$rada" sweep "$work/grid.yaml" --out "$work/s1" --emit-slurm "$work/grid.sbatch" --slurm-concurrency 2 >/dev/null || fail "--emit-slurm"
grep -q '^#SBATCH --array=0-3%2$' "$work/grid.sbatch" && bash -n "$work/grid.sbatch" || fail "emitted script: $(cat "$work/grid.sbatch")"

# 4. Kill a sweep midway (the sweep and its children, SIGKILL), then rerun it through the nightly cron line.
spec "$work/long.yaml" 12
setsid "$rada" sweep "$work/long.yaml" --out "$work/s2" --max-parallel 1 > "$work/s2.log" 2>&1 &
sweep_pid=$!
deadline=$((SECONDS + 60))
while [ $SECONDS -lt $deadline ]; do  # wait for 2 runs done and the third past its first checkpoint
  done_count=$(ls "$work"/s2/runs/*/COMPLETE 2>/dev/null | wc -l)
  started=$(for d in "$work"/s2/runs/*/; do [ -e "$d/COMPLETE" ] || ls "$d"checkpoints/step_*/DONE 2>/dev/null; done | wc -l)
  [ "$done_count" -ge 2 ] && [ "$started" -ge 1 ] && break
  sleep 0.2
done
kill -9 -- -"$sweep_pid" 2>/dev/null; wait "$sweep_pid" 2>/dev/null; sweep_pid=0
done_count=$(ls "$work"/s2/runs/*/COMPLETE 2>/dev/null | wc -l)
[ "$done_count" -ge 1 ] && [ "$done_count" -lt 4 ] || fail "kill came at the wrong time ($done_count runs complete): $(cat "$work/s2.log")"
stat -c '%n %Y %i' "$work"/s2/runs/*/COMPLETE > "$work/complete-before"
status="$("$rada" sweep status "$work/long.yaml" --out "$work/s2")"
grep -q "interrupted" <<< "$status" || fail "after the kill no run shows as interrupted: $status"

# The cron line from cluster/schedule, with this test's values.
cron="$root/cluster/schedule/rada-sweep.cron"
command="$(grep -E '^[0-9*]' "$cron" | head -1 | cut -d' ' -f7-)"
[ -n "$command" ] || fail "no schedule line in $cron"
out="$(env RADA_ROOT="$root" SPEC="$work/long.yaml" OUT="$work/s2" RADA="$rada" sh -c "$command" 2>&1; cat "$work/s2.log")"
[ "$(ls "$work"/s2/runs/*/COMPLETE | wc -l)" = 4 ] || fail "the rerun did not finish all runs: $out"
stat -c '%n %Y %i' $(cut -d' ' -f1 "$work/complete-before") | diff - "$work/complete-before" >/dev/null \
  || fail "completed runs were rerun (COMPLETE rewritten)"
grep -q "running $((4 - done_count))," "$work/s2.log" || fail "the rerun did not run exactly the $((4 - done_count)) unfinished runs: $(cat "$work/s2.log")"
grep -ls "resumed from" "$work"/s2/runs/*/sweep.log >/dev/null || fail "no run resumed from a checkpoint"
for f in "$work"/s2/runs/*/metrics.jsonl; do  # the completed runs' logs end at step 12 once, never restarted at 1
  n=$(grep -c '"step":1,' "$f"); [ "$n" -le 1 ] || fail "$f starts over $n times"
done
echo "sweep: 4 runs done, results written; killed after $done_count complete, rerun finished only the rest"
