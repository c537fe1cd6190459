package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/metrics"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/routingtest"
	"github.com/vipd/vipd/vip"
)

func u32(v uint32) *uint32 { return &v }

// cmpNet compares netip values by ==.
var cmpNet = cmpopts.EquateComparable(netip.Prefix{}, netip.Addr{})

var (
	vip4      = netip.MustParsePrefix("203.0.113.10/32")
	vip4b     = netip.MustParsePrefix("203.0.113.11/32")
	vip6      = netip.MustParsePrefix("2001:db8:f::10/128")
	notAVIP   = netip.MustParsePrefix("198.51.100.7/32")
	attrsFull = RouteAttrs{
		Communities:      []string{"65000:100", "no-export"},
		LargeCommunities: []string{"65000:1:2"},
		MED:              u32(50),
		Prepend:          2,
	}
	drainAttrs = RouteAttrs{Communities: []string{"65000:666"}, MED: u32(1000), Prepend: 1}
)

// seen is a path as a peer shows it, reduced to what the tests compare.
type seen struct {
	ASPath      string
	NextHop     string
	MED         int
	Communities string
	Large       string
}

// gobgpSeen reduces gobgpd's JSON attributes.
func gobgpSeen(r gobgpRoute) seen {
	var s seen
	for _, a := range r.Attrs {
		switch int(a["type"].(float64)) {
		case 2:
			var as []string
			for _, seg := range a["as_paths"].([]any) {
				for _, n := range seg.(map[string]any)["asns"].([]any) {
					as = append(as, fmt.Sprint(n))
				}
			}
			s.ASPath = strings.Join(as, " ")
		case 3, 14:
			s.NextHop = a["nexthop"].(string)
		case 4:
			s.MED = int(a["metric"].(float64))
		case 8:
			var cs []string
			for _, c := range a["communities"].([]any) {
				v := uint32(c.(float64))
				cs = append(cs, fmt.Sprintf("%d:%d", v>>16, v&0xffff))
			}
			s.Communities = strings.Join(cs, " ")
		case 32:
			var ls []string
			for _, l := range a["value"].([]any) {
				m := l.(map[string]any)
				ls = append(ls, fmt.Sprintf("%v:%v:%v", m["ASN"], m["LocalData1"], m["LocalData2"]))
			}
			s.Large = strings.Join(ls, " ")
		}
	}
	return s
}

// gobgpTable returns prefix -> reduced best path, both families.
func (g *gobgpPeer) table(t testing.TB) map[string]seen {
	out := map[string]seen{}
	for _, f := range []string{"ipv4", "ipv6"} {
		for p, rs := range g.rib(t, f) {
			if len(rs) > 0 {
				out[p] = gobgpSeen(rs[0])
			}
		}
	}
	return out
}

func mustSet(t *testing.T, s *Speaker, routes ...routing.Route) {
	t.Helper()
	if _, err := s.SetRoutes(context.Background(), routes); err != nil {
		t.Fatalf("SetRoutes(%v): %v", routes, err)
	}
}

