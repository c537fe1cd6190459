package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/cluster"
)

// Phase is how far the node drain has gone, as Status reports it.
type Phase string

// Node drain phases, in the order a drain goes through them.
const (
	PhaseActive      Phase = "active"      // not draining
	PhaseWithdrawing Phase = "withdrawing" // routes going away, withdraw grace
	PhaseDraining    Phase = "draining"    // published draining, waiting for idle
	PhaseInactive    Phase = "inactive"    // published inactive, table grace
	PhaseDrained     Phase = "drained"     // nothing left bound
)

// ParsePhase parses a phase's word.
func ParsePhase(s string) (Phase, error) {
	switch p := Phase(s); p {
	case PhaseActive, PhaseWithdrawing, PhaseDraining, PhaseInactive, PhaseDrained:
		return p, nil
	}
	return "", fmt.Errorf("drain phase %q: want active, withdrawing, draining, inactive or drained", s)
}

// String returns the phase's word.
func (p Phase) String() string { return string(p) }

// MarshalText implements encoding.TextMarshaler.
func (p Phase) MarshalText() ([]byte, error) {
	if _, err := ParsePhase(string(p)); err != nil {
		return nil, err
	}
	return []byte(p), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *Phase) UnmarshalText(b []byte) error {
	v, err := ParsePhase(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Status is a snapshot of the controller for vipctl status and metrics.
type Status struct {
	Node     string
	Phase    Phase // node drain phase
	Stopping bool  // a Shutdown is in progress
	// Generation of the published cluster.NodeState.
	Generation uint64
	// Refusals counts steps refused because they would break an invariant,
	// and invariant violations found after a pass; anything but 0 is a bug
	// worth a report (the log has the details).
	Refusals uint64
	VIPs     []VIPStatus
}

// VIPStatus is one VIP in a Status.
type VIPStatus struct {
	Addr       netip.Addr
	Configured bool // false: removed, on its way out
	Programmed bool
	Advertised bool
	// Depreferred: announced with drain attributes.
	Depreferred bool
	// Bound: on lo and in the dataplane's bound set.
	Bound    bool
	Healthy  bool
	Draining bool // per-VIP drain or node drain
	Held     string
	Serve    cluster.ServeState // what this node publishes for it
	// Reason of the last change or refusal; Reasons explains each facet.
	Reason    string
	Reasons   FacetReasons
	Since     time.Time // time of the last change
	LastError string
	Backends  []Backend // the programmed table
	// Transitions and Errors count facet changes and failed calls.
	Transitions, Errors uint64
}

func (m *machine) status() Status {
	s := Status{Node: m.cfg.Node, Phase: m.phase(), Stopping: m.stopping, Generation: m.gen, Refusals: m.violations}
	for _, v := range m.sorted() {
		s.VIPs = append(s.VIPs, VIPStatus{
			Addr:        v.addr,
			Configured:  v.spec != nil,
			Programmed:  v.live.programmed,
			Advertised:  v.live.adv != advNone,
			Depreferred: v.live.adv == advDeprefer,
			Bound:       v.live.onLo && v.live.inDP,
			Healthy:     v.in.healthy,
			Draining:    m.nodeDrain || v.in.drained,
			Held:        m.holds[v.addr],
			Serve:       v.live.serve,
			Reason:      v.why.reason,
			Reasons:     v.why.reasons,
			Since:       v.why.since,
			LastError:   v.why.lastErr,
			Backends:    slices.Clone(v.live.table),
			Transitions: v.why.transits,
			Errors:      v.why.errs,
		})
	}
	return s
}

// phase summarises the node drain: the least advanced VIP decides.
func (m *machine) phase() Phase {
	if !m.nodeDrain {
		return PhaseActive
	}
	p := PhaseDrained
	rank := map[Phase]int{PhaseWithdrawing: 3, PhaseDraining: 2, PhaseInactive: 1, PhaseDrained: 0}
	for _, v := range m.vips {
		q := PhaseDrained
		switch {
		case v.live.serve == cluster.StateActive || v.live.adv == advNormal:
			q = PhaseWithdrawing
		case v.live.serve == cluster.StateDraining:
			q = PhaseDraining
		case v.live.onLo || v.live.maybeDP:
			q = PhaseInactive
		}
		if rank[q] > rank[p] {
			p = q
		}
	}
	return p
}

func (s Status) clone() Status {
	s.VIPs = slices.Clone(s.VIPs)
	for i := range s.VIPs {
		s.VIPs[i].Backends = slices.Clone(s.VIPs[i].Backends)
	}
	return s
}
