package bgp

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/server"

	"github.com/vipd/vipd/internal/fielderr"
	"github.com/vipd/vipd/routing"
)

// ErrNotStarted: the speaker was not started yet. (A prefix that is not a
// configured VIP is routing.ErrUnknownPrefix; after Close or Abandon every
// method returns routing.ErrClosed.)
var ErrNotStarted = errors.New("bgp speaker not started")

// connectRetry is how often an active session to a down peer is retried.
// GoBGP's default (120 s) would leave a router that rebooted without our
// routes for two minutes.
const connectRetry = 5 * time.Second

// deferralTime bounds how long a restarting speaker waits for its peers'
// End-of-RIB before it sends its own routes.
const deferralTime = 30 * time.Second

// Speaker is the embedded BGP speaker of a vipd node. It implements
// routing.Advertiser. It is safe for concurrent use; route changes are
// serialized by mu.
//
// Run one Speaker per process at a time: GoBGP's StartBgp writes package
// variables of its table package (route selection options) that every
// running BgpServer reads, so two servers in one process race (the race
// detector reports it). Close one before starting the next.
type Speaker struct {
	cfg  Config
	log  hclog.Logger
	spec pathSpec
	vips map[netip.Prefix]RouteAttrs
	srv  *server.BgpServer

	mu        sync.Mutex // guards the fields below
	started   bool
	stopped   bool // closed or abandoned
	announced map[netip.Prefix]announcedRoute
	// exportGen is the generation of the export policy in force (see
	// installExportLocked); -1 before the first is installed.
	exportGen int

	errMu   sync.Mutex
	lastErr map[netip.Addr]string
}

var _ routing.Advertiser = (*Speaker)(nil)

// announcedRoute is what the speaker announced for one prefix.
type announcedRoute struct {
	attrs    RouteAttrs
	draining bool
	// stale: the path out there is not the one attrs describe (its next
	// hop changed and the new one could not be announced yet): announce
	// it again even if attrs are asked again.
	stale bool
}

// New validates cfg and returns a Speaker that is not started yet. Router id
// and the next hop of every family that has a VIP must be set (the config
// loader fills them from the node section).
func New(cfg Config, log hclog.Logger) (*Speaker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating bgp config: %w", err)
	}
	if !cfg.RouterID.IsValid() {
		return nil, errors.New("validating bgp config: router_id is not set")
	}
	vips := make(map[netip.Prefix]RouteAttrs, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		if v.Prefix.Addr().Is4() && !cfg.NextHop4.IsValid() {
			return nil, fmt.Errorf("validating bgp config: IPv4 VIP %s needs next_hop_v4", v.Prefix)
		}
		if v.Prefix.Addr().Is6() && !cfg.NextHop6.IsValid() {
			return nil, fmt.Errorf("validating bgp config: IPv6 VIP %s needs next_hop_v6", v.Prefix)
		}
		vips[v.Prefix] = v.Attrs
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	s := &Speaker{
		cfg:       cfg,
		log:       log,
		spec:      pathSpec{asn: cfg.ASN, nextHop4: cfg.NextHop4, nextHop6: cfg.NextHop6},
		vips:      vips,
		announced: map[netip.Prefix]announcedRoute{},
		exportGen: -1,
		lastErr:   map[netip.Addr]string{},
	}
	s.srv = server.NewBgpServer(server.LoggerOption(&logAdapter{log: log.Named("gobgp"), peerErr: s.setPeerErr}))
	return s, nil
}

// StartOptions say how Start brings the speaker up.
type StartOptions struct {
	// Routes are announced before any neighbor is configured. After an
	// upgrade restart they are the routes the old vipd announced (adopted
	// state): GoBGP sends End-of-RIB right after the routes it holds when a
	// session comes up, and a graceful-restart helper then drops whatever
	// stale route was not re-announced.
	Routes []routing.Route
	// Restarting marks an upgrade restart (RFC 4724 restarting speaker):
	// the OPEN carries the Restart State and Forwarding State bits, so GR
	// helpers keep the stale routes through the new session until our
	// End-of-RIB instead of flushing them at once, and GoBGP defers its
	// updates until the peers' End-of-RIB (or the deferral time). Needs
	// GracefulRestart.Enabled.
	Restarting bool
}

