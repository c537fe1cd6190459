package daemon

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/vip"
)

// eventLog collects a stream's events.
type eventLog struct {
	mu  sync.Mutex
	evs []api.Event
}

func (l *eventLog) add(e api.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.evs = append(l.evs, e)
	return nil
}

// has reports whether an event of subject/what going from -> to came.
func (l *eventLog) has(what, from, to string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.What == what && e.From == from && e.To == to {
			return true
		}
	}
	return false
}

func (l *eventLog) find(what, from, to string) api.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.What == what && e.From == from && e.To == to {
			return e
		}
	}
	return api.Event{}
}

// TestEventsStream: vipctl events sees a VIP drain and a node drain as
// they happen, each transition with its reason, and a late reader can
// replay what it missed.
func TestEventsStream(t *testing.T) {
	r := newRig(t, vipA)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := &eventLog{}
	done := make(chan error, 1)
	go func() { done <- r.client().Events(ctx, 0, log.add) }()
	// The drain's events go only to readers already subscribed: wait for
	// the daemon's side, not a fixed time (a loaded machine takes longer).
	waitFor(t, "the reader subscribed", func() bool {
		r.d.watch.mu.Lock()
		defer r.d.watch.mu.Unlock()
		return len(r.d.watch.subs) == 1
	})

	a := vipA.Addr()
	if err := r.client().Drain(ctx, api.DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the VIP's withdraw as an event", func() bool { return log.has("advertised", "announced", "withdrawn") })
	e := log.find("advertised", "announced", "withdrawn")
	if e.Subject != api.SubjectVIP || e.VIP != a || e.Reason == "" || e.Time.IsZero() {
		t.Errorf("withdraw event %+v: want the VIP, a reason and a time", e)
	}
	// Its draining event: in the same diff, but after the withdraw, and
	// the reader appends them one at a time.
	waitFor(t, "the VIP's draining event", func() bool { return log.has("draining", "false", "true") })
	if err := r.client().Undrain(ctx, api.DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "announced again", func() bool { return log.has("advertised", "withdrawn", "announced") })

	if err := r.client().Drain(ctx, api.DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	for _, step := range [][2]string{{"active", "withdrawing"}, {"inactive", "drained"}} {
		waitFor(t, "phase "+step[1], func() bool { return log.has("phase", step[0], step[1]) })
	}
	waitFor(t, "unbound", func() bool { return log.has("bound", "true", "false") })

	// A late reader replays the recent events.
	late := &eventLog{}
	lctx, lcancel := context.WithCancel(ctx)
	ldone := make(chan error, 1)
	go func() { ldone <- r.client().Events(lctx, 100, late.add) }()
	waitFor(t, "the replay", func() bool { return late.has("phase", "inactive", "drained") })
	lcancel()
	if err := <-ldone; err != nil {
		t.Errorf("late reader: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("reader: %v", err)
	}
}

// TestDiffStatus: what a change between two snapshots turns into.
func TestDiffStatus(t *testing.T) {
	a, b, c := vipA.Addr(), vipB.Addr(), vipC.Addr()
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	prev := vip.Status{Phase: vip.PhaseActive, VIPs: []vip.VIPStatus{
		{Addr: a, Configured: true, Programmed: true, Advertised: true, Bound: true, Healthy: true, Serve: "active", Route: "announced"},
		{Addr: b, Configured: true},
	}}
	cur := vip.Status{Phase: vip.PhaseWithdrawing, Stopping: true, VIPs: []vip.VIPStatus{
		{Addr: a, Configured: true, Programmed: true, Advertised: true, Depreferred: true, Bound: true, Healthy: false,
			Draining: true, Held: "no route back", Serve: "draining", Route: "pending", RouteReason: "changed 1s ago",
			Reason: "healthy: service unhealthy", Reasons: vip.FacetReasons{Advertised: "draining (deprefer)", Serve: "node draining"}},
		{Addr: c, Configured: true, Reason: "added by reload"},
	}}
	got := diffStatus(prev, cur, t0)
	ev := func(subject string, v netip.Addr, what, from, to, reason string) api.Event {
		return api.Event{Time: t0, Subject: subject, VIP: v, What: what, From: from, To: to, Reason: reason}
	}
	want := []api.Event{
		ev(api.SubjectNode, netip.Addr{}, "phase", "active", "withdrawing", ""),
		ev(api.SubjectNode, netip.Addr{}, "stopping", "false", "true", "SIGTERM: drain and exit"),
		ev(api.SubjectVIP, a, "advertised", "announced", "depreferred", "draining (deprefer)"),
		ev(api.SubjectVIP, a, "healthy", "true", "false", "healthy: service unhealthy"),
		ev(api.SubjectVIP, a, "draining", "false", "true", "healthy: service unhealthy"),
		ev(api.SubjectVIP, a, "held", "false", "true", "no route back"),
		ev(api.SubjectVIP, a, "serve_state", "active", "draining", "node draining"),
		ev(api.SubjectVIP, a, "route", "announced", "pending", "changed 1s ago"),
		ev(api.SubjectVIP, c, "added", "", "true", "added by reload"),
		ev(api.SubjectVIP, b, "removed", "true", "", "forgotten: withdrawn, unprogrammed and unbound after a reload removed it"),
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(x, y netip.Addr) bool { return x == y })); d != "" {
		t.Errorf("events (-want +got):\n%s", d)
	}
	members := diffMembers(map[string]bool{"n2": true, "n3": true}, map[string]bool{"n2": false, "n3": true, "n4": true}, t0)
	if len(members) != 2 || members[0].Member != "n2" || members[0].To != "false" || members[1].Member != "n4" || members[1].To != "true" {
		t.Errorf("member events %+v", members)
	}
}

// TestWatcherCutsSlowReaders: a reader that does not keep up is cut off
// (told it lost events) instead of holding memory or the loop.
func TestWatcherCutsSlowReaders(t *testing.T) {
	w := newWatcher()
	_, s := w.subscribe(0)
	st := vip.Status{Phase: vip.PhaseActive}
	w.pass(st, nil, time.Now())
	for i := range subscriberBuffer + 1 {
		st.Stopping = i%2 == 0
		w.pass(st, nil, time.Now())
	}
	n := 0
	for range s.ch {
		n++
	}
	if !w.lost(s) || n != subscriberBuffer {
		t.Errorf("lost %t after %d events, want cut off after %d", w.lost(s), n, subscriberBuffer)
	}
	w.unsubscribe(s) // harmless after the cut
	if past, _ := w.subscribe(1000); len(past) != recentEvents {
		t.Errorf("%d events kept, want %d", len(past), recentEvents)
	}
}

// TestRoutesView: the routes vipd claims and what each session is sent,
// read back from the routing daemon.
func TestRoutesView(t *testing.T) {
	r := newRig(t, vipA, vipB)
	a := vipB.Addr()
	if err := r.client().Drain(context.Background(), api.DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	r.waitAnnounced(vipA)
	// The advertiser is told before the controller records what it
	// claims: wait for the claim to follow.
	var rs api.Routes
	var err error
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if rs, err = r.client().Routes(context.Background()); err != nil {
			t.Fatal(err)
		}
		if len(rs.Claimed) == 1 || time.Now().After(deadline) {
			break
		}
	}
	want := api.Routes{
		Routing: "bgp", Claimed: []api.Route{{Prefix: vipA}}, ClaimedKnown: true,
		Sessions: []api.SessionRoutes{{Peer: api.Peer{Name: "r1", State: "established", Up: true}, Routes: []api.Route{{Prefix: vipA}}}},
	}
	if d := cmp.Diff(want, rs, cmp.Comparer(func(x, y netip.Prefix) bool { return x == y }),
		cmp.Comparer(func(x, y netip.Addr) bool { return x == y }), cmp.FilterPath(func(p cmp.Path) bool {
			return p.String() == "ReadAt"
		}, cmp.Ignore())); d != "" {
		t.Errorf("routes (-want +got):\n%s", d)
	}
	if rs.ReadAt.IsZero() {
		t.Error("no read time")
	}
	r.adv.Fail("Exported", errors.New("birdc: connection refused"))
	rs, err = r.client().Routes(context.Background())
	if err != nil || !strings.Contains(rs.Error, "connection refused") || len(rs.Sessions) != 1 || len(rs.Sessions[0].Routes) != 0 {
		t.Errorf("routes when the daemon cannot be read: %+v, %v", rs, err)
	}
}

// lookingDataplane is a fake dataplane that can look flows up: row 4242,
// its first programmed backend primary, the last secondary.
type lookingDataplane struct {
	*fakeDataplane
	asked []string
}

func (l *lookingDataplane) LookupFlow(_ context.Context, v netip.Addr, client netip.AddrPort, proto uint8, port uint16) (uint32, netip.Addr, netip.Addr, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked = append(l.asked, strings.Join([]string{v.String(), client.String(), protoWord(proto), netip.AddrPortFrom(v, port).String()}, " "))
	bs := l.programmed[v].Backends
	return 4242, bs[0].Addr, bs[len(bs)-1].Addr, nil
}

// TestTableAndLookup: the table's rows per member, and a flow looked up
// through the dataplane, with the port and protocol filled in from the
// VIP's services; without a dataplane that can, the lookup says so.
func TestTableAndLookup(t *testing.T) {
	r := newIdleRig(t)
	ld := &lookingDataplane{fakeDataplane: r.dp}
	r.dpPart = ld
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	ctx := context.Background()
	tb, err := r.client().Table(ctx, vipA.Addr())
	if err != nil {
		t.Fatal(err)
	}
	if tb.Rows != 65536 || len(tb.Members) != 1 || tb.Members[0].Name != "n1" || tb.Members[0].PrimaryRows != 65536 ||
		tb.Members[0].SecondaryRows != 65536 || !tb.Members[0].Local {
		t.Errorf("table %+v", tb)
	}
	if _, err := r.client().Table(ctx, netip.MustParseAddr("192.0.2.200")); err == nil || !strings.Contains(err.Error(), "unknown vip") {
		t.Errorf("table of no VIP: %v", err)
	}
	l, err := r.client().Lookup(ctx, api.LookupRequest{VIP: vipA.Addr(), Client: netip.MustParseAddrPort("203.0.113.9:40000")})
	if err != nil {
		t.Fatal(err)
	}
	if l.Row != 4242 || l.Port != 80 || l.Protocol != "tcp" || l.Primary.Name != "n1" || l.Secondary.Name != "n1" {
		t.Errorf("lookup %+v", l)
	}
	if len(ld.asked) != 1 || ld.asked[0] != "198.51.100.10 203.0.113.9:40000 tcp 198.51.100.10:80" {
		t.Errorf("dataplane asked %q", ld.asked)
	}
	for _, bad := range []api.LookupRequest{
		{VIP: vipA.Addr(), Client: netip.MustParseAddrPort("203.0.113.9:1"), Protocol: "udp"},
		{VIP: vipA.Addr(), Client: netip.MustParseAddrPort("203.0.113.9:1"), Port: 443},
	} {
		if _, err := r.client().Lookup(ctx, bad); err == nil {
			t.Errorf("lookup of a service the VIP lacks %+v: no error", bad)
		}
	}

	plain := newRig(t, vipA)
	_, err = plain.client().Lookup(ctx, api.LookupRequest{VIP: vipA.Addr(), Client: netip.MustParseAddrPort("203.0.113.9:1")})
	if err == nil || !strings.Contains(err.Error(), "not supported") {
		t.Errorf("lookup without a FlowLooker: %v", err)
	}
}

// TestConfigShow: the running config, defaults filled in, redacted.
func TestConfigShow(t *testing.T) {
	r := newIdleRig(t)
	r.edit = func(s string) string {
		return strings.Replace(s, "asn = 65000\n", "asn = 65000\npassword = \"hunter2\"\n", 1)
	}
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	c, err := r.client().Config(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if c.File != r.path || c.Loaded.IsZero() || !strings.Contains(c.TOML, `address = "198.51.100.10"`) ||
		!strings.Contains(c.TOML, `password = "<redacted>"`) || strings.Contains(c.TOML, "hunter2") ||
		!strings.Contains(c.TOML, `remove_timeout = "100ms"`) {
		t.Errorf("config show:\n%+v", c)
	}
}

// TestStatusDrainTimeLeft: during a node drain the status says since when
// the phase holds and when the step and the drain end at the latest.
func TestStatusDrainTimeLeft(t *testing.T) {
	r := newIdleRig(t)
	r.edit = func(s string) string {
		return strings.Replace(s, `drain_timeout = "100ms"`, `drain_timeout = "30s"`, 1)
	}
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	if err := r.client().Drain(context.Background(), api.DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	var st api.Status
	waitFor(t, "phase draining", func() bool { st = r.status(); return st.Phase == "draining" })
	if st.PhaseSince.IsZero() || !st.PhaseEndsBy.Equal(st.PhaseSince.Add(30*time.Second)) ||
		!st.DrainEndsBy.Equal(st.PhaseEndsBy.Add(200*time.Millisecond)) {
		t.Errorf("phase since %v, ends by %v, drain ends by %v: want +30s and +30.2s", st.PhaseSince, st.PhaseEndsBy, st.DrainEndsBy)
	}
	if left := time.Until(st.DrainEndsBy); left < 25*time.Second || left > 31*time.Second {
		t.Errorf("time left %v", left)
	}
}
