package bird

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/routingtest"
)

// TestParseExport reads `show route export PROTO all` as BIRD 2.0.12 sends
// it over the control socket.
func TestParseExport(t *testing.T) {
	lines := []replyLine{
		{1007, "Table master4:"},
		{1007, "192.0.2.11/32        blackhole [vipd_vip4 02:10:10.341] * (200)"},
		{1008, "\tType: static univ"},
		{1012, "\tOSPF.metric1: 30"},
		{1007, "192.0.2.10/32        blackhole [vipd_vip4 02:10:10.341] * (200)"},
		{1008, "\tType: static univ"},
		{1012, "\tOSPF.metric2: 20"},
		{1012, "\tOSPF.tag: 0x00000007"},
		{1007, "                     unicast [ops_static 02:10:10.341] (200)"},
		{1008, "\tType: static univ"},
		{1007, "Table master6:"},
		{1007, "2001:db8::10/128     blackhole [vipd_vip6 02:10:10.341] * (200)"},
		{1012, "\tOSPF.metric2: 16777215"},
	}
	got := parseExport(lines)
	want := []exportedRoute{
		{netip.MustParsePrefix("192.0.2.11/32"), "vipd_vip4", exportedAttrs{1, 30, 0}},
		{netip.MustParsePrefix("192.0.2.10/32"), "vipd_vip4", exportedAttrs{2, 20, 7}},
		{netip.MustParsePrefix("192.0.2.10/32"), "ops_static", exportedAttrs{}},
		{netip.MustParsePrefix("2001:db8::10/128"), "vipd_vip6", exportedAttrs{2, maxMetric, 0}},
	}
	if d := cmp.Diff(want, got, cmp.AllowUnexported(exportedRoute{}, exportedAttrs{}), routeOpts); d != "" {
		t.Errorf("parseExport (-want +got):\n%s", d)
	}
}

// TestExportedUnreachable: Exported names why BIRD cannot be reached.
func TestExportedUnreachable(t *testing.T) {
	dir := t.TempDir()
	stale := dir + "/stale.ctl"
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	// Closing a listener removes its file: keep it, as a killed BIRD does.
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	for _, tc := range []struct {
		socket string
		want   error
	}{
		{dir + "/missing.ctl", ErrSocketMissing},
		{stale, ErrBirdDown},
	} {
		cfg := v4Config()
		cfg.ConfigFile = dir + "/bird.conf"
		cfg.Socket = tc.socket
		a, err := New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		_, err = a.Exported(context.Background())
		if !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.socket) {
			t.Errorf("Exported with socket %s = %v, want %v naming the socket", tc.socket, err, tc.want)
		}
		a.Abandon()
	}
	// Root may connect to any socket: permission denied is checked on the
	// error BIRD's socket gives an unprivileged vipd.
	perm := &net.OpError{Op: "dial", Net: "unix", Err: os.NewSyscallError("connect", syscall.EACCES)}
	if err := classifyDial("/run/bird/bird.ctl", perm); !errors.Is(err, ErrSocketPermission) {
		t.Errorf("classifyDial(EACCES) = %v, want ErrSocketPermission", err)
	}
}

