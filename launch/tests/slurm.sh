#!/usr/bin/env bash
# What: the Slurm templates on a local one-node Slurm (cluster/slurm/local-up): a 2-rank training job through
#       cluster/slurm/train.sbatch (srun --mpi=pmix) that is stopped once by TERM (RADA_FAULT=term: rada
#       checkpoints, exits 75, the script requeues the job) and finishes after the requeue; and a 4-task sweep
#       array (cluster/slurm/sweep-array.sbatch, %2) whose results land in results.csv. Tears Slurm down.
#       Exits 77 (skipped) with the reason when local Slurm cannot start (no apt-get, not root, daemons fail).
# Example: bash launch/tests/slurm.sh .build/debug/rada
# Expected: exit 0.
set -uo pipefail
rada="$(cd "$(dirname "${1:?usage: slurm.sh RADA_BINARY}")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
export RADA_SLURM_BASE="$(mktemp -d /tmp/rada-slurm-test.XXXXXX)"
work="$RADA_SLURM_BASE/work"
if ! up="$("$root/cluster/slurm/local-up" 2>&1)"; then
  echo "skipped: local Slurm cannot start here: $(echo "$up" | tail -1)"
  "$root/cluster/slurm/local-down" >/dev/null 2>&1; exit 77
fi
trap '"$root/cluster/slurm/local-down" >/dev/null 2>&1' EXIT
export SLURM_CONF="$RADA_SLURM_BASE/slurm.conf" RADA="$rada" OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fail() { echo "FAILED: $*"; for f in "$work"/*.out; do echo "== $f"; tail -15 "$f"; done; exit 1; }
mkdir -p "$work"; cd "$work"

"$rada" synth --out "$work/data" --pretrain-per-class 0 --train-per-class 4 --test-per-class 2 >/dev/null || fail "rada synth"
"$rada" create-model --preset tiny --out "$work/tiny.safetensors" >/dev/null || fail "rada create-model"
common=(--setting eft --model "$work/tiny.safetensors" --train "imagefolder:$work/data/train" --eval "imagefolder:$work/data/test"
        --batch-size 4 --no-augment --checkpoint-every 1 --log-every 1 --feature-cache "$work/cache")

wait_for() {  # wait_for SECONDS FILE...: until every file exists
  local limit=$((SECONDS + $1)); shift
  while [ $SECONDS -lt $limit ]; do
    local missing=0 f
    for f in "$@"; do [ -e "$f" ] || missing=1; done
    [ $missing -eq 0 ] && return 0
    sleep 0.5
  done
  return 1
}

# 1. A 2-rank job stopped by TERM after step 2: checkpoint, exit 75, requeue, resume, COMPLETE.
job=$(RADA_FAULT=term RADA_FAULT_STEP=2 sbatch --parsable -n 2 --cpus-per-task 1 -o "$work/train-%j.out" \
      "$root/cluster/slurm/train.sbatch" "${common[@]}" --steps 4 --run-dir "$work/train") || fail "sbatch train.sbatch"
# Slurm holds a requeued job for a while (Reason=BeginTime); release it now instead of waiting.
for _ in $(seq 1 60); do
  # (only once the node is idle again and the old step's PMIx socket is gone: released earlier, the new step
  # 0 of the same job id cannot bind its socket, "Address already in use")
  if scontrol show job "$job" 2>/dev/null | grep -q "JobState=PENDING Reason=BeginTime" && [ "$(sinfo -h -o %T | head -1)" = idle ] \
     && [ ! -e "$RADA_SLURM_BASE/spool/stepd.slurm.pmix.$job.0" ]; then
    scontrol update JobId="$job" StartTime=now 2>/dev/null
  fi
  [ -e "$work/train/COMPLETE" ] && break
  sleep 0.5
done
wait_for 30 "$work/train/COMPLETE" || fail "train job $job did not complete: $(scontrol show job "$job" | grep -E 'JobState|Restarts')"
grep -q '"size": 2' "$work/train/world.json" || fail "not 2 ranks: $(cat "$work/train/world.json")"
grep -q "requeueing job $job" "$work"/train-*.out || fail "the job was not requeued after exit 75"
grep -q "resumed from" "$work"/train-*.out || fail "the requeued job did not resume from the checkpoint"

# 2. A sweep as a 4-task array, 2 at a time.
{ echo "args:"; for a in "${common[@]}" --steps 2; do echo "  - \"$a\""; done
  echo "grid: {lr: [1e-3, 1e-2], alpha: [0, 0.5]}"; } > "$work/grid.yaml"
array=$(sbatch --parsable --array=0-3%2 -o "$work/array-%A_%a.out" "$root/cluster/slurm/sweep-array.sbatch" \
        "$work/grid.yaml" "$work/sweep") || fail "sbatch sweep-array.sbatch"
for _ in $(seq 1 120); do
  [ "$(ls "$work"/sweep/runs/*/COMPLETE 2>/dev/null | wc -l)" = 4 ] && [ -z "$(squeue -h -j "$array" 2>/dev/null)" ] && break
  sleep 0.5
done
status="$("$rada" sweep status "$work/grid.yaml" --out "$work/sweep")"
echo "$status" | grep -q "4 done" || fail "array $array: $status"
[ "$(grep -c ',done,' "$work/sweep/results.csv")" = 4 ] || fail "results.csv: $(cat "$work/sweep/results.csv")"

# 3. A scheduled start (sbatch --begin): the job is held until its begin time, then runs a short training.
submitted=$(date +%s)
begin=$(sbatch --parsable --begin=now+6 -n 1 -o "$work/begin-%j.out" \
        --wrap "date +%s > $work/begin.started; $rada train ${common[*]} --steps 2 --run-dir $work/begin") || fail "sbatch --begin"
sleep 2
squeue -h -j "$begin" -o %r 2>/dev/null | grep -q BeginTime || fail "--begin job $begin not held for its begin time: $(squeue -h -j "$begin")"
for _ in $(seq 1 180); do [ -f "$work/begin/COMPLETE" ] && [ -z "$(squeue -h -j "$begin" 2>/dev/null)" ] && break; sleep 0.5; done
[ -f "$work/begin/COMPLETE" ] || fail "--begin job $begin did not complete: $(cat "$work"/begin-*.out 2>/dev/null | tail -3)"
started=$(cat "$work/begin.started")
[ $((started - submitted)) -ge 6 ] || fail "--begin job started $((started - submitted)) s after submission, before its begin time"

echo "slurm: 2-rank job requeued after TERM and completed; 4-task array done, results.csv has 4 rows;" \
  "--begin job held and started $((started - submitted)) s after submission"
