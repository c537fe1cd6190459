package vip

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

var (
	propSteps = flag.Int("vip.steps", 120_000, "minimum reconcile steps of TestProperty over all seeds")
	propSeeds = flag.Int("vip.seeds", 48, "seeds of TestProperty (run in parallel)")
	propSeed  = flag.Uint64("vip.seed", 0, "run only this seed of TestProperty (0: all)")
)

var propPool = []netip.Addr{
	netip.MustParseAddr("192.0.2.1"),
	netip.MustParseAddr("192.0.2.2"),
	netip.MustParseAddr("192.0.2.3"),
	netip.MustParseAddr("2001:db8::1"),
	netip.MustParseAddr("2001:db8::2"),
}

var propPeers = []string{"b", "c", "d"}

// propStranger is an address on lo that is no VIP: never touched.
var propStranger = netip.MustParseAddr("198.51.100.99")

func propMembers() []Member {
	return []Member{
		{Name: "a", Addr4: netip.MustParseAddr("10.0.0.1"), Addr6: netip.MustParseAddr("fd00::1")},
		{Name: "b", Addr4: netip.MustParseAddr("10.0.0.2"), Addr6: netip.MustParseAddr("fd00::2")},
		{Name: "c", Addr4: netip.MustParseAddr("10.0.0.3")}, // IPv4 only
		{Name: "d", Addr4: netip.MustParseAddr("10.0.0.4"), Addr6: netip.MustParseAddr("fd00::4")},
	}
}

// TestProperty drives the machine with random events (config reloads, node
// and VIP drains, health flaps, peer changes, holds, failing calls, restarts
// adopting the world, clock jumps, a routing daemon that loses routes or
// keeps withdrawn ones, sessions down, reads of it that fail, VIPs and other
// addresses removed from or put on lo behind its back), checks every
// invariant after every step
// from the machine's and the world's view (and that a VIP going down, drained
// or removed by a reload, is published draining for its timeout before
// inactive), and after each episode stops the
// events, heals the fakes, lets the clock run and checks that the world is
// exactly the desired state and that every claim in Status matches the
// fake world.
func TestProperty(t *testing.T) {
	seeds := *propSeeds
	perSeed := (*propSteps + seeds - 1) / seeds
	var steps, events, episodes atomic.Int64
	start := time.Now()
	t.Run("seeds", func(t *testing.T) {
		for s := 1; s <= seeds; s++ {
			seed := uint64(s)
			if *propSeed != 0 && seed != *propSeed {
				continue
			}
			t.Run(fmt.Sprint(seed), func(t *testing.T) {
				t.Parallel()
				p := newProp(t, seed)
				for p.r.steps < perSeed {
					p.episode()
				}
				steps.Add(int64(p.r.steps))
				events.Add(int64(p.events))
				episodes.Add(int64(p.episodes))
			})
		}
	})
	msg := fmt.Sprintf("vip property test: %d steps (%d random events, %d converged episodes) over %d seeds in %s",
		steps.Load(), events.Load(), episodes.Load(), seeds, time.Since(start).Round(time.Millisecond))
	t.Log(msg)
	if testing.Verbose() {
		fmt.Println(msg)
	}
	if *propSeed == 0 && steps.Load() < int64(*propSteps) {
		t.Errorf("ran %d steps, want at least %d", steps.Load(), *propSteps)
	}
}

type prop struct {
	t        *testing.T
	rng      *rand.Rand
	r        *rig
	cfg      Config
	events   int
	episodes int
	revision int64    // of the last whole-update peers event
	log      []string // the last events, shown on failure
}

