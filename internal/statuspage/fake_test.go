package statuspage

import (
	"context"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/api"
)

// fakeNode is a status source for a node half-way through a drain, with
// every kind of VIP the page must explain, and counters that move like
// traffic does (a wave, a burst of loop-guard drops).
type fakeNode struct {
	mu    sync.Mutex
	calls int
	now   time.Time
	err   error
}

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

func (f *fakeNode) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeNode) advance(d time.Duration) {
	f.mu.Lock()
	f.now = f.now.Add(d)
	f.mu.Unlock()
}

func (f *fakeNode) status(context.Context) (api.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return api.Status{}, f.err
	}
	f.calls++
	n := float64(f.calls)
	// Cumulative counters: integrals of the rates we want to see.
	wave := func(base, amp, period float64) uint64 {
		return uint64(base*n*5 + amp*period/(2*math.Pi)*(1-math.Cos(2*math.Pi*n/period))*5)
	}
	loop := uint64(0)
	if f.calls > 20 {
		loop = uint64(min(f.calls-20, 6)) * 40
	}
	addr := netip.MustParseAddr
	return api.Status{
		Node: "n1", Phase: "draining", Generation: 1764669600000123, Config: "/etc/vipd/vipd.toml",
		Started: f.now.Add(-76 * time.Hour), Routing: "bgp",
		NodeDrain:  &api.Drain{Since: f.now.Add(-50 * time.Second), By: "vipctl"},
		PhaseSince: f.now.Add(-42 * time.Second), PhaseEndsBy: f.now.Add(18 * time.Second), DrainEndsBy: f.now.Add(28 * time.Second),
		VIPs: []api.VIPStatus{
			{Address: addr("198.51.100.10"), Configured: true, Programmed: true, Advertised: false, Bound: true, Healthy: true, Draining: true,
				ServeState: "draining", Reason: "advertised: draining",
				Reasons: api.FacetReasons{Programmed: "table has 3 backends", Advertised: "draining (node drain)", Bound: "peers still send to this node", ServeState: "waiting for idle (drain timeout 60s)"},
				Since:   f.now.Add(-42 * time.Second), Transitions: 7,
				Backends: []api.Backend{{Name: "n1", Role: "secondary", Local: true}, {Name: "n2", Role: "primary"}, {Name: "n3", Role: "primary"}}},
			{Address: addr("198.51.100.11"), Configured: true, Programmed: true, Bound: true, Healthy: true, Draining: true,
				ServeState: "inactive", Reason: "serve_state: out of every table",
				Reasons: api.FacetReasons{Programmed: "withdraw grace", Advertised: "draining (node drain)", Bound: "table grace (7s left)", ServeState: "drain timeout reached"},
				Since:   f.now.Add(-3 * time.Minute), Transitions: 9,
				Backends: []api.Backend{{Name: "n2", Role: "primary"}, {Name: "n3", Role: "primary"}}},
			{Address: addr("2001:db8:100::10"), Configured: true, Programmed: true, Bound: true, Healthy: true, Draining: true,
				ServeState: "draining", Reason: "advertised: held", Held: "no IPv6 route back to clients (::/0)",
				Reasons: api.FacetReasons{Programmed: "table has 2 backends", Advertised: "held: no IPv6 route back to clients", Bound: "peers still send to this node"},
				Since:   f.now.Add(-11 * time.Minute), Transitions: 3, Errors: 0,
				Backends: []api.Backend{{Name: "n1", Role: "secondary", Local: true}, {Name: "n2", Role: "primary"}}},
			{Address: addr("198.51.100.12"), Configured: true, Programmed: true, Bound: true, Healthy: false, Draining: true,
				ServeState: "draining", Reason: "healthy: service unhealthy",
				Reasons: api.FacetReasons{Programmed: "table has 3 backends", Advertised: "service unhealthy", Bound: "peers still send to this node", ServeState: "service unhealthy"},
				Since:   f.now.Add(-95 * time.Second), LastError: "setting routes: bgp: path for 198.51.100.12/32 rejected by policy", Transitions: 12, Errors: 4,
				Backends: []api.Backend{{Name: "n1", Role: "secondary", Local: true}, {Name: "n2", Role: "primary"}, {Name: "n3", Role: "primary"}}},
			{Address: addr("203.0.113.7"), Configured: false, Programmed: false, Bound: false, Healthy: true,
				ServeState: "inactive", Reason: "programmed: removed by reload",
				Since: f.now.Add(-5 * time.Second), Transitions: 4, Backends: []api.Backend{}},
		},
		Peers: []api.Peer{
			{Name: "192.0.2.1 AS65000", Address: addr("192.0.2.1"), ASN: 65000, State: "established", Up: true, UptimeSeconds: 93784, RoutesAdvertised: 0},
			{Name: "2001:db8::1 AS65000", Address: addr("2001:db8::1"), ASN: 65000, State: "active", Up: false, LastError: "hold timer expired"},
		},
		Members: []api.Member{{Name: "n2", Up: true, Generation: 1764669600000456}, {Name: "n3", Up: false}},
		Dataplane: &api.Dataplane{Interface: "eth0", Attach: "native", Counters: map[string]uint64{
			"director_tx":           wave(1200, 500, 12),
			"director_local_pass":   wave(300, 150, 9),
			"backend_decap":         wave(800, 300, 15),
			"backend_forward_tx":    wave(20, 15, 7),
			"pass_non_vip":          wave(90, 20, 20),
			"drop_loop_guard":       loop,
			"drop_no_backend":       0,
			"drop_gue_malformed":    0,
			"drop_fib_fwd_disabled": 0,
			"director_no_neigh":     3,
		}},
	}, nil
}
