package vip

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/cluster"
)

// IdleChecker tells how many flows a VIP still serves, so a node drain can
// publish inactive as soon as it is idle instead of waiting the drain timeout.
type IdleChecker interface {
	ActiveFlows(ctx context.Context, addr netip.Addr) (int, error)
}

// Deps are the controller's side effects and helpers.
type Deps struct {
	Advertiser Advertiser
	Binder     Binder
	Dataplane  Dataplane
	Clock      Clock        // nil: RealClock
	Logger     hclog.Logger // nil: no logging
	Idle       IdleChecker  // nil: a drain waits the whole DrainTimeout
	// TableDigest, if set, digests a table right after it is programmed
	// (the daemon digests the build's inputs, cluster.BuildDigest); it is
	// published with Config.Digests.
	TableDigest func(addr netip.Addr, backends []Backend) cluster.Digest
	// LoChanges, if set, is signalled when the addresses on lo may have
	// changed (vip/netlink's address subscription, which also signals
	// when it lost events); each signal makes the controller read lo
	// back with Binder.Bound, as it does every Config.LoCheckInterval.
	// Closing it leaves the periodic reads.
	LoChanges <-chan struct{}
	// Publish, if set, is handed every new node-state document (a new
	// generation) from the loop, after the pass that made it: the etcd
	// backend writes it. It must not block.
	Publish func(cluster.NodeState)
}

// Errors returned by the controller.
var (
	// ErrUnknownVIP: the VIP is not in the configuration.
	ErrUnknownVIP = errors.New("unknown vip")
	// ErrNotRunning: Run has returned.
	ErrNotRunning = errors.New("controller not running")
)

// Controller runs the state machine of every VIP of this node. Its methods
// are safe for concurrent use: they queue an event for the loop (Run) or read
// the snapshot the loop stores after every pass.
type Controller struct {
	m *machine // owned by the Run goroutine

	mu       sync.Mutex
	cfg      Config // the latest accepted config (for validating requests)
	queue    []func(*machine)
	status   Status
	doc      cluster.NodeState
	running  bool
	exited   bool          // Run has returned
	stopped  chan struct{} // closed when a Shutdown drain completed
	stopOnce sync.Once
	wake     chan struct{}
	updates  chan struct{} // signalled after every snapshot (Updates)
}

// New validates cfg and returns a controller that does nothing until Run.
func New(cfg Config, d Deps) (*Controller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating vip config: %w", err)
	}
	if d.Advertiser == nil || d.Binder == nil || d.Dataplane == nil {
		return nil, errors.New("creating vip controller: advertiser, binder and dataplane are required")
	}
	if d.Clock == nil {
		d.Clock = RealClock{}
	}
	if d.Logger == nil {
		d.Logger = hclog.NewNullLogger()
	}
	c := &Controller{
		m:       newMachine(cfg, d),
		cfg:     cfg,
		stopped: make(chan struct{}),
		wake:    make(chan struct{}, 1),
		updates: make(chan struct{}, 1),
	}
	c.status = c.m.status()
	return c, nil
}

// Run is the event loop. It first adopts what is bound and programmed (a
// previous vipd's state is taken over, never flushed), then reconciles after
// every event and timer. When ctx ends it returns without undoing anything,
// so an upgrade restart keeps routes, bindings and the dataplane in place.
func (c *Controller) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return errors.New("running vip controller: already running")
	}
	c.running = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.running, c.exited = false, true
		c.mu.Unlock()
	}()
	m := c.m
	if err := c.adopt(ctx); err != nil {
		return nil // ctx ended while adopting
	}
	// The verifier must be gone when Run returns: the caller may close
	// the advertiser then.
	vctx, stopVerifier := context.WithCancel(ctx)
	var verifying sync.WaitGroup
	defer func() {
		stopVerifier()
		verifying.Wait()
	}()
	resync := make(chan struct{}, 1)
	if m.cfg.VerifyInterval > 0 {
		verifying.Add(1)
		go func() {
			defer verifying.Done()
			c.verifier(vctx, resync)
		}()
	}
	if m.deps.LoChanges != nil || m.cfg.LoCheckInterval > 0 {
		verifying.Add(1)
		go func() {
			defer verifying.Done()
			c.loWatcher(vctx, m.deps.LoChanges)
		}()
	}
	for {
		c.drainQueue()
		m.reconcile(ctx)
		for _, err := range m.checkInvariants() {
			// The guards refused the step; this says what is wrong.
			m.violations++
			m.log.Error("invariant violated", "error", err)
		}
		c.snapshot()
		if m.takeResync() {
			select {
			case resync <- struct{}{}:
			default: // one is pending already
			}
		}
		var timer Timer
		var timerC <-chan time.Time
		if next := m.nextWake(); !next.IsZero() {
			timer = m.clock.NewTimer(next.Sub(m.now()))
			timerC = timer.C()
		}
		select {
		case <-ctx.Done():
			return nil
		case <-c.wake:
		case <-timerC:
		}
		if timer != nil {
			timer.Stop()
		}
	}
}

