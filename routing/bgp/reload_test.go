package bgp

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
)

// reloadStep is one config of a reload sequence: the VIPs with their
// attributes, and the routes the state machine then asks for.
type reloadStep struct {
	name   string
	vips   []VIPRoute
	routes []routing.Route
	// settings, when set, change the next hops and drain attributes
	// (SetRouteSettings; a fresh start has them in its Config).
	settings *RouteSettings
}

// defaultSettings are testConfig's next hops with drainAttrs.
var defaultSettings = RouteSettings{netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), drainAttrs}

// settingsAt returns the route settings in force at step i.
func settingsAt(steps []reloadStep, i int) RouteSettings {
	rs := defaultSettings
	for _, st := range steps[:i+1] {
		if st.settings != nil {
			rs = *st.settings
		}
	}
	return rs
}

var (
	vip4c = netip.MustParsePrefix("203.0.113.12/32")
	vip6b = netip.MustParsePrefix("2001:db8:f::11/128")
)

// reloadSteps add, change and remove VIPs and their attributes (MED,
// communities, large communities, prepend), announced normally and
// draining (the drain attributes on top of the changed ones), then change
// the drain attributes and each family's next hop.
func reloadSteps() []reloadStep {
	a2 := RouteAttrs{Communities: []string{"65000:200"}, MED: u32(70)}
	return []reloadStep{
		{"initial", []VIPRoute{{vip4, attrsFull}, {vip4b, RouteAttrs{}}, {vip6, attrsFull}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b}, {Prefix: vip6, Draining: true}}, nil},
		// Defect 2 of issue 10: a VIP added by reload must reach the peer.
		{"add v4 and v6 VIPs", []VIPRoute{{vip4, attrsFull}, {vip4b, RouteAttrs{}}, {vip6, attrsFull},
			{vip4c, RouteAttrs{MED: u32(10)}}, {vip6b, RouteAttrs{Prepend: 1}}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b}, {Prefix: vip6, Draining: true}, {Prefix: vip4c}, {Prefix: vip6b}}, nil},
		{"change attributes", []VIPRoute{{vip4, a2}, {vip4b, RouteAttrs{LargeCommunities: []string{"65000:9:9"}, Prepend: 3}},
			{vip6, a2}, {vip4c, RouteAttrs{MED: u32(10)}}, {vip6b, RouteAttrs{Prepend: 1}}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b, Draining: true}, {Prefix: vip6, Draining: true}, {Prefix: vip4c}, {Prefix: vip6b}}, nil},
		{"remove VIPs", []VIPRoute{{vip4b, RouteAttrs{LargeCommunities: []string{"65000:9:9"}, Prepend: 3}}, {vip4c, RouteAttrs{MED: u32(10)}}},
			[]routing.Route{{Prefix: vip4b, Draining: true}, {Prefix: vip4c}}, nil},
		{"re-add a removed VIP with other attributes", []VIPRoute{{vip4, RouteAttrs{MED: u32(5)}}, {vip4b, RouteAttrs{}},
			{vip4c, RouteAttrs{MED: u32(10)}}, {vip6, RouteAttrs{}}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b, Draining: true}, {Prefix: vip4c}, {Prefix: vip6, Draining: true}}, nil},
		{"change the drain attributes", []VIPRoute{{vip4, RouteAttrs{MED: u32(5)}}, {vip4b, RouteAttrs{}},
			{vip4c, RouteAttrs{MED: u32(10)}}, {vip6, RouteAttrs{}}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b, Draining: true}, {Prefix: vip4c}, {Prefix: vip6, Draining: true}},
			&RouteSettings{defaultSettings.NextHop4, defaultSettings.NextHop6,
				RouteAttrs{Communities: []string{"65000:667", "graceful-shutdown"}, MED: u32(2000), Prepend: 3}}},
		{"change the IPv4 next hop", []VIPRoute{{vip4, RouteAttrs{MED: u32(5)}}, {vip4b, RouteAttrs{}},
			{vip4c, RouteAttrs{MED: u32(10)}}, {vip6, RouteAttrs{}}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b, Draining: true}, {Prefix: vip4c}, {Prefix: vip6, Draining: true}},
			&RouteSettings{netip.MustParseAddr("192.0.2.2"), defaultSettings.NextHop6,
				RouteAttrs{Communities: []string{"65000:667", "graceful-shutdown"}, MED: u32(2000), Prepend: 3}}},
		{"change the IPv6 next hop and drain attributes back", []VIPRoute{{vip4, RouteAttrs{MED: u32(5)}}, {vip4b, RouteAttrs{}},
			{vip4c, RouteAttrs{MED: u32(10)}}, {vip6, RouteAttrs{}}},
			[]routing.Route{{Prefix: vip4}, {Prefix: vip4b, Draining: true}, {Prefix: vip4c}, {Prefix: vip6, Draining: true}},
			&RouteSettings{netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("2001:db8::2"), drainAttrs}},
	}
}

