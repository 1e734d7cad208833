#!/usr/bin/env bash
# Runs every Go benchmark once through and records the machine beside the
# figures in bench/results.txt. BENCHTIME and BENCH narrow the run.
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results.txt
benchtime=${BENCHTIME:-1s}
pattern=${BENCH:-.}
{
	echo "# fedmesh benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(go version | cut -d' ' -f3-), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
	go test -run='^$' -bench="$pattern" -benchtime="$benchtime" -benchmem ./... 2>&1 | grep -vE '^(ok|PASS|\?)\s'
} | tee "$out"
echo "wrote $out"
