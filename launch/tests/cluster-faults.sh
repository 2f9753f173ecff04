#!/usr/bin/env bash
# What: issue 15's faults outside the training loop, on a tiny model and synthetic data (EFT, 2 ranks):
#   1. mismatched ranks (MPMD with a different --lr; the same model path holding another file): refused at
#      start naming the key;
#   2. a rank stopped (SIGSTOP) before MPI_Init, during start-up, feature encoding and evaluation: the job ends
#      within run.collectiveTimeout (4 s) + a few seconds, naming the stopped rank (inside MPI_Init: saying so);
#   3. SIGTERM to launch/train-local mid-loop (during an evaluation, which is abandoned and not recorded) and during
#      feature encoding: exit 75; --resume auto then gives the same head as an uninterrupted run (bit-identical);
#   4. resume with another model's checkpoint: refused, nothing in the run directory changed;
#   5. every checkpoint damaged + --resume auto: refused, every checkpoint still there;
#   6. a full disk (a 2 MB tmpfs; skipped with the reason where mount is impossible) during metrics and during a
#      checkpoint: exit 1 naming the disk, the last good checkpoint intact, resume finishes identical;
#   7. --skip-bad-samples with a class whose images are all unreadable: an error naming the class.
# Example: bash launch/tests/cluster-faults.sh .build/debug/rada
# Expected: "cluster faults: all checks passed" and exit 0 (about 1-2 minutes on 2 busy cores).
set -uo pipefail
rada="$(cd "$(dirname "${1:?usage: cluster-faults.sh RADA_BINARY}")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/launch/common.sh"
work="$(mktemp -d /tmp/rada-faults.XXXXXX)"
disk="$work/disk"
cleanup() { mountpoint -q "$disk" 2>/dev/null && umount "$disk"; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAILED: $*"; exit 1; }
mpi=(mpirun --mca mpi_yield_when_idle 1 --oversubscribe)
# a snapshot of every file (path and checksum) under a directory, to show nothing changed
snapshot() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 md5sum); }

"$rada" synth --out "$work/data" --pretrain-per-class 0 --train-per-class 4 --test-per-class 2 >/dev/null || fail "synth"
"$rada" create-model --preset tiny --out "$work/tiny.safetensors" >/dev/null || fail "create-model"
"$rada" create-model --preset tiny --seed 2 --out "$work/other.safetensors" >/dev/null || fail "create-model"
common=(--setting eft --train "imagefolder:$work/data/train" --eval "imagefolder:$work/data/test" --steps 8
        --batch-size 12 --optim sgd --momentum 0.9 --lr 0.5 --no-augment --checkpoint-every 2 --eval-every 4
        --log-every 4 --threads 1 --seed 3 --feature-cache "$work/cache" --set run.collectiveTimeout=4)
train() { "${mpi[@]}" -np 2 "$rada" train "${common[@]}" --model "$work/tiny.safetensors" "$@"; }

# The reference: an uninterrupted 2-rank run.
train --run-dir "$work/ref" > "$work/ref.log" 2>&1 || { cat "$work/ref.log"; fail "reference run"; }

# 1. mismatched ranks
"${mpi[@]}" -np 1 "$rada" train "${common[@]}" --model "$work/tiny.safetensors" --run-dir "$work/m1" --lr 0.5 \
  : -np 1 "$rada" train "${common[@]}" --model "$work/tiny.safetensors" --run-dir "$work/m1" --lr 0.1 \
  > "$work/m1.log" 2>&1 && fail "MPMD with different --lr ran"
grep -q "ranks disagree at start on start-up key 'config.optim.lr' (rank 0: 0.5; rank 1: 0.1)" "$work/m1.log" \
  || fail "lr mismatch not named: $(grep -a error "$work/m1.log" | head -2)"
[ -e "$work/m1" ] && fail "a refused start created the run directory"
mkdir -p "$work/n1" "$work/n2" && cp "$work/tiny.safetensors" "$work/n1/m.safetensors" \
  && cp "$work/other.safetensors" "$work/n2/m.safetensors"
"${mpi[@]}" -np 1 --wdir "$work/n1" "$rada" train "${common[@]}" --model m.safetensors --run-dir "$work/m2" \
  : -np 1 --wdir "$work/n2" "$rada" train "${common[@]}" --model m.safetensors --run-dir "$work/m2" \
  > "$work/m2.log" 2>&1 && fail "ranks with different model files ran"
grep -q "start-up key 'model.weights'" "$work/m2.log" || fail "model mismatch not named: $(grep -a error "$work/m2.log" | head -2)"
echo "mismatched ranks: refused naming config.optim.lr and model.weights"

