# Shared by the launch/ scripts (sourced, not run). Finds the repo, Swift and mpirun, and sets the
# OpenMPI variables a root user needs. Nothing here changes the machine.
RADA_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v swift >/dev/null 2>&1 && [ -x /opt/swift/usr/bin/swift ]; then
  export PATH="$PATH:/opt/swift/usr/bin"
fi
# OpenMPI refuses to run as root unless told; containers and CI machines often are root.
if [ "$(id -u)" = "0" ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Build configuration for the scripts: debug for tests (fast to compile), release for real runs.
rada_build() {  # rada_build debug|release  -> prints the binary path
  local config="$1"
  (cd "$RADA_ROOT" && swift build -c "$config" --product rada >&2) || return 1
  echo "$RADA_ROOT/.build/$config/rada"
}

# For the multi-rank tests: compare the per-step losses of two runs.
# losses FILE: the train/loss of every step line of a metrics.jsonl, one per line
losses() { grep '"train/loss"' "$1" | sed 's/.*"train\/loss":\([^,}]*\).*/\1/'; }
# same_losses A B: equal count and |a - b| <= 1e-5 · max(|a|, 1e-3) per step
same_losses() {
  paste <(losses "$1") <(losses "$2") | awk -v a="$1" -v b="$2" '
    { n++; d = $1 - $2; if (d < 0) d = -d; m = ($1 < 0 ? -$1 : $1); if (m < 1e-3) m = 1e-3
      if ($2 == "" || d > 1e-5 * m) { printf "step %d: loss %s (%s) vs %s (%s)\n", n, $1, a, $2, b; bad = 1 } }
    END { if (n == 0) { print "no losses in " a; bad = 1 }; exit bad }'
}

# tiny_task RADA DIR: a small synthetic task and a tiny random CLIP for the multi-rank checks: DIR/data/{train,test,
# shifted} (16 classes; 2, 1 and 1 image per class) and DIR/tiny.safetensors. Prints what failed, returns non-zero.
tiny_task() {
  "$1" synth --out "$2/data" --pretrain-per-class 0 --train-per-class 2 --test-per-class 1 >/dev/null \
    || { echo "rada synth failed"; return 1; }
  "$1" create-model --preset tiny --out "$2/tiny.safetensors" >/dev/null || { echo "rada create-model failed"; return 1; }
}

# run_mpirun_stoppable CMD...: runs mpirun in the background and turns TERM/INT/HUP sent to this script into
# SIGUSR1 for mpirun, which forwards it to every rank (rada stops on it: a checkpoint and exit 75). OpenMPI 4.1's
# mpirun itself answers TERM by killing the ranks within ~1 s (exit 1, no checkpoint) and refuses to forward TERM
# (ess_base_forward_signals SIGTERM is rejected); measured 2026-12-05. Exits with mpirun's status.
run_mpirun_stoppable() {
  local child status
  "$@" &
  child=$!
  trap 'kill -USR1 "$child" 2>/dev/null' TERM INT HUP
  while true; do
    status=0; wait "$child" || status=$?
    # wait returns >128 when a trapped signal interrupted it; the child is still running then.
    kill -0 "$child" 2>/dev/null || break
  done
  trap - TERM INT HUP
  return "$status"
}
