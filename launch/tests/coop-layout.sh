#!/usr/bin/env bash
# What: a CoOp/Dassl dataset layout end to end: oxford_pets/images + the real split_zhou_OxfordPets.json format +
#       Dassl's few-shot pickle (split_fewshot/shot_2-seed_1.pkl, written by Python's pickle with Dassl-shaped Datum
#       objects: Tests/DataTests/Fixtures/fewshot_p2.pkl) trains RAda EFT on 2 ranks and evaluates on the test split;
#       then a split without a pickle draws its own few-shot JSON and reuses it.
# Example: bash launch/tests/coop-layout.sh .build/debug/rada
# Expected: exit 0.
set -uo pipefail
rada="${1:?usage: coop-layout.sh RADA_BINARY}"
source "$(dirname "$0")/../common.sh"
work="$(mktemp -d /tmp/rada-coop.XXXXXX)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }

"$rada" synth --out "$work/synth" --pretrain-per-class 0 --train-per-class 6 --test-per-class 2 >/dev/null || fail "synth"
"$rada" create-model --preset tiny --out "$work/tiny.safetensors" >/dev/null || fail "create-model"
pets="$work/data/oxford_pets"
mkdir -p "$pets/images" "$pets/split_fewshot"
# three "breeds" drawn from three synthetic classes; file names as in the Dassl pickle fixture
i=0
for pair in abyssinian:blue_circle beagle:red_square chihuahua:yellow_cross; do
  breed="${pair%%:*}" cls="${pair##*:}"
  for n in 1 2 3 4 5 6; do cp "$work/synth/train/$cls/0000$((n - 1)).png" "$pets/images/${breed}_$n.png"; done
  for n in 7 8; do cp "$work/synth/test/$cls/0000$((n - 7)).png" "$pets/images/${breed}_$n.png"; done
  i=$((i + 1))
done
entry() { printf '["%s_%s.png", %s, "%s"]' "$1" "$2" "$3" "$1"; }
{
  printf '{"train": ['
  sep=""; l=0
  for b in abyssinian beagle chihuahua; do for n in 1 2 3 5 6; do printf '%s%s' "$sep" "$(entry $b $n $l)"; sep=", "; done; l=$((l + 1)); done
  printf '], "val": ['; sep=""; l=0
  for b in abyssinian beagle chihuahua; do printf '%s%s' "$sep" "$(entry $b 4 $l)"; sep=", "; l=$((l + 1)); done
  printf '], "test": ['; sep=""; l=0
  for b in abyssinian beagle chihuahua; do for n in 7 8; do printf '%s%s' "$sep" "$(entry $b $n $l)"; sep=", "; done; l=$((l + 1)); done
  printf ']}\n'
} > "$pets/split_zhou_OxfordPets.json"
cp "$(dirname "$0")/../../Tests/DataTests/Fixtures/fewshot_p2.pkl" "$pets/split_fewshot/shot_2-seed_1.pkl"

mpi=(mpirun --mca mpi_yield_when_idle 1 -np 2)
"${mpi[@]}" "$rada" train --setting eft --model "$work/tiny.safetensors" --train "coop:$work/data:oxford_pets" \
  --shots 2 --split-seed 1 --eval "coop:$work/data:oxford_pets:test" --run-dir "$work/run" --steps 6 --batch-size 2 \
  --no-augment --threads 1 --feature-cache "$work/cache" > "$work/train.log" 2>&1 || { cat "$work/train.log"; fail "train on the CoOp layout"; }
grep -q "read Dassl few-shot split" "$work/train.log" || fail "the Dassl pickle was not used: $(head -5 "$work/train.log")"
grep -q "6 samples, 3 classes" "$work/train.log" || fail "expected the pickle's 6 samples of 3 classes: $(grep 'rada train' "$work/train.log")"
grep -q "eval step 6: .*val/top1" "$work/train.log" || fail "no evaluation on the test split"
"${mpi[@]}" "$rada" eval --model "$work/tiny.safetensors" --head "$work/run/head.safetensors" \
  --data "coop:$work/data:oxford_pets:test" --threads 1 --feature-cache "$work/cache" > "$work/eval.log" 2>&1 \
  || { cat "$work/eval.log"; fail "eval on the CoOp test split"; }
grep -q "6 images, 3 classes" "$work/eval.log" || fail "eval: $(cat "$work/eval.log")"

# no pickle for 1 shot: draw one per class with the seed, save split_fewshot/shot_1-seed_2.json, reuse it
"$rada" train --setting eft --model "$work/tiny.safetensors" --train "coop:$work/data:oxford_pets" --shots 1 \
  --split-seed 2 --run-dir "$work/run1" --steps 2 --batch-size 3 --no-augment --feature-cache "$work/cache" \
  > "$work/t1.log" 2>&1 || { cat "$work/t1.log"; fail "few-shot draw"; }
[ -f "$pets/split_fewshot/shot_1-seed_2.json" ] || fail "no few-shot JSON saved: $(ls "$pets/split_fewshot")"
grep -q "3 samples, 3 classes" "$work/t1.log" || fail "1 shot of 3 classes: $(grep 'rada train' "$work/t1.log")"
echo "coop layout: pickle split trained and evaluated on 2 ranks; JSON few-shot split drawn and saved"
