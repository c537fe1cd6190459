// Package daemon is one vipd node at run time: it wires the config into the
// state machine (vip.Controller) and its side effects (one
// routing.Advertiser, the netlink binder, the XDP dataplane), the local
// service checks, the cluster poller and node-state server, the API socket,
// the metrics listener and the state directory (the operator's drains and
// the announced routes, package statedir), and owns the three ways of
// stopping: drain and exit (SIGTERM), upgrade exit without withdrawing
// (SIGUSR2, vipctl restart), and reload (SIGHUP). A crash needs no code:
// whatever it interrupts, the state directory holds what the next start
// needs.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"
	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/internal/hostcheck"
	"github.com/vipd/vipd/internal/metrics"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/vip"
	"github.com/vipd/vipd/vip/netlink"
)

// Options say how to start a node.
type Options struct {
	ConfigPath string
	Logger     hclog.Logger
	// SkipHostChecks skips the start-up host checks and the IPv6 route-back
	// check (tests on hosts the checks would refuse). Never set it in
	// production.
	SkipHostChecks bool
	// StartDrained starts the node in maintenance (vipd --drained): a node
	// drain is recorded in the state directory unless one already is.
	StartDrained bool
	// EtcdDialer, if set, opens the etcd backend's connections (tests dial
	// the etcd of internal/cluster/etcd/etcdtest from its namespace).
	EtcdDialer func(ctx context.Context, addr string) (net.Conn, error)
}

// Dataplane is what the daemon needs of the XDP dataplane (package
// dataplane): the state machine's side of it, the counters for status, and
// its upkeep.
type Dataplane interface {
	vip.Dataplane
	// Stats returns the program's verdict and drop counters.
	Stats() (map[string]uint64, error)
	// EnsureLookupForwarding turns forwarding on for the device the
	// program's FIB lookups use, if something turned it off.
	EnsureLookupForwarding() (bool, error)
	// Close releases the dataplane; what is pinned stays.
	Close() error
}

// Binder is what the daemon needs of the VIP binder (vip/netlink).
type Binder interface {
	vip.Binder
	Close() error
}

// LoWatcher is optional on a Binder: Watch signals when the addresses on
// lo may have changed (vip/netlink's address subscription), so a VIP
// removed behind vipd's back is bound again at once rather than at the
// next periodic read (vip.Config.LoCheckInterval).
type LoWatcher interface {
	Watch(ctx context.Context) (<-chan struct{}, error)
}

// FlowLooker is optional on a Dataplane: it answers vipctl lookup from the
// programmed state itself. LookupFlow returns the row of vip's table that
// the XDP program's flow hash picks for a flow from client to vip port
// (proto 6 TCP, 17 UDP), and the underlay addresses in that row of the
// pinned table: the program's own hash and table, never a copy that could
// drift from them. Without it vipd answers lookups "not supported".
type FlowLooker interface {
	LookupFlow(ctx context.Context, vip netip.Addr, client netip.AddrPort, proto uint8, port uint16) (row uint32, primary, secondary netip.Addr, err error)
}

// Parts are the side effects a node drives. Start opens the real ones (the
// XDP dataplane, the netlink binder, the routing mode's advertiser); tests
// hand fakes to New.
type Parts struct {
	// Advertiser is an advertiser opened by the caller; or NewAdvertiser
	// opens one once the state directory has been read, with the routes
	// the previous vipd left announced. Exactly one is set.
	Advertiser    routing.Advertiser
	NewAdvertiser func(ctx context.Context, start AdvertiserStart) (routing.Advertiser, error)
	Binder        Binder
	Dataplane     Dataplane
	// Traffic reads the dataplane's per-VIP counters for status and
	// metrics (vipd_vip_packets_total, vipd_vip_bytes_total); nil while
	// the dataplane keeps none. Start adapts dataplane.VIPStats to it
	// (trafficOf).
	Traffic func(ctx context.Context) (map[netip.Addr][]api.Traffic, error)
	// Probe sends one data-path probe (dataplane.Probe, what Start
	// wires); nil: this node sends none (status shows no probes).
	Probe func(ctx context.Context, spec dataplane.ProbeSpec) (time.Duration, error)
}

