#!/usr/bin/env bash
# What: progress output fit for logs. `mpirun -np 2 rada train ... > FILE` (run.progress auto) writes plain lines
#       with no carriage return or escape sequence, although mpirun hands the ranks a pseudo-terminal; the same job
#       with mpirun itself on a terminal (util-linux `script`) draws the live bar; --progress lines never draws it
#       and --progress none prints no step lines.
# Example: bash launch/tests/progress-log.sh .build/debug/rada
# Expected: "progress-log: ok ..." and exit 0 (77 = skipped when mpirun is missing). About 15 s on 2 idle cores.
set -uo pipefail
rada="${1:?usage: progress-log.sh RADA_BINARY}"
source "$(cd "$(dirname "$0")/.." && pwd)/common.sh"
command -v mpirun >/dev/null 2>&1 || { echo "skipped: mpirun not found"; exit 77; }
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
mpi=(mpirun --mca mpi_yield_when_idle 1 -np 2)

tiny_task "$rada" "$tmp" || fail "the tiny task"
train=(train --setting eft --model "$tmp/tiny.safetensors" --train "imagefolder:$tmp/data/train" --steps 12
       --log-every 4 --batch-size 4 --no-augment --threads 1 --feature-cache "$tmp/cache")
unset RADA_OUTPUT_TTY

# 1. Output to a file: lines only.
"${mpi[@]}" "$rada" "${train[@]}" --run-dir "$tmp/r1" >"$tmp/file.log" 2>&1 || { cat "$tmp/file.log"; fail "train to a file"; }
grep -q "step 4/12" "$tmp/file.log" && grep -q "step 12/12" "$tmp/file.log" \
  || { cat "$tmp/file.log"; fail "no progress lines in the log"; }
if LC_ALL=C grep -q $'[\r\x1b]' "$tmp/file.log"; then
  LC_ALL=C grep -n $'[\r\x1b]' "$tmp/file.log" | cat -A | head -3; fail "the log file holds control characters"
fi
lines=$(grep -c "^step " "$tmp/file.log")

# 2. mpirun on a terminal: `script` gives it a pseudo-terminal (its typescript turns \n into \r\n, so look for ESC[K).
if ! script -qec true /dev/null >/dev/null 2>&1; then
  echo "progress-log: ok ($lines plain progress lines in the log; terminal case skipped: script cannot open a pty)"; exit 0
fi
on_terminal() {  # on_terminal RUN_DIR TYPESCRIPT [extra flags]: the training job with mpirun on a pseudo-terminal
  local dir="$1" typescript="$2"; shift 2
  script -qec "$(printf '%q ' "${mpi[@]}" "$rada" "${train[@]}" --run-dir "$dir" "$@")" "$typescript" >/dev/null 2>&1 \
    || { cat "$typescript"; fail "train on a terminal $*"; }
}
on_terminal "$tmp/r2" "$tmp/tty.log"
LC_ALL=C grep -q $'\x1b\\[K' "$tmp/tty.log" || { cat -A "$tmp/tty.log" | head; fail "no live bar on a terminal (auto)"; }
on_terminal "$tmp/r3" "$tmp/tty-lines.log" --progress lines
grep -q "step 12/12" "$tmp/tty-lines.log" || fail "--progress lines printed no step line"
LC_ALL=C grep -q $'\x1b' "$tmp/tty-lines.log" && { cat -A "$tmp/tty-lines.log" | head; fail "--progress lines drew a bar"; }
"${mpi[@]}" "$rada" "${train[@]}" --run-dir "$tmp/r4" --progress none >"$tmp/none.log" 2>&1 || fail "train --progress none"
grep -q "^step " "$tmp/none.log" && { cat "$tmp/none.log"; fail "--progress none printed step lines"; }
echo "progress-log: ok ($lines plain progress lines in the log file; live bar only with mpirun on a terminal)"
