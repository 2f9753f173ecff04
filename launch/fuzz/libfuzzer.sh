#!/usr/bin/env bash
# What: a long coverage-guided run of one rada-fuzz target under libFuzzer. Builds rada-fuzz with the Swift
#       toolchain's -sanitize=fuzzer into .build-fuzz (a separate, instrumented build of the package: several
#       minutes the first time), then runs libFuzzer on Tests/Fuzz/corpus/TARGET (a working copy in
#       .build-fuzz/corpus/TARGET keeps what it finds). Crashes are written as .build-fuzz/crash-*; replay one with
#       .build/debug/rada-fuzz TARGET --input FILE. CI runs the quick mutation loop instead (launch/tests/fuzz.sh).
# Example: launch/fuzz/libfuzzer.sh pickle 600        (targets: .build/debug/rada-fuzz --list)
# Expected: libFuzzer's status lines, then "Done N runs in S second(s)" and exit 0 when nothing crashed.
set -euo pipefail
target="${1:?usage: libfuzzer.sh TARGET [SECONDS]}"
seconds="${2:-600}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
swift build --build-path .build-fuzz --product rada-fuzz -Xswiftc -sanitize=fuzzer -Xswiftc -DLIBFUZZER \
  -Xcc -fsanitize=fuzzer-no-link 2>&1 | grep -Ev "^\[[0-9]+/[0-9]+\]" || true
binary="$(swift build --build-path .build-fuzz --show-bin-path)/rada-fuzz"
mkdir -p ".build-fuzz/corpus/$target"
cp -n "Tests/Fuzz/corpus/$target"/* ".build-fuzz/corpus/$target/" 2>/dev/null || true
cd .build-fuzz
RADA_FUZZ_TARGET="$target" "$binary" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 "corpus/$target"