// AdvertiserStart is what a new advertiser needs of the previous vipd.
type AdvertiserStart struct {
	// Routes are the routes the previous vipd announced last (from the
	// state directory). After a crash or an upgrade exit they are still at
	// the peers: a BGP speaker announces them again as a graceful
	// restarter before anything else. Empty after a clean stop.
	Routes []routing.Route
}

// Daemon is a running vipd node.
type Daemon struct {
	log     hclog.Logger
	path    string
	started time.Time
	// skipChecks: the host checks are off (tests only).
	skipChecks bool
	// etcdDialer is Options.EtcdDialer.
	etcdDialer func(ctx context.Context, addr string) (net.Conn, error)

	mu  sync.Mutex // guards cfg, loaded, lastReload
	cfg *config.Config
	// loaded is when cfg was loaded; lastReload the last reload's outcome.
	loaded     time.Time
	lastReload *api.Reload
	// advMu serializes the advertiser's SetVIPs calls (reloads, and
	// dropping forgotten VIPs) and guards leaving: VIPs removed by reloads
	// that the controller has not forgotten yet, still announceable.
	advMu   sync.Mutex
	leaving map[netip.Prefix]routing.VIP

	// state is the state directory. drainMu orders drain requests (each
	// written, then handed to the controller) and guards the restored
	// flags: drains read back at start and unchanged since.
	state        *statedir.Dir
	drainMu      sync.Mutex
	restoredNode bool
	// restart is what the upgrade exit before this start left
	// (statedir.RestartFile; zero if none).
	restart      statedir.Restart
	restoredVIPs map[netip.Addr]bool
	// members is the latest view of every member (signature status,
	// rejections, digests), kept across reloads and source restarts;
	// cluster is the rest of the cluster wiring (cluster.go).
	members *cluster.Membership
	cluster *clusterState

	ctrl    *vip.Controller
	adv     routing.Advertiser
	dp      Dataplane
	binder  Binder
	owned   *ownedBinder // binder, narrowed to vipd's addresses
	traffic func(ctx context.Context) (map[netip.Addr][]api.Traffic, error)
	apiSrv  *api.Server

	// watch follows the controller's passes (watch.go); notify talks to
	// systemd (notify.go).
	watch  *watcher
	notify *notifier
	// followKick wakes follow after a pass.
	followKick chan struct{}
	// loRestored counts the times forwarding on lo had to be turned on again.
	loRestored atomic.Uint64
	// checkMetrics records every service check's result and duration.
	checkMetrics *metrics.Checks

	ctx      context.Context // lives until Shutdown/Abandon
	cancel   context.CancelFunc
	wg       sync.WaitGroup // background goroutines
	ctrlDone chan error

	// checks run the local service checks of every VIP.
	checks *health.Monitor

	restartReq chan struct{}
	restartOne sync.Once
}

func newDaemon(cfg *config.Config, opts Options) *Daemon {
	log := opts.Logger
	if log == nil {
		log = hclog.NewNullLogger()
	}
	now := time.Now()
	d := &Daemon{
		log: log, path: opts.ConfigPath, cfg: cfg, started: now, loaded: now, skipChecks: opts.SkipHostChecks,
		etcdDialer:   opts.EtcdDialer,
		members:      cluster.NewMembership(cluster.WithLogger(log)),
		cluster:      newClusterState(),
		watch:        newWatcher(),
		notify:       newNotifier(log.Named("systemd")),
		followKick:   make(chan struct{}, 1),
		checkMetrics: metrics.NewChecks(),
		ctrlDone:     make(chan error, 1),
		restartReq:   make(chan struct{}),
		leaving:      map[netip.Prefix]routing.VIP{},
		restoredVIPs: map[netip.Addr]bool{},
	}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	return d
}

