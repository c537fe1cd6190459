package netlink

import (
	"context"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	nl "github.com/vishvananda/netlink"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/vip"
)

// waitSignal reports whether ch signals within d.
func waitSignal(ch <-chan struct{}, d time.Duration) bool {
	select {
	case <-ch:
		return true
	case <-time.After(d):
		return false
	}
}

// TestWatchSignals: an address added to or removed from lo in the
// namespace signals; one on another link does not.
func TestWatchSignals(t *testing.T) {
	b, ns := newBinder(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ns.MustRun(t, "ip", "link", "add", "wa0", "type", "veth", "peer", "name", "wb0")
	ns.MustRun(t, "ip", "addr", "add", "203.0.113.5/24", "dev", "wa0")
	if waitSignal(ch, 300*time.Millisecond) {
		t.Error("an address on another link signalled")
	}
	ns.MustRun(t, "ip", "addr", "add", vip4.String()+"/32", "dev", "lo")
	if !waitSignal(ch, 5*time.Second) {
		t.Fatal("adding an address to lo did not signal")
	}
	ns.MustRun(t, "ip", "addr", "del", vip4.String()+"/32", "dev", "lo")
	if !waitSignal(ch, 5*time.Second) {
		t.Fatal("removing an address from lo did not signal")
	}
	cancel()
	for range ch { // closed once ctx ends
	}
}

// TestWatchResubscribes: a subscription that fails (as one that overflows
// does, ENOBUFS) signals, since its events may be lost, and is opened
// again, and that one's events signal too.
func TestWatchResubscribes(t *testing.T) {
	b, _ := newBinder(t)
	failed := make(chan nl.AddrUpdate)
	close(failed)
	next := make(chan nl.AddrUpdate, 1)
	var opened atomic.Int32
	subscribe := func() (*addrSub, error) {
		opened.Add(1)
		return &addrSub{updates: next, done: make(chan struct{})}, nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := make(chan struct{}, 1)
	go b.watch(ctx, &addrSub{updates: failed, done: make(chan struct{})}, subscribe, out)
	if !waitSignal(out, 5*time.Second) {
		t.Fatal("a failed subscription did not signal")
	}
	deadline := time.Now().Add(5 * time.Second)
	for opened.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if opened.Load() != 1 {
		t.Fatalf("subscriptions opened again: %d, want 1", opened.Load())
	}
	waitSignal(out, 100*time.Millisecond) // the one after resubscribing
	next <- nl.AddrUpdate{LinkIndex: b.link.Attrs().Index}
	if !waitSignal(out, 5*time.Second) {
		t.Fatal("the new subscription's event did not signal")
	}
}

// TestControllerRebindsRemovedVIP runs the vip controller on this binder
// in a namespace and removes the bound VIP from lo with netlink, again
// and again: each time the VIP must be back on lo within rebindBound, and
// status must never claim it bound while it has been missing for longer.
func TestControllerRebindsRemovedVIP(t *testing.T) {
	const (
		rounds      = 20
		rebindBound = time.Second
	)
	b, ns := newBinder(t)
	h, err := nl.NewHandleAt(ns.Handle())
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	lo, err := h.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	changes, err := b.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dp := &fakeDataplane{}
	cfg := vip.Config{
		Node:    "a",
		VIPs:    []vip.VIPConfig{{Addr: vip4, Services: []vip.Service{{Proto: vip.ProtoTCP, Port: 80}}}},
		Members: []vip.Member{{Name: "a", Addr4: netip.MustParseAddr("10.0.0.1")}},
		// The periodic read is the backstop; the events must do it
		// well within the bound.
		LoCheckInterval: time.Minute,
	}
	c, err := vip.New(cfg, vip.Deps{Advertiser: fakeAdvertiser{}, Binder: b, Dataplane: dp, Logger: hclog.NewNullLogger(), LoChanges: changes})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()
	status := func() vip.VIPStatus {
		for _, v := range c.Status().VIPs {
			if v.Addr == vip4 {
				return v
			}
		}
		return vip.VIPStatus{}
	}
	onLo := func() bool {
		got, err := b.Bound(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range got {
			if a == vip4 {
				return true
			}
		}
		return false
	}
	deadline := time.Now().Add(10 * time.Second)
	for !status().Bound {
		if time.Now().After(deadline) {
			t.Fatal("the VIP was never bound")
		}
		time.Sleep(time.Millisecond)
	}
	addr, _ := hostAddr(vip4)
	var worst time.Duration
	for round := 1; round <= rounds; round++ {
		if err := h.AddrDel(lo, addr); err != nil {
			t.Fatalf("round %d: removing the VIP: %v", round, err)
		}
		removed := time.Now()
		missingSince := removed
		for {
			st, on := status(), onLo()
			now := time.Now()
			if on {
				missingSince = time.Time{}
			} else if missingSince.IsZero() {
				missingSince = now
			}
			if !missingSince.IsZero() && now.Sub(missingSince) > rebindBound {
				t.Fatalf("round %d: the VIP missing from lo for %s (status bound=%v, reason %q)", round, now.Sub(missingSince), st.Bound, st.Reasons.Bound)
			}
			if on && st.Rebinds == uint64(round) {
				worst = max(worst, now.Sub(removed))
				break
			}
			time.Sleep(200 * time.Microsecond)
		}
	}
	if !dp.everBound(vip4) || dp.droppedWhileOn() {
		t.Errorf("the bound set: ever held the VIP=%v, dropped it while on lo=%v", dp.everBound(vip4), dp.droppedWhileOn())
	}
	t.Logf("%d removals: the VIP was back on lo within %s at worst", rounds, worst)
}

// fakeAdvertiser announces whatever it is asked to.
type fakeAdvertiser struct{}

func (fakeAdvertiser) SetRoutes(_ context.Context, r []routing.Route) ([]routing.Route, error) {
	return r, nil
}
func (fakeAdvertiser) Exported(context.Context) (routing.Exported, error) {
	return routing.Exported{}, nil
}
func (fakeAdvertiser) Resync(context.Context) error { return nil }

// fakeDataplane records the bound sets it is given.
type fakeDataplane struct {
	mu   sync.Mutex
	sets [][]netip.Addr
}

func (d *fakeDataplane) Program(context.Context, vip.ProgramSpec) error   { return nil }
func (d *fakeDataplane) Unprogram(context.Context, netip.Addr) error      { return nil }
func (d *fakeDataplane) Programmed(context.Context) ([]netip.Addr, error) { return nil, nil }
func (d *fakeDataplane) SetBound(_ context.Context, addrs []netip.Addr) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.sets = append(d.sets, append([]netip.Addr(nil), addrs...))
	return nil
}

func (d *fakeDataplane) everBound(a netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, s := range d.sets {
		for _, x := range s {
			if x == a {
				return true
			}
		}
	}
	return false
}

// droppedWhileOn: a rebind that worked in the pass that noticed the
// removal leaves the bound set alone, so it was set once.
func (d *fakeDataplane) droppedWhileOn() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.sets) != 1
}