// routerView reads what the router's BIRD holds for the VIPs: prefix ->
// "E2 metric 20 tag 7" (metric as the router sees it: the external metric
// for E2, path cost plus external metric for E1).
func (l *ospfLab) routerView(t testing.TB, vips []netip.Prefix) map[netip.Prefix]string {
	t.Helper()
	cc, err := dialControl(context.Background(), l.routerBird.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	lines, err := cc.cmd(context.Background(), "show route all")
	if err != nil {
		t.Fatal(err)
	}
	out := map[netip.Prefix]string{}
	for _, r := range parseExport(lines) {
		if slices.Contains(vips, r.prefix) {
			out[r.prefix] = r.attrs.String()
		}
	}
	return out
}

// exportedAgrees waits until Exported and the router's own table hold the
// same VIP prefixes, a route is draining in Exported exactly when the
// router has it with the drain metric, and no route has a Mismatch.
func (l *ospfLab) exportedAgrees(t *testing.T, what string, vips []netip.Prefix, drainMetric uint32) routing.Exported {
	t.Helper()
	var ex routing.Exported
	var diff string
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		ex, err = l.adv.Exported(context.Background())
		if err != nil {
			t.Fatalf("%s: Exported: %v", what, err)
		}
		fromEx := map[netip.Prefix]bool{}
		for p, r := range ex.Routes {
			fromEx[p] = r.Draining
			if r.Mismatch != "" {
				t.Fatalf("%s: Exported reports a mismatch for %s: %s", what, p, r.Mismatch)
			}
		}
		fromRouter := map[netip.Prefix]bool{}
		for p, v := range l.routerView(t, vips) {
			var typ int
			var metric, tag uint32
			fmt.Sscanf(v, "E%d metric %d tag %d", &typ, &metric, &tag)
			fromRouter[p] = metric >= drainMetric
		}
		diff = cmp.Diff(fromRouter, fromEx, routeOpts)
		if diff == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if diff != "" {
		t.Fatalf("%s: Exported disagrees with the router's table (-router +Exported, prefix -> draining):\n%s", what, diff)
	}
	return ex
}

// TestOSPFExportedAndResync: Exported reports what the router BIRD really
// learned, through announce, withdraw, drain, a file broken behind vipd's
// back (the route missing until Resync rewrites it, the other routes never
// leaving the router's kernel), the adjacency going down (SessionsUp 0),
// and BIRD dying (ErrBirdDown) or its socket gone (ErrSocketMissing).
func TestOSPFExportedAndResync(t *testing.T) {
	t.Parallel()
	vips := []netip.Prefix{vipA, vipB, vipA6}
	const drain = 1000
	l := newOSPFLab(t, labOptions{vips: vips, v6: true, drainMetric: drain,
		attrs: map[netip.Prefix]RouteAttrs{vipA: {Metric: 30, Tag: 7}, vipB: {Type: 1, Metric: 40}}})
	ctx := context.Background()
	waitFor(t, 15*time.Second, "adjacency Full", func() bool { return l.full(t) })

	routes := []routing.Route{{Prefix: vipA}, {Prefix: vipB, Draining: true}, {Prefix: vipA6}}
	ex := routingtest.CheckExported(t, l.adv, routes, 10*time.Second)
	if ex.SessionsUp != 2 || len(ex.Routes) != 3 {
		t.Errorf("Exported = %+v, want 3 routes on 2 sessions", ex)
	}
	l.exportedAgrees(t, "announce", vips, drain)
	routes = []routing.Route{{Prefix: vipA, Draining: true}, {Prefix: vipA6}}
	routingtest.CheckExported(t, l.adv, routes, 10*time.Second)
	l.exportedAgrees(t, "withdraw B, drain A", vips, drain)
	routes = []routing.Route{{Prefix: vipA}, {Prefix: vipB}, {Prefix: vipA6}}
	routingtest.CheckExported(t, l.adv, routes, 10*time.Second)
	l.exportedAgrees(t, "undrain", vips, drain)
	waitFor(t, 30*time.Second, "all three in the router's kernel", func() bool {
		return l.routerHas(t, vipA) && l.routerHas(t, vipB) && l.routerHas(t, vipA6)
	})

	// The file loses A behind vipd's back and BIRD is reconfigured: the
	// advertiser still believes A is announced; Exported must not.
	kw := l.router.WatchRouteDeletions(t)
	broken, err := Render(l.cfg, []routing.Route{{Prefix: vipB}, {Prefix: vipA6}})
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, l.cfg.ConfigFile, string(broken))
	if _, err := Configure(ctx, l.cfg.Birdc, l.cfg.Socket, l.cfg.ConfigFile); err != nil {
		t.Fatal(err)
	}
	ex = l.exportedAgrees(t, "file broken behind vipd's back", vips, drain)
	if div := ex.Divergences(l.adv.Routes()); !slices.Equal(div, []string{vipA.String() + ": announced but not exported"}) {
		t.Errorf("Divergences = %q, want %s announced but not exported", div, vipA)
	}
	if err := l.adv.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	ex = l.exportedAgrees(t, "after Resync", vips, drain)
	if div := ex.Divergences(l.adv.Routes()); div != nil {
		t.Errorf("after Resync: %q", div)
	}
	waitFor(t, 30*time.Second, "A back in the router's kernel", func() bool { return l.routerHas(t, vipA) })
	// A Resync with nothing to repair changes nothing either.
	if err := l.adv.Resync(ctx); err != nil {
		t.Fatalf("Resync: %v", err)
	}
	time.Sleep(2 * time.Second) // a withdraw reaches the router in ~1 s
	for _, p := range []netip.Prefix{vipB, vipA6} {
		if n := kw.Of(p); n != 0 {
			t.Errorf("%s left the router's kernel %d times during the break and the Resyncs, want never", p, n)
		}
	}
	if n := kw.Of(vipA); n != 1 {
		t.Errorf("%s left the router's kernel %d times, want once (the break)", vipA, n)
	}

	// The router goes away: no session up, nothing exported.
	l.router.MustRun(t, "ip", "link", "set", l.rIf, "down")
	waitFor(t, 15*time.Second, "no session up", func() bool {
		ex, err = l.adv.Exported(ctx)
		return err == nil && ex.SessionsUp == 0
	})
	if len(ex.Routes) != 0 {
		t.Errorf("Exported with no adjacency = %+v, want no route", ex.Routes)
	}

	// BIRD dies: its socket stays behind, refusing connections.
	l.directorBird.cmd.Process.Kill()
	waitFor(t, 5*time.Second, "ErrBirdDown", func() bool {
		_, err = l.adv.Exported(ctx)
		return errors.Is(err, ErrBirdDown)
	})
	os.Remove(l.cfg.Socket)
	if _, err = l.adv.Exported(ctx); !errors.Is(err, ErrSocketMissing) {
		t.Errorf("Exported without a socket = %v, want ErrSocketMissing", err)
	}
	t.Logf("errors: %v", err)
}

