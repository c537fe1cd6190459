package vip

import (
	"context"
	"net/netip"
	"sync"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
)

// One cluster.Update is one event: the tables are built from all of its
// states in the same pass (one Program per VIP, never a half-applied
// view), the table digests are published with the configuration digests
// at the update's revision, and every new document reaches Publish.
func TestSetPeersOneSwitchAndDigests(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	cfg.Digests = cluster.ComputeDigests(cluster.ClusterSpec{Seed: 1, Members: []cluster.MemberSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		VIPs: []cluster.VIPSpec{{Addr: vip4}, {Addr: vip6}}})
	w := newWorld(clock, cfg.WithdrawGrace)
	var mu sync.Mutex
	var published []cluster.NodeState
	programs := map[netip.Addr][]string{}
	deps := Deps{Advertiser: w, Binder: w, Dataplane: w, Clock: clock, Logger: hclog.NewNullLogger(),
		TableDigest: func(addr netip.Addr, backends []Backend) cluster.Digest {
			mu.Lock()
			defer mu.Unlock()
			programs[addr] = append(programs[addr], describe(backends))
			var d cluster.Digest
			copy(d[:], describe(backends))
			return d
		},
		Publish: func(st cluster.NodeState) {
			mu.Lock()
			defer mu.Unlock()
			published = append(published, st)
		},
	}
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	active := func(node string) *cluster.NodeState {
		return &cluster.NodeState{Node: node, Generation: 1, VIPs: map[netip.Addr]cluster.VIPState{
			vip4: {State: cluster.StateActive, Healthy: true}, vip6: {State: cluster.StateActive, Healthy: true}}}
	}
	// Queued before the first pass: the first table has every member.
	c.SetPeers(cluster.Update{Revision: 40, States: map[string]*cluster.NodeState{"b": active("b"), "c": active("c")}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	eventually(t, clock, 0, "bring-up with both peers", func() bool {
		s := vipStatus(c, vip4)
		return s.Programmed && s.Advertised && len(s.Backends) == 3
	})
	mu.Lock()
	if got := programs[vip4]; len(got) != 1 || got[0] != "[a/p,b/p,c/p]" {
		t.Errorf("vip4 programmed %v, want one table with a, b and c", got)
	}
	mu.Unlock()

	// One update failing both peers: one switch, straight to a as the
	// only primary (the failed ones stay as second hops).
	c.SetPeers(cluster.Update{Revision: 41, States: map[string]*cluster.NodeState{"b": nil, "c": nil}})
	eventually(t, clock, 0, "both peers gone", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(programs[vip4]) >= 2
	})
	eventually(t, clock, 0, "a pass after the switch", func() bool { return c.NodeState().Digests.TablesAt == 41 })
	mu.Lock()
	if got := programs[vip4]; len(got) != 2 || got[1] != "[a/p,b/s,c/s]" {
		t.Errorf("vip4 programmed %v, want exactly one more table, [a/p,b/s,c/s]", got)
	}
	mu.Unlock()
	eventually(t, clock, 0, "digests published", func() bool {
		d := c.NodeState().Digests
		return d != nil && d.TablesAt == 41 && !d.VIPs[vip4].Table.IsZero()
	})
	doc := c.NodeState()
	if doc.Digests.Config != cfg.Digests.Config {
		t.Errorf("published config digest %s, want %s", doc.Digests.Config, cfg.Digests.Config)
	}
	// An update that changes no table does not move TablesAt (a peer's
	// own republishing must not make every node republish in turn).
	c.SetPeers(cluster.Update{Revision: 42, States: map[string]*cluster.NodeState{"b": nil}})
	c.SetHealth(vip6, true, "still fine")
	eventually(t, clock, 0, "a pass", func() bool { return vipStatus(c, vip6).Healthy })
	if got := c.NodeState().Digests.TablesAt; got != 41 {
		t.Errorf("TablesAt %d after an update that changed no table, want 41", got)
	}
	// The loop stores a document for NodeState, then publishes it: wait
	// for the publication of the latest one.
	eventually(t, clock, 0, "the latest document published", func() bool {
		want := c.NodeState().Generation
		mu.Lock()
		defer mu.Unlock()
		return len(published) > 0 && published[len(published)-1].Generation == want
	})
	mu.Lock()
	defer mu.Unlock()
	if published[len(published)-1].Generation < doc.Generation {
		t.Fatalf("published %d documents, the last of generation %d, before the digests' document (generation %d)",
			len(published), published[len(published)-1].Generation, doc.Generation)
	}
	for i := 1; i < len(published); i++ {
		if published[i].Generation <= published[i-1].Generation {
			t.Errorf("published generation %d after %d", published[i].Generation, published[i-1].Generation)
		}
	}
}

// A probe demotion (Update.Demoted) makes the member a second hop in the
// next table, in one switch; the configuration digest does not move; a
// demotion that would leave no primary is not applied; an empty set
// restores.
func TestSetPeersDemoted(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	cfg.Digests = cluster.ComputeDigests(cluster.ClusterSpec{Seed: 1, Members: []cluster.MemberSpec{{Name: "a"}, {Name: "b"}, {Name: "c"}},
		VIPs: []cluster.VIPSpec{{Addr: vip4}, {Addr: vip6}}})
	w := newWorld(clock, cfg.WithdrawGrace)
	var mu sync.Mutex
	programs := map[netip.Addr][]string{}
	deps := Deps{Advertiser: w, Binder: w, Dataplane: w, Clock: clock, Logger: hclog.NewNullLogger(),
		TableDigest: func(addr netip.Addr, backends []Backend) cluster.Digest {
			mu.Lock()
			defer mu.Unlock()
			programs[addr] = append(programs[addr], describe(backends))
			return cluster.Digest{}
		},
	}
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	active := func(node string) *cluster.NodeState {
		return &cluster.NodeState{Node: node, Generation: 1, VIPs: map[netip.Addr]cluster.VIPState{
			vip4: {State: cluster.StateActive, Healthy: true}, vip6: {State: cluster.StateActive, Healthy: true}}}
	}
	c.SetPeers(cluster.Update{States: map[string]*cluster.NodeState{"b": active("b"), "c": active("c")}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	last := func() string {
		mu.Lock()
		defer mu.Unlock()
		p := programs[vip4]
		if len(p) == 0 {
			return ""
		}
		return p[len(p)-1]
	}
	waitTable := func(want string) {
		t.Helper()
		eventually(t, clock, 0, "table "+want, func() bool { return last() == want })
	}
	waitTable("[a/p,b/p,c/p]")
	digest := c.NodeState().Digests.Config

	c.SetPeers(cluster.Update{Demoted: map[string]string{"b": cluster.ProbeReason("b")}})
	waitTable("[a/p,b/s,c/p]")
	// This node itself, with b: c is left.
	c.SetPeers(cluster.Update{Demoted: map[string]string{"a": cluster.ProbeSelfReason, "b": cluster.ProbeReason("b")}})
	waitTable("[a/s,b/s,c/p]")
	// Every primary: not applied.
	c.SetPeers(cluster.Update{Demoted: map[string]string{"a": "x", "b": "x", "c": "x"}})
	waitTable("[a/p,b/p,c/p]")
	c.SetPeers(cluster.Update{Demoted: map[string]string{"c": cluster.ProbeReason("c")}})
	waitTable("[a/p,b/p,c/s]")
	// A state update without Demoted keeps the demotions.
	c.SetPeers(cluster.Update{States: map[string]*cluster.NodeState{"b": active("b")}})
	c.SetHealth(vip6, true, "poke")
	eventually(t, clock, 0, "a pass", func() bool { return vipStatus(c, vip6).Healthy })
	if got := last(); got != "[a/p,b/p,c/s]" {
		t.Errorf("after a state update: %s, want c still demoted", got)
	}
	c.SetPeers(cluster.Update{Demoted: map[string]string{}})
	waitTable("[a/p,b/p,c/p]")
	if got := c.NodeState().Digests.Config; got != digest {
		t.Errorf("config digest %s after demotions, want %s", got, digest)
	}
}
