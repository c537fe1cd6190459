package vip

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/routing"
)

func oneVIP(cfg Config) Config {
	cfg.VIPs = cfg.VIPs[:1]
	return cfg
}

// Bring-up binds (lo, then the bound set) before publishing active, and
// programs before announcing.
func TestBringUpOrder(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.step()
	want := []string{
		"Bind 192.0.2.10",
		"SetBound [192.0.2.10]",
		"ProgramSpec 192.0.2.10 [a/p]",
		"SetRoutes [{192.0.2.10/32 false}]",
	}
	if diff := cmp.Diff(want, r.w.takeCalls()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	wantTrans := []string{
		"lo false->true (serving) @0s",
		"bound false->true (serving) @0s",
		"serve inactive->active (serving) @0s",
		"programmed false->true (configured) @0s",
		"advertised withdrawn->announced (serving) @0s",
	}
	if diff := cmp.Diff(wantTrans, r.transitions(vip4)); diff != "" {
		t.Errorf("transitions (-want +got):\n%s", diff)
	}
	doc := r.m.nodeState()
	if diff := cmp.Diff(map[netip.Addr]cluster.VIPState{vip4: {State: cluster.StateActive, Healthy: true}}, doc.VIPs); diff != "" {
		t.Errorf("node state (-want +got):\n%s", diff)
	}
	r.step()
	if c := r.w.takeCalls(); len(c) != 0 {
		t.Errorf("a second pass with nothing new made calls: %v", c)
	}
}

// A node drain: withdraw at t0, draining at t0+WithdrawGrace, inactive at
// the drain timeout, unbind a table grace later; then undrain backwards.
func TestNodeDrainAndUndrain(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.run(time.Minute)
	r.trans = nil
	t0 := r.clock.Now()
	r.m.nodeDrain = true
	if got := r.m.phase(); got != PhaseWithdrawing {
		t.Errorf("phase at t0 = %s, want %s", got, PhaseWithdrawing)
	}
	r.run(5 * time.Minute)
	off := func(d time.Duration) string { return (since(t0) + d).String() }
	want := []string{
		"advertised announced->withdrawn (draining) @" + off(0),
		"serve active->draining (node draining) @" + off(10*time.Second),
		"table [a/p,b/p]->[a/s,b/p] (backends changed) @" + off(10*time.Second),
		"serve draining->inactive (drain timeout) @" + off(70*time.Second),
		"table [a/s,b/p]->[b/p] (backends changed) @" + off(70*time.Second),
		"bound true->false (node drained) @" + off(100*time.Second),
		"lo true->false (node drained) @" + off(100*time.Second),
	}
	if diff := cmp.Diff(want, r.transitions(vip4)); diff != "" {
		t.Errorf("drain transitions (-want +got):\n%s", diff)
	}
	if got := r.m.phase(); got != PhaseDrained {
		t.Errorf("phase after drain = %s, want %s", got, PhaseDrained)
	}
	r.trans = nil
	r.w.takeCalls()
	r.m.nodeDrain = false
	r.step()
	wantCalls := []string{
		"Bind 192.0.2.10",
		"SetBound [192.0.2.10]",
		"ProgramSpec 192.0.2.10 [a/p,b/p]",
		"SetRoutes [{192.0.2.10/32 false}]",
	}
	if diff := cmp.Diff(wantCalls, r.w.takeCalls()); diff != "" {
		t.Errorf("undrain calls (-want +got):\n%s", diff)
	}
	if got := r.m.phase(); got != PhaseActive {
		t.Errorf("phase after undrain = %s", got)
	}
}

// With an IdleChecker the drain publishes inactive at the first poll that
// finds the VIP idle, before the drain timeout.
func TestNodeDrainIdle(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.idle = true
	r.start(oneVIP(testConfig()))
	r.w.flows[vip4] = 3
	r.run(time.Second)
	t0 := r.clock.Now()
	r.m.nodeDrain = true
	r.run(15 * time.Second)
	if got := r.vip(vip4).live.serve; got != cluster.StateDraining {
		t.Fatalf("serve at t0+15s = %s, want draining", got)
	}
	r.w.flows[vip4] = 0
	r.run(10 * time.Second)
	v := r.vip(vip4)
	tr := r.transitions(vip4)
	if v.live.serve != cluster.StateInactive || !strings.Contains(tr[len(tr)-2], "draining->inactive (idle)") {
		t.Fatalf("serve = %s, want inactive (idle); transitions: %q", v.live.serve, tr)
	}
	if d := v.live.servedAt.Sub(t0); d > 17*time.Second {
		t.Errorf("inactive %s after the drain started, want by the first poll after idle", d)
	}
}

// A per-VIP drain withdraws only that VIP's route and keeps serving it.
func TestVIPDrain(t *testing.T) {
	r := newRig(t, testConfig())
	r.run(time.Second)
	r.m.vipDrains[vip4] = true
	r.run(5 * time.Minute)
	got := r.w.routes
	if _, ok := got[vip4]; ok {
		t.Errorf("%s still announced", vip4)
	}
	if _, ok := got[vip6]; !ok {
		t.Errorf("%s not announced", vip6)
	}
	v := r.vip(vip4)
	if v.live.serve != cluster.StateActive || !v.live.inDP || !v.live.programmed || v.why.reasons.Advertised != "draining" {
		t.Errorf("drained vip: serve=%s bound=%v programmed=%v reason=%q", v.live.serve, v.live.inDP, v.live.programmed, v.why.reasons.Advertised)
	}
	r.m.vipDrains[vip4] = false
	r.step()
	if _, ok := r.w.routes[vip4]; !ok {
		t.Errorf("%s not announced after undrain", vip4)
	}
}

// With the deprefer policy a drain keeps announcing, with drain attributes.
func TestDeprefer(t *testing.T) {
	cfg := oneVIP(testConfig())
	cfg.DrainPolicy = DrainDeprefer
	r := newRig(t, cfg)
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.run(time.Second)
	r.m.vipDrains[vip4] = true
	r.step()
	if diff := cmp.Diff(map[netip.Addr]routing.Route{vip4: {Prefix: netip.MustParsePrefix("192.0.2.10/32"), Draining: true}}, r.w.routes, cmpopts.EquateComparable(netip.Prefix{})); diff != "" {
		t.Errorf("routes (-want +got):\n%s", diff)
	}
	// A node drain deprefers too, and still goes draining after the grace.
	r.m.vipDrains[vip4] = false
	r.m.nodeDrain = true
	r.run(11 * time.Second)
	if got := r.vip(vip4).live.serve; got != cluster.StateDraining {
		t.Errorf("serve = %s, want draining", got)
	}
	if !r.w.routes[vip4].Draining {
		t.Errorf("route not deprefered during node drain: %v", r.w.routes)
	}
}

// Unhealthy: still bound and published active (peers demote it to
// secondary); with no other primary the route is withdrawn.
func TestHealthFlap(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.run(time.Second)
	r.m.setHealth(vip4, false, "tcp connect refused")
	r.step()
	v := r.vip(vip4)
	if _, ok := r.w.routes[vip4]; ok {
		t.Errorf("announced with no usable backend")
	}
	if v.why.reasons.Advertised != "no usable backend" {
		t.Errorf("advertised reason = %q", v.why.reasons.Advertised)
	}
	if diff := cmp.Diff(cluster.VIPState{State: cluster.StateActive, Healthy: false, Reason: "tcp connect refused"}, r.m.nodeState().VIPs[vip4]); diff != "" {
		t.Errorf("published (-want +got):\n%s", diff)
	}
	if !r.w.lo[vip4] || !r.w.dp[vip4] {
		t.Errorf("unhealthy vip unbound")
	}
	// A healthy peer makes it announceable again.
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.step()
	if _, ok := r.w.routes[vip4]; !ok {
		t.Errorf("not announced with a healthy peer")
	}
	if got := describe(r.w.programs[vip4].Backends); got != "[a/s,b/p]" {
		t.Errorf("table = %s", got)
	}
	r.m.setPeer("b", nil)
	r.m.setHealth(vip4, true, "")
	r.step()
	if got := describe(r.w.programs[vip4].Backends); got != "[a/p,b/s]" {
		t.Errorf("table = %s", got)
	}
}

// A failed peer stays as secondary while it was in the table; one never
// in the table does not appear.
func TestPeerFailure(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.m.setPeer("c", peerState("c", cluster.StateInactive, true, vip4))
	r.step()
	if got := describe(r.w.programs[vip4].Backends); got != "[a/p,b/p]" {
		t.Fatalf("table = %s", got)
	}
	r.m.setPeer("b", nil)
	r.m.setPeer("c", nil)
	r.step()
	if got := describe(r.w.programs[vip4].Backends); got != "[a/p,b/s]" {
		t.Errorf("table after failures = %s, want [a/p,b/s]", got)
	}
	r.step()
	if got := describe(r.w.programs[vip4].Backends); got != "[a/p,b/s]" {
		t.Errorf("table later = %s, want b kept as secondary", got)
	}
	r.m.setPeer("b", peerState("b", cluster.StateDraining, true, vip4))
	r.step()
	if got := describe(r.w.programs[vip4].Backends); got != "[a/p,b/s]" {
		t.Errorf("table with b draining = %s", got)
	}
}

// A failing advertiser: nothing is claimed, retries back off, and the
// error shows in Status.
func TestAdvertiserErrorRetry(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.w.failNext["SetRoutes"] = 3
	r.step()
	if r.vip(vip4).live.adv != advNone {
		t.Fatalf("claims announced after a failed call")
	}
	if st := r.m.status().VIPs[0]; st.Errors != 1 || !strings.Contains(st.LastError, "injected") {
		t.Errorf("status while failing = %+v, want the error shown", st)
	}
	var retries []time.Duration
	for range 3 {
		next := r.m.nextWake()
		retries = append(retries, next.Sub(r.clock.Now()))
		r.clock.Set(next)
		r.step()
	}
	if diff := cmp.Diff([]time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond}, retries); diff != "" {
		t.Errorf("backoff (-want +got):\n%s", diff)
	}
	// Issue 14: once the call succeeds its error is over; only the count
	// says there were failures.
	st := r.m.status().VIPs[0]
	if !st.Advertised || st.Errors != 3 || st.LastError != "" {
		t.Errorf("status after the retry succeeded = %+v, want advertised, 3 errors, no last error", st)
	}
	r.step() // the pass after a change
	if !r.m.nextWake().IsZero() {
		t.Errorf("still scheduled after success: %s", r.m.nextWake())
	}
}

