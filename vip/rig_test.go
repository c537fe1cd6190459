package vip

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
)

var (
	vip4 = netip.MustParseAddr("192.0.2.10")
	vip6 = netip.MustParseAddr("2001:db8::10")
)

// testConfig is a three-node cluster (a, b, c) seen from a.
func testConfig() Config {
	return Config{
		Node: "a",
		VIPs: []VIPConfig{
			{Addr: vip4, Services: []Service{{Proto: 6, Port: 80}}},
			{Addr: vip6, Services: []Service{{Proto: 6, Port: 443}}},
		},
		Members: []Member{
			{Name: "a", Addr4: netip.MustParseAddr("10.0.0.1"), Addr6: netip.MustParseAddr("fd00::1")},
			{Name: "b", Addr4: netip.MustParseAddr("10.0.0.2"), Addr6: netip.MustParseAddr("fd00::2")},
			{Name: "c", Addr4: netip.MustParseAddr("10.0.0.3"), Addr6: netip.MustParseAddr("fd00::3")},
		},
		WithdrawGrace: 10 * time.Second,
		TableGrace:    30 * time.Second,
		DrainTimeout:  60 * time.Second,
		RemoveTimeout: 20 * time.Second,
	}
}

// rig drives a machine synchronously over a world with a fake clock and
// checks every invariant, from the machine's and the world's view, after
// every step.
type rig struct {
	t     tb
	clock *fakeClock
	w     *world
	m     *machine
	trans []Transition
	idle  bool // give the machine the world as IdleChecker
	// firstInactive: when the world first saw each VIP published as not
	// active/draining (absent counts), for invariant 2.
	lastDoc       map[netip.Addr]cluster.VIPState
	firstInactive map[netip.Addr]time.Time
	// served and drainingSince follow each VIP's published state within
	// one machine's life, for the drain sequence check.
	served        map[netip.Addr]cluster.ServeState
	drainingSince map[netip.Addr]time.Time
	steps         int
	quiet         bool // keep transitions out of r.trans (property test)
	// verifyEvery > 0 reads the world back (verify) every so often while
	// running, as the Controller's verifier does; nextRead is when next.
	verifyEvery time.Duration
	nextRead    time.Time
	reads       int
}

func newRig(t *testing.T, cfg Config) *rig {
	clock := newFakeClock()
	r := &rig{t: t, clock: clock, w: newWorld(clock, cfg.WithdrawGrace), firstInactive: map[netip.Addr]time.Time{}}
	r.start(cfg)
	return r
}

// start makes a new machine over the world (first start or restart) and
// adopts the world's state, as Run does.
func (r *rig) start(cfg Config) {
	d := Deps{Advertiser: r.w, Binder: r.w, Dataplane: r.w, Clock: r.clock, Logger: hclog.NewNullLogger()}
	if r.idle {
		d.Idle = r.w
	}
	r.m = newMachine(cfg, d)
	// A new process knows nothing of what the old one published.
	r.served, r.drainingSince = map[netip.Addr]cluster.ServeState{}, map[netip.Addr]time.Time{}
	// Quiet rigs rely on the machine counting a transition without a
	// reason as a violation.
	if !r.quiet {
		r.m.onTransition = func(tr Transition) {
			if tr.Reason == "" {
				r.t.Errorf("transition without reason: %+v", tr)
			}
			r.trans = append(r.trans, tr)
		}
	}
	bound, _ := r.w.Bound(context.Background())
	programmed, _ := r.w.Programmed(context.Background())
	r.m.adopt(bound, programmed)
}

// verify does what the Controller's verifier does, synchronously: the
// Resync the loop asked for, then a read of the world handed to the loop.
func (r *rig) verify() {
	ctx := context.Background()
	if r.m.takeResync() {
		r.m.resynced(r.w.Resync(ctx))
	}
	at := r.clock.Now()
	ex, err := r.w.Exported(ctx)
	r.m.setWorld(at, ex, err)
	r.reads++
	r.readLo()
	r.nextRead = r.clock.Now().Add(r.verifyEvery)
}

// readLo does what the Controller's lo watcher does, synchronously: a
// read of lo handed to the loop.
func (r *rig) readLo() {
	seq := r.m.loOps.Load()
	addrs, err := r.w.Bound(context.Background())
	r.m.seeLo(seq, addrs, err)
}

// readIfDue reads the world if a periodic read is due, and runs the pass
// that follows the event.
func (r *rig) readIfDue() {
	if r.verifyEvery > 0 && !r.clock.Now().Before(r.nextRead) {
		r.verify()
		r.step()
	}
}

// wake is when the rig must act next: the machine's next wake or the next
// periodic read.
func (r *rig) wake() time.Time {
	next := r.m.nextWake()
	if r.verifyEvery > 0 && (next.IsZero() || r.nextRead.Before(next)) {
		next = r.nextRead
	}
	return next
}

// checking: a route check waits for a read (pending) or a fix (diverged),
// or a stray route for a Resync.
func (r *rig) checking() bool {
	if len(r.m.strays()) > 0 {
		return true
	}
	for _, v := range r.m.vips {
		if v.check.word == RoutePending || v.check.word == RouteDiverged {
			return true
		}
	}
	return false
}

// step runs one reconcile pass and checks everything.
func (r *rig) step() {
	r.t.Helper()
	r.steps++
	r.m.reconcile(context.Background())
	r.check()
}

