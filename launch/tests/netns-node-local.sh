#!/usr/bin/env bash
# What: issue 15's node-local disks on the network-namespace cluster: 2 "nodes", each with its own HOME (so its
#       own ~/.cache/rada/features, as on a cluster without a shared home), EFT --no-augment with the default
#       feature cache. Run 1 fills node1's cache only (the coordinator writes it); run 2 starts with a hit on
#       node1 and a miss on node2; run 3 with the cache moved to node2 only (miss on node1, hit on node2). The
#       ranks must agree to encode (before, rank 0 skipped a collective rank 1 entered: the job hung forever):
#       every run completes, and each head equals a one-process run's within float tolerance.
#       Exits 77 (skipped) where namespaces cannot be created (no root/capabilities).
# Example: bash launch/tests/netns-node-local.sh .build/debug/rada
# Expected: "netns node-local caches: all checks passed", exit 0 (about 20 s).
set -uo pipefail
rada="$(cd "$(dirname "${1:?usage: netns-node-local.sh RADA_BINARY}")" && pwd)/$(basename "$1")"
root="$(cd "$(dirname "$0")/../.." && pwd)"
source "$root/launch/common.sh"
net="$root/cluster/netns"
work="$(mktemp -d /tmp/rada-netns-local.XXXXXX)"
if ! "$net/up" 2 >/dev/null 2>&1; then
  echo "skipped: cannot create network namespaces here (needs root with CAP_NET_ADMIN/CAP_SYS_ADMIN)"
  "$net/down" >/dev/null 2>&1; rm -rf "$work"; exit 77
fi
trap '"$net/down" >/dev/null 2>&1; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
fail() { echo "FAILED: $*"; exit 1; }
export RADA_NETNS_HOME_BASE="$work/homes"   # the agent gives node K the HOME $work/homes/nodeK

"$rada" synth --out "$work/data" --pretrain-per-class 0 --train-per-class 4 --test-per-class 2 >/dev/null || fail "rada synth"
"$rada" create-model --preset tiny --out "$work/tiny.safetensors" >/dev/null || fail "rada create-model"
# Global batch 6 = 2 ranks x 3, fixed order, SGD: 2 ranks and 1 rank see the same batches.
train_args=(train --setting eft --model "$work/tiny.safetensors" --train "imagefolder:$work/data/train"
            --eval "imagefolder:$work/data/test" --steps 6 --batch-size 6 --no-augment --no-shuffle --optim sgd
            --lr 0.5 --log-every 3 --threads 1 --set run.collectiveTimeout=30)
HOME="$work/homes/single" "$rada" "${train_args[@]}" --run-dir "$work/single" > "$work/single.log" 2>&1 \
  || fail "one-process run: $(tail -5 "$work/single.log")"

cache() { ls "$work/homes/$1/.cache/rada/features/"*.safetensors 2>/dev/null | wc -l; }
run() {  # run NAME: a 2-node job, which must end (a hang is the failure this test is about)
  timeout 120 "$net/mpirun-nodes" 2 "$rada" "${train_args[@]}" --run-dir "$work/$1" > "$work/$1.log" 2>&1 \
    || fail "2-node run $1 (exit $?): $(tail -20 "$work/$1.log")"
  # 1 rank vs 2 ranks: the same sums in another order; 1e-5 relative is far above float32 reordering noise
  # (~1e-7) and far below what one SGD step changes.
  out="$("$rada" selftest compare "$work/single/head.safetensors" "$work/$1/head.safetensors" --tolerance 1e-5)" \
    || fail "run $1 differs from one process: $out"
}

run first
[ "$(cache node1)" -ge 1 ] && [ "$(cache node2)" -eq 0 ] \
  || fail "expected node1's cache filled and node2's empty: node1 $(cache node1), node2 $(cache node2)"
run hit-on-rank0            # node1 hits, node2 misses
grep -q "image features: encoded" "$work/hit-on-rank0.log" || fail "a miss on node2 must make every rank encode"
mkdir -p "$work/homes/node2/.cache/rada"
mv "$work/homes/node1/.cache/rada/features" "$work/homes/node2/.cache/rada/features"
run hit-on-rank1            # node1 misses, node2 hits
echo "netns node-local caches: all checks passed"