// A withdraw that fails keeps the route counted as announced: the table
// keeps its primary and unprogram waits.
func TestWithdrawFailureKeepsTable(t *testing.T) {
	r := newRig(t, oneVIP(testConfig()))
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.run(time.Second)
	r.m.setHealth(vip4, false, "down")
	r.m.setPeer("b", peerState("b", cluster.StateInactive, true, vip4))
	r.w.failNext["SetRoutes"] = 2
	r.step()
	v := r.vip(vip4)
	if v.live.adv == advNone || !hasPrimary(v.live.table) {
		t.Fatalf("adv=%s table=%s", v.live.adv, describe(v.live.table))
	}
	if !strings.Contains(v.why.reasons.Programmed, "withdraw before") {
		t.Errorf("programmed reason = %q", v.why.reasons.Programmed)
	}
	r.run(time.Second)
	if v.live.adv != advNone || describe(v.live.table) != "[a/s]" {
		t.Errorf("after retry: adv=%s table=%s", v.live.adv, describe(v.live.table))
	}
}

// Removing a VIP drains it like a drained VIP, so the flows it serves can
// finish (issue 10, defect 3: main went inactive right after the withdraw
// grace and reset them): withdraw at t0, draining at t0+WithdrawGrace
// (unprogrammed then: no router sends to it any more), inactive after the
// RemoveTimeout, unbind a TableGrace later, then it is forgotten. Adding one
// brings it up.
func TestReloadRemoveAdd(t *testing.T) {
	cfg := testConfig()
	r := newRig(t, cfg)
	r.run(time.Second)
	r.trans = nil
	t0 := r.clock.Now()
	r.m.applyConfig(oneVIP(cfg))
	r.run(15 * time.Second)
	if got := r.m.nodeState().VIPs[vip6].State; got != cluster.StateDraining {
		t.Errorf("removed vip published %s during its drain, want draining", got)
	}
	if !r.w.lo[vip6] || !r.w.dp[vip6] {
		t.Errorf("removed vip unbound during its drain")
	}
	r.run(2 * time.Minute)
	off := func(d time.Duration) string { return (since(t0) + d).String() }
	want := []string{
		"advertised announced->withdrawn (removed from config) @" + off(0),
		"serve active->draining (removed from config) @" + off(10*time.Second),
		"programmed true->false (removed from config) @" + off(10*time.Second),
		"serve draining->inactive (remove timeout) @" + off(30*time.Second),
		"bound true->false (removed from config) @" + off(60*time.Second),
		"lo true->false (removed from config) @" + off(60*time.Second),
	}
	if diff := cmp.Diff(want, r.transitions(vip6)); diff != "" {
		t.Errorf("removal (-want +got):\n%s", diff)
	}
	if _, ok := r.m.vips[vip6]; ok {
		t.Errorf("removed vip not forgotten")
	}
	if _, ok := r.m.nodeState().VIPs[vip6]; ok {
		t.Errorf("removed vip still published")
	}
	r.m.applyConfig(cfg)
	r.step()
	if _, ok := r.w.routes[vip6]; !ok || !r.w.dp[vip6] {
		t.Errorf("re-added vip not up: routes=%v bound=%v", r.w.routes, r.w.dp)
	}
}

