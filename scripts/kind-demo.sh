#!/usr/bin/env bash
# The multi-cluster demo on three kind clusters (make kind-demo): creates the
# clusters from kind-configs/, builds and loads the images, installs fedmesh
# with `fedmesh install` (its cluster CA issued from one federation root)
# and the kind overlay (deploy/overlays/kind), joins the clusters with
# `fedmesh join --from-context` through their API servers, deploys the echo sample in all three and a client in
# east-1, then runs the local demo's failover scenario:
#
#   1. east-1's client is served by east-1 (same cluster, same zone);
#   2. east-1's echo scaled to 0: served by east-2 (same region);
#   3. east-2's echo scaled to 0 too: served by west-1 (other region);
#   4. both scaled back: served by east-1 again.
#
# The client is a plain curl in an injected pod: it calls
# http://echo.demo.svc.clusterset.local:8080/ with no proxy; the pod's DNS
# and connections are captured by its sidecar (docs/capture.md).
# Each phase is checked; the script exits non-zero naming the phase that
# failed. The clusters are deleted at the end unless KEEP=1.
# Needs a Docker engine, kind and kubectl. FEDMESH_BIN names a fedmesh
# binary to use instead of building one.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
clusters=(east-1 east-2 west-1)
regions=(us-east us-east us-west)
zones=(us-east-1a us-east-1c us-west-1a)
trust_domain=${TRUST_DOMAIN:-fedmesh.demo}
work=$(mktemp -d "${TMPDIR:-/tmp}/fedmesh-kind-XXXXXX")
fedmesh=${FEDMESH_BIN:-$work/fedmesh}

log() { printf 'kind-demo: %s\n' "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

cleanup() {
	local rc=$?
	if [ "${KEEP:-0}" != 1 ]; then
		bash "$repo/scripts/kind-down.sh" || true
		rm -rf "$work"
	else
		log "clusters kept (KEEP=1); work dir $work (federation root: $work/root); 'make kind-down' removes them"
	fi
	exit "$rc"
}
trap cleanup EXIT

need() {
	command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"
}
need docker "https://docs.docker.com/engine/install/"
need kind "go install sigs.k8s.io/kind@latest"
need kubectl "https://kubernetes.io/docs/tasks/tools/"
docker info >/dev/null 2>&1 || die "no Docker engine answers (kind runs its nodes as containers)"

ctx() { echo "kind-fedmesh-$1"; }
k() { local c=$1; shift; kubectl --context "$(ctx "$c")" "$@"; }

log "building the fedmesh binary and images"
if [ -z "${FEDMESH_BIN:-}" ]; then
	(cd "$repo" && CGO_ENABLED=0 go build -trimpath -o "$fedmesh" ./cmd/fedmesh)
fi
docker build -q -t fedmesh:dev "$repo" >/dev/null
docker build -q --target fedmesh-init -t fedmesh-init:dev "$repo" >/dev/null

log "creating clusters"
for c in "${clusters[@]}"; do
	if ! kind get clusters 2>/dev/null | grep -qx "fedmesh-$c"; then
		kind create cluster --config "$repo/kind-configs/$c.yaml" --wait 120s
	fi
	kind load docker-image fedmesh:dev fedmesh-init:dev --name "fedmesh-$c"
done

log "creating the federation root"
"$fedmesh" ca init --trust-domain "$trust_domain" --dir "$work/root" >/dev/null

node_ip() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "fedmesh-$1-control-plane"; }

log "installing fedmesh"
for i in "${!clusters[@]}"; do
	c=${clusters[$i]}
	# The cluster's identity, its CA Secret (issued from the root) and the
	# webhook's serving certificate (its CA in the webhook's caBundle).
	"$fedmesh" install --context "$(ctx "$c")" --cluster "$c" --region "${regions[$i]}" --zone "${zones[$i]}" \
		--trust-domain "$trust_domain" --gateway-address "$(node_ip "$c"):31443" \
		--root-dir "$work/root" --wait=false >/dev/null || die "fedmesh install in $c failed"
	# What kind needs on top of the base install applies: NodePorts, one
	# replica each, the node's address announced. The overlay carries the
	# base's placeholder identity, so the identity is set again after it.
	k "$c" apply --server-side --force-conflicts -k "$repo/deploy/overlays/kind" >/dev/null
	k "$c" -n fedmesh-system create configmap fedmesh-cluster --dry-run=client -o yaml \
		--from-literal=cluster="$c" --from-literal=region="${regions[$i]}" --from-literal=zone="${zones[$i]}" \
		--from-literal=trustDomain="$trust_domain" --from-literal=gatewayAddress="$(node_ip "$c"):31443" |
		k "$c" apply -f - >/dev/null
	k "$c" -n fedmesh-system create configmap fedmesh-roots --dry-run=client -o yaml \
		--from-file=root.pem="$work/root/root.crt" | k "$c" apply -f - >/dev/null
	# Restart so the pods read the cluster's identity.
	k "$c" -n fedmesh-system rollout restart statefulset/fedmesh-controlplane deployment/fedmesh-gateway deployment/fedmesh-webhook >/dev/null