// TestGoBGPPeer announces IPv4 and IPv6 VIPs with attributes to a real
// gobgpd, checks that the peer holds exactly those prefixes with exactly
// those attributes, that repeating SetRoutes changes nothing, that a
// non-VIP prefix is refused, and that withdrawals reach the peer.
func TestGoBGPPeer(t *testing.T) {
	pr := newPair(t)
	g := startGoBGP(t, pr)
	w := watchPeer(t, g)
	cfg := testConfig(pr, g.port, VIPRoute{vip4, attrsFull}, VIPRoute{vip4b, RouteAttrs{}}, VIPRoute{vip6, attrsFull})
	s := startSpeaker(t, cfg, StartOptions{})
	waitEstablished(t, s)

	full := seen{ASPath: "65000 65000 65000", MED: 50, Communities: "65000:100 65535:65281", Large: "65000:1:2"}
	want4, want6, want4b := full, full, seen{ASPath: "65000"}
	want4.NextHop, want6.NextHop, want4b.NextHop = "192.0.2.1", "2001:db8::1", "192.0.2.1"

	steps := []struct {
		name   string
		routes []routing.Route
		want   map[string]seen
		noop   bool // no UPDATE may reach the peer
	}{
		{"announce v4 and v6", []routing.Route{{Prefix: vip4}, {Prefix: vip6}, {Prefix: vip4b}},
			map[string]seen{vip4.String(): want4, vip6.String(): want6, vip4b.String(): want4b}, false},
		{"same again is a no-op", []routing.Route{{Prefix: vip6}, {Prefix: vip4}, {Prefix: vip4b}},
			map[string]seen{vip4.String(): want4, vip6.String(): want6, vip4b.String(): want4b}, true},
		{"withdraw v4", []routing.Route{{Prefix: vip6}, {Prefix: vip4b}},
			map[string]seen{vip6.String(): want6, vip4b.String(): want4b}, false},
		{"withdraw all", nil, map[string]seen{}, false},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := w.received()
			got, err := s.SetRoutes(context.Background(), st.routes)
			if err != nil {
				t.Fatalf("SetRoutes: %v", err)
			}
			if len(got) != len(st.want) {
				t.Errorf("SetRoutes returned %v, want %d routes", got, len(st.want))
			}
			var last map[string]seen
			eventually(t, 5*time.Second, "peer RIB = "+fmt.Sprint(st.want), func() bool {
				last = g.table(t)
				return cmp.Equal(st.want, last)
			})
			if d := cmp.Diff(st.want, last); d != "" {
				t.Errorf("peer RIB (-want +got):\n%s", d)
			}
			if st.noop {
				time.Sleep(200 * time.Millisecond)
				if n := w.received() - before; n != 0 {
					t.Errorf("%d paths reached the peer for a repeated SetRoutes, want none", n)
				}
			} else if w.received() == before {
				t.Error("the peer watch saw no path for a change: the no-op check would prove nothing")
			}
		})
	}

	t.Run("refuses non-VIP", func(t *testing.T) {
		routingtest.CheckUnknownPrefix(t, s, []routing.Route{{Prefix: vip4b}}, notAVIP)
		if err := s.Announce(context.Background(), notAVIP, RouteAttrs{}); !errors.Is(err, routing.ErrUnknownPrefix) {
			t.Errorf("Announce(non-VIP) = %v, want routing.ErrUnknownPrefix", err)
		}
		time.Sleep(200 * time.Millisecond) // long enough for a leak to show up
		if tb := g.table(t); len(tb) != 1 || tb[notAVIP.String()] != (seen{}) {
			t.Errorf("peer RIB = %v, want only %s", tb, vip4b)
		}
	})

	t.Run("status", func(t *testing.T) {
		ps, err := s.Peers(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(ps) != 1 {
			t.Fatalf("Peers() = %v, want one", ps)
		}
		ps[0].Uptime = 0
		want := routing.Peer{Name: pr.peer.String() + " AS" + strconv.Itoa(peerASN), Address: pr.peer, ASN: peerASN,
			State: "established", Up: true, Advertised: 1}
		if d := cmp.Diff(want, ps[0], cmpNet); d != "" {
			t.Errorf("Peers() (-want +got):\n%s", d)
		}

		// The metrics vipd exports for the session come from Peers.
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(metrics.NewCollector(metrics.Sources{
			Status:   func(context.Context) (api.Status, error) { return api.Status{}, nil },
			Peers:    s.Peers,
			Protocol: metrics.ProtocolOf(routing.ModeBGP),
		}))
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]float64{}
		for _, mf := range mfs {
			if !strings.HasPrefix(mf.GetName(), "vipd_routing_session") {
				continue
			}
			for _, m := range mf.GetMetric() {
				got[mf.GetName()] = m.GetGauge().GetValue()
			}
		}
		wantMetrics := map[string]float64{
			"vipd_routing_session_up":                1,
			"vipd_routing_session_routes_advertised": 1,
			"vipd_routing_session_uptime_seconds":    got["vipd_routing_session_uptime_seconds"],
			"vipd_routing_sessions_error":            0,
		}
		if d := cmp.Diff(wantMetrics, got); d != "" {
			t.Errorf("metrics (-want +got):\n%s", d)
		}
	})
}