// A removed VIP that goes idle leaves before its RemoveTimeout; one added
// back while draining serves again without being unbound.
func TestReloadRemoveIdleAndReadd(t *testing.T) {
	cfg := testConfig()
	r := newRig(t, cfg)
	r.idle = true
	r.start(cfg)
	r.w.flows[vip6] = 2
	r.run(time.Second)
	r.m.applyConfig(oneVIP(cfg))
	r.run(12 * time.Second)
	if got := r.vip(vip6).live.serve; got != cluster.StateDraining {
		t.Fatalf("removed vip %s, want draining", got)
	}
	r.w.flows[vip6] = 0
	r.run(2 * time.Second)
	if tr := r.transitions(vip6); !slices.ContainsFunc(tr, func(s string) bool { return strings.HasPrefix(s, "serve draining->inactive (idle)") }) {
		t.Fatalf("idle removed vip did not go inactive as idle: %q", tr)
	}

	r2 := newRig(t, cfg)
	r2.run(time.Second)
	r2.m.applyConfig(oneVIP(cfg))
	r2.run(12 * time.Second)
	r2.w.takeCalls()
	r2.m.applyConfig(cfg)
	r2.run(time.Second)
	for _, c := range r2.w.takeCalls() {
		if strings.HasPrefix(c, "Unbind") {
			t.Errorf("re-added while draining: %s", c)
		}
	}
	if s := r2.m.nodeState().VIPs[vip6].State; s != cluster.StateActive {
		t.Errorf("re-added vip published %s, want active", s)
	}
	if _, ok := r2.w.routes[vip6]; !ok {
		t.Errorf("re-added vip not announced")
	}
}

