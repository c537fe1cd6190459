package vip

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/vipd/vipd/routing"
)

// fakeClock is a Clock the test moves by hand.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	clock   *fakeClock // its mu guards stopped
	c       chan time.Time
	at      time.Time
	stopped bool
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }
func (t *fakeTimer) Stop() bool {
	t.clock.mu.Lock()
	defer t.clock.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) Timer {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{clock: c, c: make(chan time.Time, 1), at: c.now.Add(d)}
	if d <= 0 {
		t.c <- c.now
		t.stopped = true
		return t
	}
	c.timers = append(c.timers, t)
	return t
}

// Set moves the clock to t (never backwards) and fires due timers.
func (c *fakeClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	keep := c.timers[:0]
	for _, tm := range c.timers {
		switch {
		case tm.stopped:
		case !tm.at.After(c.now):
			tm.stopped = true
			tm.c <- c.now
		default:
			keep = append(keep, tm)
		}
	}
	c.timers = keep
}

func (c *fakeClock) Advance(d time.Duration) { c.Set(c.Now().Add(d)) }

var errInjected = errors.New("injected failure")

// world is what the fakes hold: the addresses on lo, the dataplane's
// programs and bound set, the announced routes and what the routing daemon
// exports of them. It implements Advertiser, Binder, Dataplane and
// IdleChecker, records every call, can be told to fail or to lose routes
// (diverge), and checks the invariants from its own view after every
// operation.
type world struct {
	mu            sync.Mutex
	clock         *fakeClock
	withdrawGrace time.Duration

	lo map[netip.Addr]bool
	// behind: removed from lo by someone else (RemoveBehind) and not
	// back on lo and in the bound set since (or unbound by vipd): the
	// world broke invariants 2 and 3, the machine repairs them once it
	// reads lo. foreign: put on lo by someone else
	// (AddBehind) and not unbound by vipd since.
	behind, foreign map[netip.Addr]bool
	dp              map[netip.Addr]bool
	programs        map[netip.Addr]ProgramSpec
	routes          map[netip.Addr]routing.Route
	withdrawnAt     map[netip.Addr]time.Time
	flows           map[netip.Addr]int
	// lost: the simulated routing daemon disagrees with the advertiser
	// about the route (an announced one is not exported, a withdrawn one
	// still is: a ghost) until a Resync or a SetRoutes that changes it.
	lost map[netip.Addr]bool
	// ghostSeen: a ghost that the last Exported reported (cleared by a
	// failed one): the controller knows, and unprogramming it breaks
	// invariant 4 (and within the withdraw grace after a read stops
	// reporting it).
	ghostSeen  map[netip.Addr]bool
	ghostDrain map[netip.Addr]bool // a ghost's drain attributes
	sessionsUp int
	// noSession is why no session is up, as an advertiser says it.
	noSession string

	calls      []string
	noRecord   bool // the property test keeps no call log
	violations []string

	failNext map[string]int // op -> number of next calls that fail
	failRate float64        // probability of any call failing
	rng      *rand.Rand
}

func newWorld(clock *fakeClock, withdrawGrace time.Duration) *world {
	return &world{
		clock: clock, withdrawGrace: withdrawGrace,
		lo: map[netip.Addr]bool{}, dp: map[netip.Addr]bool{},
		behind: map[netip.Addr]bool{}, foreign: map[netip.Addr]bool{},
		programs: map[netip.Addr]ProgramSpec{}, routes: map[netip.Addr]routing.Route{},
		withdrawnAt: map[netip.Addr]time.Time{}, flows: map[netip.Addr]int{},
		lost: map[netip.Addr]bool{}, ghostSeen: map[netip.Addr]bool{}, ghostDrain: map[netip.Addr]bool{},
		sessionsUp: 1,
		failNext:   map[string]int{},
	}
}

// failing reports whether this call of op fails; caller holds mu.
func (w *world) failing(op string) bool {
	if w.failNext[op] > 0 {
		w.failNext[op]--
		return true
	}
	return w.rng != nil && w.failRate > 0 && w.rng.Float64() < w.failRate
}

func (w *world) record(format string, args ...any) {
	if w.noRecord {
		return
	}
	w.calls = append(w.calls, fmt.Sprintf(format, args...))
}

