#!/usr/bin/env bash
# Installs what `make test` needs beyond Go modules. As root (CI), missing
# Debian packages are installed with apt-get: iproute2 (network namespaces,
# veth, tc netem) and nftables for the partition tests, iptables for the
# sidecar capture rules that test/netns applies in a pod's namespace
# (iptables and ip6tables, and nft for the nftables variant),
# chromium for the web view's browser test (test/e2e), shellcheck for the
# scripts (test/kube). As another user the
# partition tests fall back to an in-process fault proxy, test/netns skips,
# and so does the browser test unless CI is set.
set -euo pipefail
need=()
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v nft >/dev/null 2>&1 || need+=(nftables)
{ command -v iptables && command -v ip6tables; } >/dev/null 2>&1 || need+=(iptables)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v prometheus >/dev/null 2>&1 || need+=(prometheus)
command -v shellcheck >/dev/null 2>&1 || need+=(shellcheck)
if [ ${#need[@]} -eq 0 ]; then
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: not root; ${need[*]} missing, tests that need them use a fault proxy instead" >&2
	exit 0
fi
echo "test-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
