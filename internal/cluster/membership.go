package cluster

import (
	"slices"
	"strings"
	"sync"
)

// MemberView is the latest this node knows of one member, as status shows
// it.
type MemberView struct {
	Name string
	// Up: the member's document is current (after rise good polls); false
	// once it failed (fall misses in a row).
	Up bool
	// Generation of the member's last document while Up.
	Generation uint64
}

// Membership keeps the poller's latest report of every member it has heard
// of. It outlives pollers: a reload that restarts the poller keeps the
// views. It is safe for concurrent use.
type Membership struct {
	mu    sync.Mutex
	views map[string]MemberView
}

// NewMembership returns an empty Membership.
func NewMembership() *Membership {
	return &Membership{views: map[string]MemberView{}}
}

// Record takes one poller report: st is the member's document, or nil when
// it failed.
func (m *Membership) Record(node string, st *NodeState) {
	v := MemberView{Name: node, Up: st != nil}
	if st != nil {
		v.Generation = st.Generation
	}
	m.mu.Lock()
	m.views[node] = v
	m.mu.Unlock()
}

// Views returns every member heard of, in name order.
func (m *Membership) Views() []MemberView {
	m.mu.Lock()
	out := make([]MemberView, 0, len(m.views))
	for _, v := range m.views {
		out = append(out, v)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberView) int { return strings.Compare(a.Name, b.Name) })
	return out
}
