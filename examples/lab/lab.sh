#!/usr/bin/env bash
# The vipd namespace lab: two routers, three symmetric nodes (director and
# backend each), an edge and a client, all in network namespaces of their
# own. IPv4 and IPv6 on every link.
#
#                       +-- r1 --+               each node segment is a bridge in
#   client -- edge -----+        +== seg n1 == n1   the switch namespace (sw): one
#   (ECMP over r1, r2)  +-- r2 --+== seg n2 == n2   XDP uplink per node, both routers
#                                +== seg n3 == n3   on it, as on a switch pair
#
#   client 203.0.113.2 2001:db8:c::2   edge .1 ::1
#   edge-r1 192.0.2.128/30 2001:db8:e1::/64, edge-r2 192.0.2.132/30 2001:db8:e2::/64
#   segment of node i: 192.0.2.16(i-1)/28 and 2001:db8:0:i::/64:
#     r1 .1 ::1, r2 .2 ::2, anycast gateway .3 ::3 (both routers), node .10 ::10
#
# The edge splits client flows between r1 and r2 (L4 hash); each router does
# ECMP over the nodes that announce a VIP. A router that fails (its links
# down) leaves the edge's ECMP at once; the nodes' default route is the
# gateway both routers answer for (a virtual MAC on each), so the nodes'
# own traffic survives either router.
#
# MODE=bgp (default): each node's vipd peers (embedded GoBGP) with r1 and
# r2, both BIRD with BGP. MODE=ospf: each node runs its own BIRD 2 as the
# Debian service does (user and group bird), started the way docs/ospf.md
# tells an operator: the first file from `vipctl bird-config -o`
# (announcing nothing), then BIRD, then the guard, then vipd. n1 and n2 run
# the file vipd writes as their whole bird.conf (mode full); n3 runs the
# operator's own bird.conf, which includes vipd's file (mode include). r1 and
# r2 run BIRD with OSPFv2 and OSPFv3 on the node segments (broadcast),
# `merge external yes` (vipd's routes are externals: without it BIRD installs
# one next hop) and `ecmp yes`.
#
# usage: lab.sh up|down|start NODE|serve NODE|unserve NODE|bird NODE|guard NODE|router-down R|router-up R
#   LAB=prefix selects the namespaces (default vl); RUN the run directory;
#   BIN where vipd, vipctl and labtool are; MODE bgp|ospf; TIMERS=fast the
#   property test's short timers; VIPS the VIP addresses (comma separated);
#   BIRD the bird binary of the nodes and routers (birdc next to it; default
#   the installed one); ROUTER_MTU the routers' MTU on the node segments
#   (default 1500: 3000 reproduces "a switch at 9000", the most a veth with
#   a native XDP peer takes is 3506); ROUTER_IGNOREMTU=1 sets ignoremtu on
#   the routers (a patched BIRD); NODE_IGNOREMTU=1 on the nodes;
#   GUARD_TIMEOUT the guard's bound (ospf mode, default 10s); NO_START=1
#   builds the lab but starts no node BIRD (a test starts them itself);
#   VIPD_FLAGS more flags for every vipd (e.g. -log-level debug).
# The nodes' vipd configs are written by `labtool conf` (examples/lab/labconf),
# the same code the end-to-end tests use. Nothing here touches the host's own
# interfaces, routes or sysctls.
set -euo pipefail

LAB=${LAB:-vl}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/bin}
RUN=${RUN:-/tmp/vipd-lab-$LAB}
MODE=${MODE:-bgp}
VIPS=${VIPS:-198.51.100.10,2001:db8:100::10}
BIRD=${BIRD:-bird}
BIRDC=birdc
if [ "$BIRD" != bird ]; then BIRDC=$(dirname "$BIRD")/birdc; fi
ROUTER_MTU=${ROUTER_MTU:-1500}
GUARD_TIMEOUT=${GUARD_TIMEOUT:-10s}
NODES=(n1 n2 n3)
ROUTERS=(r1 r2)

