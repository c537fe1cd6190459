package vip

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

// reconcile runs one pass: it moves every VIP towards what the decisions
// want, in the order the invariants need, and records what was really
// reached. Bring-up: bind lo, bound set, publish active, program, announce.
// Going down: withdraw, publish draining/inactive, reprogram, and after the
// table grace leave the bound set, then lo. A failed call leaves the state
// where it is and schedules a retry with backoff.
func (m *machine) reconcile(ctx context.Context) {
	failed := 0
	before := m.changes
	m.order, m.tables = nil, nil
	m.pollIdle(ctx)
	failed += m.bindLo(ctx)
	failed += m.syncBoundSet(ctx)
	m.stepServe()
	m.stepRamp()
	m.tables = map[netip.Addr][]Backend{}
	failed += m.advertise(ctx, true) // withdraw before tables lose primaries
	failed += m.syncTables(ctx)
	failed += m.advertise(ctx, false) // announce what the tables allow
	failed += m.syncBoundSet(ctx)
	failed += m.unbindLo(ctx)
	m.checkRoutes()
	m.forget()
	m.order, m.tables = nil, nil
	m.publishNodeState()
	// After a failure the backoff decides when to try again.
	m.again = m.changes != before && failed == 0
	now := m.now()
	if failed == 0 {
		m.backoff, m.retryAt = 0, time.Time{}
		return
	}
	m.backoff = min(max(2*m.backoff, minBackoff), maxBackoff)
	m.retryAt = now.Add(m.backoff)
}

// nextWake is when reconcile must run again if no event comes; zero: never.
func (m *machine) nextWake() time.Time {
	now := m.now()
	if m.again {
		return now
	}
	var next time.Time
	consider := func(t time.Time) {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	consider(m.retryAt)
	consider(m.resyncDeadline())
	if !m.settled {
		consider(m.started.Add(m.cfg.PeerWait))
	}
	for _, v := range m.vips {
		for _, t := range m.deadlines(v) {
			consider(t)
		}
	}
	for _, t := range m.rampWake(now) {
		consider(t)
	}
	return next
}

func (m *machine) pollIdle(ctx context.Context) {
	for _, v := range m.sorted() {
		want, _ := m.wantServing(v)
		if want || v.live.serve != cluster.StateDraining || m.deps.Idle == nil {
			v.in.idle = false
			continue
		}
		n, err := m.deps.Idle.ActiveFlows(ctx, v.addr)
		if err != nil {
			m.log.Warn("checking idle", "vip", v.addr, "error", err)
		}
		v.in.idle = err == nil && n == 0
	}
}

// stepServe moves each VIP's serve state one step (the next document
// publishes it).
func (m *machine) stepServe() {
	now := m.now()
	for _, v := range m.sorted() {
		next, why := m.nextServe(v)
		v.why.reasons.Serve = why
		if next == v.live.serve {
			continue
		}
		if next != cluster.StateInactive && !v.live.inDP {
			switch {
			case !v.live.lost:
				m.refuse(v, "publishing "+string(next), "not bound")
				continue
			case v.live.serve == cluster.StateInactive:
				// Off lo behind vipd's back: back in the tables only
				// once it is bound again.
				v.why.reasons.Serve = "waiting for lo: " + loLostReason
				continue
			}
			// From active to draining: a step out of the tables.
		}
		m.transition(v, "serve", v.live.serve, next, why)
		v.live.serve, v.live.servedAt = next, now
	}
}

// stepRamp starts the slow start of each VIP this node became a primary
// for, and ends it for those it no longer is.
func (m *machine) stepRamp() {
	now := m.now().Round(0) // wall clock only: it is published
	for _, v := range m.sorted() {
		healthy, _ := v.healthy()
		primary := v.live.serve == cluster.StateActive && healthy
		switch {
		case primary && v.live.rampFrom.IsZero():
			v.live.rampFrom = now
		case !primary:
			v.live.rampFrom = time.Time{}
		}
	}
}

// rampWake is the next slow-start step of any member in any table: the
// tables change then.
func (m *machine) rampWake(now time.Time) []time.Time {
	if m.cfg.SlowStart <= 0 {
		return nil
	}
	var out []time.Time
	for _, v := range m.vips {
		out = append(out, rampNext(v.live.rampFrom, now, m.cfg.SlowStart))
	}
	for _, st := range m.peers {
		if st == nil {
			continue
		}
		for _, s := range st.VIPs {
			out = append(out, rampNext(s.RampFrom, now, m.cfg.SlowStart))
		}
	}
	return out
}

// forget drops a removed VIP once nothing of it is left.
func (m *machine) forget() {
	for a, v := range m.vips {
		if v.spec == nil && !v.live.onLo && !v.live.maybeDP && !v.live.programmed && !m.stillAnnounced(v) && v.live.serve == cluster.StateInactive {
			if ok, _ := m.canUnbind(v); ok {
				m.recentlyOff(a, v.live.advOff)
				delete(m.vips, a)
				m.order = nil
			}
		}
	}
}

// publishNodeState rebuilds the node-state document the peers poll and
// bumps its generation when it changed.
func (m *machine) publishNodeState() {
	doc := make(map[netip.Addr]cluster.VIPState, len(m.vips))
	for _, v := range m.vips {
		doc[v.addr] = m.docEntry(v)
	}
	digests := m.publishedDigests()
	if m.doc != nil && maps.Equal(doc, m.doc) && m.digests.Equal(digests) {
		return
	}
	if m.gen == 0 {
		// Start above anything a previous vipd on this node published, so
		// peers never mistake the new document for an old one.
		m.gen = uint64(max(m.now().UnixMicro(), 0))
	}
	m.gen++
	m.doc, m.digests = doc, digests
}

// publishedDigests are the configuration digests with the digest of every
// programmed table, at the revision of the view the tables were built
// from; nil without configuration digests.
func (m *machine) publishedDigests() *cluster.Digests {
	if m.cfg.Digests == nil {
		return nil
	}
	d := m.cfg.Digests.Clone()
	for _, v := range m.vips {
		if !v.live.tableDigest.IsZero() {
			d.SetTable(v.addr, v.live.tableDigest)
		}
	}
	d.TablesAt = m.tablesAt
	return d
}

// nodeState is a copy of the published document.
func (m *machine) nodeState() cluster.NodeState {
	vips := maps.Clone(m.doc)
	if vips == nil {
		vips = map[netip.Addr]cluster.VIPState{}
	}
	return cluster.NodeState{Node: m.cfg.Node, Generation: m.gen, VIPs: vips, Digests: m.digests.Clone()}
}

// refuse logs a step that would break an invariant and does not take it.
// The decisions are meant to make this unreachable.
func (m *machine) refuse(v *vipState, op, why string) {
	m.violations++
	v.why.reason = "refused " + op + ": " + why
	m.log.Error("refusing a step that would break an invariant", "vip", v.addr, "op", op, "reason", why)
}

// tableString prints a table as [name/role,...] when logged.
type tableString []Backend

func (t tableString) String() string { return describe(t) }

func describe(t []Backend) string {
	s := ""
	for i, b := range t {
		if i > 0 {
			s += ","
		}
		role := "p"
		if b.Role == RoleSecondary {
			role = "s"
		}
		s += fmt.Sprintf("%s/%s", b.Name, role)
	}
	return "[" + s + "]"
}
