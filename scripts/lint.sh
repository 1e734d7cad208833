#!/usr/bin/env bash
# Lints the module: gofmt, go vet and staticcheck. Every check runs even when
# an earlier one fails; the exit status is 1 if any failed.
#
# staticcheck is built from its Go module at a pinned version into the tools
# cache outside the repository ($FEDMESH_TOOLS_DIR, default
# ~/.cache/fedmesh/tools, shared with kube-tools.sh), once per staticcheck and
# Go version, so later runs only check that the binary exists.
#
#   bash scripts/lint.sh                  lint ./...
#   PKGS='./sidecar/...' bash scripts/lint.sh
set -euo pipefail
cd "$(dirname "$0")/.."

go=${GO:-go}
pkgs=${PKGS:-./...}
staticcheck_version=${STATICCHECK_VERSION:-v0.8.2}
tools=${FEDMESH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fedmesh/tools}
log() { echo "lint: $*" >&2; }

# staticcheck must be built by the Go release that it checks code for.
go_version=$("$go" env GOVERSION)
bin=$tools/staticcheck-$staticcheck_version-$go_version
staticcheck=$bin/staticcheck

build_staticcheck() {
	[ -x "$staticcheck" ] && return 0
	mkdir -p "$tools"
	# One build at a time: a second caller waits for the first, then finds
	# the binary built.
	exec 9>"$tools/.staticcheck.lock"
	flock 9
	if [ ! -x "$staticcheck" ]; then
		log "building staticcheck $staticcheck_version with $go_version into $bin (first time only)"
		local start=$SECONDS tmp
		tmp=$(mktemp -d "$tools/staticcheck.XXXXXX")
		if ! GOBIN=$tmp "$go" install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"; then
			rm -rf "$tmp"
			exec 9>&-
			return 1
		fi
		mkdir -p "$bin"
		mv "$tmp/staticcheck" "$staticcheck"
		rm -rf "$tmp"
		log "staticcheck built in $((SECONDS - start))s"
	fi
	exec 9>&-
}

status=0

echo "== gofmt"
gofmt=$("$go" env GOROOT)/bin/gofmt
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*.go' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
unformatted=
if [ ${#files[@]} -gt 0 ]; then
	unformatted=$("$gofmt" -l "${files[@]}")
fi
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"
	echo "$unformatted"
	status=1
fi

echo "== go vet $pkgs"
# shellcheck disable=SC2086 # pkgs is a list of patterns
"$go" vet $pkgs || status=1

echo "== staticcheck $staticcheck_version $pkgs"
if build_staticcheck; then
	# shellcheck disable=SC2086
	"$staticcheck" $pkgs || status=1
else
	log "could not build staticcheck $staticcheck_version"
	status=1
fi

exit $status
