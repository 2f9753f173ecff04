#!/usr/bin/env bash
# What: multi-node checks on the network-namespace test cluster (cluster/netns): every collective across 3
#       "nodes" over TCP, `rada info` showing three hosts, and a lost rank (SIGKILL on node2) ending the job
#       within 30 s with a message. Exits 77 (skipped) where namespaces cannot be created (no root/capabilities).
# Example: bash launch/tests/netns-cluster.sh .build/debug/rada
# Expected: exit 0.
set -uo pipefail
rada="${1:?usage: netns-cluster.sh RADA_BINARY}"
source "$(dirname "$0")/../common.sh"
root="$(cd "$(dirname "$0")/../.." && pwd)"
net="$root/cluster/netns"
if ! "$net/up" 3 >/dev/null 2>&1; then
  echo "skipped: cannot create network namespaces here (needs root with CAP_NET_ADMIN/CAP_SYS_ADMIN)"
  "$net/down" >/dev/null 2>&1; exit 77
fi
trap '"$net/down" >/dev/null 2>&1' EXIT
fail() { echo "FAILED: $*"; exit 1; }

out="$("$net/mpirun-nodes" 3 "$rada" selftest collectives 2>&1)" || fail "collectives across 3 nodes: $out"
echo "$out" | grep -q "all checks passed" || fail "collectives: $out"

out="$("$net/mpirun-nodes" 3 "$rada" info --json --threads 1 --gemm-size 128 2>&1)" || fail "info: $out"
for h in node1 node2 node3; do echo "$out" | grep -q "\"host\":\"$h\"" || fail "info lacks host $h: $out"; done

# A rank killed on node2 while the others wait in a collective: the job must end quickly with a message.
start=$SECONDS
out="$(timeout 90 "$net/mpirun-nodes" 3 "$rada" selftest fail --rank 1 --kill 2>&1)"; rc=$?
took=$((SECONDS - start))
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "job with a killed rank exited $rc"
[ $took -le 30 ] || fail "job with a killed rank took ${took}s (limit 30 s)"
echo "$out" | grep -q "rank 1 .* exited on signal 9" || fail "no message naming the lost rank: $out"
echo "netns cluster: collectives ok, 3 hosts, killed rank ended the job in ${took}s (exit $rc)"