func newProp(t *testing.T, seed uint64) *prop {
	rng := rand.New(rand.NewPCG(seed, seed*7919))
	graces := []time.Duration{0, time.Second, 10 * time.Second, 30 * time.Second}
	cfg := Config{
		Node:          "a",
		Members:       propMembers(),
		WithdrawGrace: graces[rng.IntN(len(graces))],
		TableGrace:    graces[rng.IntN(len(graces))],
		DrainTimeout:  graces[rng.IntN(len(graces))] * 2,
		RemoveTimeout: graces[rng.IntN(len(graces))] * 3,
		PeerWait:      graces[rng.IntN(len(graces))],
		// The world is read back every 1-5s and compared 0-3s after a
		// change.
		VerifyInterval: time.Duration(1+rng.IntN(5)) * time.Second,
		VerifySettle:   time.Duration(rng.IntN(4)) * time.Second,
	}
	if rng.IntN(3) == 0 {
		cfg.DrainPolicy = DrainDeprefer
	}
	// Weights and slow start: the tables ramp members up in steps.
	if rng.IntN(2) == 0 {
		for i := range cfg.Members {
			cfg.Members[i].Weight = uint32(1 + rng.IntN(400))
		}
	}
	cfg.SlowStart = []time.Duration{0, 0, 8 * time.Second, 40 * time.Second}[rng.IntN(4)]
	cfg.VIPs = randomVIPs(rng)
	p := &prop{t: t, rng: rng, cfg: cfg}
	clock := newFakeClock()
	p.r = &rig{t: p, clock: clock, w: newWorld(clock, cfg.WithdrawGrace), firstInactive: map[netip.Addr]time.Time{}, quiet: true, idle: rng.IntN(2) == 0}
	p.r.w.rng = rand.New(rand.NewPCG(seed, 1))
	p.r.w.noRecord = true
	p.r.verifyEvery = cfg.VerifyInterval
	p.r.start(cfg)
	return p
}

func randomVIPs(rng *rand.Rand) []VIPConfig {
	var out []VIPConfig
	for _, a := range propPool {
		if rng.IntN(3) > 0 {
			out = append(out, VIPConfig{Addr: a, Services: []Service{{Proto: 6, Port: uint16(80 + rng.IntN(2))}}})
		}
	}
	return out
}

// Fatalf shows the recent events with the failure (the rig calls it).
func (p *prop) Fatalf(format string, args ...any) {
	p.t.Helper()
	p.t.Fatalf("%s\nrecent events:\n  %s", fmt.Sprintf(format, args...), joinLast(p.log, 25))
}
func (p *prop) Errorf(format string, args ...any) {
	p.t.Helper()
	p.t.Errorf(format, args...)
}
func (p *prop) Helper() {}

func joinLast(s []string, n int) string {
	if len(s) > n {
		s = s[len(s)-n:]
	}
	out := ""
	for i, x := range s {
		if i > 0 {
			out += "\n  "
		}
		out += x
	}
	return out
}

func (p *prop) note(format string, args ...any) {
	p.log = append(p.log, fmt.Sprintf("[%s] ", p.r.at())+fmt.Sprintf(format, args...))
	if len(p.log) > 200 {
		p.log = p.log[100:]
	}
}

// episode: random events, then quiet until settled, then the convergence
// check.
func (p *prop) episode() {
	p.episodes++
	n := 20 + p.rng.IntN(300)
	for range n {
		p.event()
		p.events++
	}
	p.note("quiet: healing the fakes and settling")
	p.r.w.mu.Lock()
	p.r.w.failRate = 0
	clear(p.r.w.failNext)
	p.r.w.mu.Unlock()
	p.r.verify() // the verifier reads within an interval: the last events are seen
	p.r.settle()
	p.checkConverged()
}

// randomPeer is a random document of member name, or nil (failed).
func (p *prop) randomPeer(name string) *cluster.NodeState {
	rng := p.rng
	if rng.IntN(5) == 0 {
		return nil
	}
	st := &cluster.NodeState{Node: name, VIPs: map[netip.Addr]cluster.VIPState{}}
	for _, a := range propPool {
		if rng.IntN(4) > 0 {
			s := []cluster.ServeState{cluster.StateActive, cluster.StateActive, cluster.StateDraining, cluster.StateInactive}[rng.IntN(4)]
			st.VIPs[a] = cluster.VIPState{State: s, Healthy: rng.IntN(4) > 0}
			if p.cfg.SlowStart > 0 && rng.IntN(2) == 0 {
				// A ramp that started up to two slow starts ago, or
				// slightly in this node's future (clock skew).
				vs := st.VIPs[a]
				vs.RampFrom = p.r.clock.Now().Add(time.Duration(rng.Int64N(int64(2*p.cfg.SlowStart))) - p.cfg.SlowStart*3/2).Round(0)
				st.VIPs[a] = vs
			}
		}
	}
	return st
}

func (p *prop) pick() netip.Addr { return propPool[p.rng.IntN(len(propPool))] }

