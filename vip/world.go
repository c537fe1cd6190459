package vip

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/routing"
)

// Claims checked against the world. The advertised facet is what SetRoutes
// reported (the claim); the world is what the routing daemon really exports,
// read back with Advertiser.Exported by the Controller's verifier goroutine
// every VerifyInterval and handed to the loop as an event (setWorld), so the
// loop never waits on the daemon. After VerifySettle since a VIP's route last
// changed, the want (what the decisions asked for), the claim and the world
// must agree; a disagreement seen by two reads in a row is a divergence: a
// reason in Status, a counter, and, when the world disagrees with the claim,
// a Resync with backoff.

// RouteCheck is a VIP's route as checked against the world.
type RouteCheck string

// Route checks. Only RouteAnnounced says the route attracts traffic: the
// claim and the world agree and at least one session has it.
const (
	// RouteAnnounced: announced, and the routing daemon exports it to at
	// least one up session.
	RouteAnnounced RouteCheck = "announced"
	// RouteWithdrawn: withdrawn, and the routing daemon exports it to no
	// session.
	RouteWithdrawn RouteCheck = "withdrawn"
	// RoutePending: the route changed less than VerifySettle ago, or the
	// world was not read since, or a disagreement waits for a second read.
	RoutePending RouteCheck = "pending"
	// RouteNoSession: announced, but no session is up to export it to.
	RouteNoSession RouteCheck = "no-session"
	// RouteDiverged: want, claim and world disagree (the reason says how);
	// a Resync is under way when the world is the odd one out.
	RouteDiverged RouteCheck = "diverged"
	// RouteUnknown: the world cannot be read (the reason says why); the
	// claim is not confirmed.
	RouteUnknown RouteCheck = "unknown"
)

// String returns the check's word.
func (r RouteCheck) String() string { return string(r) }

// worldView is what the routing daemon exported for one VIP at the last
// successful read.
type worldView struct {
	at       time.Time // when that read started; zero: never read
	exported bool      // exported to at least one up session
	draining bool      // with the drain attributes
	mismatch string    // exported with attributes other than the advertiser's
	peers    []string  // the sessions that have it
	sessions int       // up sessions of the VIP's family
}

// routeCheck is the loop's verdict on one VIP's route.
type routeCheck struct {
	word RouteCheck
	why  string
	// want is the announcement the last planned pass wanted, wantAt when
	// it last changed.
	want   advState
	wantAt time.Time
	// suspect is a disagreement seen by read number suspectRead, waiting
	// for a later read to confirm it.
	suspect     string
	suspectRead uint64
	diverged    bool // a confirmed divergence, until a read agrees
	worldOdd    bool // the world disagrees with the claim (Resync helps)
	since       time.Time
	count       uint64 // divergences confirmed since vipd started
}

// worldState is what the loop knows of the routing daemon as a whole.
type worldState struct {
	at         time.Time // when the last successful read started
	err        string    // the last read failed: why (the world is unknown)
	sessionsUp int
	read       routing.Exported // the last successful read (per-family sessions)
	reads      uint64           // successful reads
	// exported is every VIP route of the last read, by address (a VIP
	// created later starts from it); stray are those of no known VIP.
	exported map[netip.Addr]routing.ExportedRoute
	stray    []netip.Addr
}

// resyncState paces Resync calls.
type resyncState struct {
	asked   bool      // the loop must hand a Resync to the verifier
	next    time.Time // no Resync before this (backoff)
	backoff time.Duration
	count   uint64
	lastErr string
}

const maxResyncBackoff = time.Minute

// kind of a route view, for the divergence bookkeeping.
type checkKind uint8

const (
	kindAgree   checkKind = iota // nothing to report
	kindPending                  // cannot tell yet
	kindUnknown                  // cannot tell at all
	kindClaim                    // the advertiser did not reach the want
	kindWorld                    // the world disagrees with the claim
)

// worldAdv is how the world exports v's route: according to a read that
// started after the claim last changed, or, until such a read confirms the
// change, as the route was before it. A read from before the change says
// nothing about after it. When the world cannot be read (or is not read at
// all) and no read confirmed the change, the claim alone decides (advNone
// here).
func (m *machine) worldAdv(v *vipState) advState {
	w := v.world
	switch {
	case !w.at.IsZero() && !w.at.Before(v.live.advAt):
		if !w.exported {
			return advNone
		}
		if w.draining {
			return advDeprefer
		}
		return advNormal
	case m.cfg.VerifyInterval > 0 && m.world.err == "":
		return v.live.prevAdv
	}
	return advNone
}

// stillAnnounced: does v's route still attract traffic, by the claim or by the
// world? A route the world still exports, or may still export because no
// read confirmed its withdraw yet, counts as announced for invariant 4 (no
// unprogram) and the drain sequence, whatever the claim.
func (m *machine) stillAnnounced(v *vipState) bool {
	return v.live.adv != advNone || m.worldAdv(v) != advNone
}

