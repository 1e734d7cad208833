# Shared by scripts/bench-sidecar.sh and scripts/bench-gateway.sh (sourced,
# from the repository root): a work directory with freshly built binaries,
# background processes that are stopped on exit, polling, and /proc
# readings of CPU and memory.
# shellcheck shell=bash

work=$(mktemp -d)
bin=$work/bin
mkdir -p "$bin"
go build -o "$bin/fedmesh" ./cmd/fedmesh
go build -o "$bin/meshxds" ./bench/cmd/meshxds

pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

last_pid=
start() { # start NAME COMMAND... ; logs to NAME.log, the pid lands in last_pid
	local name=$1
	shift
	"$@" >"$work/$name.log" 2>&1 &
	last_pid=$!
	pids+=("$last_pid")
}

wait_for() { # wait_for WHAT COMMAND... : poll for up to 20 s
	local what=$1
	shift
	for _ in $(seq 200); do
		if "$@" >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "timed out waiting for $what" >&2
	tail -n 20 "$work"/*.log >&2
	return 1
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
reset_hwm() { echo 5 >"/proc/$1/clear_refs"; }
# shellcheck disable=SC2034 # read by the scripts that source this file
hz=$(getconf CLK_TCK)
