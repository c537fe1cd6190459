package vip

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"time"
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
	m.publish()
	m.tables = map[netip.Addr][]Backend{}
	failed += m.advertise(ctx, true) // withdraw before tables lose primaries
	failed += m.program(ctx)
	failed += m.advertise(ctx, false) // announce what the tables allow
	failed += m.syncBoundSet(ctx)
	failed += m.unbindLo(ctx)
	m.forget()
	m.order, m.tables = nil, nil
	m.publishDoc()
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
	for _, v := range m.vips {
		for _, t := range m.deadlines(v) {
			consider(t)
		}
	}
	return next
}

func (m *machine) pollIdle(ctx context.Context) {
	for _, v := range m.sorted() {
		want, _ := m.wantServing(v)
		if want || v.serve != StateDraining || m.deps.Idle == nil {
			v.idle = false
			continue
		}
		n, err := m.deps.Idle.ActiveFlows(ctx, v.addr)
		if err != nil {
			m.log.Warn("checking idle", "vip", v.addr, "error", err)
		}
		v.idle = err == nil && n == 0
	}
}

func (m *machine) bindLo(ctx context.Context) int {
	failed := 0
	for _, v := range m.sorted() {
		want, why := m.wantBound(v)
		v.reasons.Bound = why
		if !want || v.onLo {
			continue
		}
		if err := m.deps.Binder.Bind(ctx, v.addr); err != nil {
			m.fail(v, "binding", err)
			failed++
			continue
		}
		v.onLo = true
		m.transition(v, "lo", false, true, why)
	}
	return failed
}

// syncBoundSet makes the dataplane's bound set the VIPs that are on lo and
// must stay bound. It is always a subset of lo (invariant 3).
func (m *machine) syncBoundSet(ctx context.Context) int {
	var target, cur []netip.Addr
	for _, v := range m.sorted() {
		if want, _ := m.wantBound(v); want && v.onLo {
			target = append(target, v.addr)
		}
		if v.inDP {
			cur = append(cur, v.addr)
		}
	}
	uncertain := slices.ContainsFunc(m.sorted(), func(v *vipState) bool { return v.maybeDP != v.inDP })
	if !m.dpUnknown && !uncertain && slices.Equal(target, cur) {
		return 0
	}
	for _, a := range target {
		if !m.vips[a].onLo {
			m.refuse(m.vips[a], "setting bound set", "not on lo")
			return 1
		}
	}
	err := m.deps.Dataplane.SetBound(ctx, target)
	m.changes++
	for _, v := range m.sorted() {
		in := slices.Contains(target, v.addr)
		was := v.inDP
		if err != nil {
			// Either set may be in place now: claim only what both
			// have, and keep unbind waiting for what either has.
			v.inDP = v.inDP && in
			v.maybeDP = v.maybeDP || in
			if was != in {
				m.fail(v, "setting bound set", err)
			}
		} else {
			v.inDP, v.maybeDP = in, in
		}
		if v.inDP != was {
			_, why := m.wantBound(v)
			m.transition(v, "bound", was, v.inDP, why)
		}
	}
	if err != nil {
		m.dpUnknown = true
		return 1
	}
	m.dpUnknown = false
	return 0
}

func (m *machine) unbindLo(ctx context.Context) int {
	failed := 0
	for _, v := range m.sorted() {
		want, why := m.wantBound(v)
		if want || !v.onLo {
			continue
		}
		if v.maybeDP {
			v.reasons.Bound = "waiting to leave the bound set"
			continue
		}
		if err := m.deps.Binder.Unbind(ctx, v.addr); err != nil {
			m.fail(v, "unbinding", err)
			failed++
			continue
		}
		v.onLo = false
		m.transition(v, "lo", true, false, why)
	}
	return failed
}

// publish moves each VIP's published state one step.
func (m *machine) publish() {
	now := m.now()
	for _, v := range m.sorted() {
		next, why := m.nextServe(v)
		v.reasons.Serve = why
		if next == v.serve {
			continue
		}
		if next != StateInactive && !v.inDP {
			m.refuse(v, "publishing "+string(next), "not bound")
			continue
		}
		m.transition(v, "serve", v.serve, next, why)
		v.serve, v.servedAt = next, now
	}
}

