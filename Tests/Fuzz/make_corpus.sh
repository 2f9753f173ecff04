#!/usr/bin/env bash
# What: writes the small hand-made seed files of Tests/Fuzz/corpus (the others are copies of test fixtures:
#       pickles from Tests/DataTests/Fixtures, images from Tests/ImagingTests/Fixtures/preprocess, the safetensors
#       fixture, a launch/configs YAML). Each target's corpus holds valid inputs the mutations start from.
# Example: bash Tests/Fuzz/make_corpus.sh
# Expected: the files below rewritten identically (they are committed; CI never runs this).
set -euo pipefail
c="$(cd "$(dirname "$0")" && pwd)/corpus"
st() {  # st FILE HEADER DATA_BYTES: 8-byte little-endian header length, header, zero bytes
  local length=${#2} hex="" i
  for i in 0 1 2 3 4 5 6 7; do hex+="\\x$(printf %02x $(((length >> (8 * i)) & 255)))"; done
  { printf "$hex"; printf '%s' "$2"; head -c "$3" /dev/zero; } > "$1"
}
st "$c/safetensors/two.safetensors" '{"a":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},"__metadata__":{"rada.clip_config":"{}"}}' 22
npy() {  # npy FILE DESCR SHAPE DATA_BYTES
  local header="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
  header+="$(printf '%*s' $(( (64 - (10 + ${#header} + 1) % 64) % 64 )) '')"$'\n'
  { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $((${#header} & 255)))\\x$(printf %02x $((${#header} >> 8)))"
    printf '%s' "$header"; head -c "$4" /dev/zero; } > "$1"
}
npy "$c/npy/f4.npy" '<f4' '(2, 3)' 24
npy "$c/npy/i8.npy" '<i8' '(2,)' 16
npy "$c/npy/u1.npy" '|u1' '(1, 3, 2, 2)' 12
printf 'path,label\na.png,0\nb/c.png,1\n"q,""uoted"".png",0\n' > "$c/manifest/labels.csv"
printf 'path,classname\na.png,cat\nb.png,dog\n' > "$c/manifest/classnames.csv"
printf 'path,caption\na.png,"a photo, of a cat"\n' > "$c/manifest/captions.csv"
printf '{"train": [["a.png", 0, "cat"], ["b.png", 1, "dog"]], "val": [["a.png", 0, "cat"]], "test": [["b.png", 1, "dog"]]}' \
  > "$c/split-json/split.json"
printf 'name: lr\nargs: --steps 10 --model m.safetensors\ngrid: {lr: [1e-3, 1e-2], data: [{train: "imagefolder:/d", name: d}]}\nrandom: {count: 2, seed: 1, alpha: {uniform: [0, 1]}, wd: [0, 1e-4]}\nmetric: val/top1\nmode: max\n' \
  > "$c/sweep-spec/spec.yaml"
printf '{"version":1,"step":20,"epoch":2,"worldSize":2,"seed":1,"scalars":{"optimizer_step":20,"best_step":10,"best_value":0.5},"checksums":{},"config":"run:\\n  steps: 20\\n"}' \
  > "$c/state-json/state.json"
printf 'a photo of a dog.' > "$c/tokenizer/dog.txt"
printf "It's <start_of_text>naïve café 日本語 12345 don't!!" > "$c/tokenizer/mixed.txt"
printf '{"step": 1, "train/loss": 2.3, "lr": 0.001, "time": 1}\n{"step": 2, "train/loss": null, "lr": 0.001}\n{"step": 2, "val/top1": 0.5}\n' \
  > "$c/metrics/metrics.jsonl"
printf 'hello' > "$c/canary/hello.txt"
