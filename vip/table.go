package vip

import (
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

// tableFor builds the forwarding table of a VIP from what every member
// publishes: the same inputs give the same table on every director (members
// must be in name order: sortedMembers). self is the state this node publishes for the VIP;
// inTable holds the members of the VIP's previous table, so that a failed peer
// is kept as secondary while it was there.
//
// Weights are the members' configured ones, ramped by slow start for a
// primary whose published RampFrom is less than slowStart before now.
//
// demoted are the members this node's data-path probes demoted (this node
// included): primaries by their state become second hops, so new flows go
// elsewhere while the flows they hold still reach them if the path
// recovers. A demotion that would leave the VIP without a primary is not
// applied: never demote every member.
func tableFor(addr netip.Addr, node string, members []Member, self cluster.VIPState, peers map[string]*cluster.NodeState, inTable map[string]bool, demoted map[string]string, slowStart time.Duration, now time.Time) []Backend {
	var out []Backend
	for _, m := range members {
		under := m.Addr4
		if addr.Is6() {
			under = m.Addr6
		}
		if !under.IsValid() {
			continue
		}
		var role BackendRole
		var ok bool
		var from time.Time
		if m.Name == node {
			role, ok = roleOf(self)
			from = self.RampFrom
		} else {
			role, ok = peerRole(addr, peers, m.Name, inTable[m.Name])
			if st := peers[m.Name]; st != nil {
				from = st.VIPs[addr].RampFrom
			}
		}
		if !ok {
			continue
		}
		w := m.weight()
		if role == RolePrimary {
			w = rampWeight(w, from, now, slowStart)
		}
		out = append(out, Backend{Name: m.Name, Addr: under, Role: role, Local: m.Name == node, Weight: w})
	}
	return demote(out, demoted)
}

// demote makes the demoted primaries of t second hops, unless none would
// be left.
func demote(t []Backend, demoted map[string]string) []Backend {
	if len(demoted) == 0 {
		return t
	}
	if !slices.ContainsFunc(t, func(b Backend) bool { return b.Role == RolePrimary && demoted[b.Name] == "" }) {
		return t
	}
	for i := range t {
		if t[i].Role == RolePrimary && demoted[t[i].Name] != "" {
			t[i].Role = RoleSecondary
		}
	}
	return t
}

// weight is the member's configured weight, DefaultWeight for zero.
func (m Member) weight() uint32 {
	if m.Weight == 0 {
		return DefaultWeight
	}
	return m.Weight
}

// SlowStartSteps is how many table rebuilds a slow start takes: the
// weight goes up in equal steps, from 1/16 of the configured weight to
// 15/16, then to all of it after the whole slow start.
const SlowStartSteps = 8

// rampWeight is the weight of a member of configured weight w whose ramp
// started at from: the step of now - from (of slowStart/SlowStartSteps
// each) picks it, so every director that reads the same from builds the
// same weight at the same time. A ramp that starts in this director's
// future (clock skew) is at its first step. Never 0: a starting member
// takes some rows at once.
func rampWeight(w uint32, from, now time.Time, slowStart time.Duration) uint32 {
	if slowStart <= 0 || from.IsZero() {
		return w
	}
	el := now.Sub(from)
	if el >= slowStart {
		return w
	}
	k := int64(0)
	if el > 0 {
		k = int64(el) * SlowStartSteps / int64(slowStart)
	}
	return max(1, uint32(uint64(w)*uint64(2*k+1)/(2*SlowStartSteps)))
}

// rampNext is the next step of a ramp started at from, after now; zero
// when the ramp is over (or off). Step k starts at from + ceil(k *
// slowStart / SlowStartSteps), where rampWeight's integer step turns.
func rampNext(from, now time.Time, slowStart time.Duration) time.Time {
	if slowStart <= 0 || from.IsZero() || now.Sub(from) >= slowStart {
		return time.Time{}
	}
	for k := int64(1); k <= SlowStartSteps; k++ {
		at := from.Add(time.Duration((k*int64(slowStart) + SlowStartSteps - 1) / SlowStartSteps))
		if at.After(now) {
			return at
		}
	}
	return time.Time{}
}

// roleOf maps a published VIP state to a table role: active and healthy is
// primary, active but unhealthy or draining is secondary (established flows
// still reach it by second chance), inactive is absent.
func roleOf(s cluster.VIPState) (BackendRole, bool) {
	switch s.State {
	case cluster.StateActive:
		if s.Healthy {
			return RolePrimary, true
		}
		return RoleSecondary, true
	case cluster.StateDraining:
		return RoleSecondary, true
	}
	return 0, false
}

// peerRole is the role of a peer: from its last published state, or, if it
// failed (nil state), secondary while it was in the table before.
func peerRole(addr netip.Addr, peers map[string]*cluster.NodeState, name string, wasInTable bool) (BackendRole, bool) {
	st, heard := peers[name]
	if !heard {
		return 0, false
	}
	if st == nil {
		return RoleSecondary, wasInTable
	}
	s, ok := st.VIPs[addr]
	if !ok {
		return 0, false
	}
	return roleOf(s)
}

func hasPrimary(t []Backend) bool {
	return slices.ContainsFunc(t, func(b Backend) bool { return b.Role == RolePrimary })
}

func hasLocal(t []Backend) bool {
	return slices.ContainsFunc(t, func(b Backend) bool { return b.Local })
}

func namesOf(t []Backend) map[string]bool {
	m := make(map[string]bool, len(t))
	for _, b := range t {
		m[b.Name] = true
	}
	return m
}

// sortedMembers returns the members in name order.
func sortedMembers(ms []Member) []Member {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}
