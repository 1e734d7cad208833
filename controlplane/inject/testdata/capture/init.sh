set -eu
mode="${FEDMESH_CAPTURE:-auto}"
if [ "$mode" = auto ]; then
  mode=iptables
  if command -v iptables-legacy-save >/dev/null 2>&1 && iptables-legacy-save -t nat 2>/dev/null | grep -q '^-A'; then
    mode=iptables-legacy
  elif command -v nft >/dev/null 2>&1 && nft list tables >/dev/null 2>&1; then
    mode=nft
  fi
fi
echo "fedmesh-init: capture with $mode"
case "$mode" in
nft)
  nft -f - <<'FEDMESH_NFT'
table inet fedmesh {
  chain prerouting {
    type nat hook prerouting priority -100; policy accept;
    meta l4proto tcp tcp dport { 15006, 15021, 22 } return
    meta l4proto tcp redirect to :15006
  }
  chain output {
    type nat hook output priority -100; policy accept;
    meta skuid 1337 return
    meta skgid 1337 return
    udp dport 53 redirect to :15053
    tcp dport 53 redirect to :15053
    meta l4proto != tcp return
    ip daddr 127.0.0.1 return
    ip6 daddr ::1 return
    ip daddr { 10.96.0.0/12, 169.254.169.254/32 } return
    ip6 daddr { fd00:10:96::/112 } return
    tcp dport { 5432, 6379 } return
    meta l4proto tcp redirect to :15001
  }
}
FEDMESH_NFT
  ;;
iptables | iptables-legacy)
  v4=iptables
  v6=ip6tables
  if [ "$mode" = iptables-legacy ]; then
    v4=iptables-legacy
    v6=ip6tables-legacy
  fi
  "$v4" -t nat -N FEDMESH_INBOUND
  "$v4" -t nat -N FEDMESH_IN_REDIRECT
  "$v4" -t nat -N FEDMESH_OUTPUT
  "$v4" -t nat -N FEDMESH_REDIRECT
  "$v4" -t nat -A FEDMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
  "$v4" -t nat -A FEDMESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001
  "$v4" -t nat -A PREROUTING -p tcp -j FEDMESH_INBOUND
  "$v4" -t nat -A FEDMESH_INBOUND -p tcp --dport 15006 -j RETURN
  "$v4" -t nat -A FEDMESH_INBOUND -p tcp --dport 15021 -j RETURN
  "$v4" -t nat -A FEDMESH_INBOUND -p tcp --dport 22 -j RETURN
  "$v4" -t nat -A FEDMESH_INBOUND -p tcp -j FEDMESH_IN_REDIRECT
  "$v4" -t nat -A OUTPUT -p tcp -j FEDMESH_OUTPUT
  "$v4" -t nat -A OUTPUT -p udp --dport 53 -j FEDMESH_OUTPUT
  "$v4" -t nat -A FEDMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -m owner --gid-owner 1337 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053
  "$v4" -t nat -A FEDMESH_OUTPUT -p tcp --dport 53 -j REDIRECT --to-ports 15053
  "$v4" -t nat -A FEDMESH_OUTPUT -d 127.0.0.1/32 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -d 10.96.0.0/12 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -d 169.254.169.254/32 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -p tcp --dport 5432 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -p tcp --dport 6379 -j RETURN
  "$v4" -t nat -A FEDMESH_OUTPUT -j FEDMESH_REDIRECT
  if [ -e /proc/net/if_inet6 ]; then
    "$v6" -t nat -N FEDMESH_INBOUND
    "$v6" -t nat -N FEDMESH_IN_REDIRECT
    "$v6" -t nat -N FEDMESH_OUTPUT
    "$v6" -t nat -N FEDMESH_REDIRECT
    "$v6" -t nat -A FEDMESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
    "$v6" -t nat -A FEDMESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001
    "$v6" -t nat -A PREROUTING -p tcp -j FEDMESH_INBOUND
    "$v6" -t nat -A FEDMESH_INBOUND -p tcp --dport 15006 -j RETURN
    "$v6" -t nat -A FEDMESH_INBOUND -p tcp --dport 15021 -j RETURN
    "$v6" -t nat -A FEDMESH_INBOUND -p tcp --dport 22 -j RETURN
    "$v6" -t nat -A FEDMESH_INBOUND -p tcp -j FEDMESH_IN_REDIRECT
    "$v6" -t nat -A OUTPUT -p tcp -j FEDMESH_OUTPUT
    "$v6" -t nat -A OUTPUT -p udp --dport 53 -j FEDMESH_OUTPUT
    "$v6" -t nat -A FEDMESH_OUTPUT -m owner --uid-owner 1337 -j RETURN
    "$v6" -t nat -A FEDMESH_OUTPUT -m owner --gid-owner 1337 -j RETURN
    "$v6" -t nat -A FEDMESH_OUTPUT -p udp --dport 53 -j REDIRECT --to-ports 15053
    "$v6" -t nat -A FEDMESH_OUTPUT -p tcp --dport 53 -j REDIRECT --to-ports 15053
    "$v6" -t nat -A FEDMESH_OUTPUT -d ::1/128 -j RETURN
    "$v6" -t nat -A FEDMESH_OUTPUT -d fd00:10:96::/112 -j RETURN
    "$v6" -t nat -A FEDMESH_OUTPUT -p tcp --dport 5432 -j RETURN
    "$v6" -t nat -A FEDMESH_OUTPUT -p tcp --dport 6379 -j RETURN
    "$v6" -t nat -A FEDMESH_OUTPUT -j FEDMESH_REDIRECT
  fi
  ;;
*)
  echo "fedmesh-init: FEDMESH_CAPTURE=$mode is not nft, iptables or iptables-legacy" >&2
  exit 2
  ;;
esac