// Start starts the BGP server, installs the import and export policies,
// announces opts.Routes and only then configures the neighbors. It does not
// wait for any session.
func (s *Speaker) Start(ctx context.Context, opts StartOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started || s.stopped {
		return errors.New("starting bgp speaker: already started")
	}
	go s.srv.Serve()
	g := &api.Global{
		Asn:        s.cfg.ASN,
		RouterId:   s.cfg.RouterID.String(),
		ListenPort: s.cfg.ListenPort,
	}
	for _, a := range s.cfg.ListenAddresses {
		g.ListenAddresses = append(g.ListenAddresses, a.String())
	}
	if err := s.srv.StartBgp(ctx, &api.StartBgpRequest{Global: g}); err != nil {
		return fmt.Errorf("starting bgp: %w", err)
	}
	s.started = true
	if err := s.setPolicies(ctx); err != nil {
		s.stopLocked(ctx)
		return err
	}
	if _, err := s.setRoutesLocked(ctx, opts.Routes); err != nil {
		// An adopted route whose VIP left the config is refused and
		// stays withdrawn; anything else is fatal to the start.
		for _, e := range fielderr.All(err) {
			if !errors.Is(e, routing.ErrUnknownPrefix) {
				s.stopLocked(ctx)
				return fmt.Errorf("announcing initial routes: %w", err)
			}
		}
		s.log.Warn("not announcing adopted routes", "reason", err)
	}
	for i, n := range s.cfg.Neighbors {
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConf(n, opts.Restarting)}); err != nil {
			s.stopLocked(ctx)
			return fmt.Errorf("adding neighbor[%d] %s: %w", i, n.Address, err)
		}
	}
	s.log.Info("bgp speaker started", "asn", s.cfg.ASN, "router_id", s.cfg.RouterID, "neighbors", len(s.cfg.Neighbors), "routes", len(s.announced))
	if opts.Restarting && s.cfg.GracefulRestart.Enabled && len(s.cfg.Neighbors) > 1 {
		go s.keepRestarting(s.restartTime())
	}
	return nil
}

// restartTime is the graceful-restart time announced to the neighbors.
func (s *Speaker) restartTime() time.Duration {
	return s.cfg.WithDefaults().GracefulRestart.RestartTime
}

// lateRestarterPoll is how often keepRestarting looks at the neighbors.
const lateRestarterPoll = 50 * time.Millisecond

// keepRestarting keeps a restart graceful for the neighbors whose session
// comes up late, without letting one of them hold our routes back.
//
// GoBGP ends its restart (LocalRestarting false on every neighbor) as soon
// as every neighbor *established* so far has sent its End-of-RIB: a
// neighbor still connecting then gets an OPEN without the Restart State and
// Forwarding State bits, and a helper such as BIRD flushes our stale routes
// at once and relearns them from the UPDATE that follows, a flap at that
// router (seen with two routers: the second session came up 0.45 s after
// the first). So, until every neighbor is established and out of the
// restart, or the restart time has passed, a neighbor that is not
// established and not configured as restarting is configured again as
// restarting. It has no session to tear
// down; a connection caught in OpenSent gets a Cease, which does not end a
// helper's restart.
//
// That covers a neighbor whose session went down after the restart ended,
// too (a link flap soon after an upgrade), and it must: a restarting
// neighbor sends nothing until every neighbor GoBGP knows has sent its
// End-of-RIB, and GoBGP counts a neighbor that is down but had a graceful
// restart session as one still to send it, and looks again only when a
// restarting neighbor's End-of-RIB arrives. Left alone, the restarting
// neighbor waits for the deferral time (30 s), its router holding our
// stale routes and no withdrawal (a drain) reaching it. A neighbor
// configured again starts with no session behind it, which GoBGP does not
// wait for.
//
// When the restart time has passed, the helpers have dropped our routes:
// a neighbor still configured as restarting is configured again as a
// plain one, or it would wait, when it comes up, for neighbors that are no
// longer kept as restarting here.
func (s *Speaker) keepRestarting(within time.Duration) {
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		time.Sleep(lateRestarterPoll)
		done, ok := s.reconfigureLate(true)
		if !ok || done {
			return
		}
	}
	s.reconfigureLate(false)
}

