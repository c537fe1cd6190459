package vip

import (
	"net/netip"
	"slices"
	"strings"

	"github.com/vipd/vipd/internal/cluster"
)

// tableFor builds the forwarding table of a VIP from what every member
// publishes: the same inputs give the same table on every director (members
// must be in name order: sortedMembers). self is the state this node publishes for the VIP;
// inTable holds the members of the VIP's previous table, so that a failed peer
// is kept as secondary while it was there.
func tableFor(addr netip.Addr, node string, members []Member, self cluster.VIPState, peers map[string]*cluster.NodeState, inTable map[string]bool) []Backend {
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
		if m.Name == node {
			role, ok = roleOf(self)
		} else {
			role, ok = peerRole(addr, peers, m.Name, inTable[m.Name])
		}
		if ok {
			out = append(out, Backend{Name: m.Name, Addr: under, Role: role, Local: m.Name == node})
		}
	}
	return out
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