func (r *rig) check() {
	r.t.Helper()
	for _, err := range r.m.checkInvariants() {
		r.t.Fatalf("step %d at %s: machine: %v", r.steps, r.at(), err)
	}
	r.w.mu.Lock()
	v := r.w.violations
	r.w.violations = nil
	r.w.mu.Unlock()
	for _, s := range v {
		r.t.Fatalf("step %d: world: %s", r.steps, s)
	}
	if r.m.violations > 0 {
		r.t.Fatalf("step %d: the machine refused %d steps that would break an invariant", r.steps, r.m.violations)
	}
	// Invariant 2 from the peers' view: while the published document says
	// active/draining, and for the table grace after, the VIP is bound.
	now := r.clock.Now()
	doc := r.m.nodeState().VIPs
	for a := range unionKeys(doc, r.lastDoc) {
		s, ok := doc[a]
		if ok && (s.State == cluster.StateActive || s.State == cluster.StateDraining) {
			delete(r.firstInactive, a)
		} else if _, seen := r.firstInactive[a]; !seen {
			if old, was := r.lastDoc[a]; was && old.State != cluster.StateInactive {
				r.firstInactive[a] = now
			}
		}
	}
	r.lastDoc = doc
	r.checkDrainSequence(doc, now)
	r.w.mu.Lock()
	defer r.w.mu.Unlock()
	for a, s := range doc {
		if (s.State == cluster.StateActive || s.State == cluster.StateDraining) && !(r.w.lo[a] && r.w.dp[a]) && !r.w.behind[a] {
			r.t.Fatalf("step %d: invariant 2: %s published %s but lo=%v bound=%v", r.steps, a, s.State, r.w.lo[a], r.w.dp[a])
		}
	}
	for a, t := range r.firstInactive {
		if now.Before(t.Add(r.m.cfg.TableGrace)) && !(r.w.lo[a] && r.w.dp[a]) && !r.w.behind[a] {
			r.t.Fatalf("step %d: invariant 2: %s inactive since %s, within table grace, but lo=%v bound=%v", r.steps, a, now.Sub(t), r.w.lo[a], r.w.dp[a])
		}
	}
}

// checkDrainSequence: going down, a VIP (drained or removed by a reload)
// is published draining before inactive, and stays draining for its
// timeout unless the IdleChecker found it idle.
func (r *rig) checkDrainSequence(doc map[netip.Addr]cluster.VIPState, at time.Time) {
	r.t.Helper()
	minDrain := min(r.m.cfg.DrainTimeout, r.m.cfg.RemoveTimeout)
	for a, was := range r.served {
		// Absent (forgotten) reads as inactive to the peers.
		now := cluster.StateInactive
		if s, ok := doc[a]; ok {
			now = s.State
		} else {
			delete(r.served, a)
		}
		switch {
		case was == cluster.StateActive && now == cluster.StateInactive:
			r.t.Fatalf("step %d: %s went from active to inactive without draining", r.steps, a)
		case was == cluster.StateDraining && now == cluster.StateInactive:
			if d := at.Sub(r.drainingSince[a]); d < minDrain && !r.idle {
				r.t.Fatalf("step %d: %s drained for %s only, timeouts drain %s / remove %s", r.steps, a, d, r.m.cfg.DrainTimeout, r.m.cfg.RemoveTimeout)
			}
		}
	}
	for a, s := range doc {
		if s.State == cluster.StateDraining && r.served[a] != cluster.StateDraining {
			r.drainingSince[a] = at
		}
		r.served[a] = s.State
	}
}

// runUntil steps at every deadline the machine asks for up to target, and
// then at target.
func (r *rig) runUntil(target time.Time) {
	r.t.Helper()
	for i := 0; ; i++ {
		r.step()
		r.readIfDue()
		next := r.wake()
		if next.IsZero() || next.After(target) {
			break
		}
		if i > 100000 {
			r.t.Fatalf("no progress towards %s: wakes at %s", target, next)
		}
		r.clock.Set(next)
	}
	if r.clock.Now().Before(target) {
		r.clock.Set(target)
		r.step()
		r.readIfDue()
	}
}

func (r *rig) run(d time.Duration) { r.runUntil(r.clock.Now().Add(d)) }

// settle steps until nothing is scheduled and no route check waits for
// the world.
func (r *rig) settle() {
	r.t.Helper()
	for i := 0; ; i++ {
		r.step()
		r.readIfDue()
		next := r.m.nextWake()
		if next.IsZero() && r.verifyEvery > 0 && (r.checking() || r.m.world.err != "") {
			next = r.nextRead
		}
		if next.IsZero() {
			return
		}
		if i > 100000 {
			r.t.Fatalf("does not settle: wakes at %s", next)
		}
		r.clock.Set(next)
	}
}

func (r *rig) at() string { return r.clock.Now().Sub(epoch).String() }

// since is the offset of t from the start of the test.
func since(t time.Time) time.Duration { return t.Sub(epoch) }

// transitions returns "facet from->to (reason) @offset" for VIP a.
func (r *rig) transitions(a netip.Addr) []string {
	var out []string
	for _, tr := range r.trans {
		if tr.VIP == a {
			out = append(out, fmt.Sprintf("%s %s->%s (%s) @%s", tr.Facet, tr.From, tr.To, tr.Reason, since(tr.At)))
		}
	}
	return out
}

func (r *rig) vip(a netip.Addr) *vipState { return r.m.vips[a] }

func unionKeys[V any](a, b map[netip.Addr]V) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// peerState is a member's document with every VIP in state s.
func peerState(name string, s cluster.ServeState, healthy bool, vips ...netip.Addr) *cluster.NodeState {
	st := &cluster.NodeState{Node: name, Generation: 1, VIPs: map[netip.Addr]cluster.VIPState{}}
	for _, a := range vips {
		st.VIPs[a] = cluster.VIPState{State: s, Healthy: healthy}
	}
	return st
}

// tb is what the rig needs of a test: the property test wraps it to show
// the recent events on failure.
type tb interface {
	Helper()
	Fatalf(format string, args ...any)
	Errorf(format string, args ...any)
}
