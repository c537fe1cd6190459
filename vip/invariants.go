package vip

import (
	"fmt"

	"github.com/vipd/vipd/internal/cluster"
)

// checkInvariants checks docs/design.md's invariants 1-5 on the machine's own view
// of what it reached. Tests call it after every step; Run logs what it finds
// (the guards in reconcile refuse the steps that would cause it).
func (m *machine) checkInvariants() []error {
	var errs []error
	bad := func(v *vipState, n int, format string, args ...any) {
		errs = append(errs, fmt.Errorf("invariant %d, vip %s: %s", n, v.addr, fmt.Sprintf(format, args...)))
	}
	now := m.now()
	for _, v := range m.sorted() {
		// An adopted table is unknown: the world's view checks it.
		if v.live.adv != advNone && !v.live.tableUnknown && (!v.live.programmed || !hasPrimary(v.live.table)) {
			bad(v, 1, "announced (%s) but programmed=%v with table %s", v.live.adv, v.live.programmed, describe(v.live.table))
		}
		// Peers may hold this node in their tables while it publishes
		// active or draining, and for the table grace after inactive.
		// After a restart, the bound set left by the previous vipd is
		// unknown but untouched (maybeDP) until it is set.
		inTables := v.live.serve == cluster.StateActive || v.live.serve == cluster.StateDraining
		inGrace := !v.live.servedAt.IsZero() && now.Before(v.live.servedAt.Add(m.cfg.TableGrace))
		// Someone else removed the address from lo and it is not back
		// on lo and in the bound set yet (a Bind or SetBound failing):
		// the world broke 2 and 3, not a step of the machine, which
		// publishes itself unhealthy meanwhile and has the VIP leave
		// the bound set as soon as it can.
		lost := v.live.lost
		if !lost && (inTables && !(v.live.onLo && v.live.inDP) || inGrace && !(v.live.onLo && (v.live.inDP || v.live.maybeDP))) {
			bad(v, 2, "published %s (since %s) but lo=%v bound set=%v", v.live.serve, v.live.servedAt.Format("15:04:05.000"), v.live.onLo, v.live.inDP)
		}
		if !lost && v.live.programmed && hasLocal(v.live.table) && !(v.live.onLo && v.live.inDP) {
			bad(v, 2, "this node is in its own table but lo=%v bound set=%v", v.live.onLo, v.live.inDP)
		}
		if (v.live.inDP || v.live.maybeDP && !lost) && !v.live.onLo {
			bad(v, 3, "in the bound set but not on lo")
		}
		r := v.why.reasons
		if r.Programmed == "" || r.Advertised == "" || r.Bound == "" || r.Serve == "" {
			bad(v, 5, "a facet has no reason: %+v", r)
		}
	}
	return errs
}