// TestFRRPeer does the same against FRR bgpd 8.4.
func TestFRRPeer(t *testing.T) {
	pr := newPair(t)
	f := startFRR(t, pr, "", nil)
	cfg := testConfig(pr, f.port, VIPRoute{vip4, attrsFull}, VIPRoute{vip6, attrsFull})
	s := startSpeaker(t, cfg, StartOptions{})
	waitEstablished(t, s)
	mustSet(t, s, routing.Route{Prefix: vip4}, routing.Route{Prefix: vip6})

	eventually(t, 5*time.Second, "both VIPs at FRR", func() bool {
		return len(f.routes(t, "ipv4")) == 1 && len(f.routes(t, "ipv6")) == 1
	})
	for _, p := range []netip.Prefix{vip4, vip6} {
		paths := f.route(t, p)
		if len(paths) != 1 {
			t.Fatalf("FRR has %d paths for %s, want 1", len(paths), p)
		}
		got := frrSeen(paths[0])
		want := seen{ASPath: "65000 65000 65000", MED: 50, Communities: "65000:100 no-export", Large: "65000:1:2", NextHop: "192.0.2.1"}
		if p.Addr().Is6() {
			want.NextHop = "2001:db8::1"
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("FRR's path for %s (-want +got):\n%s", p, d)
		}
	}
	mustSet(t, s, routing.Route{Prefix: vip6})
	eventually(t, 5*time.Second, "v4 VIP gone at FRR", func() bool {
		return len(f.routes(t, "ipv4")) == 0 && len(f.routes(t, "ipv6")) == 1
	})
	mustSet(t, s)
	eventually(t, 5*time.Second, "all VIPs gone at FRR", func() bool {
		return len(f.routes(t, "ipv4")) == 0 && len(f.routes(t, "ipv6")) == 0
	})
}

func frrSeen(p frrPath) seen {
	s := seen{ASPath: p.ASPath.String}
	if p.Med != nil {
		s.MED = *p.Med
	} else if p.Metric != nil {
		s.MED = *p.Metric
	}
	if p.Community != nil {
		s.Communities = p.Community.String
	}
	if p.LargeCommunity != nil {
		s.Large = p.LargeCommunity.String
	}
	if len(p.Nexthops) > 0 {
		s.NextHop = p.Nexthops[0].IP
	}
	return s
}

// drainVIP is what the state machine does to drain one VIP: it passes the
// route as draining (deprefer policy) or leaves it out (withdraw policy).
// announce is the call the state machine makes; today SetRoutes, later the
// vip controller's drain command.
func drainVIP(ctx context.Context, announce func(context.Context, []routing.Route) error, policy vip.DrainPolicy, all []netip.Prefix, drained netip.Prefix) error {
	var routes []routing.Route
	for _, p := range all {
		switch {
		case p != drained:
			routes = append(routes, routing.Route{Prefix: p})
		case policy == vip.DrainDeprefer:
			routes = append(routes, routing.Route{Prefix: p, Draining: true})
		}
	}
	return announce(ctx, routes)
}

func setRoutesFunc(s *Speaker) func(context.Context, []routing.Route) error {
	return func(ctx context.Context, r []routing.Route) error {
		_, err := s.SetRoutes(ctx, r)
		return err
	}
}

