#!/usr/bin/env bash
# make demo [MODE=ospf]: the namespace lab end to end. Two routers (BIRD,
# ECMP), an edge splitting the client's flows between them, three symmetric
# vipd nodes with XDP on their uplinks, an IPv4 and an IPv6 VIP. MODE=bgp
# (default): vipd's embedded GoBGP peers with both routers; MODE=ospf: BIRD
# on every node, started the safe way (docs/ospf.md). Shows both VIPs
# announced by all three nodes at both routers, connections balanced, a live
# drain of n2 under IPv4 and IPv6 load, the undrain, and a summary. Cleans
# up on exit.
set -euo pipefail
cd "$(dirname "$0")"
export LAB=${LAB:-vdemo}
export RUN=/tmp/vipd-lab-$LAB
export MODE=${MODE:-bgp}
ROOT=$(cd ../.. && pwd)
BIN=$ROOT/bin
VIP4=198.51.100.10
VIP6=2001:db8:100::10
say() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
nsx() { local n=$LAB-$1; shift; ip netns exec "$n" "$@"; }
vipctl() { local n=$1; shift; "$BIN/vipctl" --socket "$RUN/$n.sock" "$@"; }
route() { if [ "${2#*:}" != "$2" ]; then nsx "$1" ip -6 route show "$2"; else nsx "$1" ip route show "$2"; fi; }
hops() { route "$1" "$2" | grep -c nexthop || true; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

if [ "$(id -u)" -ne 0 ]; then echo "make demo needs root (namespaces, XDP)" >&2; exit 1; fi
case $MODE in bgp | ospf) ;; *) echo "MODE=$MODE: want bgp or ospf" >&2; exit 2 ;; esac
go build -o "$BIN/labtool" ./labtool
start=$(now_ms)

./lab.sh down >/dev/null 2>&1 || true
trap 'say "cleaning up"; ./lab.sh down' EXIT
if [ "$MODE" = ospf ]; then
	say "building the lab (mode ospf): edge, routers r1 r2 (BIRD, OSPFv2+v3, ecmp, merge external), nodes n1 n2 n3 each with its own BIRD as user bird"
	echo "    per node, as docs/ospf.md tells an operator: vipctl bird-config -o FILE (announces nothing), bird -u bird -g bird, vipctl bird-guard, then vipd"
else
	say "building the lab (mode bgp): edge, routers r1 r2 (BIRD, BGP, ECMP), nodes n1 n2 n3, client (network namespaces $LAB-*)"
fi
./lab.sh up

say "starting vipd on n1, n2, n3 (XDP on up0; $([ "$MODE" = ospf ] && echo "its VIP routes into the node's BIRD" || echo "embedded GoBGP to r1 and r2"))"
for n in n1 n2 n3; do ./lab.sh start "$n"; done

say "waiting for r1 and r2 to install $VIP4 and $VIP6 from all three nodes (ECMP)"
ok=0
for _ in $(seq 1 90); do
	ok=1
	for r in r1 r2; do for v in $VIP4 $VIP6; do [ "$(hops $r $v)" -ge 3 ] || ok=0; done; done
	[ $ok = 1 ] && break
	sleep 0.5
done
for r in r1 r2; do for v in $VIP4 $VIP6; do echo "$r:"; route $r $v; done; done
[ $ok = 1 ] || { echo "VIPs not announced by all nodes at both routers; vipd logs:"; tail -n 30 "$RUN"/n*-vipd.log; exit 1; }

say "vipctl status on n1"
vipctl n1 status

say "client: 5 s of connections to each VIP (each answer names the serving node)"
nsx client "$BIN/labtool" load -target "$VIP4:80" -conns 20 -duration 5s -lifetime 1s -progress 0 &
nsx client "$BIN/labtool" load -target "[$VIP6]:80" -conns 20 -duration 5s -lifetime 1s -progress 0
wait

say "live drain of n2 while 2x30 long-lived connections run (each lives 4 s), IPv4 and IPv6"
nsx client "$BIN/labtool" load -target "$VIP4:80" -conns 30 -duration 26s -lifetime 4s -progress 0 -json >"$RUN/load4.json" 2>&1 &
l4=$!
nsx client "$BIN/labtool" load -target "[$VIP6]:80" -conns 30 -duration 26s -lifetime 4s -progress 0 -json >"$RUN/load6.json" 2>&1 &
l6=$!
sleep 4
# Watch each router's kernel: the time from vipctl drain to n2's next hop
# gone, per router and family.
t0=$(now_ms)
watchers=()
for r in r1 r2; do
	for v in $VIP4 $VIP6; do
		(
			while route $r $v | grep -q "dev r-n2"; do sleep 0.02; done
			echo $(($(now_ms) - t0)) >"$RUN/gone-$r-$v"
		) &
		watchers+=($!)
	done
done
vipctl n2 drain
wait "${watchers[@]}" || true
for i in 1 2 3 4; do
	sleep 2
	printf '  n2 phase: %s; r1 next hops: %s; r2 next hops: %s\n' \
		"$(vipctl n2 status --json | sed -n 's/.*"phase": "\([a-z]*\)".*/\1/p' | head -1)" \
		"$(route r1 $VIP4 | grep -o 'dev r-n[0-9]' | cut -c5- | tr '\n' ' ')" \
		"$(route r2 $VIP4 | grep -o 'dev r-n[0-9]' | cut -c5- | tr '\n' ' ')"
done
vipctl n2 status
say "undrain n2"
vipctl n2 undrain
for _ in $(seq 1 40); do
	[ "$(hops r1 $VIP4)" -ge 3 ] && [ "$(hops r2 $VIP6)" -ge 3 ] && break
	sleep 0.5
done
route r1 $VIP4
wait $l4 $l6 || true

# The summary: what issue 14 asks the demo to end with.
field() { sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | head -1; }
backends() { sed -n 's/.*"by_backend":{\([^}]*\)}.*/\1/p' "$1" | tr -d '"'; }
guard=0
for n in n1 n2 n3; do
	g=$(vipctl "$n" status --json | sed -n 's/.*"drop_loop_guard": \([0-9]*\).*/\1/p')
	guard=$((guard + ${g:-0}))
done
say "summary (mode $MODE, $(( ($(now_ms) - start) / 1000 )) s)"
for r in r1 r2; do
	for v in $VIP4 $VIP6; do
		printf '  routes at %s: %-17s via %s\n' $r $v "$(route $r $v | grep -o 'dev r-n[0-9]' | cut -c5- | tr '\n' ' ')"
	done
done
broken=0
for f in 4 6; do
	b=$(field "$RUN/load$f.json" broken)
	broken=$((broken + ${b:-0}))
	printf '  IPv%s: %s new connections, per node %s; broken %s, switched backend %s\n' $f \
		"$(field "$RUN/load$f.json" connections)" "$(backends "$RUN/load$f.json")" "${b:-?}" "$(field "$RUN/load$f.json" switched)"
done
printf '  broken connections: %s\n' "$broken"
printf '  loop-guard drops (decapsulated packets for a VIP not bound here), all nodes: %s\n' "$guard"
for r in r1 r2; do
	printf '  vipctl drain n2 -> route gone from %s kernel: IPv4 %s ms, IPv6 %s ms\n' $r \
		"$(cat "$RUN/gone-$r-$VIP4" 2>/dev/null || echo '?')" "$(cat "$RUN/gone-$r-$VIP6" 2>/dev/null || echo '?')"
done