func (p *prop) event() {
	r, m, rng := p.r, p.r.m, p.rng
	switch k := rng.IntN(100); {
	case k < 8:
		p.cfg.VIPs = randomVIPs(rng)
		p.note("reload %v", addrsOf(p.cfg.VIPs))
		m.applyConfig(p.cfg)
	case k < 14:
		m.nodeDrain = !m.nodeDrain
		p.note("node drain = %v", m.nodeDrain)
	case k < 22:
		a := p.pick()
		if v, ok := m.vips[a]; ok && v.spec != nil {
			m.vipDrains[a] = !m.vipDrains[a]
			p.note("vip drain %s = %v", a, m.vipDrains[a])
		}
	case k < 34:
		a, h := p.pick(), rng.IntN(3) > 0
		p.note("health %s = %v", a, h)
		m.setHealth(a, h, "")
	case k < 48:
		name := propPeers[rng.IntN(len(propPeers))]
		st := p.randomPeer(name)
		if st == nil {
			p.note("peer %s failed", name)
		} else {
			p.note("peer %s = %v", name, st.VIPs)
		}
		m.setPeer(name, st)
	case k < 52:
		// One update of several members (the etcd backend's watch
		// response): one event, one table switch.
		states := map[string]*cluster.NodeState{}
		for _, name := range propPeers {
			if rng.IntN(2) == 0 {
				states[name] = p.randomPeer(name)
			}
		}
		p.revision++
		p.note("peers update at revision %d: %v", p.revision, states)
		m.setPeers(states, p.revision)
	case k < 57:
		a := p.pick()
		if _, held := m.holds[a]; held {
			p.note("release %s", a)
			delete(m.holds, a)
		} else {
			p.note("hold %s", a)
			m.holds[a] = "test hold"
		}
	case k < 66:
		r.w.mu.Lock()
		if rng.IntN(2) == 0 {
			r.w.failRate = []float64{0, 0.05, 0.2, 0.5}[rng.IntN(4)]
			p.note("fail rate %.2f", r.w.failRate)
		} else {
			ops := []string{"SetRoutes", "Bind", "Unbind", "ProgramSpec", "Unprogram", "SetBound", "Exported", "Resync"}
			op := ops[rng.IntN(len(ops))]
			r.w.failNext[op] += 1 + rng.IntN(3)
			p.note("fail next %s", op)
		}
		r.w.mu.Unlock()
	case k < 69:
		p.note("restart")
		// The old process goes away: an embedded BGP speaker's routes
		// go with it, sometimes.
		if rng.IntN(2) == 0 {
			r.w.mu.Lock()
			for a := range r.w.routes {
				delete(r.w.routes, a)
				r.w.withdrawnAt[a] = r.clock.Now()
				r.w.forgetLost(a)
			}
			r.w.mu.Unlock()
		}
		r.w.mu.Lock()
		clear(r.w.ghostSeen) // the new process has not read the daemon yet
		r.w.mu.Unlock()
		r.start(p.cfg)
	case k < 70:
		p.note("shutdown")
		m.stopping, m.nodeDrain = true, true
	case k < 73:
		a := p.pick()
		r.w.mu.Lock()
		r.w.flows[a] = rng.IntN(2)
		r.w.mu.Unlock()
	case k < 77:
		a := p.pick()
		p.note("the routing daemon diverges on %s", a)
		r.w.Diverge(a)
	case k < 78:
		r.w.mu.Lock()
		r.w.sessionsUp = 1 - r.w.sessionsUp
		p.note("sessions up %d", r.w.sessionsUp)
		r.w.mu.Unlock()
	case k < 81:
		p.note("read the world")
		r.verify()
	case k < 89:
		d := time.Duration(rng.IntN(int(40 * time.Second)))
		p.note("run %s", d)
		r.run(d)
		return
	case k < 91:
		// Someone else changes lo behind vipd's back: an operator's
		// `ip addr del` of a VIP, or `ip addr add` of one, or of an
		// address that is no VIP at all.
		a := p.pick()
		switch rng.IntN(4) {
		case 0, 1:
			p.note("someone removes %s from lo", a)
			r.w.RemoveBehind(a)
		case 2:
			p.note("someone adds %s to lo", a)
			r.w.AddBehind(a)
		default:
			p.note("someone adds %s to lo", propStranger)
			r.w.AddBehind(propStranger)
		}
	case k < 92:
		r.w.mu.Lock()
		quiet := r.w.failRate == 0 && len(r.w.failNext) == 0
		if rng.IntN(4) == 0 {
			r.w.failNext["Bound"]++
			quiet = false
		}
		r.w.mu.Unlock()
		p.note("read lo")
		r.readLo()
		r.step()
		p.checkLoRead(quiet)
		return
	default:
		// A jump over deadlines without stepping at each.
		d := time.Duration(rng.IntN(int(2 * time.Minute)))
		p.note("jump %s", d)
		r.clock.Advance(d)
	}
	r.step()
}