done
for c in "${clusters[@]}"; do
	k "$c" -n fedmesh-system rollout status statefulset/fedmesh-controlplane --timeout=180s >/dev/null ||
		die "control plane of $c not ready"
	k "$c" -n fedmesh-system rollout status deployment/fedmesh-webhook --timeout=120s >/dev/null ||
		die "webhook of $c not ready"
done

log "joining the clusters"
# Through the API servers: east-1's current join token (Secret
# fedmesh-join-token) is copied to the joining cluster, whose control plane
# joins with it and records the outcome, which join waits for.
for c in east-2 west-1; do
	"$fedmesh" join --context "$(ctx "$c")" --from-context "$(ctx east-1)" --wait 3m >/dev/null ||
		die "$c could not join"
done

log "deploying the echo sample in every cluster"
for c in "${clusters[@]}"; do
	k "$c" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Namespace
metadata:
  name: demo
  labels: {fedmesh.io/inject: enabled}
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: echo, namespace: demo}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: echo, namespace: demo}
spec:
  replicas: 2
  selector: {matchLabels: {app: echo}}
  template:
    metadata: {labels: {app: echo}}
    spec:
      serviceAccountName: echo
      containers:
        - name: echo
          image: fedmesh:dev
          args: [echo, --listen=0.0.0.0:8080, --cluster=$c, --workload=\$(POD_NAME)]
          env:
            - name: POD_NAME
              valueFrom: {fieldRef: {fieldPath: metadata.name}}
          ports: [{name: http, containerPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: echo, namespace: demo}
spec:
  selector: {app: echo}
  ports: [{name: http, port: 8080, targetPort: http, appProtocol: http}]
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata: {name: echo, namespace: demo}
YAML
	k "$c" -n demo create configmap fedmesh-roots --dry-run=client -o yaml \
		--from-file=root.pem="$work/root/root.crt" | k "$c" apply -f - >/dev/null
done
k east-1 apply -f - >/dev/null <<'YAML'
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo}
spec:
  containers:
    - name: curl
      image: curlimages/curl:8.11.1
      command: [sleep, infinity]
YAML
for c in "${clusters[@]}"; do
	k "$c" -n demo rollout status deployment/echo --timeout=180s >/dev/null || die "echo in $c not ready"
done
k east-1 -n demo wait --for=condition=Ready pod/client --timeout=180s >/dev/null || die "client not ready"

# served_by prints the cluster that answered most of 20 requests. The
# client is plain curl, no proxy: the pod's sidecar answers its DNS query
# for the clusterset name with echo's ClusterSetIP, and its connection
# there is captured and sent through the mesh.
served_by() {
	local i out
	for i in $(seq 20); do
		out=$(k east-1 -n demo exec client -c curl -- \
			curl -fsS --max-time 2 http://echo.demo.svc.clusterset.local:8080/ 2>/dev/null) || continue
		printf '%s\n' "$out" | sed -n 's/.*"cluster": *"\([^"]*\)".*/\1/p'
	done | sort | uniq -c | sort -rn | awk 'NR==1 {print $2}'
}

# expect PHASE CLUSTER: poll until the client is served by CLUSTER.
expect() {
	local phase=$1 want=$2 got=""
	local deadline=$((SECONDS + 90))
	while [ "$SECONDS" -lt "$deadline" ]; do
		got=$(served_by)
		if [ "$got" = "$want" ]; then
			log "phase $phase: served by $got"
			return 0
		fi
		sleep 3
	done
	die "phase $phase: served by '${got:-nobody}', want $want"
}

scale() { k "$1" -n demo scale deployment/echo --replicas="$2" >/dev/null; }

expect "1 (all up)" east-1
scale east-1 0
expect "2 (east-1 down)" east-2
scale east-2 0
expect "3 (east-1 and east-2 down)" west-1
scale east-1 2
scale east-2 2
expect "4 (recovered)" east-1
log "all phases passed"