// TestDrainReachesPeer drains a VIP under both drain policies and checks
// what gobgpd sees: withdrawn, or announced with the drain attributes on top.
func TestDrainReachesPeer(t *testing.T) {
	for _, tc := range []struct {
		policy vip.DrainPolicy
		want   map[string]seen
	}{
		{vip.DrainWithdraw, map[string]seen{
			vip4b.String(): {ASPath: "65000", NextHop: "192.0.2.1"},
		}},
		{vip.DrainDeprefer, map[string]seen{
			vip4.String(): {ASPath: "65000 65000 65000 65000", NextHop: "192.0.2.1", MED: 1000,
				Communities: "65000:100 65535:65281 65000:666", Large: "65000:1:2"},
			vip4b.String(): {ASPath: "65000", NextHop: "192.0.2.1"},
		}},
	} {
		t.Run(tc.policy.String(), func(t *testing.T) {
			pr := newPair(t)
			g := startGoBGP(t, pr)
			cfg := testConfig(pr, g.port, VIPRoute{vip4, attrsFull}, VIPRoute{vip4b, RouteAttrs{}})
			cfg.DrainAttrs = drainAttrs
			s := startSpeaker(t, cfg, StartOptions{Routes: []routing.Route{{Prefix: vip4}, {Prefix: vip4b}}})
			waitEstablished(t, s)
			eventually(t, 5*time.Second, "both VIPs at the peer", func() bool { return len(g.table(t)) == 2 })
			ctx := context.Background()
			if err := drainVIP(ctx, setRoutesFunc(s), tc.policy, []netip.Prefix{vip4, vip4b}, vip4); err != nil {
				t.Fatal(err)
			}
			var got map[string]seen
			eventually(t, 5*time.Second, "drain at the peer", func() bool {
				got = g.table(t)
				return cmp.Equal(tc.want, got)
			})
			// Undrain restores the normal attributes.
			mustSet(t, s, routing.Route{Prefix: vip4}, routing.Route{Prefix: vip4b})
			eventually(t, 5*time.Second, "undrain at the peer", func() bool {
				return g.table(t)[vip4.String()].MED == 50
			})
			closeCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			if err := s.Close(closeCtx); err != nil {
				t.Fatalf("Close: %v", err)
			}
			eventually(t, 10*time.Second, "peer empty after Close", func() bool { return len(g.table(t)) == 0 })
		})
	}
}

// TestPeerDownDoesNotBlock: with a neighbor that never answers, SetRoutes,
// Peers and Close return at once and the peer's state says why.
func TestPeerDownDoesNotBlock(t *testing.T) {
	netnsRequired(t)
	pr := newPair(t)
	cfg := testConfig(pr, freePort(t, pr.peer), VIPRoute{vip4, RouteAttrs{}})
	// An adopted route that is no VIP any more is refused, not fatal.
	s := startSpeaker(t, cfg, StartOptions{Routes: []routing.Route{{Prefix: notAVIP}}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	start := time.Now()
	got, err := s.SetRoutes(ctx, []routing.Route{{Prefix: vip4}})
	if err != nil {
		t.Fatalf("SetRoutes with the peer down: %v", err)
	}
	if d := cmp.Diff([]routing.Route{{Prefix: vip4}}, got, cmpNet); d != "" {
		t.Errorf("announced (-want +got):\n%s", d)
	}
	ps, err := s.Peers(ctx)
	if err != nil || len(ps) != 1 || ps[0].State == "established" {
		t.Errorf("Peers() = %v, %v; want one peer not established", ps, err)
	}
	if err := s.Close(ctx); err != nil {
		t.Errorf("Close with the peer down: %v", err)
	}
	// Not a performance bound: blocking on the peer would take at least
	// one connect retry (5 s).
	if el := time.Since(start); el > 4*time.Second {
		t.Errorf("SetRoutes+Peers+Close took %s with the peer down", el)
	}
	if _, err := s.SetRoutes(ctx, nil); !errors.Is(err, routing.ErrClosed) {
		t.Errorf("SetRoutes after Close = %v, want routing.ErrClosed", err)
	}
}

// TestLeak: FRR announces 1,000 prefixes to the speaker. None may enter the
// speaker's RIB, and FRR must receive nothing but the speaker's VIPs.
func TestLeak(t *testing.T) {
	pr := newPair(t)
	var nets []netip.Prefix
	for i := range 1000 {
		nets = append(nets, netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, byte(i / 250), byte(i%250 + 1)}), 32))
	}
	f := startFRR(t, pr, "", nets)
	cfg := testConfig(pr, f.port, VIPRoute{vip4, RouteAttrs{}}, VIPRoute{vip6, RouteAttrs{}}, VIPRoute{vip4b, RouteAttrs{}})
	s := startSpeaker(t, cfg, StartOptions{Routes: []routing.Route{{Prefix: vip4}, {Prefix: vip6}}})
	waitEstablished(t, s)

	// Wait until the speaker received all 1,000 (they are in its adj-rib-in).
	eventually(t, 20*time.Second, "1000 prefixes received from FRR", func() bool {
		// FRR also reflects our own VIPs back: they do not count.
		return s.received(t) >= 1000
	})
	time.Sleep(200 * time.Millisecond)
	if d := cmp.Diff([]string{vip6.String(), vip4.String()}, s.globalRIB(t)); d != "" {
		t.Errorf("speaker's RIB (-want +got):\n%s", d)
	}
	// What FRR learned from the speaker: its table minus its own networks.
	var fromSpeaker []string
	for _, fam := range []string{"ipv4", "ipv6"} {
		for p := range f.routes(t, fam) {
			if !strings.HasPrefix(p, "10.77.") {
				fromSpeaker = append(fromSpeaker, p)
			}
		}
	}
	sort.Strings(fromSpeaker)
	if d := cmp.Diff([]string{"2001:db8:f::10/128", vip4.String()}, fromSpeaker); d != "" {
		t.Errorf("routes FRR learned from the speaker (-want +got):\n%s", d)
	}
}