// checkLoRead: after a read of lo and the pass that follows it, with no
// call failing, nothing is in the bound set without being on lo (no loop)
// and an address that is no VIP is still there if someone put it there.
func (p *prop) checkLoRead(quiet bool) {
	r := p.r
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	for a := range r.w.dp {
		if quiet && !r.w.lo[a] {
			p.Fatalf("after a read of lo: %s in the bound set but not on lo", a)
		}
	}
	if r.w.foreign[propStranger] && !r.w.lo[propStranger] {
		p.Fatalf("after a read of lo: %s, no VIP, was removed from lo", propStranger)
	}
}

// checkConverged: once events stop and the fakes heal, the world is the
// desired state, computed here from the inputs alone.
func (p *prop) checkConverged() {
	r, m := p.r, p.r.m
	if next := m.nextWake(); !next.IsZero() {
		p.Fatalf("settled but still scheduled at %s", next)
	}
	doc := m.nodeState().VIPs
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	for _, a := range propPool {
		spec := m.cfg.vip(a)
		// An address someone else put on lo is the operator's: vipd
		// leaves it alone while it does not bind it.
		foreign := r.w.foreign[a]
		if spec == nil {
			if r.w.lo[a] && !foreign || r.w.dp[a] {
				p.Fatalf("converged: removed %s still bound (lo=%v bound set=%v); machine: %+v", a, r.w.lo[a], r.w.dp[a], m.vips[a])
			}
			if _, ok := r.w.programs[a]; ok {
				p.Fatalf("converged: removed %s still programmed", a)
			}
			if _, ok := r.w.routes[a]; ok {
				p.Fatalf("converged: removed %s still announced", a)
			}
			if _, ok := doc[a]; ok {
				p.Fatalf("converged: removed %s still published", a)
			}
			continue
		}
		v := m.vips[a]
		serving := !m.nodeDrain && !m.stopping
		wantState := cluster.StateInactive
		if serving {
			wantState = cluster.StateActive
		}
		if got := doc[a]; got.State != wantState || got.Healthy != v.in.healthy {
			p.Fatalf("converged: %s published %+v, want %s healthy=%v", a, got, wantState, v.in.healthy)
		}
		if r.w.lo[a] != serving && !(foreign && !serving) || r.w.dp[a] != serving {
			p.Fatalf("converged: %s lo=%v bound set=%v, want %v", a, r.w.lo[a], r.w.dp[a], serving)
		}
		if m.cfg.SlowStart > 0 && wantState == cluster.StateActive && v.in.healthy && doc[a].RampFrom.IsZero() {
			p.Fatalf("converged: %s primary with slow start but published no ramp_from", a)
		}
		want := expectedTable(a, m.cfg, wantState, v.in.healthy, doc[a].RampFrom, m.now(), m.peers, v.in.inTable)
		prog, ok := r.w.programs[a]
		if len(want) == 0 {
			// Nobody serves it: nothing to program, nothing to announce.
			if ok {
				p.Fatalf("converged: %s programmed %s with no backend left", a, describe(prog.Backends))
			}
			if _, announced := r.w.routes[a]; announced {
				p.Fatalf("converged: %s announced with no backend", a)
			}
			continue
		}
		if !ok {
			p.Fatalf("converged: %s not programmed", a)
		}
		if !slices.Equal(prog.Backends, want) || !slices.Equal(prog.Services, spec.Services) {
			p.Fatalf("converged: %s programmed %s %v, want %s %v", a, describe(prog.Backends), prog.Services, describe(want), spec.Services)
		}
		route, announced := r.w.routes[a]
		draining := m.nodeDrain || m.vipDrains[a]
		wantAnnounced := !m.stopping && m.holds[a] == "" && hasPrimary(want) && (!draining || m.cfg.deprefer())
		if announced != wantAnnounced || announced && route.Draining != draining {
			p.Fatalf("converged: %s announced=%v %+v, want %v (held=%q draining=%v table %s)", a, announced, route, wantAnnounced, m.holds[a], draining, describe(want))
		}
	}
	for a := range r.w.routes {
		if !slices.Contains(propPool, a) {
			p.Fatalf("converged: unknown route %s", a)
		}
	}
	if r.w.foreign[propStranger] && !r.w.lo[propStranger] {
		p.Fatalf("converged: %s, no VIP, was removed from lo", propStranger)
	}
	p.checkClaims()
}

