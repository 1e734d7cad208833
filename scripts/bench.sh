#!/usr/bin/env bash
# make bench: every Go benchmark (testing.B), then the comparative drivers
# against HAProxy and fortio (scripts/bench-sidecar.sh, bench-gateway.sh).
# The machine is recorded beside the figures in bench/results.txt.
#   BENCH=regexp      only benchmarks matching it (default: all)
#   BENCHTIME=d|Nx    go test -benchtime (default 300ms)
#   COMPARE=0         skip the HAProxy/fortio drivers
#   SCALE="10 25 50"  also run the federation simulator at these cluster
#                     counts (scripts/bench-scale.sh; minutes per run)
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/results.txt
benchtime=${BENCHTIME:-300ms}
pattern=${BENCH:-.}
{
	echo "# fedmesh benchmarks, $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown), $(go version | cut -d' ' -f3-), $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, load $(cut -d' ' -f1-3 /proc/loadavg)"
	go test -run='^$' -bench="$pattern" -benchtime="$benchtime" -benchmem -timeout 60m ./... 2>&1 | grep -vE '^(ok|PASS|\?)\s'
} | tee "$out"
echo "wrote $out"
if [ "${COMPARE:-1}" != 0 ]; then
	bash scripts/bench-sidecar.sh
	bash scripts/bench-gateway.sh
fi
if [ -n "${SCALE:-}" ]; then
	bash scripts/bench-scale.sh
fi