ns() { echo "$LAB-$1"; }
nsx() { local n; n=$(ns "$1"); shift; ip netns exec "$n" "$@"; }
# nsip NS ARGS: ip ARGS in namespace NS (ip -n: no second process).
nsip() { local n; n=$(ns "$1"); shift; ip -n "$n" "$@"; }
log() { printf '\033[1m[lab]\033[0m %s\n' "$*"; }

# The address plan, as examples/lab/labconf has it.
idx() { echo "${1#n}"; }                     # n2 -> 2
base() { echo $((16 * ($(idx "$1") - 1))); } # the segment's first address
node_ip() { echo "192.0.2.$(($(base "$1") + 10))"; }
node_ip6() { echo "2001:db8:0:$(idx "$1")::10"; }
router_ip() { echo "192.0.2.$(($(base "$2") + ${1#r}))"; } # router_ip r1 n2
router_ip6() { echo "2001:db8:0:$(idx "$2")::${1#r}"; }
gw_ip() { echo "192.0.2.$(($(base "$1") + 3))"; }
gw_ip6() { echo "2001:db8:0:$(idx "$1")::3"; }
router_id() { echo "192.0.2.${1#r}"; }
edge_ip() { echo "192.0.2.$((128 + 4 * (${1#r} - 1) + 1))"; }   # the edge's end towards r
edge_peer() { echo "192.0.2.$((128 + 4 * (${1#r} - 1) + 2))"; } # the router's end
edge_ip6() { echo "2001:db8:e${1#r}::1"; }
edge_peer6() { echo "2001:db8:e${1#r}::2"; }

# node_bird_conf NODE: the file the node's BIRD starts on.
node_bird_conf() { echo "$RUN/$1-etc/bird.conf"; }
node_bird_sock() { echo "$RUN/$1-run/bird.ctl"; }