// checkClaims: once settled, every claim in Status matches the fake world:
// advertised is what the advertiser holds, the route check is what the
// routing daemon exports, and nothing is left diverged or unread.
func (p *prop) checkClaims() {
	r, m := p.r, p.r.m
	st := m.status()
	if st.World.Error != "" || st.World.ReadAt.IsZero() {
		p.Fatalf("converged: world unread (%q)", st.World.Error)
	}
	for _, v := range st.VIPs {
		a := v.Addr
		_, held := r.w.routes[a]
		exported, draining := r.w.exports(a)
		if r.w.sessionsUp == 0 {
			exported, draining = false, false
		}
		want := RouteWithdrawn
		switch {
		case held && r.w.sessionsUp == 0:
			want = RouteNoSession
		case held:
			want = RouteAnnounced
		}
		if v.Advertised != held || v.Route != want || v.Diverged || exported != (want == RouteAnnounced) ||
			v.World.Exported != exported || v.World.Draining != draining || v.Depreferred != (held && r.w.routes[a].Draining) {
			p.Fatalf("converged: %s claims advertised=%v depreferred=%v route=%s (%s) world=%+v diverged=%v; the fake holds=%v exports=%v draining=%v sessions=%d",
				a, v.Advertised, v.Depreferred, v.Route, v.RouteReason, v.World, v.Diverged, held, exported, draining, r.w.sessionsUp)
		}
	}
}

// expectedTable is the table a VIP should have, written from the rules in
// the brief rather than from tableFor: local by published state and health,
// peers by their document, failed peers secondary if they were there.
//
// Weights: the configured ones; a primary with slow start on whose
// ramp_from is less than the slow start ago has the step's share of it:
// (2k+1)/16 in step k of 8, at least 1.
func expectedTable(a netip.Addr, cfg Config, self cluster.ServeState, healthy bool, selfFrom, now time.Time, peers map[string]*cluster.NodeState, was map[string]bool) []Backend {
	var out []Backend
	for _, mem := range cfg.Members { // propMembers, in name order
		w := mem.Weight
		if w == 0 {
			w = DefaultWeight
		}
		from := selfFrom
		under := mem.Addr4
		if a.Is6() {
			under = mem.Addr6
		}
		if !under.IsValid() {
			continue
		}
		b := Backend{Name: mem.Name, Addr: under, Local: mem.Name == cfg.Node, Weight: w}
		state, h := self, healthy
		if !b.Local {
			st, heard := peers[mem.Name]
			switch {
			case !heard:
				continue
			case st == nil:
				if was[mem.Name] {
					b.Role = RoleSecondary
					out = append(out, b)
				}
				continue
			}
			s, ok := st.VIPs[a]
			if !ok {
				continue
			}
			state, h, from = s.State, s.Healthy, s.RampFrom
		}
		switch {
		case state == cluster.StateActive && h:
			b.Role = RolePrimary
			if el := now.Sub(from); cfg.SlowStart > 0 && !from.IsZero() && el < cfg.SlowStart {
				step := max(el, 0) * 8 / cfg.SlowStart
				b.Weight = max(1, uint32(uint64(w)*uint64(2*step+1)/16))
			}
		case state == cluster.StateActive || state == cluster.StateDraining:
			b.Role = RoleSecondary
		default:
			continue
		}
		out = append(out, b)
	}
	return out
}

func addrsOf(v []VIPConfig) []netip.Addr {
	var out []netip.Addr
	for _, c := range v {
		out = append(out, c.Addr)
	}
	return out
}