// stillAnnouncedNormal: is v's route announced with its normal attributes, by the
// claim or by the world (a drain waits until it is not)?
func (m *machine) stillAnnouncedNormal(v *vipState) bool {
	return v.live.adv == advNormal || m.worldAdv(v) == advNormal
}

// setWorld takes the result of a read of the routing daemon that started at
// at. A route that the world stopped exporting only now starts its withdraw
// grace now.
func (m *machine) setWorld(at time.Time, ex routing.Exported, err error) {
	if err != nil {
		if m.world.err == "" {
			m.log.Warn("reading the routing daemon back failed: the routes are unconfirmed", "error", err)
		}
		m.world.err = err.Error()
		return
	}
	if at.Before(m.world.at) {
		return // older than what the loop knows
	}
	if m.world.err != "" {
		m.log.Info("reading the routing daemon back again")
	}
	m.world.err, m.world.at, m.world.sessionsUp = "", at, ex.SessionsUp
	m.world.read = ex
	m.world.reads++
	now := m.now()
	for _, a := range m.world.stray {
		if _, ok := ex.Routes[routing.HostPrefix(a)]; !ok {
			m.recentlyOff(a, now)
		}
	}
	m.world.exported = make(map[netip.Addr]routing.ExportedRoute, len(ex.Routes))
	m.world.stray = nil
	for p, r := range ex.Routes {
		m.world.exported[p.Addr()] = r
		if _, ok := m.vips[p.Addr()]; !ok {
			m.world.stray = append(m.world.stray, p.Addr())
		}
	}
	slices.SortFunc(m.world.stray, netip.Addr.Compare)
	for _, v := range m.sorted() {
		was := m.worldAdv(v)
		m.seeWorld(v)
		is := m.worldAdv(v)
		if was != advNone && is == advNone && v.live.adv == advNone && v.live.advOff.Before(now) {
			v.live.advOff = now
		}
		if was == advNormal && is != advNormal && v.live.adv != advNormal && v.live.normalOff.Before(now) {
			v.live.normalOff = now
		}
	}
}

// seeWorld sets v's view of the world from the last read.
func (m *machine) seeWorld(v *vipState) {
	if m.world.at.IsZero() {
		return
	}
	r, ok := m.world.exported[v.addr]
	v.world = worldView{at: m.world.at, exported: ok, draining: ok && r.Draining, mismatch: r.Mismatch,
		peers: slices.Clone(r.Peers), sessions: m.world.read.SessionsFor(routing.HostPrefix(v.addr))}
}

// recentlyOff remembers that the route of addr, a VIP the machine does not
// keep (forgotten, or never known), was announced until at: a VIP created
// for addr within the withdraw grace counts its route withdrawn from then
// (invariant 4).
func (m *machine) recentlyOff(addr netip.Addr, at time.Time) {
	now := m.now()
	for a, t := range m.offAt {
		if !now.Before(t.Add(m.cfg.WithdrawGrace)) {
			delete(m.offAt, a)
		}
	}
	if now.Before(at.Add(m.cfg.WithdrawGrace)) {
		m.offAt[addr] = at
	}
}

// resynced takes the result of a Resync the loop asked for.
func (m *machine) resynced(err error) {
	if err != nil {
		m.resync.lastErr = err.Error()
		m.log.Warn("resyncing the advertiser failed", "error", err)
		return
	}
	m.resync.lastErr = ""
}

// routeView compares v's want, claim and world.
func (m *machine) routeView(v *vipState) (RouteCheck, string, checkKind) {
	claim := v.live.adv
	switch {
	case m.advUnknown:
		return RoutePending, "not announced since the start yet", kindPending
	case m.world.err != "":
		return RouteUnknown, "reading the routing daemon: " + m.world.err, kindUnknown
	case m.world.at.IsZero() && m.cfg.VerifyInterval <= 0:
		return RouteUnknown, "the routing daemon is not read back (no verify interval)", kindUnknown
	case m.world.at.IsZero():
		return RoutePending, "the routing daemon was not read yet", kindPending
	}
	changed := v.live.advAt
	if v.check.wantAt.After(changed) {
		changed = v.check.wantAt
	}
	if m.world.at.Before(changed.Add(m.cfg.VerifySettle)) {
		return RoutePending, "changed: checking against the routing daemon", kindPending
	}
	w := v.world
	switch {
	case v.check.want != claim:
		return RouteDiverged, fmt.Sprintf("wanted %s, but the advertiser reports %s", v.check.want, claim), kindClaim
	case claim != advNone && !w.exported && w.sessions == 0:
		why := "no session up for its address family"
		if r := m.world.read.NoSessionFor(routing.HostPrefix(v.addr)); r != "" {
			why += ": " + r
		}
		return RouteNoSession, why, kindAgree
	case claim != advNone && !w.exported:
		return RouteDiverged, "announced, but no up session exports it", kindWorld
	case claim == advNone && w.exported:
		return RouteDiverged, "withdrawn, but still exported to " + strings.Join(w.peers, ", "), kindWorld
	case w.exported && w.mismatch != "":
		return RouteDiverged, "exported with other attributes: " + w.mismatch, kindWorld
	case claim == advNormal && w.draining:
		return RouteDiverged, "announced, but exported with the drain attributes", kindWorld
	case claim != advNone:
		return RouteAnnounced, "exported to " + strings.Join(w.peers, ", "), kindAgree
	}
	return RouteWithdrawn, "exported to no session", kindAgree
}

