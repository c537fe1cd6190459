package vip

import (
	"fmt"

	"github.com/vipd/vipd/internal/cluster"
)

// The decisions of the state machine. Each returns the wanted value and the
// reason for it; reconcile applies them in the order the invariants need.

// wantServing: should this node offer itself as a backend for the VIP?
func (m *machine) wantServing(v *vipState) (bool, string) {
	switch {
	case v.spec == nil:
		return false, "removed from config"
	case m.stopping:
		return false, "shutting down"
	case m.nodeDrain:
		return false, "node draining"
	}
	return true, "serving"
}

// desiredTable is the table the VIP should be programmed with now. It is
// computed once per pass, after stepServe (the last input that changes it).
func (m *machine) desiredTable(v *vipState) []Backend {
	if t, ok := m.tables[v.addr]; ok {
		return t
	}
	t := tableFor(v.addr, m.cfg.Node, m.members, m.docEntry(v), m.peers, v.in.inTable, m.demoted, m.cfg.SlowStart, m.now())
	if m.tables != nil {
		m.tables[v.addr] = t
	}
	return t
}

// docEntry is this node's entry for the VIP in the node-state document it
// publishes: its serve state, health and why.
func (m *machine) docEntry(v *vipState) cluster.VIPState {
	healthy, why := v.healthy()
	s := cluster.VIPState{State: v.live.serve, Healthy: healthy}
	if m.cfg.SlowStart > 0 {
		s.RampFrom = v.live.rampFrom
	}
	switch {
	case v.live.serve != cluster.StateActive:
		s.Reason = v.why.reasons.Serve
	case !healthy:
		s.Reason = why
	}
	return s
}

// wantAdvertise is how the VIP's route should be announced, given the table
// it will be programmed with.
func (m *machine) wantAdvertise(v *vipState, table []Backend) (advState, string) {
	draining := m.nodeDrain || m.vipDrains[v.addr]
	switch {
	case v.spec == nil:
		return advNone, "removed from config"
	case m.stopping:
		return advNone, "shutting down"
	case m.holds[v.addr] != "":
		return advNone, "held: " + m.holds[v.addr]
	case !hasPrimary(table):
		return advNone, "no usable backend"
	case draining && m.cfg.deprefer():
		return advDeprefer, "draining (deprefer)"
	case draining:
		return advNone, "draining"
	}
	return advNormal, "serving"
}

// canAnnounce: may the route be announced with what is programmed now
// (invariant 1)?
func canAnnounce(v *vipState) (bool, string) {
	switch {
	case !v.live.programmed:
		return false, "not programmed"
	case !hasPrimary(v.live.table):
		return false, "no usable backend programmed"
	}
	return true, ""
}

// wantProgrammed: should the VIP be in the director maps? A removed VIP is
// unprogrammed only after its route has been withdrawn for the withdraw grace
// (invariant 4).
func (m *machine) wantProgrammed(v *vipState) (bool, string) {
	if v.spec != nil {
		return true, "configured"
	}
	if v.live.adv != advNone {
		return true, "still announced"
	}
	if m.stillAnnounced(v) {
		return true, "still exported by the routing daemon"
	}
	if m.advUnknown {
		return true, "advertiser state unknown"
	}
	if m.now().Before(v.live.advOff.Add(m.cfg.WithdrawGrace)) {
		return true, "withdraw grace"
	}
	return false, "removed from config"
}

// canProgram: may table replace the programmed one? Not while announced with
// a table that has no primary (withdraw first: invariant 1).
// While the advertiser's state is unknown (a restart), any route may be
// announced.
func canProgram(v *vipState, table []Backend, advUnknown bool) (bool, string) {
	if (v.live.adv != advNone || advUnknown && v.live.programmed) && !hasPrimary(table) {
		return false, "announced: withdraw before dropping the last primary"
	}
	return true, ""
}

// wantBound: should the VIP be on lo and in the bound set?
func (m *machine) wantBound(v *vipState) (bool, string) {
	ok, why := m.canUnbind(v)
	return !ok, why
}

// peersSettled: does the controller know enough of its peers to build
// tables and announce (Config.PeerWait)? It latches.
func (m *machine) peersSettled() (bool, string) {
	if m.settled {
		return true, ""
	}
	heard, others := 0, 0
	for _, mb := range m.members {
		if mb.Name == m.cfg.Node {
			continue
		}
		others++
		if _, ok := m.peers[mb.Name]; ok {
			heard++
		}
	}
	if heard == others || !m.now().Before(m.started.Add(m.cfg.PeerWait)) {
		m.settled = true
		return true, ""
	}
	return false, fmt.Sprintf("waiting for peer states (%d of %d)", heard, others)
}
