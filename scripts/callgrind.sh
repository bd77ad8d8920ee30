#!/usr/bin/env bash
# Instructions per operation, accordant and crdts 7.3.2, counted by
# `valgrind --tool=callgrind` on the small binary `callgrind-ops`
# (bench-tools/src/bin/callgrind-ops.rs). Only the functions `measured_op`
# and `measured_merge` are collected (--toggle-collect), so building the fixture is not counted;
# the count is divided by the number of operations (a merge is one).
# Then `Store::update` on an in-memory store (the example
# sync/examples/callgrind_store_update.rs: STORE_KEYS random u64 keys of
# three-replica counters or 256-byte LWW registers, STORE_UPDATES updates of
# random keys, only `measured` collected), printed as `store_<value> update`.
#
#   scripts/callgrind.sh                  # n = 100000, 1000 ops per kind
#   SIZES="1000 100000" COUNT=500 scripts/callgrind.sh
#   STORE_KEYS=1000000 scripts/callgrind.sh   # store updates at 1e6 keys (slow under valgrind)
#
# Prints one line per measurement: kind op library n instructions_per_op.
# Every instruction count quoted in a note comes from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-100000}
COUNT=${COUNT:-1000}
STORE_KEYS=${STORE_KEYS:-100000}
STORE_UPDATES=${STORE_UPDATES:-10000}
target=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --quiet --release -p accordant-bench-tools --bin callgrind-ops
cargo build --quiet --release -p accordant-sync --example callgrind_store_update
bin="$target/release/callgrind-ops"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for n in $SIZES; do
  for spec in "or_set add" "or_set remove" "or_set merge" \
              "or_map add" "or_map update" "or_map merge"; do
    set -- $spec
    kind=$1 op=$2
    ops=$COUNT
    [ "$op" = merge ] && ops=1
    for lib in accordant crdts; do
      valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
        --toggle-collect='*measured_*' \
        "$bin" "$kind" "$op" "$lib" "$n" "$ops" >/dev/null 2>"$tmp/log" \
        || { cat "$tmp/log" >&2; exit 1; }
      total=$(awk '/^(summary|totals):/ { print $2; exit }' "$tmp/cg.out")
      awk -v k="$kind" -v o="$op" -v l="$lib" -v n="$n" -v t="$total" -v c="$ops" \
        'BEGIN { printf "%s %s %s %s %.0f\n", k, o, l, n, t / c }'
    done
  done
done
for value in counter lww256; do
  valgrind --tool=callgrind --callgrind-out-file="$tmp/cg.out" \
    --collect-atstart=no --toggle-collect='*measured*' \
    "$target/release/examples/callgrind_store_update" "$value" "$STORE_KEYS" "$STORE_UPDATES" \
    >/dev/null 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }
  total=$(awk '/^(summary|totals):/ { print $2; exit }' "$tmp/cg.out")
  awk -v v="$value" -v n="$STORE_KEYS" -v t="$total" -v c="$STORE_UPDATES" \
    'BEGIN { printf "store_%s update accordant %s %.0f\n", v, n, t / c }'
done