// TestOSPFReloadEqualsFreshStart (issue 10, deliverable 2): a director
// that lives through reloads (SetVIPs with the new VIPs and attributes, or
// SetDrainMetric, then SetRoutes) must leave its router's table exactly as a director
// started fresh on the new config leaves another router's: the same VIP
// prefixes with the same external type, metric and tag. Each step's fresh
// start is a lab of its own, started at once so they converge together. A
// route the reload keeps unchanged never leaves the router's kernel.
func TestOSPFReloadEqualsFreshStart(t *testing.T) {
	t.Parallel()
	vipC := netip.MustParsePrefix("192.0.2.12/32")
	vipB6 := netip.MustParsePrefix("2001:db8::11/128")
	all := []netip.Prefix{vipA, vipB, vipC, vipA6, vipB6}
	type step struct {
		name   string
		attrs  map[netip.Prefix]RouteAttrs // the VIPs, with their attributes
		routes []routing.Route
		drain  uint32 // drain_metric
	}
	steps := []step{
		{"initial", map[netip.Prefix]RouteAttrs{vipA: {}, vipB: {Metric: 30, Tag: 7}, vipA6: {}},
			[]routing.Route{{Prefix: vipA}, {Prefix: vipB}, {Prefix: vipA6}}, 1000},
		{"add v4 and v6 VIPs", map[netip.Prefix]RouteAttrs{vipA: {}, vipB: {Metric: 30, Tag: 7}, vipA6: {},
			vipC: {Type: 1, Metric: 50}, vipB6: {Tag: 9}},
			[]routing.Route{{Prefix: vipA}, {Prefix: vipB}, {Prefix: vipA6}, {Prefix: vipC}, {Prefix: vipB6}}, 1000},
		{"change metric, type and tag", map[netip.Prefix]RouteAttrs{vipA: {Metric: 99}, vipB: {Type: 1, Metric: 30, Tag: 8},
			vipA6: {}, vipC: {Type: 1, Metric: 50}, vipB6: {Metric: 5, Tag: 9}},
			[]routing.Route{{Prefix: vipA}, {Prefix: vipB, Draining: true}, {Prefix: vipA6}, {Prefix: vipC}, {Prefix: vipB6}}, 1000},
		{"remove VIPs", map[netip.Prefix]RouteAttrs{vipB: {Type: 1, Metric: 30, Tag: 8}, vipC: {Type: 1, Metric: 50}, vipA6: {}},
			[]routing.Route{{Prefix: vipB, Draining: true}, {Prefix: vipC}, {Prefix: vipA6}}, 1000},
		{"change the drain metric", map[netip.Prefix]RouteAttrs{vipB: {Type: 1, Metric: 30, Tag: 8}, vipC: {Type: 1, Metric: 50}, vipA6: {}},
			[]routing.Route{{Prefix: vipB, Draining: true}, {Prefix: vipC}, {Prefix: vipA6, Draining: true}}, 2000},
	}
	prefixes := func(m map[netip.Prefix]RouteAttrs) []netip.Prefix {
		var out []netip.Prefix
		for p := range m {
			out = append(out, p)
		}
		return out
	}
	vipsOf := func(m map[netip.Prefix]RouteAttrs) []routing.VIP {
		var out []routing.VIP
		for p, a := range m {
			out = append(out, routing.VIP{Prefix: p, Attrs: a})
		}
		return out
	}
	// The fresh starts, one lab per step after the first.
	fresh := make([]*ospfLab, len(steps))
	for i, st := range steps[1:] {
		fresh[i+1] = newOSPFLab(t, labOptions{vips: prefixes(st.attrs), attrs: st.attrs, v6: true,
			drainMetric: st.drain, initial: st.routes})
	}
	live := newOSPFLab(t, labOptions{vips: prefixes(steps[0].attrs), attrs: steps[0].attrs, v6: true,
		drainMetric: steps[0].drain, initial: steps[0].routes})
	waitFor(t, 30*time.Second, "the live director's routes at its router", func() bool {
		return len(live.routerView(t, all)) == len(steps[0].routes)
	})
	kw := live.router.WatchRouteDeletions(t)
	ctx := context.Background()
	for i, st := range steps[1:] {
		i++
		want := map[netip.Prefix]string{}
		waitFor(t, 30*time.Second, st.name+": the fresh start's routes at its router", func() bool {
			want = fresh[i].routerView(t, all)
			return len(want) == len(st.routes)
		})
		before := map[netip.Prefix]int{}
		for _, p := range all {
			before[p] = kw.Of(p)
		}
		if st.drain != steps[i-1].drain {
			if err := live.adv.SetDrainMetric(ctx, st.drain); err != nil {
				t.Fatalf("%s: SetDrainMetric: %v", st.name, err)
			}
		}
		if err := live.adv.SetVIPs(ctx, vipsOf(st.attrs)); err != nil {
			t.Fatalf("%s: SetVIPs: %v", st.name, err)
		}
		if _, err := live.adv.SetRoutes(ctx, st.routes); err != nil {
			t.Fatalf("%s: SetRoutes: %v", st.name, err)
		}
		var got map[netip.Prefix]string
		took := waitFor(t, 30*time.Second, st.name+": the router's table as after a fresh start", func() bool {
			got = live.routerView(t, all)
			return cmp.Equal(want, got, routeOpts)
		})
		t.Logf("%s: the router's table equals the fresh start's after %s: %v", st.name, took, got)
		if div := live.exportedAgrees(t, st.name, all, st.drain).Divergences(announced(st.routes)); div != nil {
			t.Errorf("%s: Exported diverges: %q", st.name, div)
		}
		// Routes kept with the same attributes never left the kernel.
		prev := map[netip.Prefix]string{}
		for _, r := range steps[i-1].routes {
			a := steps[i-1].attrs[r.Prefix]
			prev[r.Prefix] = fmt.Sprint(a, r.Draining, r.Draining && steps[i-1].drain != st.drain)
		}
		for _, r := range st.routes {
			if prev[r.Prefix] != fmt.Sprint(st.attrs[r.Prefix], r.Draining, false) {
				continue
			}
			if n := kw.Of(r.Prefix) - before[r.Prefix]; n != 0 {
				t.Errorf("%s: unchanged %s left the router's kernel %d times", st.name, r.Prefix, n)
			}
		}
	}
}
