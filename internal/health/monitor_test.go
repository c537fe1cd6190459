package health

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

type vipReport struct {
	VIP     string // netip.Addr has no exported fields for cmp
	Healthy bool
	Reason  string
}

func startMonitor(t *testing.T) (*Monitor, <-chan vipReport) {
	t.Helper()
	reports := make(chan vipReport, 100)
	var inReport atomic.Int32
	m := NewMonitor(hclog.NewNullLogger(), func(v netip.Addr, healthy bool, reason string) {
		if inReport.Add(1) != 1 {
			t.Errorf("report called concurrently")
		}
		defer inReport.Add(-1)
		reports <- vipReport{v.String(), healthy, reason}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("Run = %v, want context.Canceled", err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("Monitor.Run did not return after cancel")
		}
	})
	return m, reports
}

// nextVIPReport returns the next report for v, skipping none: a report for
// another VIP first is returned as is for the caller to judge.
func nextVIPReport(t *testing.T, reports <-chan vipReport) vipReport {
	t.Helper()
	select {
	case r := <-reports:
		return r
	case <-time.After(10 * time.Second):
		t.Fatalf("no report within 10s")
		return vipReport{}
	}
}

func TestMonitor(t *testing.T) {
	checkNoGoroutineLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1")
	// Timeouts a starved CPU still meets (15 ms made `false` time out at
	// load 18+, a different reason than the one waited for).
	tcp := CheckConfig{Type: "tcp", Target: ln.Addr().String(), Interval: 100 * time.Millisecond, Timeout: 90 * time.Millisecond, Fall: 1000}
	failing := CheckConfig{Type: "command", Command: []string{"false"}, Interval: 300 * time.Millisecond, Timeout: 250 * time.Millisecond}

	m, reports := startMonitor(t)
	m.Set(map[netip.Addr]CheckConfig{a: tcp, b: failing})

	// Each VIP's reports are in order; the two VIPs interleave freely.
	as, bs := a.String(), b.String()
	got := map[string][]vipReport{}
	for len(got[as]) < 2 || len(got[bs]) < 1 {
		r := nextVIPReport(t, reports)
		got[r.VIP] = append(got[r.VIP], r)
	}
	want := map[string][]vipReport{
		as: {{as, false, "checking (0/2)"}, {as, true, "tcp " + tcp.Target + ": ok (2/2 successes)"}},
		bs: {{bs, false, "checking (0/2)"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("first reports (-want +got):\n%s", diff)
	}
	waitMonitor(t, m, b, func(h bool, r string, ok bool) bool {
		return ok && !h && r == "checking (0/2): command false: exit status 1"
	})

	// The same config again (b's defaults spelled out) changes nothing.
	same := failing
	same.Rise, same.Fall = DefaultRise, DefaultFall
	m.Set(map[netip.Addr]CheckConfig{a: tcp, b: same})
	time.Sleep(10 * tcp.Interval)
	select {
	case r := <-reports:
		t.Fatalf("report %+v after setting the same checks", r)
	default:
	}
	if h, _, _ := m.Status(a); !h {
		t.Errorf("a is not healthy after setting the same checks")
	}

	// A changed check starts over; a removed one stops.
	changed := tcp
	changed.Rise = 1
	m.Set(map[netip.Addr]CheckConfig{a: changed})
	wantA := []vipReport{{as, false, "checking (0/1)"}, {as, true, "tcp " + tcp.Target + ": ok (1/1 successes)"}}
	var gotA []vipReport
	for len(gotA) < 2 {
		r := nextVIPReport(t, reports)
		if r.VIP == bs {
			continue // b's check may have reported just before Set: allowed
		}
		gotA = append(gotA, r)
	}
	if diff := cmp.Diff(wantA, gotA); diff != "" {
		t.Errorf("reports after changing a's check (-want +got):\n%s", diff)
	}
	if _, _, ok := m.Status(b); ok {
		t.Errorf("b still has a check after being removed")
	}
}

func waitMonitor(t *testing.T, m *Monitor, v netip.Addr, ok func(healthy bool, reason string, ok bool) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, r, has := m.Status(v)
		if ok(h, r, has) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Status(%v) = %v, %q, %v: not as wanted after 10s", v, h, r, has)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Reports still queued from a check that Set has replaced are dropped.
func TestMonitorDropsStaleReports(t *testing.T) {
	v := netip.MustParseAddr("192.0.2.1")
	var got []vipReport
	m := NewMonitor(hclog.NewNullLogger(), func(v netip.Addr, healthy bool, reason string) {
		got = append(got, vipReport{v.String(), healthy, reason})
	})
	old, cur := &monitored{}, &monitored{}
	m.running[v] = cur
	m.queue = []queuedReport{
		{from: old, vip: v, healthy: true, reason: "old up"},
		{from: cur, vip: v, healthy: false, reason: "new start"},
		{from: old, vip: v, healthy: false, reason: "old down"},
		{from: cur, vip: v, healthy: true, reason: "new up"},
	}
	m.deliver()
	want := []vipReport{{v.String(), false, "new start"}, {v.String(), true, "new up"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("delivered (-want +got):\n%s", diff)
	}
}

func TestMonitorRunTwice(t *testing.T) {
	m, _ := startMonitor(t)
	// Wait until the first Run holds the monitor.
	deadline := time.Now().Add(5 * time.Second)
	for {
		m.mu.Lock()
		running := m.runCtx != nil
		m.mu.Unlock()
		if running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run did not start")
		}
		time.Sleep(time.Millisecond)
	}
	if err := m.Run(t.Context()); !errors.Is(err, ErrRunning) {
		t.Errorf("second Run = %v, want ErrRunning", err)
	}
}

// A seeded check (an upgrade restart's carried-over verdict) starts
// healthy, stays healthy while it passes, and goes unhealthy after fall
// failures as ever; the seed serves one checker only.
func TestMonitorSeedHealthy(t *testing.T) {
	checkNoGoroutineLeak(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
	tcp := CheckConfig{Type: "tcp", Target: ln.Addr().String(), Interval: 50 * time.Millisecond, Timeout: 45 * time.Millisecond, Rise: 2, Fall: 2}

	m, reports := startMonitor(t)
	m.SeedHealthy(map[netip.Addr]string{a: "healthy before the restart"})
	m.Set(map[netip.Addr]CheckConfig{a: tcp})
	if r := nextVIPReport(t, reports); r != (vipReport{a.String(), true, "healthy before the restart"}) {
		t.Fatalf("first report %+v, want healthy as seeded", r)
	}
	time.Sleep(5 * tcp.Interval)
	select {
	case r := <-reports:
		t.Fatalf("report %+v while the seeded check passes", r)
	default:
	}
	ln.Close()
	if r := nextVIPReport(t, reports); r.Healthy {
		t.Fatalf("report %+v after the service stopped, want unhealthy", r)
	}
	// Not seeded: starts checking, as ever; a's seed is used up.
	m.Set(map[netip.Addr]CheckConfig{b: tcp})
	m.Set(map[netip.Addr]CheckConfig{a: tcp, b: tcp})
	for range 2 {
		if r := nextVIPReport(t, reports); r.Healthy {
			t.Fatalf("report %+v of a check not seeded, want unhealthy", r)
		}
	}
}
