package vip

import (
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/routing"
)

// advState is what the advertiser reports for a VIP's route.
type advState uint8

const (
	advNone     advState = iota // not announced
	advNormal                   // announced with normal attributes
	advDeprefer                 // announced with drain attributes (Route.Draining)
)

func (a advState) String() string {
	return [...]string{"withdrawn", "announced", "announced (deprefer)"}[a]
}

// vipState is the machine's view of one VIP, in three groups: the facets
// really reached in the world (never the hoped-for ones), the inputs that
// decide where they should go, and the explanations Status shows.
type vipState struct {
	addr netip.Addr
	spec *VIPConfig // nil: removed from the config, on its way out
	live liveFacets
	in   inputs
	why  explanations
	// world is what the routing daemon exported for it at the last read;
	// check compares it with the want and the claim.
	world worldView
	check routeCheck
}

// liveFacets are what the side effects reported: what is on lo, in the
// bound set, in the director maps, announced, and published to the peers.
type liveFacets struct {
	onLo bool // address on lo
	// loSeq is machine.loOps when onLo last changed: a read of lo that
	// started before says nothing about it (seeLo).
	loSeq uint64
	// lost: someone else removed the address from lo while vipd had it
	// bound, and it is not back on lo and in the bound set yet; foreign:
	// someone else put it on lo while vipd does not bind it (left alone).
	lost, foreign bool
	inDP          bool               // certainly in the dataplane's bound set
	maybeDP       bool               // possibly in it (after a failed SetBound); unbind waits
	programmed    bool               // in the director maps
	table         []Backend          // the programmed table
	tableUnknown  bool               // adopted: programmed by a previous vipd
	services      []Service          // the programmed services
	tableDigest   cluster.Digest     // of the programmed table (Deps.TableDigest); zero: none
	adv           advState           // what the advertiser reported (the claim)
	advAt         time.Time          // when adv last changed
	prevAdv       advState           // adv before that change (the world until a read confirms it)
	advOff        time.Time          // when the route last stopped being announced (claim or world)
	normalOff     time.Time          // when the route last stopped being announced normally (claim or world)
	serve         cluster.ServeState // the serve state this node publishes
	servedAt      time.Time          // when serve last changed
	// rampFrom is when this node last became a primary for the VIP
	// (active and healthy), published for slow start; zero while not.
	rampFrom time.Time
}

// inputs are what the decisions read besides the live facets: reports from
// the checks and the operator, and what the last pass decided.
type inputs struct {
	healthy      bool
	healthReason string
	idle         bool            // the IdleChecker's last answer while draining
	inTable      map[string]bool // members in the last desired table (a failed peer stays as secondary)
}

// explanations say why each facet is what it is, for Status (invariant 5).
type explanations struct {
	reasons FacetReasons
	reason  string // of the last change or refusal
	since   time.Time
	lastErr string
	// lastErrOp is the call lastErr is about: a later success of the
	// same call clears it, so Status never shows a failure that is over.
	lastErrOp string
	transits  uint64 // facet changes
	errs      uint64 // failed calls
	rebinds   uint64 // binds again after someone else removed it from lo
}

// FacetReasons explains each facet's current value, or why it does not
// change yet.
type FacetReasons struct {
	Programmed, Advertised, Bound, Serve string
}

// machine is the state the event loop owns. Nothing in it is safe for
// concurrent use; the Controller's loop goroutine is its only user.
type machine struct {
	cfg     Config
	members []Member // cfg.Members in name order
	// Per-pass caches (reset by reconcile): VIPs in address order, and
	// desired tables once published states are settled.
	order  []*vipState
	tables map[netip.Addr][]Backend
	deps   Deps
	clock  Clock
	log    hclog.Logger
	vips   map[netip.Addr]*vipState
	peers  map[string]*cluster.NodeState // present: heard of; nil: failed
	// demoted: members this node's data-path probes demoted (a local
	// observation, not in any document), name -> reason.
	demoted map[string]string
	holds   map[netip.Addr]string
	health  map[netip.Addr]healthReport

	// nodeDrain and vipDrains are the operator's drains; a VIP's drain is
	// kept by address, so it holds again if the VIP leaves the config and
	// comes back.
	nodeDrain bool
	vipDrains map[netip.Addr]bool
	stopping  bool

	announced  []routing.Route // the advertiser's last report
	advUnknown bool            // no report yet (restart): any route may be announced
	advRetry   bool            // the last SetRoutes failed: call again
	dpUnknown  bool            // the dataplane's bound set is unknown: set it

	// loOps counts the loop's completed Bind and Unbind calls that
	// changed lo; the lo watcher reads it (the only field another
	// goroutine touches) to date its reads. loErr is why the last read of
	// lo failed; loReads counts the successful ones.
	loOps   atomic.Uint64
	loErr   string
	loReads uint64

	world  worldState // the routing daemon as last read back
	resync resyncState
	// offAt: when the routes of addresses with no state here (forgotten
	// VIPs, stray routes) were last seen announced (recentlyOff).
	offAt map[netip.Addr]time.Time

	// changes counts transitions; a pass that made any is followed by
	// another right away, since a change may enable the next step (a grace
	// of zero, a withdraw that lets draining be published).
	changes uint64
	again   bool

	backoff time.Duration
	retryAt time.Time

	gen     uint64
	doc     map[netip.Addr]cluster.VIPState
	digests *cluster.Digests // published with doc
	// peerRev is the etcd revision of the last update applied (0: poll);
	// tablesAt is peerRev when a table last changed: the view the tables
	// were built from. (Not peerRev itself: every document a peer writes
	// to etcd makes a revision, and republishing for each would never end.)
	peerRev, tablesAt int64
	started           time.Time
	// settled latches once every other member has been heard of (or
	// PeerWait passed since started): tables and routes may change.
	settled bool

	// onTransition, if set, sees every transition (tests check reasons).
	onTransition func(Transition)
	// phaseWas is the node drain phase at the last snapshot, phaseAt
	// since when it holds (notePhase).
	phaseWas Phase
	phaseAt  time.Time
	// violations counts invariant violations found by checkInvariants in
	// production passes (logged, never silently applied).
	violations uint64
}

