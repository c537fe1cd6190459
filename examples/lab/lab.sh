#!/usr/bin/env bash
# The vipd namespace lab: one router, three symmetric nodes (director and
# backend each), one client, all in network namespaces of their own.
#
#   client 203.0.113.2 --- 203.0.113.1 router 192.0.2.1  --- 192.0.2.2  n1
#                                             192.0.2.5  --- 192.0.2.6  n2
#                                             192.0.2.9  --- 192.0.2.10 n3
#
# The router runs BIRD with a BGP session to every node's vipd and installs
# the VIP routes with ECMP (L4 hash). Each node runs vipd: embedded GoBGP, XDP
# on its uplink (GUE to the other nodes through the router), the VIP on lo, a
# TCP service on the VIP answering with the node's name.
#
# usage: lab.sh up|down|start NODE|serve NODE|unserve NODE
#   LAB=prefix selects the namespaces (default vl); RUN the run directory;
#   BIN where vipd, vipctl and labtool are; TIMERS=fast the property test's
#   short timers (labconf.FastTimers) instead of the demo's.
# The nodes' vipd configs are written by `labtool conf` (examples/lab/labconf),
# the same code the end-to-end tests use. Nothing here touches the host's own
# interfaces, routes or sysctls.
set -euo pipefail

LAB=${LAB:-vl}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/bin}
RUN=${RUN:-/tmp/vipd-lab-$LAB}
VIP=${VIP:-198.51.100.10}
NODES=(n1 n2 n3)

ns() { echo "$LAB-$1"; }
nsx() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }
log() { printf '\033[1m[lab]\033[0m %s\n' "$*"; }

# The address plan, as examples/lab/labconf.Nodes has it (the node configs).
node_ip()   { case $1 in n1) echo 192.0.2.2;; n2) echo 192.0.2.6;; n3) echo 192.0.2.10;; esac; }
router_ip() { case $1 in n1) echo 192.0.2.1;; n2) echo 192.0.2.5;; n3) echo 192.0.2.9;; esac; }

write_router_conf() {
	cat >"$RUN/router-bird.conf" <<CONF
router id 192.0.2.1;
log "$RUN/router-bird.log" all;
protocol device { scan time 2; }
protocol kernel {
	ipv4 { import none; export all; };
	merge paths yes;
}
template bgp vipnode {
	local as 65000;
	hold time 9;
	# A node that failed comes back within seconds, not BIRD's default
	# minute of "startup delayed due to errors".
	connect delay time 1;
	connect retry time 2;
	error wait time 1, 4;
	error forget time 30;
	# Keep a restarting vipd's routes (stale) until it announces again:
	# vipctl restart exits without withdrawing.
	graceful restart on;
	ipv4 { import all; export none; };
}
CONF
	for n in "${NODES[@]}"; do
		echo "protocol bgp $n from vipnode { neighbor $(node_ip "$n") as 65001; source address $(router_ip "$n"); }" >>"$RUN/router-bird.conf"
	done
}

write_node_confs() {
	# -vipctl: leave out the optional keys this vipd does not know yet.
	"$BIN/labtool" conf -run "$RUN" -vipctl "$BIN/vipctl" -timers "${TIMERS:-default}" -vips "$VIP"
}

start_serve() {
	local n=$1
	# Not through nsx: a backgrounded function is a subshell, and its pid
	# is not the daemon's (ip netns exec execs in place).
	ip netns exec "$(ns "$n")" "$BIN/labtool" serve -name "$n" -listen :80,:8080 >>"$RUN/$n-serve.log" 2>&1 &
	echo $! >"$RUN/$n-serve.pid"
}

stop_serve() {
	local n=$1 f="$RUN/$1-serve.pid"
	[ -f "$f" ] || return 0
	kill "$(cat "$f")" 2>/dev/null || true
	rm -f "$f"
}

