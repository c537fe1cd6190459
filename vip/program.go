package vip

import (
	"context"
	"slices"
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
		if len(table) == 0 {
			// Nobody serves the VIP (a one-node cluster drained, every
			// member inactive): there is no table to program. Remove
			// the VIP once its route has been withdrawn for the grace.
			v.reasons.Programmed = "no backend"
			if !v.programmed {
				continue
			}
			if v.adv != advNone || m.advUnknown || now.Before(v.advOff.Add(m.cfg.WithdrawGrace)) {
				v.reasons.Programmed = "no backend: waiting for the withdraw grace"
				continue
			}
			if err := m.deps.Dataplane.Unprogram(ctx, v.addr); err != nil {
				m.fail(v, "unprogramming", err)
				failed++
				continue
			}
			v.programmed, v.table, v.services, v.tableUnknown = false, nil, nil, false
			m.transition(v, "programmed", true, false, "no backend")
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
