#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd server from Go modules, for the
# Kubernetes integration tests, and prints the directory that holds them.
# The build is cached outside the repository ($FEDMESH_TOOLS_DIR, default
# ~/.cache/fedmesh/tools), so later runs only check that the binaries exist.
# The first build of kube-apiserver takes 15-20 minutes on 2 cores (about 45
# on 2 cores busy with other builds).
#
#   bash scripts/kube-tools.sh          build what is missing, print the dir
#   bash scripts/kube-tools.sh --check  print the dir if both are built, else
#                                       exit 1 without building
set -euo pipefail

k8s_version=${KUBE_VERSION:-v1.37.2}
staging_version=v0${k8s_version#v1}   # v1.37.2 -> v0.37.2
etcd_version=${ETCD_VERSION:-v3.6.16}
tools=${FEDMESH_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fedmesh/tools}
bin=$tools/bin-$k8s_version-$etcd_version
log() { echo "kube-tools: $*" >&2; }

if [ "${1:-}" = "--check" ]; then
	if [ -x "$bin/kube-apiserver" ] && [ -x "$bin/etcd" ]; then
		echo "$bin"
		exit 0
	fi
	log "not built: $bin/kube-apiserver and $bin/etcd (run: bash scripts/kube-tools.sh)"
	exit 1
fi

mkdir -p "$bin"
# One build at a time: a second caller waits for the first, then finds the
# binaries built.
exec 9>"$tools/.lock"
flock 9

build_etcd() {
	[ -x "$bin/etcd" ] && return 0
	local mod=$tools/src/etcd-$etcd_version
	mkdir -p "$mod"
	cat >"$mod/main.go" <<'GO'
// Command etcd is the etcd server, built from its Go module.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
	cat >"$mod/go.mod" <<MOD
module fedmesh.local/tools/etcd

go 1.26

require go.etcd.io/etcd/server/v3 $etcd_version
MOD
	log "building etcd $etcd_version"
	local start=$SECONDS
	(cd "$mod" && GOFLAGS=-mod=mod go mod tidy >/dev/null 2>&1 && go build -trimpath -o "$bin/etcd.tmp" . && mv "$bin/etcd.tmp" "$bin/etcd")
	log "etcd built in $((SECONDS - start))s"
}

build_apiserver() {
	[ -x "$bin/kube-apiserver" ] && return 0
	local mod=$tools/src/kubernetes-$k8s_version
	mkdir -p "$mod"
	local staging=(api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider
		cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api
		cri-client csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms
		kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics
		mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming)
	{
		echo "module fedmesh.local/tools/kubernetes"
		echo
		echo "go 1.26"
		echo
		echo "require k8s.io/kubernetes $k8s_version"
		echo
		for s in "${staging[@]}"; do
			echo "replace k8s.io/$s => k8s.io/$s $staging_version"
		done
	} >"$mod/go.mod"
	cat >"$mod/tools.go" <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
	log "building kube-apiserver $k8s_version (first time only: 15-20 minutes on 2 cores)"
	local start=$SECONDS
	if ! (cd "$mod" && GOFLAGS=-mod=mod go mod tidy -e >/dev/null 2>&1); then
		log "go mod tidy reported problems; building anyway"
	fi
	(cd "$mod" && GOFLAGS=-mod=mod go build -trimpath -o "$bin/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver &&
		mv "$bin/kube-apiserver.tmp" "$bin/kube-apiserver")
	log "kube-apiserver built in $((SECONDS - start))s"
}

build_etcd
build_apiserver
echo "$bin"