# 2. SIGSTOP of rank 1 in each phase (RADA_FAULT_PHASE hook: the rank stops itself when it gets there)
for phase in mpi-init start encode eval; do
  rm -rf "$work/cache"
  start=$SECONDS
  RADA_FAULT_PHASE=$phase RADA_FAULT=hang RADA_FAULT_RANK=1 timeout 60 "${mpi[@]}" -np 2 "$rada" train "${common[@]}" \
    --model "$work/tiny.safetensors" --run-dir "$work/h-$phase" > "$work/h-$phase.log" 2>&1 && fail "hang at $phase exited 0"
  took=$((SECONDS - start))
  grep -q "at phase $phase" "$work/h-$phase.log" || fail "the fault did not fire at $phase: $(tail -3 "$work/h-$phase.log")"
  # Inside MPI_Init no rank can be named (PMIx gives no roll call): the message says start-up did not complete.
  expected="watchdog: .* rank 1 did not reach it"
  [ $phase = mpi-init ] && expected="watchdog: MPI start-up (MPI_Init) did not complete within 4"
  grep -q "$expected" "$work/h-$phase.log" \
    || fail "no watchdog message ($expected) at $phase: $(grep -a 'error\|watchdog' "$work/h-$phase.log" | head -3)"
  # 4 s limit + up to 2 s roll call + start-up and abort on 2 busy cores
  [ $took -le 25 ] || fail "a rank stopped at $phase was noticed only after ${took}s"
  echo "SIGSTOP at $phase: job ended after ${took}s"
done

# 3. SIGTERM to launch/train-local: mid-loop, and during feature encoding
# exec: the background job's PID is then train-local's own, which is what receives the TERM
local_train() { RADA="$rada" exec "$root/launch/train-local" 2 --threads 1 -- "${common[@]}" --model "$work/tiny.safetensors" "$@"; }
# term_while_stopped PHASE RUN WHAT: rank 0 stops itself (SIGSTOP) when it reaches PHASE; TERM the launcher, then
# let the rank go on. The job must exit 75.
term_while_stopped() {
  local phase="$1" run="$2" what="$3" launcher pid rc
  RADA_FAULT_PHASE=$phase RADA_FAULT=hang RADA_FAULT_RANK=0 local_train --run-dir "$work/$run" \
    --set run.collectiveTimeout=60 > "$work/$run.log" 2>&1 & launcher=$!
  for _ in $(seq 300); do grep -q "at phase $phase" "$work/$run.log" && break; sleep 0.1; done
  pid=$(sed -n "s/.*at phase $phase (pid \([0-9]*\)).*/\1/p" "$work/$run.log")
  [ -n "$pid" ] || { kill $launcher; fail "$what: the fault did not fire: $(tail -3 "$work/$run.log")"; }
  kill -TERM $launcher; sleep 1; kill -CONT "$pid"
  wait $launcher; rc=$?
  [ $rc -eq 75 ] || fail "SIGTERM $what exited $rc, expected 75: $(grep -a 'error\|stopped' "$work/$run.log" | head -3)"
}
# resumes_to_reference RUN WHAT: --resume auto finishes RUN with the uninterrupted run's head, bit for bit.
resumes_to_reference() {
  train --run-dir "$work/$1" --resume auto > "$work/$1b.log" 2>&1 || { cat "$work/$1b.log"; fail "resume after SIGTERM $2"; }
  "$rada" selftest compare "$work/ref/head.safetensors" "$work/$1/head.safetensors" --tolerance 0 \
    || fail "SIGTERM $2 + resume differs from the uninterrupted run"
}
# Mid-loop: rank 0 stops at the first evaluation (after step 4).
term_while_stopped eval t1 "mid-loop"
grep -q "stopped by a signal after step 4" "$work/t1.log" || fail "no checkpoint at the stop: $(grep -a stopped "$work/t1.log")"
# Rank 0 got the stop before it scored a block: the evaluation is abandoned, not recorded with its zero rows.
grep -q "step 4: evaluation stopped by the signal; not recorded" "$work/t1.log" \
  || fail "the interrupted evaluation was not abandoned: $(grep -a 'eval' "$work/t1.log" | head -3)"
grep -q '"step":4,"val/' "$work/t1/metrics.jsonl" && fail "an abandoned evaluation was recorded in metrics.jsonl"
resumes_to_reference t1 "mid-loop"
# During feature encoding (nothing cached yet): no checkpoint, nothing lost.
rm -rf "$work/cache"
term_while_stopped encode t2 "during encoding"
grep -q "stopped by a signal before the first step" "$work/t2.log" || fail "no stop message: $(grep -a stopped "$work/t2.log")"
[ -z "$(ls "$work/t2/checkpoints" 2>/dev/null)" ] || fail "a checkpoint was written before the first step"
resumes_to_reference t2 "during encoding"
echo "SIGTERM to train-local mid-loop and during encoding: exit 75, resumed bit-identical"

# 4. another model's checkpoint
before="$(snapshot "$work/ref")"
"${mpi[@]}" -np 2 "$rada" train "${common[@]}" --model "$work/other.safetensors" --run-dir "$work/ref" --resume auto \
  --steps 10 > "$work/f.log" 2>&1 && fail "resumed another model's checkpoint"
grep -q "does not belong to this model: it was trained from other weights" "$work/f.log" \
  || fail "foreign checkpoint not named: $(grep -a error "$work/f.log" | head -2)"
