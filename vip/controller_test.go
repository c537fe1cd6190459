package vip

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
)

// runController starts Run over a world with a fake clock.
func runController(t *testing.T, cfg Config, w *world, clock *fakeClock) (*Controller, context.CancelFunc, <-chan error) {
	t.Helper()
	c, err := New(cfg, Deps{Advertiser: w, Binder: w, Dataplane: w, Clock: clock, Logger: hclog.NewNullLogger()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	exited := make(chan struct{})
	go func() {
		done <- c.Run(ctx)
		close(exited)
	}()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	return c, cancel, done
}

// eventually polls cond (real time) while moving the fake clock by step.
func eventually(t *testing.T, clock *fakeClock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
		clock.Advance(step)
	}
}

func vipStatus(c *Controller, a netip.Addr) VIPStatus {
	for _, v := range c.Status().VIPs {
		if v.Addr == a {
			return v
		}
	}
	return VIPStatus{}
}

// The controller's public methods, through the event loop: bring-up, VIP
// drain, peers, health, hold, reload, and a Shutdown that drains the node.
func TestControllerRun(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	w := newWorld(clock, cfg.WithdrawGrace)
	c, _, _ := runController(t, cfg, w, clock)
	eventually(t, clock, 0, "bring-up", func() bool {
		s := vipStatus(c, vip4)
		return s.Advertised && s.Bound && s.Programmed && s.Serve == cluster.StateActive
	})
	if got := c.NodeState(); got.VIPs[vip4].State != cluster.StateActive || got.Generation == 0 {
		t.Errorf("node state = %+v", got)
	}
	if err := c.Drain(&vip6); err != nil {
		t.Fatal(err)
	}
	eventually(t, clock, 0, "vip drain", func() bool { return !vipStatus(c, vip6).Advertised })
	if err := c.Undrain(&vip6); err != nil {
		t.Fatal(err)
	}
	other := netip.MustParseAddr("198.51.100.1")
	if err := c.Drain(&other); !errors.Is(err, ErrUnknownVIP) {
		t.Errorf("drain of an unknown vip: %v", err)
	}
	c.SetPeer("b", peerState("b", cluster.StateActive, true, vip4, vip6))
	c.SetHealth(vip4, false, "check failed")
	eventually(t, clock, 0, "peer in table", func() bool { return describe(vipStatus(c, vip4).Backends) == "[a/s,b/p]" })
	c.Hold(vip4, "no route back")
	eventually(t, clock, 0, "hold", func() bool { return vipStatus(c, vip4).Reasons.Advertised == "held: no route back" })
	c.Release(vip4)
	eventually(t, clock, 0, "release", func() bool { return vipStatus(c, vip4).Advertised })
	if err := c.Reload(Config{}); err == nil {
		t.Errorf("reload accepted an invalid config")
	}
	if err := c.Reload(oneVIP(cfg)); err != nil {
		t.Fatal(err)
	}
	eventually(t, clock, time.Second, "removed vip gone", func() bool {
		return len(c.Status().VIPs) == 1
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- c.Shutdown(ctx) }()
	eventually(t, clock, time.Second, "shutdown", func() bool { return len(shut) == 1 })
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	st := c.Status()
	if st.Phase != PhaseDrained || !st.Stopping {
		t.Errorf("after shutdown: phase %s stopping %v", st.Phase, st.Stopping)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.routes) != 0 || len(w.lo) != 0 || len(w.dp) != 0 {
		t.Errorf("after shutdown: routes %v lo %v bound %v", w.routes, w.lo, w.dp)
	}
	if len(w.violations) > 0 {
		t.Errorf("world: %v", w.violations)
	}
}

// Cancelling Run undoes nothing (upgrade restart); a new controller adopts
// without unbinding or unprogramming.
func TestControllerRestartKeepsState(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	w := newWorld(clock, cfg.WithdrawGrace)
	c, cancel, done := runController(t, cfg, w, clock)
	eventually(t, clock, 0, "bring-up", func() bool { return vipStatus(c, vip6).Advertised })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	w.takeCalls()
	c2, _, _ := runController(t, cfg, w, clock)
	eventually(t, clock, 0, "adopted", func() bool {
		s := vipStatus(c2, vip4)
		return s.Advertised && s.Bound && s.Serve == cluster.StateActive
	})
	var bad []string
	for _, call := range w.takeCalls() {
		for _, p := range []string{"Unbind", "Unprogram", "SetRoutes []"} {
			if len(call) >= len(p) && call[:len(p)] == p {
				bad = append(bad, call)
			}
		}
	}
	if diff := cmp.Diff([]string(nil), bad); diff != "" {
		t.Errorf("calls undoing state after restart (-want +got):\n%s", diff)
	}
}

func TestShutdownNotRunning(t *testing.T) {
	clock := newFakeClock()
	w := newWorld(clock, 0)
	c, cancel, done := runController(t, testConfig(), w, clock)
	cancel()
	<-done
	if err := c.Shutdown(context.Background()); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Shutdown after Run returned = %v", err)
	}
}

// Public methods from many goroutines while the loop runs (run with -race):
// the world never sees an invariant broken.
func TestControllerConcurrent(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	cfg.WithdrawGrace, cfg.TableGrace, cfg.DrainTimeout = time.Second, time.Second, time.Second
	w := newWorld(clock, cfg.WithdrawGrace)
	c, _, _ := runController(t, cfg, w, clock)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				a := []netip.Addr{vip4, vip6}[i%2]
				switch (g + i) % 6 {
				case 0:
					c.SetHealth(a, i%3 != 0, "")
				case 1:
					c.SetPeer("b", peerState("b", []cluster.ServeState{cluster.StateActive, cluster.StateDraining, cluster.StateInactive}[i%3], true, a))
				case 2:
					_ = c.Drain(&a)
				case 3:
					_ = c.Undrain(&a)
				case 4:
					if i%50 == 0 {
						_ = c.Drain(nil)
					} else {
						_ = c.Undrain(nil)
					}
				case 5:
					_ = c.Status()
					_ = c.NodeState()
					clock.Advance(300 * time.Millisecond)
				}
			}
		}()
	}
	wg.Wait()
	_ = c.Undrain(nil)
	eventually(t, clock, time.Second, "serving again", func() bool {
		s := c.Status()
		return s.Phase == PhaseActive && vipStatus(c, vip4).Bound && vipStatus(c, vip4).Serve == cluster.StateActive
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.violations) > 0 {
		t.Errorf("world: %v", w.violations)
	}
	if n := c.Status().Refusals; n != 0 {
		t.Errorf("%d refusals", n)
	}
}