func reloadVIPs(vs []VIPRoute) []routing.VIP {
	out := make([]routing.VIP, 0, len(vs))
	for _, v := range vs {
		out = append(out, routing.VIP{Prefix: v.Prefix, Attrs: v.Attrs})
	}
	return out
}

// table is FRR's view of every prefix it holds, both families, reduced as
// gobgpPeer.table reduces gobgpd's: prefix -> best path.
func (f *frrPeer) table(t testing.TB) map[string]seen {
	out := map[string]seen{}
	for _, fam := range []string{"ipv4", "ipv6"} {
		for p := range f.routes(t, fam) {
			pp, err := netip.ParsePrefix(p)
			if err != nil {
				t.Fatalf("FRR listed %q: %v", p, err)
			}
			if paths := f.route(t, pp); len(paths) > 0 {
				out[p] = frrSeen(paths[0])
			}
		}
	}
	return out
}

// reloadPeer is one kind of real peer the reload test runs against.
type reloadPeer struct {
	name  string
	start func(t *testing.T, pr pair) peerView
}

// peerView reads one peer: its RIB, and how often each prefix was
// announced (-1: this peer cannot tell) and withdrawn so far.
type peerView struct {
	port   uint16
	table  func() map[string]seen
	counts func(prefix string) (announces, withdraws int)
}

var reloadPeers = []reloadPeer{
	{"gobgpd", func(t *testing.T, pr pair) peerView {
		g := startGoBGP(t, pr)
		w := watchPeer(t, g)
		return peerView{g.port, func() map[string]seen { return g.table(t) }, w.counts}
	}},
	{"frr", func(t *testing.T, pr pair) peerView {
		f := startFRR(t, pr, "", nil)
		return peerView{f.port, func() map[string]seen { return f.table(t) }, func(p string) (int, int) {
			return -1, len(f.logLines(t, p+" ", "withdrawn"))
		}}
	}},
}

// effectiveRoute is what a step announces for one prefix.
type effectiveRoute struct {
	attrs    RouteAttrs
	draining bool
	nextHop  netip.Addr
}

// effective is what a step announces for each prefix with route settings
// rs: the attributes as the speaker merges them, whether draining, and
// the next hop.
func (s reloadStep) effective(rs RouteSettings) map[netip.Prefix]effectiveRoute {
	attrs := map[netip.Prefix]RouteAttrs{}
	for _, v := range s.vips {
		attrs[v.Prefix] = v.Attrs
	}
	out := map[netip.Prefix]effectiveRoute{}
	for _, r := range s.routes {
		a := attrs[r.Prefix]
		if r.Draining {
			a = withDrain(a, rs.DrainAttrs)
		}
		nh := rs.NextHop4
		if r.Prefix.Addr().Is6() {
			nh = rs.NextHop6
		}
		out[r.Prefix] = effectiveRoute{a, r.Draining, nh}
	}
	return out
}