// Start loads the config, runs the host checks, opens every part and starts
// the node. On error nothing is left running.
func Start(ctx context.Context, opts Options) (_ *Daemon, err error) {
	cfg, err := config.Load(opts.ConfigPath)
	if err != nil {
		return nil, err
	}
	d := newDaemon(cfg, opts)
	var closers []func()
	defer func() {
		if err != nil {
			for i := len(closers) - 1; i >= 0; i-- {
				closers[i]()
			}
			d.cancel()
		}
	}()

	// The API socket first: a second vipd must be refused before it
	// touches anything.
	if err := d.listenAPI(); err != nil {
		return nil, err
	}
	closers = append(closers, func() { d.apiSrv.Close(context.Background()) })
	routes, err := d.openState(opts.StartDrained)
	if err != nil {
		return nil, err
	}
	closers = append(closers, func() { d.state.Close() })

	autoGeneric, err := d.hostChecks(ctx)
	if err != nil {
		return nil, err
	}
	dp, err := dataplane.Open(d.log.Named("dataplane"), dataplane.Options{
		Interface:   cfg.Dataplane.Interface,
		Attach:      cfg.Dataplane.Attach,
		AutoGeneric: autoGeneric,
		GUEPort:     cfg.Dataplane.GUEPort,
		PinPath:     cfg.Dataplane.PinPath,
		Local4:      cfg.Node.UnderlayV4,
		Local6:      cfg.Node.UnderlayV6,
		Seed:        cfg.Cluster.Seed,
		Trust:       trustOf(cfg),
		MaxHops:     cfg.Dataplane.MaxHops,
	})
	if err != nil {
		return nil, fmt.Errorf("opening the dataplane: %w", err)
	}
	closers = append(closers, func() { dp.Close() })

	binder, err := netlink.New(d.log.Named("binder"), netlink.Options{})
	if err != nil {
		return nil, fmt.Errorf("opening the binder: %w", err)
	}
	closers = append(closers, func() { binder.Close() })

	parts := Parts{Binder: binder, Dataplane: dp, Traffic: trafficOf(dp), Probe: dataplane.Probe, NewAdvertiser: func(ctx context.Context, st AdvertiserStart) (routing.Advertiser, error) {
		return openAdvertiser(ctx, cfg, st.Routes, d.log)
	}}
	if err := d.run(ctx, parts, routes); err != nil {
		return nil, err
	}
	return d, nil
}

// New starts a node on parts the caller opened, as Start does once it has
// opened the real ones: the API socket, the state directory, the
// advertiser (if parts.NewAdvertiser opens it), the controller, the
// checks, the poller, the node-state server and the metrics listener. On
// error the parts the caller opened are left to it.
func New(cfg *config.Config, opts Options, parts Parts) (*Daemon, error) {
	d := newDaemon(cfg, opts)
	if err := d.listenAPI(); err != nil {
		d.cancel()
		return nil, err
	}
	routes, err := d.openState(opts.StartDrained)
	if err == nil {
		err = d.run(context.Background(), parts, routes)
		if err != nil {
			d.state.Close()
		}
	}
	if err != nil {
		d.apiSrv.Close(context.Background())
		d.cancel()
		return nil, err
	}
	return d, nil
}

func (d *Daemon) listenAPI() error {
	srv, err := api.Listen(d.log.Named("api"), d.cfg.API.Socket, d, api.Options{})
	if err != nil {
		return err
	}
	d.apiSrv = srv
	return nil
}

