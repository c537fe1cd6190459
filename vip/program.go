package vip

import (
	"context"
	"slices"
	"time"
)

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
			if !m.withdrawnForGrace(v, now) {
				m.refuse(v, "unprogramming", "route not withdrawn for the withdraw grace")
				continue
			}
			if !m.unprogram(ctx, v, why) {
				failed++
			}
			continue
		}
		if v.spec == nil {
			continue // on its way out: keep the last table
		}
		if ok, why := m.peersSettled(); !ok && v.programmed {
			// Keep the adopted table until the peers are known.
			v.reasons.Programmed = why
			continue
		}
		table := m.desiredTable(v)
		v.inTable = namesOf(table)
		if len(table) == 0 {
			// Nobody serves the VIP (a one-node cluster drained, every
			// member inactive): there is no table to program. Remove
			// the VIP once its route has been withdrawn for the grace.
			v.reasons.Programmed = "no backend"
			if !v.programmed {
				continue
			}
			if !m.withdrawnForGrace(v, now) {
				v.reasons.Programmed = "no backend: waiting for the withdraw grace"
				continue
			}
			if !m.unprogram(ctx, v, "no backend") {
				failed++
			}
			continue
		}
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

// withdrawnForGrace: has v's route been withdrawn for the withdraw grace, so
// that unprogramming it cannot blackhole traffic routers still send
// (invariant 4)?
func (m *machine) withdrawnForGrace(v *vipState, now time.Time) bool {
	return v.adv == advNone && !m.advUnknown && !now.Before(v.advOff.Add(m.cfg.WithdrawGrace))
}

// unprogram removes v from the dataplane and records it; false if the call
// failed (the failure is recorded and retried).
func (m *machine) unprogram(ctx context.Context, v *vipState, why string) bool {
	if err := m.deps.Dataplane.Unprogram(ctx, v.addr); err != nil {
		m.fail(v, "unprogramming", err)
		return false
	}
	v.programmed, v.table, v.services, v.tableUnknown = false, nil, nil, false
	m.transition(v, "programmed", true, false, why)
	return true
}