// reconfigureLate configures every neighbor that is not established and
// whose restarting flag is not restarting again with it. done: every
// neighbor is established and out of the restart (one still in it waits
// for the others' End-of-RIB: if one of them went down now, it would be
// the case above); ok false: the speaker stopped.
func (s *Speaker) reconfigureLate(restarting bool) (done, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopped {
		return false, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	var (
		wrong   []string
		pending int // not established, or still restarting
	)
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil {
			return
		}
		inRestart := p.GracefulRestart != nil && p.GracefulRestart.LocalRestarting
		up := p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED
		if !up || inRestart {
			pending++
		}
		if !up && inRestart != restarting {
			wrong = append(wrong, p.Conf.NeighborAddress)
		}
	})
	if err != nil {
		s.log.Warn("reading neighbors during a graceful restart", "reason", err)
		return false, true
	}
	for _, a := range wrong {
		i := slices.IndexFunc(s.cfg.Neighbors, func(n Neighbor) bool { return n.Address.String() == a })
		if i < 0 {
			continue
		}
		if err := s.srv.DeletePeer(ctx, &api.DeletePeerRequest{Address: a}); err != nil {
			s.log.Warn("reconfiguring a late neighbor", "neighbor", a, "restarting", restarting, "reason", err)
			continue
		}
		if err := s.srv.AddPeer(ctx, &api.AddPeerRequest{Peer: s.peerConf(s.cfg.Neighbors[i], restarting)}); err != nil {
			s.log.Warn("reconfiguring a late neighbor", "neighbor", a, "restarting", restarting, "reason", err)
			continue
		}
		if restarting {
			s.log.Info("neighbor not up while the restart runs: configured as restarting again, so it keeps our routes", "neighbor", a)
		} else {
			s.log.Info("neighbor not up when the restart time passed: configured as not restarting", "neighbor", a)
		}
	}
	return pending == 0, true
}

// Policy and defined-set names installed by setPolicies.
const (
	policyImport = "vipd-import-local-only"
	policyExport = "vipd-export-vips-only"
	setVIPs4     = "vipd-vips-v4"
	setVIPs6     = "vipd-vips-v6"
)

// setPolicies makes the global RIB accept only local paths (nothing learned
// from a peer is ever imported, so nothing learned can be re-exported or
// make the RIB grow) and lets out only local paths for configured VIPs.
func (s *Speaker) setPolicies(ctx context.Context) error {
	local := &api.Conditions{RouteType: api.Conditions_ROUTE_TYPE_LOCAL}
	accept := &api.Actions{RouteAction: api.RouteAction_ACCEPT}
	if err := s.srv.AddPolicy(ctx, &api.AddPolicyRequest{Policy: &api.Policy{
		Name:       policyImport,
		Statements: []*api.Statement{{Name: policyImport + "-local", Conditions: local, Actions: accept}},
	}}); err != nil {
		return fmt.Errorf("adding import policy: %w", err)
	}
	if err := s.srv.SetPolicyAssignment(ctx, &api.SetPolicyAssignmentRequest{Assignment: &api.PolicyAssignment{
		Name: "global", Direction: api.PolicyDirection_IMPORT,
		Policies:      []*api.Policy{{Name: policyImport}},
		DefaultAction: api.RouteAction_REJECT,
	}}); err != nil {
		return fmt.Errorf("assigning import policy: %w", err)
	}
	return s.installExportLocked(ctx)
}

