#!/usr/bin/env bash
# Deletes the kind clusters of the multi-cluster demo (make kind-down).
set -euo pipefail
if ! command -v kind >/dev/null 2>&1; then
	echo "kind-down: kind is not installed; nothing to delete" >&2
	exit 0
fi
for c in east-1 east-2 west-1; do
	if kind get clusters 2>/dev/null | grep -qx "fedmesh-$c"; then
		kind delete cluster --name "fedmesh-$c"
	fi
done
