package vip

import (
	"context"
	"net/netip"
	"slices"

	"github.com/vipd/vipd/routing"
)

// advertise asks for the routes the decisions want, limited to what the
// programmed tables can carry now (invariant 1), and records what the
// advertiser reports as announced. withdrawOnly announces nothing new (the
// pass before programming); it is skipped while the advertiser's state is
// unknown, so a restart does not withdraw what it is about to re-announce.
func (m *machine) advertise(ctx context.Context, withdrawOnly bool) int {
	if ok, why := m.peersSettled(); !ok {
		// Neither announce with a table built without the peers, nor
		// withdraw what a restart adopted: wait (bounded by PeerWait).
		for _, v := range m.sorted() {
			v.reasons.Advertised = why
		}
		return 0
	}
	if withdrawOnly && m.advUnknown {
		return 0
	}
	var target []routing.Route
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
			target = append(target, routing.Route{Prefix: netip.PrefixFrom(v.addr, v.addr.BitLen()), Draining: w == advDeprefer})
		}
	}
	retry := m.advRetry && !withdrawOnly // one retry per pass
	if !m.advUnknown && !retry && slices.Equal(target, m.announced) {
		return 0
	}
	got, err := m.deps.Advertiser.SetRoutes(ctx, target)
	got = slices.Clone(got)
	slices.SortFunc(got, func(a, b routing.Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	if m.advUnknown || !slices.Equal(got, m.announced) {
		// What was learnt may unblock another step. (An advertiser that
		// keeps answering the same does not make the loop spin.)
		m.changes++
	}
	wasUnknown := m.advUnknown
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
		if wasUnknown && s == advNone {
			// Until this first call after a restart the route may have
			// been announced (graceful restart kept it): it is withdrawn
			// now, and the withdraw grace counts from now.
			v.advOff, v.normalOff = now, now
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
