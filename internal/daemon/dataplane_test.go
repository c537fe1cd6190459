package daemon

import (
	"context"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
)

// memDataplane is the rig's fake dataplane that also reports its memory
// and per-VIP counters.
type memDataplane struct{ *fakeDataplane }

func (memDataplane) Memory() (dataplane.Memory, error) {
	return dataplane.Memory{Total: 1 << 20, Tables: 1, TableBytes: dataplane.TableBytes, VIPs: 1, VIPKeys: 2, Backends: 1}, nil
}

func (memDataplane) VIPStats(context.Context) (map[netip.Addr]dataplane.VIPCounters, error) {
	return map[netip.Addr]dataplane.VIPCounters{vipA.Addr(): {
		Encapsulated: dataplane.Counter{Packets: 10, Bytes: 1400},
		LoopGuard:    dataplane.Counter{Packets: 1, Bytes: 60},
	}}, nil
}

// TestStatusDataplaneMemoryAndTraffic: status carries the dataplane's
// memory and, through trafficOf (what Start wires to dataplane.VIPStats),
// every verdict of each VIP, zeros included.
func TestStatusDataplaneMemoryAndTraffic(t *testing.T) {
	r := newIdleRig(t)
	mdp := memDataplane{r.dp}
	r.dpPart = mdp
	r.traffic = trafficOf(mdp)
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	st, err := r.d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	wantMem := &api.DataplaneMemory{TotalBytes: 1 << 20, TableBytes: dataplane.TableBytes, Tables: 1, MaxTables: dataplane.MaxTables,
		VIPs: 1, MaxVIPs: dataplane.MaxVIPs, VIPKeys: 2, MaxVIPKeys: dataplane.MaxVIPKeys, Backends: 1, MaxBackends: dataplane.MaxBackends}
	if diff := cmp.Diff(wantMem, st.Dataplane.Memory); diff != "" || st.Dataplane.Error != "" {
		t.Errorf("memory (-want +got):\n%s; error %q", diff, st.Dataplane.Error)
	}
	wantTraffic := []api.Traffic{
		{Verdict: "encapsulated", Packets: 10, Bytes: 1400}, {Verdict: "local"}, {Verdict: "second_chance"},
		{Verdict: "loop_guard", Packets: 1, Bytes: 60},
	}
	if len(st.VIPs) != 1 {
		t.Fatalf("status VIPs %+v", st.VIPs)
	}
	if diff := cmp.Diff(wantTraffic, st.VIPs[0].Traffic); diff != "" {
		t.Errorf("traffic (-want +got):\n%s", diff)
	}
}
