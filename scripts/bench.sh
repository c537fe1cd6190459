#!/usr/bin/env bash
# make bench: every benchmark, with its figures and the baseline it is
# compared against in the same run (these machines are noisy: only ratios
# within one run mean anything). Needs root (BPF_PROG_TEST_RUN, namespaces).
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
section() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { echo "\$ $*"; "$@" || rc=1; }

section "XDP program: ns/packet vs a parse-and-pass baseline (frame restored before every run: the changed words; full-restore-x-baseline: the whole frame)"
run go test -count=1 -run '^$' -bench 'BenchmarkXDP' -benchtime 100x ./dataplane/
section "Forwarding tables: build time, balance and disruption vs ideal 1/N"
run go test -count=1 -run 'TestTableReport' -v -bench 'BuildTable|TableUpdate' ./dataplane/
section "BGP: withdraw latency and 10k VIPs vs raw GoBGP (gobgpd peer)"
run go test -count=1 -run '^$' -bench . -benchtime 1x ./routing/bgp/
section "BIRD: change-to-withdrawn at the router, 10k VIPs vs bird -p alone"
run go test -count=1 -run '^$' -bench 'BenchmarkDrainToWithdrawn|Benchmark10kVIPs' -benchtime 1x ./routing/bird/
section "Config parse vs bare TOML decode; node-state decode vs json.Unmarshal"
run go test -count=1 -run '^$' -bench . ./internal/config/ ./internal/cluster/
section "Cluster state at N=16/64/256: CPU per node and switch time, poll vs etcd"
run go test -count=1 -run '^$' -bench BenchmarkScale -benchtime 1x -timeout 30m ./internal/cluster/etcd/
section "State machine: 1M random steps with every invariant checked"
run go test -count=1 -run TestProperty -v ./vip/ -args -vip.steps=1000000 -vip.seeds=200
exit $rc
