package cluster

import (
	"context"
	"maps"
	"slices"
)

// Update is one step of the cluster view that a Source hands its Consumer.
type Update struct {
	// Revision is the etcd revision the view is at once the update is
	// applied: every director that applied it holds the same member states,
	// so builds the same tables. It is 0 from the poller, whose members
	// each change on their own.
	Revision int64
	// States holds the members whose state changed: the document (the
	// consumer may keep it; the source never touches it again), or nil when
	// the member failed or left.
	States map[string]*NodeState
	// Demoted, when not nil, replaces the set of members this node's
	// data-path probes demoted (name -> reason; empty: none): they are not
	// a primary in any row, only a second hop. It is this node's own
	// observation, published nowhere (the prober sends it; sources leave it
	// nil).
	Demoted map[string]string
}

// Consumer takes the Updates of a Source. A source calls it from one
// goroutine at a time, in order; it should not block for long (it holds up
// the source). The daemon's consumer applies an update's states to the
// controller in one step, so one update is one table switch.
type Consumer func(Update)

// Source delivers member states to its Consumer until ctx is done: the
// Poller (backend "poll") or the etcd backend (package cluster/etcd). Both
// record what they see in a Membership, so the daemon swaps one for the
// other without touching the rest.
type Source interface {
	Run(ctx context.Context) error
}

// PerMember adapts a per-member ReportFunc to a Consumer: an update's
// members are reported one by one, in name order.
func PerMember(report ReportFunc) Consumer {
	return func(u Update) {
		for _, node := range slices.Sorted(maps.Keys(u.States)) {
			report(node, u.States[node])
		}
	}
}
