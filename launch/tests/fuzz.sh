#!/usr/bin/env bash
# What: every fuzz target of rada-fuzz (one per parser of untrusted input, README "Input safety") runs its seed
#       corpus (Tests/Fuzz/corpus/TARGET) and then mutations of it for a few seconds; any crash, trap or hang
#       fails. First it checks that a crash is noticed at all: the `canary` target must die on its CANARY input.
#       The mutation loop is seeded from the date (printed); a failing target is replayed with the same seed and
#       --save, which leaves the crashing input in /tmp/rada-fuzz-crash-TARGET.
#       Longer runs: RADA_FUZZ_SECONDS=600 bash launch/tests/fuzz.sh .build/debug/rada, or libFuzzer with
#       launch/fuzz/libfuzzer.sh TARGET.
# Example: bash launch/tests/fuzz.sh .build/debug/rada
# Expected: "fuzz: 11 targets, no crash" and exit 0; about 40 s (3 s per target) with a debug build.
set -uo pipefail
rada="${1:?usage: fuzz.sh RADA_BINARY}"
fuzz="$(dirname "$rada")/rada-fuzz"
corpus="$(cd "$(dirname "$0")/../.." && pwd)/Tests/Fuzz/corpus"
seconds="${RADA_FUZZ_SECONDS:-3}"
[ -x "$fuzz" ] || { echo "FAILED: $fuzz not built (swift build builds it beside rada)"; exit 1; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

printf 'CANARY' > "$tmp/canary"
rc=$( { timeout 60 "$fuzz" canary --input "$tmp/canary" >/dev/null 2>&1; echo $?; } 2>/dev/null)
[ $rc -ge 128 ] || { echo "FAILED: the canary crash was not noticed (exit $rc)"; exit 1; }

seed="${RADA_FUZZ_SEED:-$(date +%s)}"
failed=0; count=0
for target in $("$fuzz" --list | cut -f1); do
  [ "$target" = canary ] && continue
  count=$((count + 1))
  run=("$fuzz" "$target" --corpus "$corpus/$target" --seconds "$seconds" --seed "$seed")
  out="$( { timeout $((seconds + 120)) "${run[@]}" 2>&1; } 2>&1)"; rc=$?
  if [ $rc -eq 0 ]; then
    echo "ok      $target: $(tail -1 <<< "$out")"
  else
    failed=$((failed + 1))
    # Replay the same inputs, saving each before it runs: the file left is the one that crashed (or hung).
    # Saving makes each input slower, so the replay gets 100 times the time to reach the same one.
    { timeout $((100 * seconds + 120)) "${run[@]}" --save "/tmp/rada-fuzz-crash-$target" --seconds $((100 * seconds)) \
        >/dev/null 2>&1; } 2>/dev/null
    echo "FAILED  $target (exit $rc; $( [ $rc -eq 124 ] && echo "hang" || echo "crash"); seed $seed): input in /tmp/rada-fuzz-crash-$target"
    echo "    replay: $fuzz $target --input /tmp/rada-fuzz-crash-$target"
    echo "$out" | grep -v "^\s*[0-9]* \[ra\]" | tail -8 | sed 's/^/    /'
  fi
done
echo "fuzz: $count targets, $([ $failed -eq 0 ] && echo "no crash" || echo "$failed failed")"
[ $failed -eq 0 ]