// adopt reads the live state, retrying with backoff until it succeeds or ctx
// ends: acting without knowing what is bound could unbind a VIP peers use.
func (c *Controller) adopt(ctx context.Context) error {
	m := c.m
	backoff := minBackoff
	for {
		bound, err := m.deps.Binder.Bound(ctx)
		var programmed []netip.Addr
		if err == nil {
			programmed, err = m.deps.Dataplane.Programmed(ctx)
		}
		if err == nil {
			m.adopt(bound, programmed)
			return nil
		}
		m.log.Warn("reading live state to adopt", "error", err)
		t := m.clock.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

func (c *Controller) drainQueue() {
	c.mu.Lock()
	q := c.queue
	c.queue = nil
	c.mu.Unlock()
	for _, f := range q {
		f(c.m)
	}
}

// snapshot stores what the loop reached for the readers (Status,
// NodeState), and tells a Shutdown that its drain is done.
func (c *Controller) snapshot() {
	c.m.notePhase()
	st, doc := c.m.status(), c.m.nodeState()
	c.mu.Lock()
	published := c.doc.Generation
	c.status, c.doc = st, doc
	c.mu.Unlock()
	if c.m.deps.Publish != nil && doc.Generation != published {
		c.m.deps.Publish(copyDoc(doc))
	}
	if c.m.stopping && c.m.stopped() {
		c.stopOnce.Do(func() { close(c.stopped) })
	}
	select {
	case c.updates <- struct{}{}:
	default: // the reader has one pending: it reads the latest Status
	}
}

// Updates is signalled, without ever blocking the loop, after each pass
// has stored its snapshot: a reader follows what the loop reaches (the
// daemon persists the announced routes) by reading Status when it fires.
// Signals coalesce; there must be one reader at most.
func (c *Controller) Updates() <-chan struct{} { return c.updates }

// send queues an event for the loop.
func (c *Controller) send(f func(*machine)) {
	c.mu.Lock()
	c.queue = append(c.queue, f)
	c.mu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Reload applies a new config. VIPs it removes go down as a drained VIP
// does: withdraw, withdraw grace, publish draining (and unprogram), idle or
// RemoveTimeout, publish inactive, table grace, unbind.
func (c *Controller) Reload(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("validating vip config: %w", err)
	}
	c.mu.Lock()
	c.cfg = cfg
	c.mu.Unlock()
	c.send(func(m *machine) { m.applyConfig(cfg) })
	return nil
}

// Drain drains the whole node (vip nil) or withdraws one VIP's route while
// still serving it. A VIP must be configured.
func (c *Controller) Drain(vip *netip.Addr) error { return c.setDrain(vip, true) }

// Undrain reverses Drain.
func (c *Controller) Undrain(vip *netip.Addr) error { return c.setDrain(vip, false) }

func (c *Controller) setDrain(vip *netip.Addr, drain bool) error {
	if vip == nil {
		c.send(func(m *machine) { m.nodeDrain = drain })
		return nil
	}
	addr := *vip
	c.mu.Lock()
	known := c.cfg.vip(addr) != nil
	c.mu.Unlock()
	if !known {
		return fmt.Errorf("draining %s: %w", addr, ErrUnknownVIP)
	}
	c.send(func(m *machine) { m.vipDrains[addr] = drain })
	return nil
}

// SetDrains makes the operator's drains exactly these: the node's, and
// those of the VIPs in vips, configured or not (a drain kept for a VIP that
// left the config holds again when a reload brings it back, in the same
// event). Setting the same drains again does nothing.
func (c *Controller) SetDrains(node bool, vips []netip.Addr) {
	set := make(map[netip.Addr]bool, len(vips))
	for _, a := range vips {
		set[a] = true
	}
	c.send(func(m *machine) { m.nodeDrain, m.vipDrains = node, set })
}

// SetHealth reports the local service check result for a VIP.
func (c *Controller) SetHealth(addr netip.Addr, healthy bool, reason string) {
	c.send(func(m *machine) { m.setHealth(addr, healthy, reason) })
}

// SetPeer records the latest state polled from a member; nil means the member
// failed (after its checks' fall count).
func (c *Controller) SetPeer(node string, st *cluster.NodeState) {
	st = st.Clone() // the caller may reuse its document
	c.send(func(m *machine) { m.setPeer(node, st) })
}

// SetPeers applies one cluster.Update, every member state in it and the
// probe demotions when it carries them, as one event: the next pass builds
// the tables from all of them, so one update is one table switch. A non-zero Revision is recorded as the view the tables
// are built from (published as the digests' TablesAt).
func (c *Controller) SetPeers(u cluster.Update) {
	states := make(map[string]*cluster.NodeState, len(u.States))
	for node, st := range u.States {
		states[node] = st.Clone()
	}
	rev := u.Revision
	var demoted map[string]string
	if u.Demoted != nil {
		demoted = maps.Clone(u.Demoted)
	}
	c.send(func(m *machine) {
		m.setPeers(states, rev)
		if demoted != nil {
			m.demoted = demoted
		}
	})
}

// Hold vetoes announcing addr (for example: no IPv6 route back to clients)
// until Release.
func (c *Controller) Hold(addr netip.Addr, reason string) {
	if reason == "" {
		reason = "no reason given"
	}
	c.send(func(m *machine) { m.holds[addr] = reason })
}

// Release lifts a Hold.
func (c *Controller) Release(addr netip.Addr) {
	c.send(func(m *machine) { delete(m.holds, addr) })
}

// Status returns the latest snapshot.
func (c *Controller) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status.clone()
}

// NodeState returns the document this node publishes to its peers (an
// empty one before Run's first pass).
func (c *Controller) NodeState() cluster.NodeState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return copyDoc(c.doc)
}