[ "$(snapshot "$work/ref")" = "$before" ] || fail "the refused resume changed the run directory"
"$rada" create-model --preset demo --out "$work/wider.safetensors" >/dev/null || fail "create-model demo"
"${mpi[@]}" -np 2 "$rada" train "${common[@]}" --model "$work/wider.safetensors" --run-dir "$work/ref" --resume auto \
  --steps 10 > "$work/f2.log" 2>&1 && fail "resumed a checkpoint of other shapes"
grep -q "written for a model with other tensor shapes" "$work/f2.log" || fail "shape mismatch not named: $(grep -a error "$work/f2.log" | head -2)"
[ "$(snapshot "$work/ref")" = "$before" ] || fail "the refused resume changed the run directory"
echo "foreign checkpoint: refused (other weights, other shapes), nothing changed"

# 5. every checkpoint damaged: state.json edited (still valid JSON) in each
cp -r "$work/ref" "$work/d"
for state in "$work"/d/checkpoints/step_*/state.json; do sed -i 's/"seed" : 3/"seed" : 4/' "$state"; done
before="$(snapshot "$work/d")"
train --run-dir "$work/d" --resume auto --steps 10 > "$work/d.log" 2>&1 && fail "resumed with every checkpoint damaged"
grep -q "every checkpoint in .* is damaged" "$work/d.log" || fail "no refusal: $(grep -a error "$work/d.log" | head -2)"
grep -q "state.json checksum" "$work/d.log" || fail "state.json damage not detected by its checksum"
[ "$(snapshot "$work/d")" = "$before" ] || fail "the refused resume changed or deleted files"
echo "every checkpoint damaged: refused, all $(ls "$work/d/checkpoints" | wc -l) checkpoints kept"

# 6. a full disk: RADA_FAULT=fill makes rank 0 fill the run directory's disk after step N
mkdir -p "$disk"
if ! mount -t tmpfs -o size=2m tmpfs "$disk" 2>"$work/mount.err"; then
  echo "full disk: skipped (cannot mount a tmpfs here: $(cat "$work/mount.err"))"
else
  # during a checkpoint: filled after step 3's metrics line, the checkpoint of step 4 cannot be written
  RADA_FAULT=fill RADA_FAULT_STEP=3 train --run-dir "$disk/c" > "$work/c.log" 2>&1 && fail "checkpoint onto a full disk exited 0"
  grep -q "could not write checkpoint .*step_00000004 on the disk mounted at $disk (0 bytes free)" "$work/c.log" \
    || fail "checkpoint failure does not name the disk: $(grep -a error "$work/c.log" | head -2)"
  [ "$(ls "$disk/c/checkpoints")" = "step_00000002" ] || fail "checkpoints after a full disk: $(ls -a "$disk/c/checkpoints")"
  # during metrics: a run to step 4, then continued to step 60 without checkpoints before the end: after the
  # fill (step 5) metrics.jsonl uses up its last page (tmpfs) and the next append fails.
  rm -f "$disk/c/.fill"
  train --run-dir "$disk/m" --steps 4 > "$work/m0.log" 2>&1 || { cat "$work/m0.log"; fail "run to step 4"; }
  RADA_FAULT=fill RADA_FAULT_STEP=5 train --run-dir "$disk/m" --resume auto --steps 60 --eval-every 100 \
    --set run.checkpointEvery=0 > "$work/mm.log" 2>&1 && fail "metrics onto a full disk exited 0"
  grep -q "could not append to $disk/m/metrics.jsonl .* on the disk mounted at $disk" "$work/mm.log" \
    || fail "metrics failure does not name the disk: $(grep -a 'error' "$work/mm.log" | head -2)"
  grep -q "MPI_ABORT" "$work/mm.log" && fail "a full disk during metrics aborted instead of stopping all ranks together"
  ls "$disk/m/checkpoints/step_00000004/DONE" >/dev/null || fail "the last good checkpoint is gone: $(ls -a "$disk/m/checkpoints")"
  rm -f "$disk/c/.fill" "$disk/m/.fill"
  train --run-dir "$disk/c" --resume auto > "$work/c2.log" 2>&1 || { cat "$work/c2.log"; fail "resume after a full disk"; }
  "$rada" selftest compare "$work/ref/head.safetensors" "$disk/c/head.safetensors" --tolerance 0 \
    || fail "resume after a full disk differs from the uninterrupted run"
  echo "full disk: stopped naming the disk during metrics and during a checkpoint; resumed bit-identical"
fi

# 7. --skip-bad-samples: a class with no readable image
cp -r "$work/data/train" "$work/bad"
for f in "$work"/bad/blue_circle/*; do echo "not an image" > "$f"; done
"${mpi[@]}" -np 2 "$rada" train --setting eft --model "$work/tiny.safetensors" --train "imagefolder:$work/bad" \
  --run-dir "$work/b" --steps 2 --batch-size 8 --no-shuffle --threads 1 --skip-bad-samples > "$work/b.log" 2>&1 \
  && fail "a class without readable images trained"
grep -q "every image of class 'blue_circle' is unreadable" "$work/b.log" || fail "class not named: $(grep -a error "$work/b.log" | head -2)"
echo "cluster faults: all checks passed"
