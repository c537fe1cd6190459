package main

import (
	"strings"
	"testing"

	"github.com/vipd/vipd/internal/api"
)

// TestStatusTrafficAndMemory: status shows each VIP's packets and bytes
// per verdict and the dataplane's memory and use of its limits.
func TestStatusTrafficAndMemory(t *testing.T) {
	st := api.Status{Node: "n1", Phase: "active", Routing: "bgp",
		VIPs: []api.VIPStatus{{Address: vip10, Programmed: true, Traffic: []api.Traffic{
			{Verdict: "encapsulated", Packets: 10, Bytes: 1400}, {Verdict: "local", Packets: 3, Bytes: 300},
			{Verdict: "second_chance", Packets: 0, Bytes: 0}, {Verdict: "loop_guard", Packets: 1, Bytes: 3 << 20},
		}}},
		Dataplane: &api.Dataplane{Interface: "eth0", Attach: "auto", Memory: &api.DataplaneMemory{
			TotalBytes: 29_700_000, TableBytes: 262144, Tables: 1, MaxTables: 16384, VIPs: 1, MaxVIPs: 16384,
			VIPKeys: 2, MaxVIPKeys: 131072, Backends: 2, MaxBackends: 16384,
		}}}
	out, _, err := vipctl(t, "--socket", serve(t, &scripted{states: []api.Status{st}}), "status")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(out, "\n")
	row := func(prefix string) []string {
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) && strings.Contains(l, "(") {
				return strings.Fields(strings.ReplaceAll(l, " (", "("))
			}
		}
		return nil
	}
	if !strings.Contains(out, "ENCAPSULATED") || !strings.Contains(out, "SECOND CHANCE") {
		t.Errorf("status lacks the traffic table's header:\n%s", out)
	}
	want := []string{"198.51.100.10", "10(1.4", "KiB)", "3(300", "B)", "0(0", "B)", "1(3.0", "MiB)"}
	if got := row("198.51.100.10"); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("traffic row %q, want %q:\n%s", got, want, out)
	}
	mem := "memory 28.3 MiB (1 of 16384 tables, 256.0 KiB); VIPs 1 of 16384, VIP entries 2 of 131072, backends 2 of 16384"
	if !strings.Contains(out, mem) {
		t.Errorf("status lacks %q:\n%s", mem, out)
	}
}
