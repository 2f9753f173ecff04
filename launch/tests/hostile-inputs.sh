#!/usr/bin/env bash
# What: a table of malformed inputs (model files, configs, .npy arrays, dataset lists, pickles, image bombs,
#       flags) through the real binary. Each must be refused: exit status 1-127 (not 0, not a trap, abort or
#       segfault, which exit 128+signal; not a hang: 120 s timeout), a message that names the bad file (or flag),
#       no Swift runtime error text, and no file outside the case's run directory created or changed.
#       The files are written here with printf (no Python): see README "Input safety".
# Example: bash launch/tests/hostile-inputs.sh .build/debug/rada
# Expected: "hostile inputs: N cases ok" and exit 0; about 30 s with a debug build on 2 cores.
set -uo pipefail
rada="${1:?usage: hostile-inputs.sh RADA_BINARY}"
rada="$(cd "$(dirname "$rada")" && pwd)/$(basename "$rada")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
cases=0; failures=0

# snapshot: every path under $tmp except run/ with the checksum of each file
snapshot() { (cd "$tmp" && find . -path ./run -prune -o -print | LC_ALL=C sort | while read -r p; do
  if [ -f "$p" ]; then echo "$(md5sum < "$p" | cut -c1-32) $p"; else echo "dir $p"; fi; done); }

# hostile NAME FRAGMENT COMMAND...: COMMAND (run inside the fresh $tmp/run) must be refused as described above
hostile() {
  local name="$1" fragment="$2"; shift 2
  cases=$((cases + 1))
  rm -rf "$tmp/run"; mkdir -p "$tmp/run"
  local before after out rc problem=""
  before="$(snapshot)"
  out="$(cd "$tmp/run" && timeout 120 "$@" 2>&1)"; rc=$?
  after="$(snapshot)"
  if [ $rc -eq 0 ]; then problem="exit 0: the input was accepted"
  elif [ $rc -eq 124 ]; then problem="no answer within 120 s"
  elif [ $rc -ge 128 ]; then problem="killed by signal $((rc - 128)) (trap, abort or segfault)"
  elif grep -Eq "Fatal error|Stack dump|Illegal instruction|Segmentation fault" <<< "$out"; then problem="runtime error text"
  elif grep -q "SECRET-MARKER" <<< "$out"; then problem="the message echoes the file's contents"
  elif ! grep -qF -- "$fragment" <<< "$out"; then problem="the message does not name '$fragment'"
  elif [ "$before" != "$after" ]; then problem="files outside the run directory changed: $(diff <(echo "$before") <(echo "$after") | head -5)"
  fi
  if [ -n "$problem" ]; then
    failures=$((failures + 1)); echo "FAILED  $name: $problem"; echo "$out" | tail -5 | sed 's/^/    /'
  else
    echo "ok      $name: $(echo "$out" | grep -F -- "$fragment" | head -1 | cut -c1-150)"
  fi
}