type healthReport struct {
	healthy bool
	reason  string
}

// Transition is one facet change of a VIP, with the reason for it.
type Transition struct {
	At       time.Time
	VIP      netip.Addr
	Facet    string
	From, To string
	Reason   string
}

const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	idlePoll   = time.Second
)

func newMachine(cfg Config, d Deps) *machine {
	m := &machine{
		cfg:        cfg,
		deps:       d,
		clock:      d.Clock,
		log:        d.Logger,
		vips:       map[netip.Addr]*vipState{},
		peers:      map[string]*cluster.NodeState{},
		holds:      map[netip.Addr]string{},
		health:     map[netip.Addr]healthReport{},
		advUnknown: true,
		dpUnknown:  true,
		offAt:      map[netip.Addr]time.Time{},
		vipDrains:  map[netip.Addr]bool{},
	}
	m.applyConfig(cfg)
	return m
}

func (m *machine) now() time.Time { return m.clock.Now() }

// state returns the VIP's state, creating it (inactive, unbound) if new.
func (m *machine) state(addr netip.Addr) *vipState {
	v, ok := m.vips[addr]
	if !ok {
		h, ok := m.health[addr]
		if !ok {
			h = healthReport{true, "no health report yet"}
		}
		v = &vipState{
			addr: addr,
			live: liveFacets{serve: cluster.StateInactive},
			in:   inputs{healthy: h.healthy, healthReason: h.reason, inTable: map[string]bool{}},
		}
		// A route may be out already, or have been until just now (a
		// ghost of a removed VIP): invariant 4 holds for it too.
		m.seeWorld(v)
		if t, ok := m.offAt[addr]; ok {
			v.live.advOff, v.live.normalOff = t, t
		}
		m.vips[addr] = v
		m.order = nil
	}
	return v
}

// applyConfig takes a new config: new VIPs appear, removed ones lose their
// spec and go down in order.
func (m *machine) applyConfig(cfg Config) {
	m.cfg = cfg
	m.members = sortedMembers(cfg.Members)
	m.order = nil
	for _, v := range m.vips {
		v.spec = nil
	}
	for i := range cfg.VIPs {
		spec := cfg.VIPs[i]
		spec.Services = slices.Clone(spec.Services)
		m.state(spec.Addr).spec = &spec
	}
}

// adopt takes over what a previous vipd left: bound and programmed VIPs stay
// as they are; nothing is flushed. Peers may still send to a bound VIP, so it
// counts as published inactive just now (table grace before any unbind), and
// a programmed VIP may still be announced, so it counts as withdrawn just now
// (withdraw grace before any unprogram).
func (m *machine) adopt(bound, programmed []netip.Addr) {
	now := m.now()
	m.started = now
	for _, a := range bound {
		v := m.state(a)
		// The bound set is pinned with the program and the Dataplane
		// cannot list it: it may hold the VIP (so no unbind before it is
		// set), but nothing is published active before it is.
		v.live.onLo, v.live.maybeDP = true, true
		v.live.servedAt = now
		m.log.Info("adopting bound vip", "vip", a)
	}
	for _, a := range programmed {
		v := m.state(a)
		v.live.programmed = true
		// Its table is unknown (it may hold this node) until reprogrammed.
		v.live.table, v.live.tableUnknown = nil, true
		v.live.advOff, v.live.normalOff = now, now
		m.log.Info("adopting programmed vip", "vip", a)
	}
}

// transition records a facet change with its reason (invariant 5).
func (m *machine) transition(v *vipState, facet string, from, to any, reason string) {
	if reason == "" {
		reason = "unexplained"
		m.violations++ // invariant 5
		m.log.Error("transition without a reason", "vip", v.addr, "facet", facet)
	}
	now := m.now()
	v.why.reason, v.why.since = facet+": "+reason, now
	v.why.transits++
	m.changes++
	m.log.Info("vip "+facet, "vip", v.addr, "state", to, "from", from, "reason", reason)
	if m.onTransition != nil {
		m.onTransition(Transition{At: now, VIP: v.addr, Facet: facet, From: fmt.Sprint(from), To: fmt.Sprint(to), Reason: reason})
	}
}

func (m *machine) fail(v *vipState, what string, err error) {
	v.why.lastErr, v.why.lastErrOp = what+": "+err.Error(), what
	v.why.errs++
	m.log.Warn("side effect failed", "vip", v.addr, "op", what, "error", err)
}

// succeeded clears v's last error when it was about the call what, which
// has now succeeded (the error count stays).
func (m *machine) succeeded(v *vipState, what string) {
	if v.why.lastErrOp == what {
		v.why.lastErr, v.why.lastErrOp = "", ""
	}
}

// sorted returns the VIP states in address order, so passes are
// deterministic.
func (m *machine) sorted() []*vipState {
	if m.order != nil {
		return m.order
	}
	out := make([]*vipState, 0, len(m.vips))
	for _, v := range m.vips {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *vipState) int { return a.addr.Compare(b.addr) })
	m.order = out
	return out
}