// TestReloadEqualsFreshStart (issue 10, defect 2 and deliverable 2): a
// speaker that lives through reloads (SetVIPs with the new VIPs, then
// SetRoutes as the state machine asks) must leave its peer's RIB exactly as
// a fresh speaker started on the new config leaves a peer of its own. The
// fresh speaker runs in a child process (two GoBGP servers may not share a
// process) against a second peer of the same kind; both views are compared
// whole, attributes included.
func TestReloadEqualsFreshStart(t *testing.T) {
	for _, rp := range reloadPeers {
		t.Run(rp.name, func(t *testing.T) {
			steps := reloadSteps()
			pr := newPair(t)
			lv := rp.start(t, pr)
			cfg := testConfig(pr, lv.port, steps[0].vips...)
			cfg.DrainAttrs = drainAttrs
			s := startSpeaker(t, cfg, StartOptions{})
			waitEstablished(t, s)
			ctx := context.Background()
			for i, st := range steps {
				type count struct{ ann, wd int }
				before := map[netip.Prefix]count{}
				for _, r := range st.routes {
					a, w := lv.counts(r.Prefix.String())
					before[r.Prefix] = count{a, w}
				}
				if i > 0 && st.settings != nil {
					if err := s.SetRouteSettings(ctx, *st.settings); err != nil {
						t.Fatalf("%s: SetRouteSettings: %v", st.name, err)
					}
				}
				if i > 0 {
					if err := s.SetVIPs(ctx, reloadVIPs(st.vips)); err != nil {
						t.Fatalf("%s: SetVIPs: %v", st.name, err)
					}
				}
				got, err := s.SetRoutes(ctx, st.routes)
				if err != nil {
					t.Fatalf("%s: SetRoutes: %v", st.name, err)
				}
				if len(got) != len(st.routes) {
					t.Fatalf("%s: SetRoutes announced %v, want %v", st.name, got, st.routes)
				}

				// The fresh start on the same config, against a peer of its own.
				fpr := newPair(t)
				fv := rp.start(t, fpr)
				fcfg := testConfig(fpr, fv.port, st.vips...)
				rs := settingsAt(steps, i)
				fcfg.NextHop4, fcfg.NextHop6, fcfg.DrainAttrs = rs.NextHop4, rs.NextHop6, rs.DrainAttrs
				startHelperRoutes(t, fcfg, false, st.routes)
				var want map[string]seen
				eventually(t, 20*time.Second, st.name+": the fresh speaker's routes at its peer", func() bool {
					want = fv.table()
					return len(want) == len(st.routes)
				})
				var gotView map[string]seen
				waited := time.Now()
				for {
					gotView = lv.table()
					if cmp.Equal(want, gotView) || time.Since(waited) > 10*time.Second {
						break
					}
					time.Sleep(20 * time.Millisecond)
				}
				if d := cmp.Diff(want, gotView); d != "" {
					t.Fatalf("%s: peer's RIB after the reload differs from a fresh start's (-fresh +reloaded):\n%s", st.name, d)
				}
				t.Logf("%s: %d routes at the peer, as after a fresh start", st.name, len(gotView))

				// Nothing flaps: a route kept by the reload is never
				// withdrawn, and one whose attributes did not change is
				// not even sent again.
				if i == 0 {
					continue
				}
				prev, cur := steps[i-1].effective(settingsAt(steps, i-1)), st.effective(settingsAt(steps, i))
				for p, c := range cur {
					o, kept := prev[p]
					if !kept {
						continue
					}
					a, w := lv.counts(p.String())
					b := before[p]
					if w != b.wd {
						t.Errorf("%s: %s was withdrawn at the peer %d times by the reload, want never", st.name, p, w-b.wd)
					}
					if a >= 0 && o.draining == c.draining && o.nextHop == c.nextHop && equalAttrs(o.attrs, c.attrs) && a != b.ann {
						t.Errorf("%s: unchanged %s was sent %d times by the reload, want none", st.name, p, a-b.ann)
					}
				}
			}
		})
	}
}

// TestSetRouteSettingsRefuses: next hops of the wrong family, a family
// with VIPs left without a next hop, and bad drain attributes are refused
// and change nothing.
func TestSetRouteSettingsRefuses(t *testing.T) {
	pr := pair{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2")}
	s, err := New(testConfig(pr, 179, VIPRoute{vip4, RouteAttrs{}}, VIPRoute{vip6, RouteAttrs{}}), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		rs   RouteSettings
		want string
	}{
		{"v6 next hop for v4", RouteSettings{netip.MustParseAddr("2001:db8::1"), defaultSettings.NextHop6, RouteAttrs{}}, "next_hop_v4"},
		{"no v6 next hop with v6 VIPs", RouteSettings{defaultSettings.NextHop4, netip.Addr{}, RouteAttrs{}}, "IPv6 VIP"},
		{"bad drain community", RouteSettings{defaultSettings.NextHop4, defaultSettings.NextHop6, RouteAttrs{Communities: []string{"x"}}}, "drain_attributes.communities[0]"},
	} {
		if err := s.SetRouteSettings(context.Background(), tc.rs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SetRouteSettings = %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if s.spec.nextHop4 != defaultSettings.NextHop4 || s.spec.nextHop6 != defaultSettings.NextHop6 {
		t.Errorf("refused settings changed the next hops: %v %v", s.spec.nextHop4, s.spec.nextHop6)
	}
}