write_router_conf() {
	local r=$1 f=$RUN/$1-bird.conf
	{
		echo "router id $(router_id "$r");"
		echo "log \"$RUN/$r-bird.log\" all;"
		# What the router learned and when: a failed lab test keeps this log.
		echo "debug protocols { states, routes, events };"
		echo "protocol device { scan time 2; }"
		echo "protocol kernel k4 { ipv4 { import none; export all; }; merge paths yes; }"
		echo "protocol kernel k6 { ipv6 { import none; export all; }; merge paths yes; }"
		if [ "$MODE" = ospf ]; then
			local ignore=""
			[ "${ROUTER_IGNOREMTU:-}" = 1 ] && ignore="ignoremtu yes;"
			for v in 2 3; do
				local ch=ipv4
				[ $v = 3 ] && ch=ipv6
				cat <<CONF
# What an operator's router needs for vipd's OSPF routes (docs/ospf.md):
# ecmp, and merge external: vipd announces externals, which BIRD does not
# merge across routers without it (one next hop instead of three).
protocol ospf v$v ospf$v {
	$ch { import all; export none; };
	ecmp yes;
	merge external yes;
	$ignore
	area 0 {
		interface "r-n*" { type broadcast; hello 1; dead 3; priority $((3 - ${r#r})); };
	};
}
CONF
			done
		else
			cat <<CONF
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
	ipv6 { import all; export none; };
}
CONF
			for n in "${NODES[@]}"; do
				echo "protocol bgp $n from vipnode { neighbor $(node_ip "$n") as 65001; source address $(router_ip "$r" "$n"); }"
			done
		fi
	} >"$f"
}

write_node_confs() {
	local flags=()
	[ "${NODE_IGNOREMTU:-}" = 1 ] && flags+=(-ignore-mtu)
	[ "$MODE" = ospf ] && flags+=(-guard-timeout "$GUARD_TIMEOUT")
	[ "$ROUTER_MTU" != 1500 ] && flags+=(-switch-mtu "$ROUTER_MTU")
	# -vipctl: leave out the optional keys this vipd does not know yet.
	"$BIN/labtool" conf -run "$RUN" -vipctl "$BIN/vipctl" -timers "${TIMERS:-default}" -vips "$VIPS" \
		-mode "$MODE" -bird "$(command -v "$BIRD")" "${flags[@]}"
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

# veth A NS_A B NS_B: a veth pair, both ends up.
veth() {
	ip link add "$1" netns "$(ns "$2")" type veth peer name "$3" netns "$(ns "$4")"
	nsip "$2" link set "$1" up
	nsip "$4" link set "$3" up
}

router_sysctls() {
	nsx "$1" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 \
		net.ipv4.fib_multipath_hash_policy=1 net.ipv6.fib_multipath_hash_policy=1 \
		net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
		net.ipv4.conf.all.arp_ignore=1 \
		net.ipv4.conf.all.ignore_routes_with_linkdown=1 net.ipv4.conf.default.ignore_routes_with_linkdown=1 \
		net.ipv6.conf.all.ignore_routes_with_linkdown=1 net.ipv6.conf.default.ignore_routes_with_linkdown=1 \
		net.ipv6.conf.all.keep_addr_on_down=1
}

up() {
	mkdir -p "$RUN/bpffs"
	# BIRD runs as user bird on the nodes: it must get through to its
	# directories.
	chmod 0755 "$RUN"
	# A private bpffs for the lab's pins: the host's /sys/fs/bpf (mounted or
	# not) is left alone.
	mount -t bpf bpf "$RUN/bpffs"
	rm -rf "$RUN"/*.log "$RUN/state" "$RUN"/n*-etc "$RUN"/n*-run # a new lab starts clean
	log "namespaces $LAB-{client,edge,r1,r2,sw,n1,n2,n3}, mode $MODE"
	for x in client edge "${ROUTERS[@]}" sw "${NODES[@]}"; do
		ip netns add "$(ns "$x")"
		nsip "$x" link set lo up
	done
	# client <-> edge
	veth c0 client e-c edge
	nsip client addr add 203.0.113.2/24 dev c0
	nsip client addr add 2001:db8:c::2/64 dev c0 nodad
	# veth hands XDP partial checksums when tx offload is on; a real NIC
	# does not (the director would encapsulate an unfinished checksum).
	nsx client ethtool -K c0 tx off >/dev/null
	nsip client route add default via 203.0.113.1
	nsip client -6 route add default via 2001:db8:c::1
	nsip edge addr add 203.0.113.1/24 dev e-c
	nsip edge addr add 2001:db8:c::1/64 dev e-c nodad
	router_sysctls edge
	# edge <-> r1, r2; the edge's ECMP over both routers for the VIPs.
	for r in "${ROUTERS[@]}"; do
		veth "e-$r" edge r-edge "$r"
		router_sysctls "$r"
		nsip edge addr add "$(edge_ip "$r")/30" dev "e-$r"
		nsip edge addr add "$(edge_ip6 "$r")/64" dev "e-$r" nodad
		nsip "$r" addr add "$(edge_peer "$r")/30" dev r-edge
		nsip "$r" addr add "$(edge_peer6 "$r")/64" dev r-edge nodad
		client_routes "$r"
	done
	edge_routes "${ROUTERS[@]}"
	# A segment per node: a bridge in sw with the node and both routers.
	for n in "${NODES[@]}"; do
		local i br
		i=$(idx "$n")
		br="br-$n"
		nsip sw link add "$br" type bridge
		nsip sw link set "$br" up
		veth up0 "$n" "s$i-n" sw
		nsip sw link set "s$i-n" master "$br"
		# XDP_TX out of the node's veth reaches the bridge only if the
		# switch's end runs a native XDP program: a pass-through one.
		nsx sw "$BIN/labtool" xdp-pass -iface "s$i-n" -pin "$RUN/bpffs/pass-$n"
		nsip "$n" addr add "$(node_ip "$n")/28" dev up0
		nsip "$n" addr add "$(node_ip6 "$n")/64" dev up0 nodad
		nsip "$n" route add default via "$(gw_ip "$n")"
		nsip "$n" -6 route add default via "$(gw_ip6 "$n")"
		# A link taken down and up (a test's failure) keeps its IPv6
		# addresses, as it keeps its IPv4 ones.
		nsx "$n" sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0 net.ipv6.conf.all.keep_addr_on_down=1
		for r in "${ROUTERS[@]}"; do
			veth "s$i-$r" sw "r-$n" "$r"
			nsip sw link set "s$i-$r" master "$br"
			if [ "$ROUTER_MTU" != 1500 ]; then
				nsip sw link set "s$i-$r" mtu "$ROUTER_MTU"
				nsip "$r" link set "r-$n" mtu "$ROUTER_MTU"
			fi
			nsip "$r" addr add "$(router_ip "$r" "$n")/28" dev "r-$n"
			nsip "$r" addr add "$(router_ip6 "$r" "$n")/64" dev "r-$n" nodad
			# The anycast gateway: the same address and virtual MAC on
			# both routers (a macvlan on the segment port), so a node
			# keeps its gateway whichever router fails.
			nsip "$r" link add "g-$n" link "r-$n" address "00:00:5e:00:01:0$i" type macvlan mode bridge
			nsip "$r" link set "g-$n" addrgenmode none
			nsx "$r" sysctl -qw "net.ipv4.conf.g-$n.rp_filter=0"
			nsip "$r" link set "g-$n" up
			nsip "$r" addr add "$(gw_ip "$n")/32" dev "g-$n"
			nsip "$r" addr add "$(gw_ip6 "$n")/128" dev "g-$n" nodad
		done
	done
	if [ "$MODE" = ospf ]; then
		for n in "${NODES[@]}"; do
			# Debian's layout: /etc/bird (bird:bird 0750) holds the
			# config, /run/bird (bird:bird 0775) the socket.
			install -d -o bird -g bird -m 0750 "$RUN/$n-etc"
			install -d -o bird -g bird -m 0775 "$RUN/$n-run"
		done
	fi
	write_node_confs
	for r in "${ROUTERS[@]}"; do
		write_router_conf "$r"
		nsx "$r" "$BIRD" -c "$RUN/$r-bird.conf" -s "$RUN/$r-bird.ctl" -P "$RUN/$r-bird.pid"
	done
	if [ "$MODE" = ospf ]; then
		log "routers: BIRD with OSPFv2 and OSPFv3 on the node segments (ecmp, merge external), ECMP into the kernel"
		if [ "${NO_START:-}" != 1 ]; then
			for n in "${NODES[@]}"; do
				start_bird "$n"
				start_guard "$n"
			done
		fi
	else
		log "routers: BIRD with BGP to the three nodes, ECMP into the kernel"
	fi
	for n in "${NODES[@]}"; do
		start_serve "$n"
	done
}

# start_bird NODE: the node's BIRD, started as docs/ospf.md tells: the
# first file from vipctl bird-config (announcing nothing until vipd runs),
# then BIRD as user bird.
start_bird() {
	local n=$1 cfg=$RUN/$1.toml
	"$BIN/vipctl" bird-config -c "$cfg" -o "$(grep -oP '^config_file = "\K[^"]+' "$cfg")" --unless-running 2>>"$RUN/$n-bird-config.log"
	nsx "$n" "$BIRD" -u bird -g bird -c "$(node_bird_conf "$n")" -s "$(node_bird_sock "$n")" -P "$RUN/$n-run/bird.pid"
}

# start_guard NODE: the guard that bounds how long BIRD announces the
# node's VIPs without a vipd.
start_guard() {
	local n=$1
	ip netns exec "$(ns "$n")" "$BIN/vipctl" bird-guard -c "$RUN/$n.toml" >>"$RUN/$n-guard.log" 2>&1 &
	echo $! >"$RUN/$n-guard.pid"
}

start_vipd() {
	local n=$1
	ip netns exec "$(ns "$n")" "$BIN/vipd" ${VIPD_FLAGS:-} -c "$RUN/$n.toml" >>"$RUN/$n-vipd.log" 2>&1 &
	echo $! >"$RUN/$n-vipd.pid"
}

# edge_routes R...: the edge's ECMP for the VIPs over routers R.
edge_routes() {
	local r hops4=() hops6=()
	for r in "$@"; do
		hops4+=(nexthop via "$(edge_peer "$r")" dev "e-$r")
		hops6+=(nexthop via "$(edge_peer6 "$r")" dev "e-$r")
	done
	nsip edge route replace 198.51.100.0/24 "${hops4[@]}"
	nsip edge -6 route replace 2001:db8:100::/64 "${hops6[@]}"
}

# router_links R up|down: every link of router R (its segment ports, its
# edge link): the router fails, or comes back. The edge notices a failure
# at once (link down). Coming back, the router gets its links and its
# routes back to the client (the kernel removed them with the links), and
# the edge sends it VIP traffic only once it has routes for the VIPs, as a
# router announces upstream only what it reaches (the edge's ECMP is
# static: it would send flows to a router without routes).
router_links() {
	local r=$1 state=$2 l i v ok others=()
	if [ "$state" = down ]; then
		for l in r-edge r-n1 r-n2 r-n3; do nsip "$r" link set "$l" down; done
		return 0
	fi
	for l in "${ROUTERS[@]}"; do [ "$l" = "$r" ] || others+=("$l"); done
	edge_routes "${others[@]}"
	for l in r-edge r-n1 r-n2 r-n3; do nsip "$r" link set "$l" up; done
	client_routes "$r"
	for i in $(seq 1 300); do
		ok=1
		for v in ${VIPS//,/ }; do
			if [ "${v#*:}" != "$v" ]; then
				nsip "$r" -6 route show "$v" | grep -q . || ok=0
			else
				nsip "$r" route show "$v" | grep -q . || ok=0
			fi
		done
		[ $ok = 1 ] && break
		sleep 0.1
	done
	edge_routes "${ROUTERS[@]}"
}

client_routes() {
	local r=$1 i
	nsip "$r" route replace 203.0.113.0/24 via "$(edge_ip "$r")"
	for i in $(seq 1 100); do
		nsip "$r" -6 route replace 2001:db8:c::/64 via "$(edge_ip6 "$r")" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "lab: $r: no IPv6 route back to the client" >&2
	return 1
}

down() {
	for f in "$RUN"/*-vipd.pid "$RUN"/*-guard.pid "$RUN"/*-serve.pid "$RUN"/r*-bird.pid "$RUN"/n*-run/bird.pid; do
		[ -f "$f" ] || continue
		kill "$(cat "$f")" 2>/dev/null || true
	done
	sleep 0.5
	for f in "$RUN"/*-vipd.pid "$RUN"/*-guard.pid "$RUN"/*-serve.pid "$RUN"/r*-bird.pid "$RUN"/n*-run/bird.pid; do
		[ -f "$f" ] || continue
		kill -9 "$(cat "$f")" 2>/dev/null || true
		rm -f "$f"
	done
	for x in client edge "${ROUTERS[@]}" sw "${NODES[@]}"; do
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
bird) start_bird "$2" ;;
guard) start_guard "$2" ;;
router-down) router_links "$2" down ;;
router-up) router_links "$2" up ;;
*)
	echo "usage: LAB=prefix MODE=bgp|ospf $0 up|down|start NODE|serve NODE|unserve NODE|bird NODE|guard NODE|router-down R|router-up R" >&2
	exit 2
	;;
esac
