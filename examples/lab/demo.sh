#!/usr/bin/env bash
# make demo: the namespace lab end to end. A router (BIRD, BGP, ECMP), three
# symmetric vipd nodes with XDP on their uplinks, a client. Shows the VIP
# announced by all three, client connections balanced over the nodes, a live
# drain of n2 with zero broken connections, and the undrain. Cleans up on exit.
set -euo pipefail
cd "$(dirname "$0")"
export LAB=${LAB:-vdemo}
export RUN=/tmp/vipd-lab-$LAB
ROOT=$(cd ../.. && pwd)
BIN=$ROOT/bin
VIP=198.51.100.10
say() { printf '\n\033[1;34m==> %s\033[0m\n' "$*"; }
nsx() { local n=$LAB-$1; shift; ip netns exec "$n" "$@"; }
vipctl() { local n=$1; shift; "$BIN/vipctl" --socket "$RUN/$n.sock" "$@"; }

if [ "$(id -u)" -ne 0 ]; then echo "make demo needs root (namespaces, XDP)" >&2; exit 1; fi
go build -o "$BIN/labtool" ./labtool

./lab.sh down >/dev/null 2>&1 || true
trap 'say "cleaning up"; ./lab.sh down' EXIT
say "building the lab: router, client, nodes n1 n2 n3 (network namespaces $LAB-*)"
./lab.sh up

say "starting vipd on n1, n2, n3 (embedded GoBGP to the router, XDP on up0)"
for n in n1 n2 n3; do ./lab.sh start "$n"; done

say "waiting for the router to install the VIP $VIP from all three nodes (ECMP)"
for i in $(seq 1 60); do
	[ "$(nsx router ip route show "$VIP" | grep -c nexthop)" -ge 3 ] && break
	sleep 1
done
nsx router ip route show "$VIP"
[ "$(nsx router ip route show "$VIP" | grep -c nexthop)" -ge 3 ] || { echo "VIP not announced by all nodes; vipd logs:"; tail -n 30 "$RUN"/n*-vipd.log; exit 1; }

say "vipctl status on n1"
vipctl n1 status

say "client: 8 s of connections to $VIP:80 (each answer names the serving node)"
nsx client "$BIN/labtool" load -target "$VIP:80" -conns 30 -duration 8s -lifetime 1s -progress 2s

say "live drain of n2 while 30 long-lived connections run (each lives 4 s)"
nsx client "$BIN/labtool" load -target "$VIP:80" -conns 30 -duration 30s -lifetime 4s -progress 3s >"$RUN/load.txt" 2>&1 &
loadpid=$!
sleep 4
vipctl n2 drain
for i in 1 2 3 4 5 6; do
	sleep 2
	printf '  n2 phase: %s; router next hops: %s\n' \
		"$(vipctl n2 status --json | sed -n 's/.*"phase": "\([a-z]*\)".*/\1/p' | head -1)" \
		"$(nsx router ip route show "$VIP" | grep -o 'via [0-9.]*' | tr '\n' ' ')"
done
vipctl n2 status
say "undrain n2"
vipctl n2 undrain
sleep 6
nsx router ip route show "$VIP"
wait $loadpid || true
cat "$RUN/load.txt"

say "dataplane counters on n1"
vipctl n1 status | sed -n '/^dataplane/,$p'
for n in n1 n2 n3; do
	printf '  %s: drop_loop_guard=%s (decapsulated packets for a VIP not bound here: must be 0)\n' "$n" \
		"$(vipctl "$n" status --json | sed -n 's/.*"drop_loop_guard": \([0-9]*\).*/\1/p')"
done
