package vip

import (
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

// The drain and undrain sequences of docs/design.md, one step at a time.

// nextServe is the state to publish next. Bring-up: bound first, then active.
// Going down: withdraw, withdraw grace, draining, idle or timeout, inactive.
// A VIP removed by a reload goes down the same way as a drained one (its
// timeout is RemoveTimeout), so the flows it still serves can finish.
func (m *machine) nextServe(v *vipState) (cluster.ServeState, string) {
	now := m.now()
	want, why := m.wantServing(v)
	if want {
		if v.live.serve != cluster.StateActive && !v.live.inDP {
			return v.live.serve, "binding before publishing active"
		}
		return cluster.StateActive, why
	}
	switch v.live.serve {
	case cluster.StateActive:
		if v.live.adv == advNormal {
			return cluster.StateActive, "waiting for withdraw"
		}
		if m.stillAnnouncedNormal(v) {
			return cluster.StateActive, "waiting for the routing daemon to withdraw"
		}
		if now.Before(v.live.normalOff.Add(m.cfg.WithdrawGrace)) {
			return cluster.StateActive, "withdraw grace"
		}
		return cluster.StateDraining, why
	case cluster.StateDraining:
		switch timeout, what := m.drainTimeout(v); {
		case v.in.idle:
			return cluster.StateInactive, "idle"
		case !now.Before(v.live.servedAt.Add(timeout)):
			return cluster.StateInactive, what
		}
		return cluster.StateDraining, "waiting for idle"
	}
	return cluster.StateInactive, why
}

// drainTimeout is how long v may stay published draining before it goes
// inactive without being idle, and the reason given then: a VIP removed by
// a reload has its own timeout.
func (m *machine) drainTimeout(v *vipState) (time.Duration, string) {
	if v.spec == nil {
		return m.cfg.RemoveTimeout, "remove timeout"
	}
	return m.cfg.DrainTimeout, "drain timeout"
}

// canUnbind: may the VIP leave lo and the bound set? Only once this node has
// been out of every table for the table grace (invariant 2).
func (m *machine) canUnbind(v *vipState) (bool, string) {
	if want, _ := m.wantServing(v); want {
		return false, "serving"
	}
	switch {
	case v.live.serve != cluster.StateInactive:
		return false, "published " + string(v.live.serve)
	case m.now().Before(v.live.servedAt.Add(m.cfg.TableGrace)):
		return false, "table grace"
	case v.live.programmed && (hasLocal(v.live.table) || v.live.tableUnknown):
		return false, "still in own table"
	}
	if v.spec == nil {
		return true, "removed from config"
	}
	return true, "node drained"
}

// deadlines lists the future times at which a decision about v may change
// by time alone.
func (m *machine) deadlines(v *vipState) []time.Time {
	var out []time.Time
	want, _ := m.wantServing(v)
	if !want {
		switch v.live.serve {
		case cluster.StateActive:
			out = append(out, v.live.normalOff.Add(m.cfg.WithdrawGrace))
		case cluster.StateDraining:
			timeout, _ := m.drainTimeout(v)
			out = append(out, v.live.servedAt.Add(timeout))
			if m.deps.Idle != nil {
				out = append(out, m.now().Add(idlePoll))
			}
		case cluster.StateInactive:
			if v.live.onLo {
				out = append(out, v.live.servedAt.Add(m.cfg.TableGrace))
			}
		}
	}
	// A removed VIP, or one nobody serves any more (no backend), is
	// unprogrammed once its route has been withdrawn for the grace.
	if v.live.programmed && (v.spec == nil || len(v.in.inTable) == 0) {
		out = append(out, v.live.advOff.Add(m.cfg.WithdrawGrace))
	}
	return out
}