// run opens the advertiser if parts says how (handing it routes, what the
// previous vipd left announced), builds the controller on parts, restores
// the drains and starts every loop and server. An advertiser it opened is
// abandoned on error.
func (d *Daemon) run(ctx context.Context, parts Parts, routes []routing.Route) (err error) {
	if (parts.Advertiser == nil) == (parts.NewAdvertiser == nil) || parts.Binder == nil || parts.Dataplane == nil {
		return errors.New("starting vipd: an advertiser (or a way to open one), binder and dataplane are required")
	}
	if parts.NewAdvertiser != nil {
		adv, err := parts.NewAdvertiser(ctx, AdvertiserStart{Routes: slices.Clone(routes)})
		if err != nil {
			return err
		}
		defer func() {
			if err != nil {
				adv.Abandon()
			}
		}()
		parts.Advertiser = adv
	}
	d.adv, d.dp, d.traffic = parts.Advertiser, parts.Dataplane, parts.Traffic
	cfg := d.cfg
	d.owned = newOwnedBinder(parts.Binder, d.state, cfg, d.log.Named("binder"))
	d.binder = d.owned
	keys, err := readKeys(cfg)
	if err != nil {
		return err
	}
	if cfg.Cluster.Backend == config.BackendEtcd {
		if _, err := etcdConfig(cfg); err != nil {
			return err
		}
	}
	d.cluster.setKeys(cfg, keys)
	if err := d.setTrust(ctx, cfg); err != nil {
		return err
	}
	var loChanges <-chan struct{}
	if w, ok := parts.Binder.(LoWatcher); ok {
		// Ends with d.ctx, as the controller does.
		if loChanges, err = w.Watch(d.ctx); err != nil {
			d.log.Warn("watching the addresses on lo: a VIP removed from it is found by the periodic read only",
				"error", err, "interval", vip.DefaultLoCheckInterval)
		}
	}
	d.ctrl, err = vip.New(controllerConfig(cfg), vip.Deps{
		Advertiser: d.adv, Binder: d.binder, Dataplane: d.dp, Logger: d.log.Named("vip"),
		TableDigest: tableDigest, Publish: d.publish, LoChanges: loChanges,
	})
	if err != nil {
		return err
	}
	var metricsLn net.Listener
	if cfg.API.MetricsListen.IsValid() {
		if metricsLn, err = listenMetrics(cfg); err != nil {
			return err
		}
	}
	if !d.skipChecks {
		d.checkIPv6Route() // before Run: never announce an IPv6 VIP without a route back
	}
	d.syncDrains() // before Run: a drained node never announces anything
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		d.ctrlDone <- d.ctrl.Run(d.ctx)
	}()
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		d.watchPasses(d.ctrl.Updates())
	}()
	go func() {
		defer d.wg.Done()
		d.follow(d.followKick)
	}()
	d.checks = health.NewMonitor(d.log.Named("health"), d.ctrl.SetHealth)
	d.checks.SetObserver(d.checkMetrics.Observe)
	d.seedChecks(d.restart, len(routes) > 0, time.Now())
	d.goServe("health", func() error { return d.checks.Run(d.ctx) })
	d.setChecks(cfg)
	if err := d.startSource(cfg); err != nil {
		return err
	}
	d.cluster.probes.send = parts.Probe
	d.startProber(cfg)
	if !d.skipChecks {
		// Hold the IPv6 VIPs while there is no route back to the
		// clients, release them once one appears (docs/field-notes.md, note 4).
		d.every(10*time.Second, d.checkIPv6Route)
	}
	d.every(10*time.Second, d.keepLookupForwarding)
	d.goServe("state", func() error {
		return cluster.ListenAndServe(d.ctx, cfg.API.StateListen.String(),
			cluster.NewHandler(d.servedState, cluster.SignWith(d.cluster.keys, nil)))
	})
	d.goServe("api", d.apiSrv.Serve)
	if metricsLn != nil {
		d.serveMetrics(cfg, metricsLn)
	}
	if w := d.notify.watchdog; w > 0 {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.feedWatchdog(w)
		}()
		d.log.Info("feeding the systemd watchdog from the controller's event loop", "watchdog", w)
	}
	d.log.Info("vipd started", "node", cfg.Node.Name, "vips", len(cfg.VIPs), "routing", cfg.Routing.Mode,
		"iface", cfg.Dataplane.Interface)
	d.notify.send(sd.SdNotifyReady, sdStatus("serving: node %s, %d VIPs, routing %s", cfg.Node.Name, len(cfg.VIPs), cfg.Routing.Mode))
	return nil
}

// watchPasses hands every pass of the controller's loop to the watcher
// and wakes follow.
func (d *Daemon) watchPasses(updates <-chan struct{}) {
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-updates:
		}
		members := map[string]bool{}
		for _, v := range d.members.Views() {
			members[v.Name] = v.Up
		}
		d.watch.pass(d.ctrl.Status(), members, time.Now())
		select {
		case d.followKick <- struct{}{}:
		default: // follow has one pending: it reads the latest status
		}
	}
}

func (d *Daemon) goServe(what string, serve func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := serve(); err != nil && d.ctx.Err() == nil {
			d.log.Error("server stopped", "server", what, "error", err)
		}
	}()
}