up() {
	mkdir -p "$RUN/bpffs"
	# A private bpffs for the lab's pins: the host's /sys/fs/bpf (mounted or
	# not) is left alone.
	mount -t bpf bpf "$RUN/bpffs"
	rm -rf "$RUN"/*.log "$RUN/state" # a restarted vipd appends to its log; a new lab starts clean
	log "namespaces $(ns router), $(ns client), $(ns n1) $(ns n2) $(ns n3)"
	for x in router client "${NODES[@]}"; do
		ip netns add "$(ns "$x")"
		nsx "$x" ip link set lo up
	done
	# client <-> router
	ip link add c0 netns "$(ns client)" type veth peer name cl0 netns "$(ns router)"
	nsx client ip addr add 203.0.113.2/24 dev c0
	nsx client ip link set c0 up
	# veth hands XDP partial checksums when tx offload is on; a real NIC
	# does not (the director would encapsulate an unfinished checksum).
	nsx client ethtool -K c0 tx off >/dev/null
	nsx client ip route add default via 203.0.113.1
	nsx router ip addr add 203.0.113.1/24 dev cl0
	nsx router ip link set cl0 up
	# A dead link's next hop is not used, as on a router that sees its
	# port go down (a test sets a node's link down).
	nsx router sysctl -qw net.ipv4.ip_forward=1 net.ipv4.fib_multipath_hash_policy=1 \
		net.ipv4.conf.all.ignore_routes_with_linkdown=1 net.ipv4.conf.default.ignore_routes_with_linkdown=1
	# router <-> nodes
	for n in "${NODES[@]}"; do
		ip link add up0 netns "$(ns "$n")" type veth peer name "r-$n" netns "$(ns router)"
		nsx router ip addr add "$(router_ip "$n")/30" dev "r-$n"
		nsx router ip link set "r-$n" up
		nsx "$n" ip addr add "$(node_ip "$n")/30" dev up0
		nsx "$n" ip link set up0 up
		nsx "$n" ip route add default via "$(router_ip "$n")"
		nsx "$n" sysctl -qw net.ipv4.ip_forward=0
		# XDP_TX out of the node's veth reaches the router only if the
		# router's end runs a native XDP program: a pass-through one.
		nsx router "$BIN/labtool" xdp-pass -iface "r-$n" -pin "$RUN/bpffs/pass-$n"
	done
	write_node_confs
	write_router_conf
	log "router: BIRD with BGP to the three nodes, ECMP into the kernel"
	nsx router bird -c "$RUN/router-bird.conf" -s "$RUN/router-bird.ctl" -P "$RUN/router-bird.pid"
	for n in "${NODES[@]}"; do
		start_serve "$n"
	done
}

start_vipd() {
	local n=$1
	ip netns exec "$(ns "$n")" "$BIN/vipd" -c "$RUN/$n.toml" >>"$RUN/$n-vipd.log" 2>&1 &
	echo $! >"$RUN/$n-vipd.pid"
}

down() {
	for f in "$RUN"/*-vipd.pid "$RUN"/*-serve.pid "$RUN"/router-bird.pid; do
		[ -f "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
	sleep 0.5
	for f in "$RUN"/*-vipd.pid "$RUN"/*-serve.pid "$RUN"/router-bird.pid; do
		[ -f "$f" ] || continue
		kill -9 "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	for x in router client "${NODES[@]}"; do
		# Whatever still runs in the lab's namespaces goes with them.
		ip netns pids "$(ns "$x")" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
		ip netns del "$(ns "$x")" 2>/dev/null || true
	done
	if mountpoint -q "$RUN/bpffs" 2>/dev/null; then
		rm -rf "$RUN"/bpffs/* 2>/dev/null || true
		umount "$RUN/bpffs" || true
	fi
}

case "${1:-}" in
up) up ;;
down) down ;;
start) start_vipd "$2" ;;
serve) start_serve "$2" ;;
unserve) stop_serve "$2" ;;
*) echo "usage: LAB=prefix $0 up|down|start NODE|serve NODE|unserve NODE" >&2; exit 2 ;;
esac