// check asserts invariants 1, 2 (own table), 3 and records violations;
// caller holds mu.
func (w *world) check(after string) {
	bad := func(format string, args ...any) {
		w.violations = append(w.violations, fmt.Sprintf("after %s at %s: ", after, w.clock.Now().Format("15:04:05.000"))+fmt.Sprintf(format, args...))
	}
	for a := range w.routes {
		p, ok := w.programs[a]
		if !ok || !hasPrimary(p.Backends) {
			bad("invariant 1: %s announced, programmed=%v table %s", a, ok, describe(p.Backends))
		}
	}
	for a := range w.dp {
		if !w.lo[a] && !w.behind[a] {
			bad("invariant 3: %s in the dataplane bound set but not on lo", a)
		}
	}
	for a, p := range w.programs {
		if hasLocal(p.Backends) && !(w.lo[a] && w.dp[a]) && !w.behind[a] {
			bad("invariant 2: this node is in %s's table but lo=%v bound=%v", a, w.lo[a], w.dp[a])
		}
	}
}

func (w *world) SetRoutes(_ context.Context, routes []routing.Route) ([]routing.Route, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("SetRoutes %v", routes)
	want := map[netip.Addr]routing.Route{}
	for _, r := range routes {
		want[r.Prefix.Addr()] = r
	}
	fail := w.failing("SetRoutes")
	now := w.clock.Now()
	// A failing call applies a random part of the change.
	for _, a := range sortedKeys(w.routes) { // sorted: a seed replays exactly
		if _, ok := want[a]; !ok && (!fail || w.rng != nil && w.rng.IntN(2) == 0) {
			w.ghostDrain[a] = w.routes[a].Draining
			delete(w.routes, a)
			w.withdrawnAt[a] = now
			w.forgetLost(a)
		}
	}
	for _, a := range sortedKeys(want) {
		if !fail || w.rng != nil && w.rng.IntN(2) == 0 {
			if _, was := w.routes[a]; !was || w.routes[a] != want[a] {
				w.forgetLost(a)
			}
			w.routes[a] = want[a]
		}
	}
	w.check("SetRoutes")
	var out []routing.Route
	for _, a := range sortedKeys(w.routes) {
		out = append(out, w.routes[a])
	}
	if fail {
		return out, fmt.Errorf("announcing: %w", errInjected)
	}
	return out, nil
}

// forgetLost: the daemon was given a new instruction for a and follows it
// again; a ghost it had reported ends now. Caller holds mu.
func (w *world) forgetLost(a netip.Addr) {
	if w.ghostSeen[a] {
		w.withdrawnAt[a] = w.clock.Now()
	}
	delete(w.lost, a)
	delete(w.ghostSeen, a)
}

// exports reports whether the simulated daemon holds a's route, and with
// which drain attributes. Caller holds mu.
func (w *world) exports(a netip.Addr) (ok, draining bool) {
	r, announced := w.routes[a]
	if announced == w.lost[a] {
		return false, false
	}
	if !announced {
		return true, w.ghostDrain[a]
	}
	return true, r.Draining
}

// Diverge makes the simulated daemon lose a's route, or keep it after a
// withdraw (as routingtest.Recorder.Diverge).
func (w *world) Diverge(a netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.lost[a] = true
}

func (w *world) Exported(context.Context) (routing.Exported, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("Exported")
	if w.failing("Exported") {
		// The controller falls back to its claims while the world is
		// unknown: what it was told of ghosts no longer binds it.
		clear(w.ghostSeen)
		return routing.Exported{}, fmt.Errorf("reading the daemon: %w", errInjected)
	}
	ex := routing.Exported{At: w.clock.Now(), SessionsUp: w.sessionsUp, Routes: map[netip.Prefix]routing.ExportedRoute{}}
	if w.sessionsUp == 0 {
		ex.NoSession4, ex.NoSession6 = w.noSession, w.noSession
	}
	reported := w.ghostSeen
	w.ghostSeen = map[netip.Addr]bool{}
	defer func() {
		for a := range reported {
			if !w.ghostSeen[a] {
				w.withdrawnAt[a] = w.clock.Now() // as far as the controller knows
			}
		}
	}()
	held := unionKeys(w.lost, w.lost)
	for a := range w.routes {
		held[a] = true
	}
	for a := range held {
		ok, draining := w.exports(a)
		if !ok {
			continue
		}
		if w.sessionsUp == 0 {
			continue // held, but exported to nobody (nor reported)
		}
		if _, announced := w.routes[a]; !announced {
			w.ghostSeen[a] = true
		}
		ex.Routes[netip.PrefixFrom(a, a.BitLen())] = routing.ExportedRoute{Peers: []string{"r1"}, Draining: draining}
	}
	return ex, nil
}