// SetDrains sets the operator's drains by address: a drain of a VIP not in
// the config holds when a reload brings it back, with no announcement in
// between; setting them again changes nothing.
func TestSetDrainsKeptAcrossReload(t *testing.T) {
	clock := newFakeClock()
	cfg := testConfig()
	w := newWorld(clock, cfg.WithdrawGrace)
	c, _, _ := runController(t, oneVIP(cfg), w, clock)
	eventually(t, clock, 0, "bring-up", func() bool { return vipStatus(c, vip4).Advertised })
	c.SetDrains(false, []netip.Addr{vip6}) // not configured yet
	if err := c.Reload(cfg); err != nil {
		t.Fatal(err)
	}
	eventually(t, clock, time.Second, "vip6 up, drained", func() bool {
		s := vipStatus(c, vip6)
		return s.Bound && s.Programmed && s.Draining && s.Serve == cluster.StateActive
	})
	w.mu.Lock()
	for _, call := range w.calls {
		if strings.HasPrefix(call, "SetRoutes") && strings.Contains(call, vip6.String()) {
			t.Errorf("a VIP with a kept drain was announced: %s", call)
		}
	}
	w.mu.Unlock()
	c.SetDrains(false, nil)
	eventually(t, clock, time.Second, "undrained", func() bool { return vipStatus(c, vip6).Advertised })
}
