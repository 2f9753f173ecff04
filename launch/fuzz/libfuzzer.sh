#!/usr/bin/env bash
# What: a long coverage-guided run of one rada-fuzz target under libFuzzer. Builds rada-fuzz with the Swift
#       toolchain's -sanitize=fuzzer (Swift and the C image/gzip helpers instrumented) into .build-fuzz, a separate
#       build of the package (about a minute here, more the first time), then runs libFuzzer on
#       Tests/Fuzz/corpus/TARGET (a working copy in .build-fuzz/corpus/TARGET keeps what it finds). With
#       RADA_FUZZ_ASAN=1 it adds AddressSanitizer (.build-fuzz-asan), which also catches out-of-bounds reads and
#       writes that do not crash. Crashes are written as crash-* in the build folder; replay one with
#       .build/debug/rada-fuzz TARGET --input FILE. CI runs the quick mutation loop instead (launch/tests/fuzz.sh).
# Example: launch/fuzz/libfuzzer.sh pickle 600        (targets: .build/debug/rada-fuzz --list)
# Expected: libFuzzer's status lines, then "Done N runs in S second(s)" and exit 0 when nothing crashed.
set -euo pipefail
target="${1:?usage: libfuzzer.sh TARGET [SECONDS]}"
seconds="${2:-600}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
build=.build-fuzz sanitizers=fuzzer
if [ "${RADA_FUZZ_ASAN:-0}" = 1 ]; then build=.build-fuzz-asan sanitizers=fuzzer,address; fi
swift build --build-path "$build" --product rada-fuzz -Xswiftc -sanitize="$sanitizers" -Xswiftc -DLIBFUZZER \
  -Xcc -fsanitize="${sanitizers/fuzzer/fuzzer-no-link}" 2>&1 | grep -Ev "^\[[0-9]+/[0-9]+\]" || true
binary="$(swift build --build-path "$build" --show-bin-path)/rada-fuzz"
mkdir -p "$build/corpus/$target"
cp -n "Tests/Fuzz/corpus/$target"/* "$build/corpus/$target/" 2>/dev/null || true
cd "$build"
RADA_FUZZ_TARGET="$target" "$binary" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 "corpus/$target"