func (w *world) Resync(context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("Resync")
	if w.failing("Resync") {
		return fmt.Errorf("resyncing: %w", errInjected)
	}
	for a := range w.lost {
		w.forgetLost(a)
	}
	return nil
}

func (w *world) Bind(_ context.Context, a netip.Addr) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("Bind %s", a)
	if w.failing("Bind") {
		return errInjected
	}
	w.lo[a] = true
	w.check("Bind")
	return nil
}

func (w *world) Unbind(_ context.Context, a netip.Addr) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("Unbind %s", a)
	if w.failing("Unbind") {
		return errInjected
	}
	delete(w.lo, a)
	delete(w.foreign, a)
	delete(w.behind, a)
	w.check("Unbind " + a.String())
	return nil
}

func (w *world) Bound(context.Context) ([]netip.Addr, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.failNext["Bound"] > 0 { // never by failRate: the rig's adopt must see lo
		w.failNext["Bound"]--
		return nil, errInjected
	}
	return sortedKeys(w.lo), nil
}

// RemoveBehind removes a from lo as an operator's `ip addr del` does,
// behind the machine's back.
func (w *world) RemoveBehind(a netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.lo[a] {
		delete(w.lo, a)
		w.behind[a] = true
	}
}

// AddBehind puts a on lo as an operator's `ip addr add` does.
func (w *world) AddBehind(a netip.Addr) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lo[a] {
		w.lo[a] = true
		w.foreign[a] = true
	}
}

func (w *world) Program(_ context.Context, p ProgramSpec) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("ProgramSpec %s %s", p.Addr, describe(p.Backends))
	if w.failing("ProgramSpec") {
		return errInjected
	}
	if len(p.Backends) == 0 {
		// As the real dataplane: a table needs a backend.
		return errors.New("no backend")
	}
	w.programs[p.Addr] = p
	w.check("ProgramSpec " + p.Addr.String())
	return nil
}

func (w *world) Unprogram(_ context.Context, a netip.Addr) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("Unprogram %s", a)
	if w.failing("Unprogram") {
		return errInjected
	}
	if _, ok := w.routes[a]; ok {
		w.violations = append(w.violations, fmt.Sprintf("invariant 4: unprogramming %s while announced", a))
	} else if w.ghostSeen[a] {
		w.violations = append(w.violations, fmt.Sprintf("invariant 4: unprogramming %s while the routing daemon still exports it (reported)", a))
	} else if at, ok := w.withdrawnAt[a]; ok && w.clock.Now().Before(at.Add(w.withdrawGrace)) {
		w.violations = append(w.violations, fmt.Sprintf("invariant 4: unprogramming %s %s after its withdraw", a, w.clock.Now().Sub(at)))
	}
	delete(w.programs, a)
	w.check("Unprogram")
	return nil
}

func (w *world) SetBound(_ context.Context, addrs []netip.Addr) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.record("SetBound %v", addrs)
	if w.failing("SetBound") {
		// Whether the new set got in is unknown to the caller.
		if w.rng != nil && w.rng.IntN(2) == 0 {
			w.setBound(addrs)
		}
		return errInjected
	}
	w.setBound(addrs)
	return nil
}

func (w *world) setBound(addrs []netip.Addr) {
	w.dp = map[netip.Addr]bool{}
	for _, a := range addrs {
		w.dp[a] = true
		if w.lo[a] {
			delete(w.behind, a) // bound again
		}
	}
	w.check("SetBound")
}

func (w *world) Programmed(context.Context) ([]netip.Addr, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return sortedKeys(w.programs), nil
}

func (w *world) ActiveFlows(_ context.Context, a netip.Addr) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.flows[a], nil
}

func (w *world) takeCalls() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	c := w.calls
	w.calls = nil
	return c
}

func sortedKeys[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}
