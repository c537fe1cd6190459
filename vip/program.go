package vip

import (
	"context"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

// syncTables programs each configured VIP with its desired table (a
// ProgramSpec through Dataplane.Program), and unprograms removed VIPs once
// their route has been withdrawn for the withdraw grace.
func (m *machine) syncTables(ctx context.Context) int {
	failed := 0
	now := m.now()
	for _, v := range m.sorted() {
		want, why := m.wantProgrammed(v)
		v.why.reasons.Programmed = why
		if !want {
			if !v.live.programmed {
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
		if ok, why := m.peersSettled(); !ok && v.live.programmed {
			// Keep the adopted table until the peers are known.
			v.why.reasons.Programmed = why
			continue
		}
		table := m.desiredTable(v)
		v.in.inTable = namesOf(table)
		if len(table) == 0 {
			// Nobody serves the VIP (a one-node cluster drained, every
			// member inactive): there is no table to program. Remove
			// the VIP once its route has been withdrawn for the grace.
			v.why.reasons.Programmed = "no backend"
			if !v.live.programmed {
				continue
			}
			if !m.withdrawnForGrace(v, now) {
				v.why.reasons.Programmed = "no backend: waiting for the withdraw grace"
				continue
			}
			if !m.unprogram(ctx, v, "no backend") {
				failed++
			}
			continue
		}
		if v.live.programmed && !v.live.tableUnknown && slices.Equal(table, v.live.table) && slices.Equal(v.spec.Services, v.live.services) {
			continue
		}
		if ok, whyNot := canProgram(v, table, m.advUnknown); !ok {
			v.why.reasons.Programmed = whyNot
			continue
		}
		p := ProgramSpec{Addr: v.addr, Services: slices.Clone(v.spec.Services), Backends: table}
		if err := m.deps.Dataplane.Program(ctx, p); err != nil {
			m.fail(v, "programming", err)
			failed++
			continue
		}
		m.succeeded(v, "programming")
		if !v.live.programmed {
			m.transition(v, "programmed", false, true, why)
		} else {
			m.transition(v, "table", tableString(v.live.table), tableString(table), "backends changed")
		}
		v.live.programmed, v.live.table, v.live.services, v.live.tableUnknown = true, table, p.Services, false
		if m.deps.TableDigest != nil {
			v.live.tableDigest = m.deps.TableDigest(v.addr, table)
		}
		m.tablesAt = m.peerRev
	}
	return failed
}

// withdrawnForGrace: has v's route been withdrawn for the withdraw grace, so
// that unprogramming it cannot blackhole traffic routers still send
// (invariant 4)?
func (m *machine) withdrawnForGrace(v *vipState, now time.Time) bool {
	return !m.stillAnnounced(v) && !m.advUnknown && !now.Before(v.live.advOff.Add(m.cfg.WithdrawGrace))
}

// unprogram removes v from the dataplane and records it; false if the call
// failed (the failure is recorded and retried).
func (m *machine) unprogram(ctx context.Context, v *vipState, why string) bool {
	if err := m.deps.Dataplane.Unprogram(ctx, v.addr); err != nil {
		m.fail(v, "unprogramming", err)
		return false
	}
	m.succeeded(v, "unprogramming")
	v.live.programmed, v.live.table, v.live.services, v.live.tableUnknown = false, nil, nil, false
	v.live.tableDigest = cluster.Digest{}
	m.transition(v, "programmed", true, false, why)
	return true
}
