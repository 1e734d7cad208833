#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME (default 10s) each.
# FUZZMINIMIZETIME (default 1s) bounds the minimizing of each new
# interesting input: go test's own default, 60s, lets a short run spend all
# of its time minimizing the first input it finds, fuzzing almost nothing
# (a few hundred executions where a bounded minimize gives thousands).
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
minimizetime=${FUZZMINIMIZETIME:-1s}
mapfile -t files < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
if [ ${#files[@]} -eq 0 ]; then
	echo "no fuzz targets"
	exit 0
fi
status=0
for f in "${files[@]}"; do
	dir=./$(dirname "$f")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		echo "== $dir $target ($fuzztime, minimize $minimizetime)"
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime="$minimizetime" "$dir"; then
			status=1
		fi
	done
done
exit $status