// Hold vetoes announcing with its reason; Release lifts it.
func TestHoldRelease(t *testing.T) {
	r := newRig(t, testConfig())
	r.m.holds[vip6] = "no IPv6 route back to clients"
	r.step()
	if _, ok := r.w.routes[vip6]; ok {
		t.Errorf("held vip announced")
	}
	if got := r.vip(vip6).why.reasons.Advertised; got != "held: no IPv6 route back to clients" {
		t.Errorf("reason = %q", got)
	}
	if !r.w.dp[vip6] {
		t.Errorf("held vip not bound")
	}
	delete(r.m.holds, vip6)
	r.step()
	if _, ok := r.w.routes[vip6]; !ok {
		t.Errorf("released vip not announced")
	}
}

// A restarted controller adopts what is bound and programmed: it unbinds
// and unprograms nothing that is configured, and re-announces. A VIP left
// over from an old config goes down with the graces counted from the start.
func TestRestartAdoption(t *testing.T) {
	cfg := testConfig()
	r := newRig(t, cfg)
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4, vip6))
	r.run(time.Minute)
	r.w.routes = map[netip.Addr]routing.Route{} // the old advertiser went away
	r.w.takeCalls()
	r.trans = nil
	t0 := r.clock.Now()
	r.start(oneVIP(cfg)) // vip6 no longer configured
	r.step()
	for _, c := range r.w.takeCalls() {
		if strings.HasPrefix(c, "Unbind") || strings.HasPrefix(c, "Unprogram") || strings.HasPrefix(c, "Bind") {
			t.Errorf("first pass after restart: %s", c)
		}
	}
	if _, ok := r.w.routes[vip4]; !ok {
		t.Errorf("configured vip not re-announced")
	}
	if s := r.m.nodeState().VIPs[vip4].State; s != cluster.StateActive {
		t.Errorf("configured vip published %s", s)
	}
	r.run(time.Minute)
	off := func(d time.Duration) string { return (since(t0) + d).String() }
	want := []string{
		"bound false->true (table grace) @" + off(0), // the bound set, set again
		"programmed true->false (removed from config) @" + off(10*time.Second),
		"bound true->false (removed from config) @" + off(30*time.Second),
		"lo true->false (removed from config) @" + off(30*time.Second),
	}
	if diff := cmp.Diff(want, r.transitions(vip6)); diff != "" {
		t.Errorf("left-over vip (-want +got):\n%s", diff)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
		want []string
	}{
		{"ok", func(*Config) {}, nil},
		{"node not a member", func(c *Config) { c.Node = "z" }, []string{`node: "z" is not listed in members`}},
		{"duplicate vip", func(c *Config) { c.VIPs = append(c.VIPs, c.VIPs[0]) }, []string{"vips[2].addr: duplicate VIP 192.0.2.10"}},
		{"bad policy", func(c *Config) { c.DrainPolicy = 7 }, []string{`drain_policy: DrainPolicy(7) is neither "withdraw" nor "deprefer"`}},
		{"negative grace", func(c *Config) { c.TableGrace = -1 }, []string{"table_grace: must not be negative"}},
		{"bad proto", func(c *Config) { c.VIPs[0].Services[0].Proto = 1 }, []string{"vips[0].services[0].proto: 1 is neither TCP (6) nor UDP (17)"}},
		{"member without address", func(c *Config) { c.Members[1] = Member{Name: "b"} }, []string{"members[1]: needs an IPv4 or IPv6 underlay address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := testConfig()
			tt.edit(&c)
			var got []string
			if err := c.Validate(); err != nil {
				got = strings.Split(err.Error(), "\n")
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestRestartWaitsForPeers: a controller that restarts under routes kept by
// graceful restart must not rebuild the table from itself alone (it would
// take over, and reset, the flows other backends own), nor touch the routes,
// until it has heard of its peers or PeerWait has passed.
func TestRestartWaitsForPeers(t *testing.T) {
	for _, tc := range []struct {
		name  string
		heard bool // the peer reports before PeerWait ends
	}{{"peer reports", true}, {"peer wait passes", false}} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := oneVIP(testConfig())
			cfg.PeerWait = 5 * time.Second
			r := newRig(t, cfg)
			r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
			r.run(time.Minute)
			if got := describe(r.w.programs[vip4].Backends); got != "[a/p,b/p]" {
				t.Fatalf("table before the restart: %s", got)
			}
			r.w.takeCalls()
			r.start(cfg) // a new vipd: peers unknown, routes kept by GR
			r.run(4 * time.Second)
			for _, c := range r.w.takeCalls() {
				if strings.HasPrefix(c, "ProgramSpec") || strings.HasPrefix(c, "SetRoutes") || strings.HasPrefix(c, "Unprogram") {
					t.Errorf("within PeerWait, before any peer state: %s", c)
				}
			}
			if why := r.m.status().VIPs[0].Reasons.Advertised; !strings.HasPrefix(why, "waiting for peer states") {
				t.Errorf("advertised reason while waiting: %q", why)
			}
			if tc.heard {
				r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
			}
			r.run(time.Minute)
			want := "[a/p,b/p]"
			if !tc.heard {
				want = "[a/p]" // b never heard of: not in the table
			}
			if got := describe(r.w.programs[vip4].Backends); got != want {
				t.Errorf("table after settling: %s, want %s", got, want)
			}
			if _, ok := r.w.routes[vip4]; !ok {
				t.Error("not announced after settling")
			}
		})
	}
}

// planRoutes decides without calling anyone: per VIP the wanted
// announcement with its reason, the routes, and whether a call is needed.
func TestPlanRoutes(t *testing.T) {
	prefix4 := netip.MustParsePrefix("192.0.2.10/32")
	for _, tc := range []struct {
		name         string
		policy       DrainPolicy
		drain        bool
		withdrawOnly bool
		want         []routing.Route
		wantWhy      string
		wantCall     bool
	}{
		{"serving, as announced", DrainWithdraw, false, false, []routing.Route{{Prefix: prefix4}}, "serving", false},
		{"drained, withdraw", DrainWithdraw, true, false, nil, "draining", true},
		{"drained, deprefer", DrainDeprefer, true, false, []routing.Route{{Prefix: prefix4, Draining: true}}, "draining (deprefer)", true},
		{"drained, deprefer, withdraw-only pass", DrainDeprefer, true, true, []routing.Route{{Prefix: prefix4, Draining: true}}, "draining (deprefer)", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := oneVIP(testConfig())
			cfg.DrainPolicy = tc.policy
			r := newRig(t, cfg)
			r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
			r.run(time.Second)
			r.m.vipDrains[vip4] = tc.drain
			calls := len(r.w.calls)
			r.m.tables = map[netip.Addr][]Backend{}
			p := r.m.planRoutes(tc.withdrawOnly)
			if d := cmp.Diff(tc.want, p.routes, cmpopts.EquateComparable(netip.Prefix{})); d != "" {
				t.Errorf("routes (-want +got):\n%s", d)
			}
			if p.reasons[vip4] != tc.wantWhy || p.call != tc.wantCall {
				t.Errorf("reason %q call %t, want %q %t", p.reasons[vip4], p.call, tc.wantWhy, tc.wantCall)
			}
			if len(r.w.calls) != calls || r.vip(vip4).live.adv != advNormal {
				t.Errorf("planning changed the world or the facets: calls %q", r.w.calls[calls:])
			}
		})
	}
	// A VIP not announced yet is not announced by the withdraw-only pass.
	r := newRig(t, oneVIP(testConfig()))
	r.m.setPeer("b", peerState("b", cluster.StateActive, true, vip4))
	r.m.tables = map[netip.Addr][]Backend{}
	if p := r.m.planRoutes(true); len(p.routes) != 0 {
		t.Errorf("withdraw-only pass before bring-up plans %v", p.routes)
	}
}