// config returns the config in effect.
func (d *Daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// hostChecks runs the doctor's checks. It refuses to start when a check
// says vipd must not run (forwarding on a backend without acknowledgement),
// and returns whether auto attach mode must use generic XDP. (The IPv6
// route-back check is re-run by checkIPv6Route, which holds the VIPs.)
func (d *Daemon) hostChecks(ctx context.Context) (autoGeneric bool, err error) {
	if d.skipChecks {
		return false, nil
	}
	// Our own speaker is not listening yet; peers may not be up yet either.
	spec := hostcheck.SpecFor(d.cfg)
	cctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	r := hostcheck.Run(cctx, hostcheck.System(), spec)
	r.Log(d.log.Named("hostcheck"))
	if err := hostcheck.StartError(r); err != nil {
		return false, fmt.Errorf("host check: %w", err)
	}
	generic, reason := hostcheck.SafeAttachMode(r)
	if generic && d.cfg.Dataplane.Attach == dataplane.AttachAuto {
		d.log.Warn("attach mode auto chooses generic XDP", "reason", reason)
	}
	return generic, nil
}

// controllerConfig maps the node config onto the state machine's.
func controllerConfig(c *config.Config) vip.Config {
	vc := vip.Config{
		Node:           c.Node.Name,
		WithdrawGrace:  c.Timers.WithdrawGrace,
		TableGrace:     c.Timers.TableGrace,
		DrainTimeout:   c.Timers.DrainTimeout,
		RemoveTimeout:  c.Timers.RemoveTimeout,
		VerifyInterval: c.Timers.VerifyInterval,
		VerifySettle:   c.Timers.VerifySettle,
		// No config key: the address events do the work, this read is
		// the backstop for events an overflow lost.
		LoCheckInterval: vip.DefaultLoCheckInterval,
		DrainPolicy:     c.Routing.Drain,
		// The poller decides every member within max(rise, fall) polls;
		// one more interval of margin for jitter.
		PeerWait:  c.Cluster.PollInterval*time.Duration(max(c.Cluster.Rise, c.Cluster.Fall)+1) + c.Cluster.PollTimeout,
		Digests:   cluster.ComputeDigests(clusterSpec(c)),
		SlowStart: c.Cluster.SlowStart,
	}
	if e := c.Cluster.Etcd; c.Cluster.Backend == config.BackendEtcd && e != nil {
		// The first read of the prefix decides every member at once.
		vc.PeerWait = e.DialTimeout + e.RequestTimeout + time.Second
	}
	for _, v := range c.VIPs {
		vc.VIPs = append(vc.VIPs, vip.VIPConfig{Addr: v.Addr, Services: v.Services})
	}
	for _, m := range c.Cluster.Members {
		vc.Members = append(vc.Members, vip.Member{Name: m.Name, Addr4: m.UnderlayV4, Addr6: m.UnderlayV6, Weight: uint32(m.Weight)})
	}
	return vc
}

// setChecks hands the monitor one local service check per VIP; it keeps
// the unchanged ones running (their rise/fall state survives a reload).
func (d *Daemon) setChecks(cfg *config.Config) {
	want := make(map[netip.Addr]health.CheckConfig, len(cfg.VIPs))
	keep := make(map[netip.Addr]bool, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		want[v.Addr] = v.Check
		keep[v.Addr] = true
	}
	d.checkMetrics.Retain(keep)
	d.checks.Set(want)
}

// RestartRequested is closed when vipctl asked for an upgrade exit.
func (d *Daemon) RestartRequested() <-chan struct{} { return d.restartReq }

// ControllerDone delivers the controller's error if its loop ends by itself.
func (d *Daemon) ControllerDone() <-chan error { return d.ctrlDone }

// Shutdown is SIGTERM: drain the node (withdraw, demote, wait, unbind),
// then close the advertiser, which withdraws anything left and waits until
// the peers were told, then stop. The XDP program stays attached (pinned): a
// node with nothing announced attracts no VIP traffic, and the next vipd
// adopts it. The operator's drains stay in the state directory; the routes
// there are emptied once the advertiser withdrew everything, so the next
// start is a fresh one.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.log.Info("draining before exit")
	d.notify.send(sd.SdNotifyStopping, sdStatus("draining before exit"))
	steps := make(chan struct{})
	go d.stopSteps(steps)
	err := d.ctrl.Shutdown(ctx)
	if err == nil {
		// The pass that finished the drain reaches the watcher before the
		// loops stop: event readers see "drained" before the stream ends.
		d.watch.waitPhase(vip.PhaseDrained, time.Second)
	}
	close(steps)
	d.stopSource()
	if err != nil {
		d.log.Error("drain did not complete", "error", err)
		d.notify.send(sdStatus("drain did not complete (%v): closing the routing sessions", err))
	} else {
		d.notify.send(sdStatus("drained: closing the routing sessions"))
	}
	d.cancel()
	err = errors.Join(err, d.apiSrv.Close(context.Background()))
	d.wg.Wait() // the controller is done: nothing calls the advertiser any more
	closeErr := d.adv.Close(ctx)
	var left []routing.Route // all withdrawn
	if closeErr != nil {
		// Some may still be out: a next start re-announces them as a
		// graceful restart rather than leave them stale at the peers.
		left = d.ctrl.Status().Routes
	}
	err = errors.Join(err, closeErr, d.state.WriteRoutes(left, time.Now()), d.state.SaveDrains(),
		d.binder.Close(), d.dp.Close(), d.state.Close())
	return err
}