// checkRoutes updates every VIP's route check after a pass: a
// disagreement is confirmed by a second read, then counted, logged and
// kept until a read agrees; a world that disagrees with the claim asks for
// a Resync, with backoff.
func (m *machine) checkRoutes() {
	now := m.now()
	var odd []string
	for _, v := range m.sorted() {
		c := &v.check
		word, why, kind := m.routeView(v)
		switch kind {
		case kindAgree:
			if c.diverged {
				m.log.Info("route agrees with the routing daemon again", "vip", v.addr, "route", word, "reason", why)
			}
			c.diverged, c.worldOdd, c.suspect = false, false, ""
		case kindPending:
			if c.diverged {
				word, why = RouteDiverged, c.why // until a settled read agrees
			}
		case kindUnknown:
			c.suspect = ""
		case kindClaim, kindWorld:
			switch {
			case c.diverged:
			case c.suspect != why || c.suspectRead == m.world.reads:
				if c.suspect != why {
					c.suspect, c.suspectRead = why, m.world.reads
				}
				word, why = RoutePending, why+" (checking again)"
			default:
				c.diverged, c.since = true, now
				c.count++
				m.log.Warn("route diverges from the routing daemon", "vip", v.addr, "reason", why)
			}
			c.worldOdd = c.diverged && kind == kindWorld
		}
		c.word, c.why = word, why
		if c.worldOdd {
			odd = append(odd, v.addr.String())
		}
	}
	for _, a := range m.world.stray {
		if _, ok := m.vips[a]; !ok {
			odd = append(odd, a.String()+" (no VIP here)")
		}
	}
	if len(odd) == 0 {
		m.resync.backoff, m.resync.next = 0, time.Time{}
		return
	}
	if now.Before(m.resync.next) || m.resync.asked {
		return
	}
	m.resync.backoff = min(max(2*m.resync.backoff, m.cfg.VerifyInterval, minResyncBackoff), maxResyncBackoff)
	m.resync.next = now.Add(m.resync.backoff)
	m.resync.asked = true
	m.resync.count++
	m.log.Warn("the routing daemon disagrees with what was announced: resyncing the advertiser",
		"vips", strings.Join(odd, ","), "attempt", m.resync.count, "next_in", m.resync.backoff)
}

const minResyncBackoff = time.Second

// resyncDeadline is when checkRoutes may ask for the next Resync; zero if
// none is due.
func (m *machine) resyncDeadline() time.Time {
	if m.worldOdd() {
		return m.resync.next
	}
	return time.Time{}
}

// worldOdd: the world disagrees with the claims (a confirmed divergence,
// or a route of no VIP of this node).
func (m *machine) worldOdd() bool {
	for _, a := range m.world.stray {
		if _, ok := m.vips[a]; !ok {
			return true
		}
	}
	for _, v := range m.vips {
		if v.check.worldOdd {
			return true
		}
	}
	return false
}

// takeResync reports whether the loop must hand a Resync to the verifier,
// and clears the request.
func (m *machine) takeResync() bool {
	asked := m.resync.asked
	m.resync.asked = false
	return asked
}

// verifier reads the routing daemon back every VerifyInterval, and right
// after a Resync the loop asked for, and hands each result to the loop as
// an event. It never runs on the loop: a slow daemon delays the checks, not
// the state machine.
func (c *Controller) verifier(ctx context.Context, resync <-chan struct{}) {
	adv, clock := c.m.deps.Advertiser, c.m.clock
	timer := clock.NewTimer(0)
	for {
		doResync := false
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		case <-resync:
			doResync = true
			timer.Stop()
		}
		rctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		if doResync {
			err := adv.Resync(rctx)
			c.send(func(m *machine) { m.resynced(err) })
		}
		at := clock.Now()
		ex, err := adv.Exported(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.send(func(m *machine) { m.setWorld(at, ex, err) })
		c.mu.Lock()
		interval := c.cfg.VerifyInterval
		c.mu.Unlock()
		if interval <= 0 {
			return // a reload turned the checks off
		}
		timer = clock.NewTimer(interval)
	}
}

// verifyTimeout bounds one Exported or Resync call.
const verifyTimeout = 30 * time.Second
