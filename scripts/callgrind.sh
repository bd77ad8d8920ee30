#!/usr/bin/env bash
# Instructions per operation, accordant and crdts 7.3.2, counted by
# `valgrind --tool=callgrind` on the small binary `callgrind-ops`
# (bench-tools/src/bin/callgrind-ops.rs). Only the functions `measured_op`
# and `measured_merge` are collected (--toggle-collect), so building the fixture is not counted;
# the count is divided by the number of operations (a merge is one).
#
#   scripts/callgrind.sh                  # n = 100000, 1000 ops per kind
#   SIZES="1000 100000" COUNT=500 scripts/callgrind.sh
#
# Prints one line per measurement: kind op library n instructions_per_op.
# Every instruction count quoted in a note comes from this script.
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${SIZES:-100000}
COUNT=${COUNT:-1000}
target=${CARGO_TARGET_DIR:-target}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
cargo build --quiet --release -p accordant-bench-tools --bin callgrind-ops
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
