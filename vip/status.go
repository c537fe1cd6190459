package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/routing"
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
	Node  string
	Phase Phase // node drain phase
	// PhaseSince is when Phase last changed, or the loop's first pass;
	// zero before it. The loop stamps it with the pass that changed the
	// phase, so it always goes with Phase.
	PhaseSince time.Time
	Stopping   bool // a Shutdown is in progress
	// Generation of the published cluster.NodeState.
	Generation uint64
	// Refusals counts steps refused because they would break an invariant,
	// and invariant violations found after a pass; anything but 0 is a bug
	// worth a report (the log has the details).
	Refusals uint64
	// Routes are the routes the advertiser last reported announced (the
	// claims); RoutesKnown is false until the first report since the
	// start.
	Routes      []routing.Route
	RoutesKnown bool
	// World is the routing daemon as last read back.
	World WorldStatus
	// LoError is why the last read of the addresses on lo failed (a VIP
	// removed from lo behind vipd's back goes unnoticed meanwhile).
	LoError string
	VIPs    []VIPStatus
}

// WorldStatus is what the last read of the routing daemon said.
type WorldStatus struct {
	// ReadAt is when the last successful read started (zero: none yet).
	ReadAt time.Time
	// SessionsUp counts the sessions routes flow over at that read.
	SessionsUp int
	// Error is why the last read failed; the world is unknown meanwhile.
	Error string
	// Resyncs counts the Resyncs asked for since vipd started, and
	// ResyncError is why the last one failed.
	Resyncs     uint64
	ResyncError string
	// Stray are routes the daemon exported at that read for addresses
	// that are no VIP of this node (a Resync is asked for).
	Stray []netip.Addr
}

// VIPWorld is what the routing daemon exported for a VIP at the last read.
type VIPWorld struct {
	// Read: the world was read since the start (else the rest is zero).
	Read bool
	// Exported: to at least one up session; Draining: with the drain
	// attributes.
	Exported, Draining bool
	// Peers are the sessions that have the route.
	Peers []string
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
	Bound bool
	// Rebinds counts the binds of the VIP again after someone else
	// removed it from lo; ForeignOnLo: someone else put it on lo while
	// vipd does not bind it (vipd leaves it alone).
	Rebinds     uint64
	ForeignOnLo bool
	Healthy     bool
	Draining    bool // per-VIP drain or node drain
	Held        string
	Serve       cluster.ServeState // what this node publishes for it
	// Reason of the last change or refusal; Reasons explains each facet.
	Reason    string
	Reasons   FacetReasons
	Since     time.Time // time of the last change
	LastError string
	Backends  []Backend // the programmed table
	// Transitions and Errors count facet changes and failed calls.
	Transitions, Errors uint64
	// Route is the route checked against the world, RouteReason why.
	// Advertised is the claim; only RouteAnnounced confirms it.
	Route       RouteCheck
	RouteReason string
	World       VIPWorld
	// Diverged is true from a confirmed divergence until a read agrees;
	// DivergedSince is when it was confirmed; Divergences counts them.
	Diverged      bool
	DivergedSince time.Time
	Divergences   uint64
}

func (m *machine) status() Status {
	s := Status{
		Node: m.cfg.Node, Phase: m.phase(), PhaseSince: m.phaseAt, Stopping: m.stopping, Generation: m.gen, Refusals: m.violations,
		Routes: slices.Clone(m.announced), RoutesKnown: !m.advUnknown, LoError: m.loErr,
		World: WorldStatus{
			ReadAt: m.world.at, SessionsUp: m.world.sessionsUp, Error: m.world.err,
			Resyncs: m.resync.count, ResyncError: m.resync.lastErr, Stray: m.strays(),
		},
	}
	for _, v := range m.sorted() {
		var divergedSince time.Time
		if v.check.diverged {
			divergedSince = v.check.since
		}
		route, why := v.check.word, v.check.why
		if route == "" {
			route, why, _ = m.routeView(v) // before the first pass
		}
		s.VIPs = append(s.VIPs, VIPStatus{
			Addr:        v.addr,
			Configured:  v.spec != nil,
			Programmed:  v.live.programmed,
			Advertised:  v.live.adv != advNone,
			Depreferred: v.live.adv == advDeprefer,
			Bound:       v.live.onLo && v.live.inDP,
			Rebinds:     v.why.rebinds,
			ForeignOnLo: v.live.foreign,
			Healthy:     v.in.healthy,
			Draining:    m.nodeDrain || m.vipDrains[v.addr],
			Held:        m.holds[v.addr],
			Serve:       v.live.serve,
			Reason:      v.why.reason,
			Reasons:     v.why.reasons,
			Since:       v.why.since,
			LastError:   v.why.lastErr,
			Backends:    slices.Clone(v.live.table),
			Transitions: v.why.transits,
			Errors:      v.why.errs,
			Route:       route,
			RouteReason: why,
			World: VIPWorld{
				Read: !v.world.at.IsZero(), Exported: v.world.exported, Draining: v.world.draining,
				Peers: slices.Clone(v.world.peers),
			},
			Diverged:      v.check.diverged,
			DivergedSince: divergedSince,
			Divergences:   v.check.count,
		})
	}
	return s
}

// notePhase stamps the phase with the time of the pass that changed it
// (the snapshot calls it after each pass).
func (m *machine) notePhase() {
	if p := m.phase(); m.phaseAt.IsZero() || p != m.phaseWas {
		m.phaseWas, m.phaseAt = p, m.now()
	}
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
		case v.live.serve == cluster.StateActive || m.stillAnnouncedNormal(v):
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

// strays lists the stray routes of the last read that are still no VIP.
func (m *machine) strays() []netip.Addr {
	var out []netip.Addr
	for _, a := range m.world.stray {
		if _, ok := m.vips[a]; !ok {
			out = append(out, a)
		}
	}
	return out
}

func (s Status) clone() Status {
	s.Routes = slices.Clone(s.Routes)
	s.World.Stray = slices.Clone(s.World.Stray)
	s.VIPs = slices.Clone(s.VIPs)
	for i := range s.VIPs {
		s.VIPs[i].Backends = slices.Clone(s.VIPs[i].Backends)
		s.VIPs[i].World.Peers = slices.Clone(s.VIPs[i].World.Peers)
	}
	return s
}
