package routingtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
)

// tbRecorder keeps the Errorf calls instead of failing the test.
type tbRecorder struct {
	testing.TB
	errs []string
}

func (t *tbRecorder) Errorf(format string, args ...any) {
	t.errs = append(t.errs, fmt.Sprintf(format, args...))
}

var cmpNet = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

var (
	p1 = netip.MustParsePrefix("192.0.2.1/32")
	p2 = netip.MustParsePrefix("192.0.2.2/32")
	p6 = netip.MustParsePrefix("2001:db8::1/128")
)

func TestRecorder(t *testing.T) {
	ctx := context.Background()
	tb := &tbRecorder{TB: t}
	r := New(tb, routing.VIP{Prefix: p1}, routing.VIP{Prefix: p2})
	if got, err := r.SetRoutes(ctx, []routing.Route{{Prefix: p2, Draining: true}, {Prefix: p1}}); err != nil ||
		!cmp.Equal(got, []routing.Route{{Prefix: p1}, {Prefix: p2, Draining: true}}, cmpNet) {
		t.Errorf("SetRoutes = %v, %v", got, err)
	}
	// p2 leaves the VIPs: its route is withdrawn at once.
	if err := r.SetVIPs(ctx, []routing.VIP{{Prefix: p1}, {Prefix: p6}}); err != nil {
		t.Fatal(err)
	}
	if got := r.Announced(); !cmp.Equal(got, []routing.Route{{Prefix: p1}}, cmpNet) {
		t.Errorf("announced after SetVIPs = %v", got)
	}
	if len(tb.errs) != 0 {
		t.Fatalf("violations of a well-behaved caller: %q", tb.errs)
	}
	// A prefix outside the VIPs is a violation, refused as the contract
	// says.
	CheckUnknownPrefix(t, r, []routing.Route{{Prefix: p6}}, p2)
	if len(tb.errs) != 1 {
		t.Errorf("violations = %q, want the unknown prefix", tb.errs)
	}
	r.SetPeers([]routing.Peer{{Name: "x", Up: true}})
	if ps, err := r.Peers(ctx); err != nil || len(ps) != 1 {
		t.Errorf("Peers = %v, %v", ps, err)
	}
	if err := r.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.Announced(); len(got) != 0 {
		t.Errorf("announced after Close = %v", got)
	}
	if _, err := r.SetRoutes(ctx, nil); !errors.Is(err, routing.ErrClosed) {
		t.Errorf("SetRoutes after Close = %v, want ErrClosed", err)
	}
	if err := r.Abandon(); !errors.Is(err, routing.ErrClosed) {
		t.Errorf("Abandon after Close = %v, want ErrClosed", err)
	}
	if len(tb.errs) != 3 {
		t.Errorf("violations = %q, want the unknown prefix and two calls after Close", tb.errs)
	}
	want := []string{
		"SetRoutes[d:192.0.2.2/32 192.0.2.1/32]", "SetVIPs[192.0.2.1/32 2001:db8::1/128]",
		"SetRoutes[192.0.2.2/32 2001:db8::1/128]", "Close", "SetRoutes[]", "Abandon",
	}
	if d := cmp.Diff(want, r.Ops()); d != "" {
		t.Errorf("ops (-want +got):\n%s", d)
	}
}

func TestRecorderAbandonKeepsRoutes(t *testing.T) {
	ctx := context.Background()
	r := New(t, routing.VIP{Prefix: p1})
	if _, err := r.SetRoutes(ctx, []routing.Route{{Prefix: p1}}); err != nil {
		t.Fatal(err)
	}
	if err := r.Abandon(); err != nil {
		t.Fatal(err)
	}
	if got := r.Announced(); !cmp.Equal(got, []routing.Route{{Prefix: p1}}, cmpNet) {
		t.Errorf("announced after Abandon = %v, want the route kept", got)
	}
}

func TestRecorderFail(t *testing.T) {
	ctx := context.Background()
	r := New(t, routing.VIP{Prefix: p1})
	boom := errors.New("boom")
	r.Fail("SetVIPs", boom)
	if err := r.SetVIPs(ctx, nil); !errors.Is(err, boom) {
		t.Errorf("SetVIPs = %v, want boom", err)
	}
	if got := r.VIPs(); !cmp.Equal(got, []netip.Prefix{p1}, cmpNet) {
		t.Errorf("a failed SetVIPs changed the VIPs: %v", got)
	}
}

// TestCheckExported: the check passes on a Recorder whose simulated daemon
// exports what was announced, and catches a route the daemon lost.
func TestCheckExported(t *testing.T) {
	r := New(t, routing.VIP{Prefix: p1}, routing.VIP{Prefix: p2})
	r.SetPeers([]routing.Peer{{Name: "a", Up: true}, {Name: "b", Up: true}, {Name: "c"}})
	ex := CheckExported(t, r, []routing.Route{{Prefix: p1}, {Prefix: p2, Draining: true}}, time.Second)
	if ex.SessionsUp != 2 || len(ex.Routes) != 2 {
		t.Errorf("Exported = %+v, want 2 routes on 2 sessions", ex)
	}

	tb := &tbRecorder{TB: t}
	lost := New(tb, routing.VIP{Prefix: p1}, routing.VIP{Prefix: p2})
	lost.SetPeers([]routing.Peer{{Name: "a", Up: true}})
	lost.Diverge(p2)
	CheckExported(tb, lost, []routing.Route{{Prefix: p1}, {Prefix: p2}}, 50*time.Millisecond)
	if len(tb.errs) != 1 || !strings.Contains(tb.errs[0], "192.0.2.2/32: announced but not exported") {
		t.Errorf("CheckExported on a daemon that lost a route reported %q", tb.errs)
	}

	tb = &tbRecorder{TB: t}
	stale := New(tb, routing.VIP{Prefix: p1})
	stale.SetPeers([]routing.Peer{{Name: "a", Up: true}})
	stale.DivergeAttrs(p1, "exported with med 50; want med 70")
	CheckExported(tb, stale, []routing.Route{{Prefix: p1}}, 50*time.Millisecond)
	if len(tb.errs) != 1 || !strings.Contains(tb.errs[0], "192.0.2.1/32: exported with med 50; want med 70") {
		t.Errorf("CheckExported on a daemon with stale attributes reported %q", tb.errs)
	}
	if err := stale.Resync(context.Background()); err != nil {
		t.Fatal(err)
	}
	CheckExported(t, stale, []routing.Route{{Prefix: p1}}, time.Second)
}