// copyDoc is a deep copy of doc whose VIPs are never nil ("vips": {}).
func copyDoc(doc cluster.NodeState) cluster.NodeState {
	c := *doc.Clone()
	if c.VIPs == nil {
		c.VIPs = map[netip.Addr]cluster.VIPState{}
	}
	return c
}

// Shutdown runs the node drain for SIGTERM (every route withdrawn whatever
// the drain policy, then draining, inactive, unbind) and returns when it is
// done or ctx ends. It is final: Undrain does not bring the node back. Run
// must be running (or about to); cancel its context afterwards.
func (c *Controller) Shutdown(ctx context.Context) error {
	c.mu.Lock()
	exited := c.exited && !c.running
	c.mu.Unlock()
	if exited {
		return fmt.Errorf("shutting down: %w", ErrNotRunning)
	}
	c.send(func(m *machine) { m.stopping, m.nodeDrain = true, true })
	select {
	case <-c.stopped:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutting down: %w", ctx.Err())
	}
}

func (m *machine) setHealth(addr netip.Addr, healthy bool, reason string) {
	if reason == "" {
		reason = map[bool]string{true: "service healthy", false: "service unhealthy"}[healthy]
	}
	m.health[addr] = healthReport{healthy, reason}
	if v, ok := m.vips[addr]; ok && (v.in.healthy != healthy || v.in.healthReason != reason) {
		if v.in.healthy != healthy {
			m.transition(v, "healthy", v.in.healthy, healthy, reason)
		}
		v.in.healthy, v.in.healthReason = healthy, reason
	}
}

func (m *machine) setPeer(node string, st *cluster.NodeState) {
	if node == m.cfg.Node {
		return
	}
	if st == nil {
		if _, heard := m.peers[node]; !heard {
			return // never heard of: nothing to keep
		}
	}
	m.peers[node] = st
}

// setPeers applies one cluster.Update's states (rev: its revision, 0 from
// the poller).
func (m *machine) setPeers(states map[string]*cluster.NodeState, rev int64) {
	for node, st := range states {
		m.setPeer(node, st)
	}
	if rev != 0 {
		m.peerRev = rev
	}
}

// stopped: a Shutdown drain has nothing left to withdraw, publish or unbind.
func (m *machine) stopped() bool {
	for _, v := range m.vips {
		if m.stillAnnounced(v) || v.live.onLo || v.live.maybeDP || v.live.serve != cluster.StateInactive {
			return false
		}
	}
	return true
}
