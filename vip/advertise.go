package vip

import (
	"context"
	"net/netip"
	"slices"

	"github.com/vipd/vipd/routing"
)

// routePlan is what one advertise pass decided, before any call: per VIP
// the wanted announcement and the reason for it, the routes that say it,
// and whether the advertiser must be called at all.
type routePlan struct {
	want    map[netip.Addr]advState
	reasons map[netip.Addr]string
	routes  []routing.Route // in address order
	call    bool            // the routes differ from the last report, or it must be retried
}

// planRoutes decides the routes the decisions want, limited to what the
// programmed tables can carry now (invariant 1). withdrawOnly (the pass
// before programming) announces nothing that is not announced already. It
// changes nothing but the pass's table cache.
func (m *machine) planRoutes(withdrawOnly bool) routePlan {
	p := routePlan{want: map[netip.Addr]advState{}, reasons: map[netip.Addr]string{}}
	for _, v := range m.sorted() {
		w, why := m.wantAdvertise(v, m.desiredTable(v))
		if w != advNone {
			if ok, whyNot := canAnnounce(v); !ok {
				w, why = advNone, whyNot
			}
		}
		if withdrawOnly && v.live.adv == advNone {
			w = advNone
		}
		p.want[v.addr], p.reasons[v.addr] = w, why
		if w != advNone {
			p.routes = append(p.routes, routing.Route{Prefix: routing.HostPrefix(v.addr), Draining: w == advDeprefer})
		}
	}
	retry := m.advRetry && !withdrawOnly // one retry per pass
	p.call = m.advUnknown || retry || !slices.Equal(p.routes, m.announced)
	return p
}

// advertise plans the routes, asks the advertiser for them and records
// what it reports as announced. The withdraw-only pass is skipped while
// the advertiser's state is unknown, so a restart does not withdraw what it
// is about to re-announce.
func (m *machine) advertise(ctx context.Context, withdrawOnly bool) int {
	if ok, why := m.peersSettled(); !ok {
		// Neither announce with a table built without the peers, nor
		// withdraw what a restart adopted: wait (bounded by PeerWait).
		for _, v := range m.sorted() {
			v.why.reasons.Advertised = why
		}
		return 0
	}
	if withdrawOnly && m.advUnknown {
		return 0
	}
	plan := m.planRoutes(withdrawOnly)
	now := m.now()
	for _, v := range m.sorted() {
		v.why.reasons.Advertised = plan.reasons[v.addr]
		if w := plan.want[v.addr]; !withdrawOnly && w != v.check.want {
			v.check.want, v.check.wantAt = w, now
		}
	}
	if !plan.call {
		return 0
	}
	got, err := m.deps.Advertiser.SetRoutes(ctx, plan.routes)
	return m.recordRoutes(got, err, plan.want)
}

// recordRoutes takes what the advertiser reported after SetRoutes: each
// VIP's advertised facet follows the report, never the plan.
func (m *machine) recordRoutes(got []routing.Route, err error, want map[netip.Addr]advState) int {
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
		} else if s == want[v.addr] {
			m.succeeded(v, "setting routes")
		}
		if wasUnknown {
			// The claim is known from now on: a read of the world from
			// before says nothing about it, and until one confirms it,
			// an adopted VIP's route may still be out (graceful restart).
			v.live.advAt, v.live.prevAdv = now, advNone
			if v.live.programmed {
				v.live.prevAdv = advNormal
			}
		}
		if wasUnknown && s == advNone {
			// Until this first call after a restart the route may have
			// been announced (graceful restart kept it): it is withdrawn
			// now, and the withdraw grace counts from now.
			v.live.advOff, v.live.normalOff = now, now
		}
		if s == v.live.adv {
			continue
		}
		if v.live.adv == advNormal {
			v.live.normalOff = now
		}
		if s == advNone {
			v.live.advOff = now
		}
		v.live.advAt, v.live.prevAdv = now, v.live.adv
		why := v.why.reasons.Advertised
		if s != want[v.addr] {
			why = "advertiser reported it"
		}
		m.transition(v, "advertised", v.live.adv, s, why)
		v.live.adv = s
	}
	if err != nil {
		return 1
	}
	return 0
}