// peerConf translates a Neighbor into GoBGP's peer configuration.
func (s *Speaker) peerConf(n Neighbor, restarting bool) *api.Peer {
	n = n.withDefaults()
	port, hold, ka := uint32(n.Port), n.HoldTime, n.Keepalive
	p := &api.Peer{
		Conf: &api.PeerConf{
			NeighborAddress: n.Address.String(),
			PeerAsn:         n.ASN,
			AuthPassword:    n.Password,
		},
		Transport: &api.Transport{RemotePort: port, PassiveMode: n.Passive},
		Timers: &api.Timers{Config: &api.TimersConfig{
			HoldTime:          uint64(hold / time.Second),
			KeepaliveInterval: uint64(ka / time.Second),
			ConnectRetry:      uint64(connectRetry / time.Second),
		}},
	}
	if n.LocalAddress.IsValid() {
		p.Transport.LocalAddress = n.LocalAddress.String()
	}
	if n.MultihopTTL > 0 {
		p.EbgpMultihop = &api.EbgpMultihop{Enabled: true, MultihopTtl: uint32(n.MultihopTTL)}
	}
	gr := s.cfg.GracefulRestart
	if gr.Enabled {
		rt := s.restartTime()
		p.GracefulRestart = &api.GracefulRestart{
			Enabled:         true,
			RestartTime:     uint32(rt / time.Second),
			LocalRestarting: restarting,
			DeferralTime:    uint32(deferralTime / time.Second),
		}
	}
	for _, fam := range []*api.Family{familyV4, familyV6} {
		af := &api.AfiSafi{Config: &api.AfiSafiConfig{Family: fam, Enabled: true}}
		if gr.Enabled {
			af.MpGracefulRestart = &api.MpGracefulRestart{Config: &api.MpGracefulRestartConfig{Enabled: true}}
		}
		p.AfiSafis = append(p.AfiSafis, af)
	}
	return p
}

// SetRoutes makes the announced routes exactly routes (see
// routing.Advertiser): it announces new and changed routes first, then
// withdraws the rest. A draining route is announced with the drain
// attributes on top of the VIP's own. A prefix that is not a configured VIP
// is refused (the error names it); the other routes are still applied.
// Peers that are down do not slow it down. It returns the routes announced
// when it returns.
func (s *Speaker) SetRoutes(ctx context.Context, routes []routing.Route) ([]routing.Route, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.runningLocked(); err != nil {
		return s.routesLocked(), err
	}
	return s.setRoutesLocked(ctx, routes)
}

// runningLocked is nil while the speaker may announce, else why not.
// Caller holds mu.
func (s *Speaker) runningLocked() error {
	switch {
	case s.stopped:
		return routing.ErrClosed
	case !s.started:
		return ErrNotStarted
	}
	return nil
}

