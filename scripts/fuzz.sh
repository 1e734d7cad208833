#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME (default 10s) each.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-10s}
mapfile -t files < <(git ls-files '*_test.go' | xargs grep -l '^func Fuzz' || true)
if [ ${#files[@]} -eq 0 ]; then
	echo "no fuzz targets"
	exit 0
fi
status=0
for f in "${files[@]}"; do
	dir=./$(dirname "$f")
	for target in $(grep -o '^func Fuzz[A-Za-z0-9_]*' "$f" | sed 's/^func //'); do
		echo "== $dir $target ($fuzztime)"
		if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" "$dir"; then
			status=1
		fi
	done
done
exit $status
