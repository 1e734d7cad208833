#!/usr/bin/env bash
# The federation's scale curve: `fedmesh sim` at each N of SCALE with
# SCALE_SERVICES services per cluster, one JSON result per N in
# bench/scale/, then the plot bench/scale/scale.png. Opt-in from
# `make bench` (SCALE="10 25 50" make bench), or run alone:
#   SCALE="10 25 50 100 200" bash scripts/bench-scale.sh
#   SCALE_SERVICES=100        services per cluster (default 100)
#   SCALE_FLAGS="..."         more `fedmesh sim` flags (e.g. --gossip-profile lan)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${SCALE:?set SCALE to the cluster counts to run, e.g. SCALE=\"10 25 50\"}"
services=${SCALE_SERVICES:-100}
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
go build -o "$bin/fedmesh" ./cmd/fedmesh
mkdir -p bench/scale
for n in $SCALE; do
	echo "# fedmesh sim --clusters $n --services $services ${SCALE_FLAGS:-} (load $(cut -d' ' -f1-3 /proc/loadavg))"
	# A run that times out still writes what it measured; keep going.
	# shellcheck disable=SC2086
	"$bin/fedmesh" sim --clusters "$n" --services "$services" ${SCALE_FLAGS:-} -o json >"bench/scale/n$n.json" || echo "# N=$n did not complete every phase; see bench/scale/n$n.json"
done
go run ./bench/cmd/scaleplot -o bench/scale/scale.png bench/scale/n*.json
echo "wrote bench/scale/n*.json and bench/scale/scale.png"