func (s *Speaker) setRoutesLocked(ctx context.Context, routes []routing.Route) ([]routing.Route, error) {
	type want struct {
		attrs    RouteAttrs
		draining bool
	}
	wanted := make(map[netip.Prefix]want, len(routes))
	var errs []error
	for _, r := range routes {
		base, ok := s.vips[r.Prefix]
		if !ok {
			errs = append(errs, fmt.Errorf("refusing to announce %s: %w", r.Prefix, routing.ErrUnknownPrefix))
			continue
		}
		if r.Draining {
			base = withDrain(base, s.cfg.DrainAttrs)
		}
		wanted[r.Prefix] = want{base, r.Draining}
	}
	adds := make([]netip.Prefix, 0, len(wanted))
	for p := range wanted {
		adds = append(adds, p)
	}
	slices.SortFunc(adds, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, p := range adds {
		w := wanted[p]
		if err := s.announceLocked(ctx, p, w.attrs, w.draining); err != nil {
			errs = append(errs, err)
		}
	}
	var dels []netip.Prefix
	for p := range s.announced {
		if _, ok := wanted[p]; !ok {
			dels = append(dels, p)
		}
	}
	slices.SortFunc(dels, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	for _, p := range dels {
		if err := s.withdrawLocked(ctx, p); err != nil {
			errs = append(errs, err)
		}
	}
	return s.routesLocked(), errors.Join(errs...)
}

// routesLocked lists the announced routes, sorted. Caller holds mu.
func (s *Speaker) routesLocked() []routing.Route {
	out := make([]routing.Route, 0, len(s.announced))
	for p, a := range s.announced {
		out = append(out, routing.Route{Prefix: p, Draining: a.draining})
	}
	slices.SortFunc(out, func(a, b routing.Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return out
}

// Announce announces prefix, a configured VIP, with attrs (not merged with
// the VIP's configured attributes: SetRoutes does that). Announcing the
// same prefix with the same attributes again does nothing; with other
// attributes it replaces the path (an implicit withdraw at the peers).
func (s *Speaker) Announce(ctx context.Context, prefix netip.Prefix, attrs RouteAttrs) error {
	if err := errors.Join(attrs.validate("attrs")...); err != nil {
		return fmt.Errorf("announcing %s: %w", prefix, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.vips[prefix]; !ok {
		return fmt.Errorf("refusing to announce %s: %w", prefix, routing.ErrUnknownPrefix)
	}
	if err := s.runningLocked(); err != nil {
		return err
	}
	return s.announceLocked(ctx, prefix, attrs, false)
}

// Withdraw withdraws prefix. Withdrawing a prefix that is not announced
// does nothing.
func (s *Speaker) Withdraw(ctx context.Context, prefix netip.Prefix) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.runningLocked(); err != nil {
		return err
	}
	return s.withdrawLocked(ctx, prefix)
}

func (s *Speaker) announceLocked(ctx context.Context, p netip.Prefix, attrs RouteAttrs, draining bool) error {
	if cur, ok := s.announced[p]; ok && !cur.stale && equalAttrs(cur.attrs, attrs) {
		if cur.draining != draining {
			s.announced[p] = announcedRoute{attrs: attrs, draining: draining}
		}
		return nil
	}
	path, err := s.spec.announce(p, attrs)
	if err != nil {
		return fmt.Errorf("announcing %s: %w", p, err)
	}
	if _, err := s.srv.AddPath(ctx, &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		return fmt.Errorf("announcing %s: %w", p, err)
	}
	s.announced[p] = announcedRoute{attrs: attrs, draining: draining}
	s.log.Debug("announced", "vip", p, "draining", draining)
	return nil
}

func (s *Speaker) withdrawLocked(ctx context.Context, p netip.Prefix) error {
	if _, ok := s.announced[p]; !ok {
		return nil
	}
	path, err := s.spec.withdraw(p)
	if err != nil {
		return fmt.Errorf("withdrawing %s: %w", p, err)
	}
	// Delete by path, not by UUID: GoBGP looks a UUID up by scanning every
	// path of the RIB, which is quadratic over thousands of VIPs.
	if err := s.srv.DeletePath(ctx, &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: path.Family, Path: path}); err != nil {
		return fmt.Errorf("withdrawing %s: %w", p, err)
	}
	delete(s.announced, p)
	s.log.Debug("withdrawn", "vip", p)
	return nil
}

// Close withdraws every route, waits until every established peer has been
// sent the withdrawals (written to the session while it is still up),
// bounded by ctx, and then stops the server, which closes the sessions with
// a Cease. Use it for
// a shutdown or a drain; for an upgrade restart use Abandon.
func (s *Speaker) Close(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.started || s.stopped {
		s.stopped = true
		return nil
	}
	before, err := s.sentLocked(ctx)
	if err != nil {
		err = fmt.Errorf("reading peer counters: %w", err)
	}
	if _, werr := s.setRoutesLocked(ctx, nil); werr != nil {
		err = errors.Join(err, fmt.Errorf("withdrawing routes: %w", werr))
	}
	if werr := s.waitWithdrawnLocked(ctx, before); werr != nil {
		err = errors.Join(err, werr)
	}
	s.stopLocked(context.WithoutCancel(ctx))
	s.log.Info("bgp speaker stopped")
	return err
}

// peerSent is what an established peer had been sent before Close.
type peerSent struct {
	updates uint64 // UPDATE messages written to the socket
	routes  uint64 // routes in its adj-rib-out: withdrawals Close must send
}

// sentLocked reads, for every established peer, its sent-UPDATE counter and
// how many routes it was advertised.
func (s *Speaker) sentLocked(ctx context.Context) (map[string]peerSent, error) {
	out := map[string]peerSent{}
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.State != nil && p.State.SessionState == api.PeerState_ESTABLISHED {
			out[p.State.NeighborAddress] = peerSent{updates: sentUpdates(p)}
		}
	})
	if err != nil {
		return nil, err
	}
	for addr, ps := range out {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			continue
		}
		if ps.routes, err = s.advertised(ctx, a); err != nil {
			return nil, err
		}
		out[addr] = ps
	}
	return out, nil
}

func sentUpdates(p *api.Peer) uint64 {
	if p.State == nil || p.State.Messages == nil || p.State.Messages.Sent == nil {
		return 0
	}
	return p.State.Messages.Sent.Update
}

// waitWithdrawnLocked waits until every peer that was established and had
// routes before the withdrawals has been sent them, bounded by ctx.
//
// GoBGP's StopBgp cancels each session's send loop and writes the Cease
// directly: whatever UPDATE is still queued is dropped, and an empty output
// queue is not enough either (the send loop may hold a message it has not
// written). What counts is the peer's sent-UPDATE counter, which GoBGP
// bumps after the write: each withdrawal of one prefix is one UPDATE, so the
// counter must grow by the number of routes the peer had. If it grows by
// less and then stays still with the queue empty (a route of a family the
// session did not negotiate is counted but never sent), a few quiet polls
// end the wait too.
func (s *Speaker) waitWithdrawnLocked(ctx context.Context, before map[string]peerSent) error {
	const quietPolls = 5
	t := time.NewTicker(2 * time.Millisecond)
	defer t.Stop()
	last := map[string]uint64{}
	quiet := map[string]int{}
	for {
		var pending []string
		err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			if p.State == nil || p.State.SessionState != api.PeerState_ESTABLISHED {
				return // the session is gone: nothing more will reach it
			}
			addr := p.State.NeighborAddress
			b, ok := before[addr]
			if !ok || b.routes == 0 {
				return
			}
			sent := sentUpdates(p) - b.updates
			if sent >= b.routes && p.State.OutQ == 0 {
				return
			}
			if sent > 0 && p.State.OutQ == 0 && sent == last[addr] {
				if quiet[addr]++; quiet[addr] >= quietPolls {
					return
				}
			} else {
				quiet[addr] = 0
			}
			last[addr] = sent
			pending = append(pending, addr)
		})
		if err != nil {
			return fmt.Errorf("listing peers: %w", err)
		}
		if len(pending) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for withdrawals to reach %s: %w", strings.Join(pending, ", "), ctx.Err())
		case <-t.C:
		}
	}
}

// stopLocked stops the server: Cease to every peer.
func (s *Speaker) stopLocked(ctx context.Context) {
	if err := s.srv.StopBgp(ctx, &api.StopBgpRequest{}); err != nil {
		s.log.Warn("stopping bgp", "reason", err)
	}
	s.stopped = true
}

// Abandon stops using the speaker WITHOUT stopping GoBGP, for an upgrade
// restart: the process is about to exit, the kernel closes the TCP sessions
// without a BGP Cease, and graceful-restart helpers keep our routes (marked
// stale) until the next vipd announces them again. StopBgp must not be
// called on this path: it sends Cease and peers drop the routes at once.
// After Abandon every method returns routing.ErrClosed.
func (s *Speaker) Abandon() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = true
	s.log.Info("bgp speaker abandoned for restart; sessions close without Cease", "routes", len(s.announced))
	return nil
}