// Abandon is the upgrade exit: stop without withdrawing, unbinding or
// detaching anything. The state directory keeps the routes announced (for
// the next vipd's graceful restart) and the drains.
func (d *Daemon) Abandon() error {
	d.log.Info("exiting for an upgrade: routes, bindings and the XDP program stay in place")
	// Not STOPPING=1: for systemd this is a restart, not a stop (the unit
	// restarts the exit status at once).
	d.notify.send(sdStatus("exiting for an upgrade (status %d): routes, bindings and the XDP program stay in place", UpgradeExitStatus))
	d.announceRestart()
	d.cancel()
	d.stopSource()
	err := d.apiSrv.Close(context.Background())
	d.wg.Wait()
	if st := d.ctrl.Status(); st.RoutesKnown {
		// Otherwise nothing was announced since the start, and the file
		// still holds what the previous vipd left, still out there.
		err = errors.Join(err, d.state.WriteRoutes(st.Routes, time.Now()))
	}
	return errors.Join(err, d.state.SaveDrains(), d.adv.Abandon(), d.binder.Close(), d.dp.Close(), d.state.Close())
}

// Restart implements api.Daemon.
func (d *Daemon) Restart() error {
	d.restartOne.Do(func() { close(d.restartReq) })
	return nil
}

// checkIPv6Route runs the IPv6 route check once for the current config and
// holds or releases its IPv6 VIPs accordingly.
func (d *Daemon) checkIPv6Route() {
	cfg := d.config()
	var v6 []netip.Addr
	for _, v := range cfg.VIPs {
		if v.Addr.Is6() {
			v6 = append(v6, v.Addr)
		}
	}
	if len(v6) == 0 {
		return
	}
	res, err := hostcheck.RunOne(d.ctx, hostcheck.System(), hostcheck.SpecFor(cfg), hostcheck.IDIPv6Route)
	if err != nil {
		return
	}
	hold, reason := hostcheck.HoldIPv6(hostcheck.Report{Checks: []hostcheck.Result{res}})
	for _, a := range v6 {
		if hold {
			d.ctrl.Hold(a, reason)
		} else {
			d.ctrl.Release(a)
		}
	}
}

// keepLookupForwarding re-enables forwarding on lo (the program's route
// lookups need it) whenever a sysctl write elsewhere turned it off.
func (d *Daemon) keepLookupForwarding() {
	restored, err := d.dp.EnsureLookupForwarding()
	if err != nil {
		d.log.Error("keeping forwarding on lo for the fib lookups", "error", err)
	}
	if restored {
		d.loRestored.Add(1)
	}
}

// every runs fn every interval until the daemon stops.
func (d *Daemon) every(interval time.Duration, fn func()) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-d.ctx.Done():
				return
			case <-t.C:
			}
			fn()
		}
	}()
}
