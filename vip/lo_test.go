package vip

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
)

// stranger is an address on lo that is no VIP of the node.
var stranger = netip.MustParseAddr("198.51.100.99")

func (r *rig) status(a netip.Addr) VIPStatus {
	for _, v := range r.m.status().VIPs {
		if v.Addr == a {
			return v
		}
	}
	r.t.Fatalf("no status for %s", a)
	return VIPStatus{}
}

// A VIP someone else removes from lo is bound again in the pass after the
// read that sees it missing, counted, and never leaves the bound set
// (nothing loops); the calls are the rebind only.
func TestLoRemovedBehindIsBoundAgain(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.run(time.Minute)
	r.w.takeCalls()
	r.trans = nil

	r.w.RemoveBehind(vip4)
	r.readLo()
	r.step()
	if diff := cmp.Diff([]string{"Bind 192.0.2.10"}, r.w.takeCalls()); diff != "" {
		t.Errorf("calls after the read (-want +got):\n%s", diff)
	}
	at := since(r.clock.Now()).String()
	want := []string{
		"lo true->false (removed from lo by someone else) @" + at,
		"lo false->true (bound again after someone else removed it) @" + at,
	}
	if diff := cmp.Diff(want, r.transitions(vip4)); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	r.w.mu.Lock()
	lo, dp := r.w.lo[vip4], r.w.dp[vip4]
	r.w.mu.Unlock()
	if !lo || !dp {
		t.Errorf("after the rebind lo=%v bound set=%v, want both", lo, dp)
	}
	st := r.status(vip4)
	if !st.Bound || st.Rebinds != 1 || st.Reasons.Bound != "serving" {
		t.Errorf("status bound=%v rebinds=%d reason %q, want bound, 1 rebind, serving", st.Bound, st.Rebinds, st.Reasons.Bound)
	}
	if doc := r.m.nodeState().VIPs[vip4]; !doc.Healthy || doc.State != cluster.StateActive {
		t.Errorf("published %+v, want active and healthy", doc)
	}
	r.step()
	if c := r.w.takeCalls(); len(c) != 0 {
		t.Errorf("a pass with nothing new made calls: %v", c)
	}
}

// While the rebind fails, the VIP is out of the bound set (the loop guard
// drops its traffic instead of the kernel forwarding it), status says
// unbound with the reason and the error, and the node publishes itself
// unhealthy for it, so it is no primary in any table, its own included.
// Once Bind works again it is back everywhere.
func TestLoRemovedBehindBindFails(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.run(time.Minute)
	r.w.takeCalls()

	r.w.mu.Lock()
	r.w.failNext["Bind"] = 1000
	r.w.mu.Unlock()
	r.w.RemoveBehind(vip4)
	r.readLo()
	r.step()
	r.w.mu.Lock()
	dp := r.w.dp[vip4]
	table := r.w.programs[vip4].Backends
	r.w.mu.Unlock()
	if dp {
		t.Error("a VIP off lo is still in the bound set: its decapsulated traffic would loop")
	}
	st := r.status(vip4)
	if st.Bound || st.Reasons.Bound != loLostReason || !strings.Contains(st.LastError, "binding") {
		t.Errorf("status bound=%v reason %q last error %q, want unbound, %q, a binding error", st.Bound, st.Reasons.Bound, st.LastError, loLostReason)
	}
	if doc := r.m.nodeState().VIPs[vip4]; doc.Healthy || !strings.Contains(doc.Reason, "removed from lo") {
		t.Errorf("published %+v, want unhealthy because it was removed from lo", doc)
	}
	for _, b := range table {
		if b.Local && b.Role == RolePrimary {
			t.Errorf("own table %s keeps this node a primary while it cannot accept the VIP", describe(table))
		}
	}
	r.run(30 * time.Second) // retries with backoff, all failing
	if st := r.status(vip4); st.Bound || st.Rebinds != 0 {
		t.Errorf("while Bind fails: bound=%v rebinds=%d", st.Bound, st.Rebinds)
	}

	r.w.mu.Lock()
	clear(r.w.failNext)
	r.w.mu.Unlock()
	r.run(10 * time.Second)
	r.w.mu.Lock()
	lo, dp := r.w.lo[vip4], r.w.dp[vip4]
	r.w.mu.Unlock()
	if st := r.status(vip4); !lo || !dp || !st.Bound || st.Rebinds != 1 || st.Reasons.Bound != "serving" {
		t.Errorf("healed: lo=%v bound set=%v status bound=%v rebinds=%d reason %q", lo, dp, st.Bound, st.Rebinds, st.Reasons.Bound)
	}
	if doc := r.m.nodeState().VIPs[vip4]; !doc.Healthy {
		t.Errorf("healed: published %+v, want healthy", doc)
	}
}