# st FILE HEADER_JSON [DATA_BYTES]: a safetensors file (8-byte little-endian header length, header, zero bytes)
st() {
  local length=${#2} hex="" i
  for i in 0 1 2 3 4 5 6 7; do hex+="\\x$(printf %02x $(((length >> (8 * i)) & 255)))"; done
  { printf "$hex"; printf '%s' "$2"; head -c "${3:-0}" /dev/zero; } > "$1"
}
# npy FILE DESCR SHAPE [DATA_BYTES]: a .npy v1 file with the given header fields
npy() {
  local header="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
  header+="$(printf '%*s' $(( (64 - (10 + ${#header} + 1) % 64) % 64 )) '')"$'\n'
  local length=${#header}
  { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $((length & 255)))\\x$(printf %02x $((length >> 8)))";
    printf '%s' "$header"; head -c "${4:-0}" /dev/zero; } > "$1"
}
# crc32 HEX: CRC-32 (zlib's) of the bytes given as hex, printed as 8 hex digits
crc32() {
  local hex="$1" crc=$((0xFFFFFFFF)) byte k
  while [ -n "$hex" ]; do
    byte=$((16#${hex:0:2})); hex="${hex:2}"; crc=$((crc ^ byte))
    for k in 1 2 3 4 5 6 7 8; do
      if ((crc & 1)); then crc=$(((crc >> 1) ^ 0xEDB88320)); else crc=$((crc >> 1)); fi
    done
  done
  printf %08x $((crc ^ 0xFFFFFFFF))
}
unhex() { printf "$(sed 's/../\\x&/g' <<< "$1")"; }
# png FILE WIDTH HEIGHT: a PNG whose IHDR declares WIDTH x HEIGHT 8-bit RGB, with an empty IDAT
png() {
  local ihdr; ihdr="49484452$(printf %08x "$2")$(printf %08x "$3")0802000000"
  local idat="49444154789c030000000001"
  { unhex 89504e470d0a1a0a; unhex "0000000d${ihdr}$(crc32 "$ihdr")"; unhex "0000000c${idat}$(crc32 "$idat")"
    unhex "0000000049454e44ae426082"; } > "$1"
}
# jpeg FILE WIDTH HEIGHT: a baseline grayscale JPEG header (DQT, SOF0, two DHT, SOS) declaring WIDTH x HEIGHT
jpeg() {
  local dqt="ffdb004300$(printf '01%.0s' $(seq 64))" table="01$(printf '00%.0s' $(seq 15))00"
  { unhex "ffd8$dqt"; unhex "ffc0000b08$(printf %04x "$3")$(printf %04x "$2")01011100"
    unhex "ffc4001400$table"; unhex "ffc4001410$table"; unhex ffda000801010000003f00; head -c 32 /dev/zero
    unhex ffd9; } > "$1"
}

# --- a tiny valid model and dataset the malformed inputs are set beside
"$rada" create-model --preset tiny --out "$tmp/tiny.safetensors" >/dev/null 2>&1 || fail "rada create-model"
"$rada" synth --out "$tmp/data" --pretrain-per-class 0 --train-per-class 1 --test-per-class 1 >/dev/null 2>&1 \
  || fail "rada synth"
tiny="$tmp/tiny.safetensors"
embed=(embed --threads 1 --out out.npy)

# --- model files
st "$tmp/overflow.safetensors" '{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 0]}}'
hostile "safetensors: shape overflows" "overflow.safetensors" "$rada" "${embed[@]}" --model "$tmp/overflow.safetensors" --texts a
st "$tmp/negative.safetensors" '{"w": {"dtype": "F32", "shape": [-1, -4], "data_offsets": [0, 16]}}' 16
hostile "safetensors: negative dimensions" "negative.safetensors" "$rada" "${embed[@]}" --model "$tmp/negative.safetensors" --texts a
st "$tmp/hugeint.safetensors" '{"w": {"dtype": "F32", "shape": [1e300], "data_offsets": [0, 4]}}' 4
hostile "safetensors: dimension 1e300" "hugeint.safetensors" "$rada" "${embed[@]}" --model "$tmp/hugeint.safetensors" --texts a
printf '\xff\xff\xff\xff\xff\xff\xff\x7f{}' > "$tmp/headerlen.safetensors"
hostile "safetensors: header length 2^63" "headerlen.safetensors" "$rada" "${embed[@]}" --model "$tmp/headerlen.safetensors" --texts a
config() {  # config LAYERS HEADS WIDTH PATCH EPS: rada's metadata config JSON, escaped for the header
  printf '{\\"embedDim\\":32,\\"vision\\":{\\"width\\":%s,\\"layers\\":%s,\\"heads\\":%s,\\"mlpWidth\\":128,\\"patchSize\\":%s,\\"imageSize\\":32},\\"text\\":{\\"width\\":32,\\"layers\\":1,\\"heads\\":2,\\"mlpWidth\\":128,\\"contextLength\\":16,\\"vocabSize\\":49408,\\"endOfTextId\\":49407},\\"activation\\":\\"quick_gelu\\",\\"layerNormEps\\":%s}' "$3" "$1" "$2" "$4" "$5"
}
for spec in "layers 10000000 2 32 8 1e-5" "heads 1 0 32 8 1e-5" "width 1 2 1099511627776 8 1e-5" \
            "patch 1 2 32 0 1e-5" "eps 1 2 32 8 -1"; do
  set -- $spec
  st "$tmp/meta-$1.safetensors" "{\"__metadata__\": {\"rada.clip_config\": \"$(config "$2" "$3" "$4" "$5" "$6")\"}}"
  hostile "model metadata: bad $1" "meta-$1.safetensors" "$rada" "${embed[@]}" --model "$tmp/meta-$1.safetensors" --texts a
done
for spec in "heads num_attention_heads 1e300" "heads0 num_attention_heads 0" "eps layer_norm_eps NaN" \
            "eps0 layer_norm_eps 0" "size hidden_size 1e300"; do
  set -- $spec
  mkdir -p "$tmp/hf-$1"; cp "$root/Tests/CLIPTests/Fixtures/model/hf/model.safetensors" "$tmp/hf-$1/"
  sed "/\"vision_config\"/,/}/s/\"$2\": [^,]*/\"$2\": $3/" "$root/Tests/CLIPTests/Fixtures/model/hf/config.json" \
    > "$tmp/hf-$1/config.json"
  hostile "HF config.json: $2 = $3" "hf-$1/config.json" "$rada" "${embed[@]}" --model "$tmp/hf-$1" --texts a
done
cp "$tiny" "$tmp/nan.safetensors"
printf '\xff\xff\xff\xff' | dd of="$tmp/nan.safetensors" bs=1 seek=$(($(stat -c %s "$tiny") - 400)) conv=notrunc 2>/dev/null
hostile "weights: NaN in a tensor" "nan.safetensors" "$rada" "${embed[@]}" --model "$tmp/nan.safetensors" --texts a
hostile "convert-model: NaN in a tensor" "nan.safetensors" "$rada" convert-model --model "$tmp/nan.safetensors" --out converted.safetensors

# --- .npy inputs
npy "$tmp/neg.npy" '<f4' '(-1, 3, 32, 32)' 64
hostile ".npy: negative dimension" "neg.npy" "$rada" "${embed[@]}" --model "$tiny" --pixels "$tmp/neg.npy"
npy "$tmp/over.npy" '<f4' '(4294967296, 4294967296)' 64
hostile ".npy: shape overflows" "over.npy" "$rada" "${embed[@]}" --model "$tiny" --pixels "$tmp/over.npy"
npy "$tmp/frac.npy" '<i8' '(2.5, 16)' 64
hostile ".npy: fractional dimension" "frac.npy" "$rada" "${embed[@]}" --model "$tiny" --token-ids "$tmp/frac.npy"

# --- datasets
class="$(ls "$tmp/data/train" | head -1)"; image="$(ls "$tmp/data/train/$class" | head -1)"
mkdir -p "$tmp/lists"; cp "$tmp/data/train/$class/$image" "$tmp/lists/a.png"
for label in 9223372036854775807 1000000000 -3 2.5 99999999999999999999; do
  printf 'path,label\na.png,0\na.png,%s\n' "$label" > "$tmp/lists/label$label.csv"
  hostile "manifest: label $label" "label$label.csv" "$rada" eval --threads 1 --model "$tiny" --data "manifest:$tmp/lists/label$label.csv"
done
mkdir -p "$tmp/coop/oxford_pets/images"; cp "$tmp/lists/a.png" "$tmp/coop/oxford_pets/images/a.png"
for label in 1e300 9223372036854775807 2.5 true; do
  rm -rf "$tmp/coop-$label"; cp -r "$tmp/coop" "$tmp/coop-$label"
  printf '{"train": [["a.png", 0, "a"], ["a.png", %s, "b"]], "val": [], "test": [["a.png", 0, "a"]]}' "$label" \
    > "$tmp/coop-$label/oxford_pets/split_zhou_OxfordPets.json"
  hostile "split JSON: label $label" "split_zhou_OxfordPets.json" "$rada" eval --threads 1 --model "$tiny" --data "coop:$tmp/coop-$label:oxford_pets:test"
done
printf '{"train": [["a.png", 0, "a"]], "val": [], "test": [["a.png", 0, "a"]]}' > "$tmp/coop/oxford_pets/split_zhou_OxfordPets.json"
mkdir -p "$tmp/coop/oxford_pets/split_fewshot"
{ printf '\x80\x02'; head -c 200000 /dev/zero | tr '\0' ']'; head -c 199999 /dev/zero | tr '\0' 'a'; printf '.'; } \
  > "$tmp/coop/oxford_pets/split_fewshot/shot_1-seed_1.pkl"
hostile "pickle: lists nested 200,000 deep" "shot_1-seed_1.pkl" "$rada" train --setting eft --threads 1 --model "$tiny" \
  --train "coop:$tmp/coop:oxford_pets" --shots 1 --split-seed 1 --steps 1 --run-dir "$tmp/run/r"

# --- images
png "$tmp/bomb.png" 60000 60000
hostile "PNG declaring 60000x60000" "bomb.png" "$rada" "${embed[@]}" --model "$tiny" --images "$tmp/bomb.png"
hostile "preprocess: PNG declaring 60000x60000" "bomb.png" "$rada" preprocess --size 32 --out out.npy "$tmp/bomb.png"
jpeg "$tmp/bomb.jpg" 60000 60000
hostile "JPEG declaring 60000x60000" "bomb.jpg" "$rada" "${embed[@]}" --model "$tiny" --images "$tmp/bomb.jpg"
png "$tmp/strip.png" 1 1000000
hostile "PNG 1 x 10^6" "strip.png" "$rada" preprocess --size 32 --out out.npy "$tmp/strip.png"
mkdir -p "$tmp/bombfolder/cat"; cp "$tmp/bomb.png" "$tmp/bombfolder/cat/bomb.png"
hostile "eval over a folder holding a bomb" "bomb.png" "$rada" eval --threads 1 --model "$tiny" --data "imagefolder:$tmp/bombfolder"

# --- flags
hostile "tokenize --context-length 10^12" "--context-length" "$rada" tokenize --context-length 1000000000000 "a dog"
hostile "preprocess --size 10^9" "--size" "$rada" preprocess --size 1000000000 --out out.npy "$tmp/lists/a.png"
hostile "eval --logit-scale inf" "--logit-scale" "$rada" eval --threads 1 --model "$tiny" --data "imagefolder:$tmp/data/test" --logit-scale inf
hostile "info --gemm-size 10^5 (a 120 GB product)" "--gemm-size" "$rada" info --gemm-size 100000
hostile "bench ttt --views 5000" "--views" "$rada" bench ttt --views 5000
hostile "eval --batch-size 10^9" "--batch-size" "$rada" eval --threads 1 --model "$tiny" --data "imagefolder:$tmp/data/test" --batch-size 1000000000
hostile "ttt --views 10^9" "--views" "$rada" ttt --threads 1 --model "$tiny" --data "imagefolder:$tmp/data/test" --views 1000000000 \
  --run-dir "$tmp/run/t"
hostile "zeroshot: PNG declaring 60000x60000" "bomb.png" "$rada" zeroshot --threads 1 --model "$tiny" --classes cat,dog "$tmp/bomb.png"
printf 'path,caption\na.png,%s\n' "$(head -c 300 /dev/zero | tr '\0' '[')" > "$tmp/lists/captions.csv"
hostile "pretrain --seed -1" "run.seed" "$rada" pretrain --threads 1 --model "$tiny" --data "manifest:$tmp/lists/captions.csv" \
  --steps 1 --seed=-1 --run-dir "$tmp/run/p"
hostile "embed --head-width 0" "--head-width" "$rada" "${embed[@]}" --model "$tiny" --texts a --head-width 0

hostile "train --seed=-1" "run.seed" "$rada" train --setting eft --threads 1 --model "$tiny" --train "imagefolder:$tmp/data/train" \
  --steps 1 --seed=-1 --run-dir "$tmp/run/r"
hostile "train: batch x accumulation overflows" "run.accumulation" "$rada" train --setting eft --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --batch-size 4 --accumulation 4611686018427387904 --run-dir "$tmp/run/r"
hostile "train: logit scale 0" "model.logitScale" "$rada" train --setting eft --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --logit-scale 0 --run-dir "$tmp/run/r"
hostile "train: negative warm-up lr" "schedule.warmupLR" "$rada" train --setting eft --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --set schedule.warmupLR=-1 --run-dir "$tmp/run/r"

# --- configs and specs
{ printf 'a: &a [x, x, x, x, x, x, x, x, x]\n'; prev=a
  for l in b c d e f g h i; do printf '%s: &%s [' "$l" "$l"; for k in 1 2 3 4 5 6 7 8; do printf '*%s, ' "$prev"; done
    printf '*%s]\n' "$prev"; prev=$l; done; } > "$tmp/bomb.yaml"
hostile "train --config: YAML alias bomb" "bomb.yaml" "$rada" train --config "$tmp/bomb.yaml" --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --run-dir "$tmp/run/r"
{ printf 'optim: '; head -c 20000 /dev/zero | tr '\0' '['; head -c 20000 /dev/zero | tr '\0' ']'; echo; } > "$tmp/deep.yaml"
hostile "train --config: 20,000 nested lists" "deep.yaml" "$rada" train --config "$tmp/deep.yaml" --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --run-dir "$tmp/run/r"
printf 'optim: {[x]: 1}\n' > "$tmp/key.yaml"
hostile "train --config: a list as a mapping key" "key.yaml" "$rada" train --config "$tmp/key.yaml" --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --run-dir "$tmp/run/r"
hostile "train --set with a list as a mapping key" "rada.templates" "$rada" train --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --set 'rada.templates={[x]: 1}' --run-dir "$tmp/run/r"
printf 'grid: {lr: [%s], alpha: [%s], shots: [%s]}\n' "$(seq -s, 1 100)" "$(seq -s, 1 100)" "$(seq -s, 1 100)" > "$tmp/huge.yaml"
hostile "sweep: 10^6 configurations" "1000000 configurations" "$rada" sweep run "$tmp/huge.yaml" --out sweep
printf 'args: --set run.dir=%s/escaped\ngrid: {lr: [1, 2]}\n' "$tmp" > "$tmp/escape.yaml"
hostile "sweep: --set run.dir in args" "run.dir" "$rada" sweep run "$tmp/escape.yaml" --out sweep
printf 'name: "x\\ntouch %s/pwned"\ngrid: {lr: [1, 2]}\n' "$tmp" > "$tmp/inject.yaml"
hostile "sweep --emit-slurm: newline in the name" "'name'" "$rada" sweep run "$tmp/inject.yaml" --out sweep --emit-slurm job.sbatch
printf 'grid: {lr: [1, 2]}\n' > "$tmp/plain.yaml"
hostile "sweep --emit-slurm: newline in --out" "--out" "$rada" sweep run "$tmp/plain.yaml" --out $'sweep\ntouch pwned' --emit-slurm job.sbatch

# --- run state: a checkpoint whose state.json holds absurd numbers is skipped as damaged, never trusted
"$rada" train --setting eft --threads 1 --model "$tiny" --train "imagefolder:$tmp/data/train" --steps 2 --batch-size 4 \
  --no-augment --checkpoint-every 1 --run-dir "$tmp/state-run" --feature-cache "$tmp/state-cache" >/dev/null 2>&1 \
  || fail "train for a checkpoint"
state="$(ls -d "$tmp"/state-run/checkpoints/step_* | tail -1)/state.json"
sed -i 's/"step" *: *[0-9]*/"step":-5/' "$state"
grep -q '"step":-5' "$state" || fail "could not edit $state"
cases=$((cases + 1))
out="$(timeout 120 "$rada" train --setting eft --threads 1 --model "$tiny" --train "imagefolder:$tmp/data/train" --steps 3 \
  --batch-size 4 --no-augment --checkpoint-every 1 --run-dir "$tmp/state-run" --feature-cache "$tmp/state-cache" --resume auto 2>&1)"; rc=$?
# DONE holds state.json's checksum (issue 15), so an edited state.json is caught as damaged before its numbers are
# read; the numbers' own check (with DONE rewritten) is HostileTrainingInputTests.testStateWithAbsurdNumbers...
if [ $rc -ge 128 ] || [ $rc -eq 124 ] || ! grep -Eq "state.json: step is -5|state.json checksum [0-9a-f]+ != recorded" <<< "$out"; then
  failures=$((failures + 1)); echo "FAILED  state.json with step -5 (exit $rc)"; echo "$out" | tail -5 | sed 's/^/    /'
else
  echo "ok      state.json with step -5: $(grep -m1 -E "step is -5|state.json checksum" <<< "$out" | cut -c1-150)"
fi

# --- files passed by mistake (a password file, say): refused without echoing a byte of them
printf 'SECRET-MARKER root:x:0:0:root:/root:/bin/bash\nSECRET-MARKER: x\n' > "$tmp/secret.txt"
hostile "secret file as --config" "secret.txt" "$rada" train --config "$tmp/secret.txt" --threads 1 --model "$tiny" \
  --train "imagefolder:$tmp/data/train" --steps 1 --run-dir "$tmp/run/r"
hostile "secret file as a manifest" "secret.txt" "$rada" eval --threads 1 --model "$tiny" --data "manifest:$tmp/secret.txt"
hostile "secret file as a sweep spec" "sweep spec" "$rada" sweep run "$tmp/secret.txt" --out sweep
hostile "secret file as a model" "secret.txt" "$rada" "${embed[@]}" --model "$tmp/secret.txt" --texts a
hostile "secret file as an image" "secret.txt" "$rada" preprocess --size 32 --out out.npy "$tmp/secret.txt"
hostile "secret file as token ids" "secret.txt" "$rada" "${embed[@]}" --model "$tiny" --token-ids "$tmp/secret.txt"

mkdir -p "$tmp/devzero"; ln -s /dev/zero "$tmp/devzero/metrics.jsonl"
hostile "report: metrics.jsonl linked to /dev/zero" "metrics.jsonl" "$rada" report "$tmp/devzero" --out report.html
hostile "eval --classes /dev/zero" "/dev/zero" "$rada" eval --threads 1 --model "$tiny" --data "imagefolder:$tmp/data/test" --classes /dev/zero

# --- reports: absurd but well-formed metrics render (exit 0), never trap
tolerated() {  # tolerated NAME COMMAND...: COMMAND must succeed
  cases=$((cases + 1))
  local name="$1"; shift
  local out rc; out="$(timeout 120 "$@" 2>&1)"; rc=$?
  if [ $rc -ne 0 ]; then failures=$((failures + 1)); echo "FAILED  $name (exit $rc)"; echo "$out" | tail -5 | sed 's/^/    /'
  else echo "ok      $name"; fi
}
mkdir -p "$tmp/report"
printf '{"step": 1, "train/loss": 1.7e308}\n{"step": 2, "train/loss": -1.7e308}\n{"step": 3, "train/loss": 4e-320}\n{"step": 4, "val/top1": 5e-324}\n{"step": -5, "lr": 1e300}\n{"step": 1e300, "lr": 1}\n' \
  > "$tmp/report/metrics.jsonl"
tolerated "report: metrics at ±1.7e308, subnormal and absurd steps" "$rada" report "$tmp/report" --out "$tmp/report/r.html"

echo "hostile inputs: $((cases - failures))/$cases cases ok"
[ $failures -eq 0 ]