// advertise asks for the routes the decisions want, limited to what the
// programmed tables can carry now (invariant 1), and records what the
// advertiser reports as announced. withdrawOnly announces nothing new (the
// pass before programming); it is skipped while the advertiser's state is
// unknown, so a restart does not withdraw what it is about to re-announce.
func (m *machine) advertise(ctx context.Context, withdrawOnly bool) int {
	if withdrawOnly && m.advUnknown {
		return 0
	}
	var target []Route
	want := map[netip.Addr]advState{}
	for _, v := range m.sorted() {
		w, why := m.wantAdvertise(v, m.desiredTable(v))
		if w != advNone {
			if ok, whyNot := canAnnounce(v); !ok {
				w, why = advNone, whyNot
			}
		}
		v.reasons.Advertised = why
		if withdrawOnly && v.adv == advNone {
			w = advNone
		}
		want[v.addr] = w
		if w != advNone {
			target = append(target, Route{Prefix: netip.PrefixFrom(v.addr, v.addr.BitLen()), Draining: w == advDeprefer})
		}
	}
	retry := m.advRetry && !withdrawOnly // one retry per pass
	if !m.advUnknown && !retry && slices.Equal(target, m.announced) {
		return 0
	}
	got, err := m.deps.Advertiser.SetRoutes(ctx, target)
	got = slices.Clone(got)
	slices.SortFunc(got, func(a, b Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	if m.advUnknown || !slices.Equal(got, m.announced) {
		// What was learnt may unblock another step. (An advertiser that
		// keeps answering the same does not make the loop spin.)
		m.changes++
	}
	m.advUnknown, m.advRetry = false, err != nil
	m.announced = got
	reported := map[netip.Addr]advState{}
	for _, r := range got {
		s := advNormal
		if r.Draining {
			s = advDeprefer
		}
		reported[r.Prefix.Addr()] = s
		if _, ok := m.vips[r.Prefix.Addr()]; !ok {
			m.log.Warn("advertiser reports an unknown route", "vip", r.Prefix)
		}
	}
	now := m.now()
	for _, v := range m.sorted() {
		s := reported[v.addr]
		if err != nil && s != want[v.addr] {
			m.fail(v, "setting routes", err)
		}
		if s == v.adv {
			continue
		}
		if v.adv == advNormal {
			v.normalOff = now
		}
		if s == advNone {
			v.advOff = now
		}
		why := v.reasons.Advertised
		if s != want[v.addr] {
			why = "advertiser reported it"
		}
		m.transition(v, "advertised", v.adv, s, why)
		v.adv = s
	}
	if err != nil {
		return 1
	}
	return 0
}

// program installs each configured VIP with its desired table, and removes
// removed VIPs once their route has been withdrawn for the withdraw grace.
func (m *machine) program(ctx context.Context) int {
	failed := 0
	now := m.now()
	for _, v := range m.sorted() {
		want, why := m.wantProgrammed(v)
		v.reasons.Programmed = why
		if !want {
			if !v.programmed {
				continue
			}
			if v.adv != advNone || m.advUnknown || now.Before(v.advOff.Add(m.cfg.WithdrawGrace)) {
				m.refuse(v, "unprogramming", "route not withdrawn for the withdraw grace")
				continue
			}
			if err := m.deps.Dataplane.Unprogram(ctx, v.addr); err != nil {
				m.fail(v, "unprogramming", err)
				failed++
				continue
			}
			v.programmed, v.table, v.services, v.tableUnknown = false, nil, nil, false
			m.transition(v, "programmed", true, false, why)
			continue
		}
		if v.spec == nil {
			continue // on its way out: keep the last table
		}
		table := m.desiredTable(v)
		v.inTable = namesOf(table)
		if v.programmed && !v.tableUnknown && slices.Equal(table, v.table) && slices.Equal(v.spec.Services, v.services) {
			continue
		}
		if ok, whyNot := canProgram(v, table, m.advUnknown); !ok {
			v.reasons.Programmed = whyNot
			continue
		}
		p := Program{Addr: v.addr, Services: slices.Clone(v.spec.Services), Backends: table}
		if err := m.deps.Dataplane.Program(ctx, p); err != nil {
			m.fail(v, "programming", err)
			failed++
			continue
		}
		if !v.programmed {
			m.transition(v, "programmed", false, true, why)
		} else {
			m.transition(v, "table", tableString(v.table), tableString(table), "backends changed")
		}
		v.programmed, v.table, v.services, v.tableUnknown = true, table, p.Services, false
	}
	return failed
}

// forget drops a removed VIP once nothing of it is left.
func (m *machine) forget() {
	for a, v := range m.vips {
		if v.spec == nil && !v.onLo && !v.maybeDP && !v.programmed && v.adv == advNone && v.serve == StateInactive {
			if ok, _ := m.canUnbind(v); ok {
				delete(m.vips, a)
				m.order = nil
			}
		}
	}
}

// publishDoc rebuilds the NodeState document and bumps its generation when
// it changed.
func (m *machine) publishDoc() {
	doc := make(map[netip.Addr]NodeVIPState, len(m.vips))
	for _, v := range m.vips {
		doc[v.addr] = m.published(v)
	}
	if m.doc != nil && mapsEqual(doc, m.doc) {
		return
	}
	if m.gen == 0 {
		// Start above anything a previous vipd on this node published, so
		// peers never mistake the new document for an old one.
		m.gen = uint64(max(m.now().UnixMicro(), 0))
	}
	m.gen++
	m.doc = doc
}

func (m *machine) nodeState() NodeState {
	vips := make(map[netip.Addr]NodeVIPState, len(m.doc))
	for a, s := range m.doc {
		vips[a] = s
	}
	return NodeState{Node: m.cfg.Node, Generation: m.gen, VIPs: vips}
}

// refuse logs a step that would break an invariant and does not take it.
// The decisions are meant to make this unreachable.
func (m *machine) refuse(v *vipState, op, why string) {
	m.violations++
	v.reason = "refused " + op + ": " + why
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

func mapsEqual(a, b map[netip.Addr]NodeVIPState) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}