// A read of lo that started before vipd's own Bind says nothing about the
// VIP: it is not taken as a removal.
func TestLoStaleReadIgnored(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	seq := r.m.loOps.Load()
	before, _ := r.w.Bound(context.Background()) // empty: nothing bound yet
	r.step()                                     // binds
	r.m.seeLo(seq, before, nil)
	r.step()
	if st := r.status(vip4); !st.Bound || st.Rebinds != 0 {
		t.Errorf("after a stale read: bound=%v rebinds=%d, want bound and no rebind", st.Bound, st.Rebinds)
	}
	binds := 0
	for _, c := range r.w.takeCalls() {
		if c == "Bind 192.0.2.10" {
			binds++
		}
	}
	if binds != 1 {
		t.Errorf("bound %d times, want once", binds)
	}
}

// A VIP the node does not bind (drained) that someone puts on lo is
// reported and left alone, and so is an address that is no VIP; a failed
// read of lo is reported, not acted on.
func TestLoForeignLeftAlone(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.m.nodeDrain = true
	r.run(10 * time.Minute)
	r.w.mu.Lock()
	lo := r.w.lo[vip4]
	r.w.mu.Unlock()
	if lo {
		t.Fatal("drained node still has the VIP on lo")
	}
	r.w.takeCalls()
	r.w.AddBehind(vip4)
	r.w.AddBehind(stranger)
	r.readLo()
	r.run(10 * time.Minute)
	if c := r.w.takeCalls(); len(c) != 0 {
		t.Errorf("calls after someone else's addresses appeared: %v", c)
	}
	st := r.status(vip4)
	if !st.ForeignOnLo || st.Bound {
		t.Errorf("status foreign=%v bound=%v, want foreign and not bound", st.ForeignOnLo, st.Bound)
	}
	r.w.mu.Lock()
	lo, dp, other := r.w.lo[vip4], r.w.dp[vip4], r.w.lo[stranger]
	r.w.mu.Unlock()
	if !lo || dp || !other {
		t.Errorf("lo has the VIP=%v (want it left), bound set=%v (want not), the stranger=%v (want left)", lo, dp, other)
	}

	// Undrained, vipd binds the VIP itself (already there is success)
	// and owns it from then on.
	r.m.nodeDrain = false
	r.run(time.Minute)
	if st := r.status(vip4); !st.Bound || st.ForeignOnLo {
		t.Errorf("undrained: bound=%v foreign=%v, want bound, not foreign", st.Bound, st.ForeignOnLo)
	}

	r.w.mu.Lock()
	r.w.failNext["Bound"] = 1
	r.w.mu.Unlock()
	r.readLo()
	r.step()
	if st := r.m.status(); !strings.Contains(st.LoError, "injected") {
		t.Errorf("status lo error %q, want the read's failure", st.LoError)
	}
	r.readLo()
	if st := r.m.status(); st.LoError != "" {
		t.Errorf("status lo error %q after a good read, want none", st.LoError)
	}
}

// The Controller's lo watcher reads lo when LoChanges signals and hands
// the read to the loop: a VIP removed behind its back is bound again.
func TestControllerLoWatch(t *testing.T) {
	clock := newFakeClock()
	w := newWorld(clock, 0)
	changes := make(chan struct{}, 1)
	cfg := oneVIP(testConfig())
	c, err := New(cfg, Deps{Advertiser: w, Binder: w, Dataplane: w, Clock: clock, Logger: hclog.NewNullLogger(), LoChanges: changes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	exited := make(chan struct{})
	go func() {
		c.Run(ctx)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	eventually(t, clock, 0, "bound", func() bool { return vipStatus(c, vip4).Bound })
	w.RemoveBehind(vip4)
	changes <- struct{}{}
	eventually(t, clock, 0, "bound again", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.lo[vip4] && w.dp[vip4] && vipStatus(c, vip4).Rebinds == 1
	})
	// The periodic read alone finds it too (the subscription may lose
	// events).
	cfg.LoCheckInterval = time.Second
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	changes <- struct{}{} // rearms the timer with the new interval
	eventually(t, clock, 0, "read", func() bool { return len(changes) == 0 })
	time.Sleep(10 * time.Millisecond)
	w.RemoveBehind(vip4)
	eventually(t, clock, 100*time.Millisecond, "bound again by the periodic read", func() bool {
		w.mu.Lock()
		defer w.mu.Unlock()
		return w.lo[vip4] && vipStatus(c, vip4).Rebinds == 2
	})
}