// TestCloseWithdrawsBeforeCease: a plain shutdown withdraws every VIP while
// the session is still up, then closes it. FRR's update log must show the
// withdraw before the Cease notification (a Cease alone would also remove
// the route, but a GR helper or a slow router would not see it as a
// withdraw).
func TestCloseWithdrawsBeforeCease(t *testing.T) {
	pr := newPair(t)
	f := startFRR(t, pr, "", nil)
	s := startSpeaker(t, testConfig(pr, f.port, VIPRoute{vip4, RouteAttrs{}}), StartOptions{Routes: []routing.Route{{Prefix: vip4}}})
	waitEstablished(t, s)
	eventually(t, 5*time.Second, "VIP at FRR", func() bool { return len(f.route(t, vip4)) == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	var lines []string
	eventually(t, 5*time.Second, "Cease logged by FRR", func() bool {
		lines = f.logLines(t, "", vip4.String()+" IPv4 unicast -- withdrawn", "NOTIFICATION: received")
		return len(lines) > 0 && strings.Contains(lines[len(lines)-1], "NOTIFICATION")
	})
	if len(lines) != 2 || !strings.Contains(lines[0], "withdrawn") {
		t.Errorf("FRR's log, want the withdraw then the Cease:\n%s", strings.Join(lines, "\n"))
	}
}

// TestMD5: the TCP MD5 password reaches the kernel: with the right password
// the session comes up and routes flow, with a wrong one it never does.
func TestMD5(t *testing.T) {
	for _, tc := range []struct {
		name, password string
		wantUp         bool
	}{
		{"right password", "vipd-md5-secret", true},
		{"wrong password", "not-the-secret", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pr := newPair(t)
			g := startGoBGP(t, pr, "vipd-md5-secret")
			cfg := testConfig(pr, g.port, VIPRoute{vip4, RouteAttrs{}})
			cfg.Neighbors[0].Password = tc.password
			s := startSpeaker(t, cfg, StartOptions{Routes: []routing.Route{{Prefix: vip4}}})
			if tc.wantUp {
				waitEstablished(t, s)
				eventually(t, 5*time.Second, "VIP at the peer", func() bool { return len(g.table(t)) == 1 })
				return
			}
			time.Sleep(3 * time.Second) // sessions come up in 1-2 s on loopback
			ps, err := s.Peers(context.Background())
			if err != nil || len(ps) != 1 || ps[0].State == "established" {
				t.Errorf("Peers() = %+v, %v; want one peer, not established", ps, err)
			}
		})
	}
}
