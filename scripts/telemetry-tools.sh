#!/usr/bin/env bash
# Builds a real Jaeger (all-in-one: OTLP receiver on gRPC and HTTP, query API
# and UI) from its Go module, for the tracing end-to-end tests and the demo,
# and prints the directory that holds it. The build is cached outside the
# repository ($FEDMESH_TOOLS_DIR, default ~/.cache/fedmesh/tools), so later
# runs only check that the binary exists. The first build takes about 3-4
# minutes on 2 idle cores (over 20 on 2 cores busy with other builds).
#
#   bash scripts/telemetry-tools.sh          build what is missing, print the dir
#   bash scripts/telemetry-tools.sh --check  print the dir if it is built, else
#                                            exit 1 without building
set -euo pipefail

jaeger_version=${JAEGER_VERSION:-v1.75.0}
tools=${FEDMESH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fedmesh/tools}
bin=$tools/telemetry-jaeger-$jaeger_version
log() { echo "telemetry-tools: $*" >&2; }

if [ "${1:-}" = "--check" ]; then
	if [ -x "$bin/jaeger" ]; then
		echo "$bin"
		exit 0
	fi
	log "not built: $bin/jaeger (run: bash scripts/telemetry-tools.sh)"
	exit 1
fi

mkdir -p "$bin"
# One build at a time: a second caller waits for the first, then finds the
# binary built.
exec 9>"$tools/.telemetry-lock"
flock 9

build_jaeger() {
	[ -x "$bin/jaeger" ] && return 0
	local mod=$tools/src/jaeger-$jaeger_version
	rm -rf "$mod"
	mkdir -p "$mod"
	cat >"$mod/go.mod" <<MOD
module fedmesh.local/tools/jaeger

go 1.26
MOD
	log "building jaeger $jaeger_version (first time only: 3-4 minutes on 2 idle cores)"
	local start=$SECONDS
	(cd "$mod" && GOFLAGS=-mod=mod go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$jaeger_version" >/dev/null &&
		GOFLAGS=-mod=mod go build -trimpath -o "$bin/jaeger.tmp" github.com/jaegertracing/jaeger/cmd/jaeger &&
		mv "$bin/jaeger.tmp" "$bin/jaeger")
	log "jaeger built in $((SECONDS - start))s"
}

build_jaeger
echo "$bin"
