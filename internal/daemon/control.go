package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	sd "github.com/coreos/go-systemd/v22/daemon"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/vip"
)

// The daemon is what the API serves (api.Daemon): these methods answer
// vipctl.

// Status implements api.Daemon: the controller's snapshot plus the routing
// sessions, the cluster members and the dataplane counters.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) { return d.status(ctx, true) }

// status builds the status; withPeers asks the advertiser for its sessions.
func (d *Daemon) status(ctx context.Context, withPeers bool) (api.Status, error) {
	cfg := d.config()
	members := d.memberStatus()
	cs := d.ctrl.Status()
	st := api.Status{
		Node: cs.Node, Phase: cs.Phase.String(), Stopping: cs.Stopping, Generation: cs.Generation,
		Config: d.path, Started: d.started, Routing: cfg.Routing.Mode.String(),
		World: api.World{
			ReadAt: cs.World.ReadAt, SessionsUp: cs.World.SessionsUp, Error: cs.World.Error,
			Resyncs: cs.World.Resyncs, ResyncError: cs.World.ResyncError, Stray: slices.Clone(cs.World.Stray),
		},
		LoError: cs.LoError,
		VIPs:    apiVIPs(cs.VIPs), Peers: []api.Peer{}, Members: members, Cluster: d.clusterStatus(cfg), Probes: d.probeStatus(),
	}
	if st.World.Stray == nil {
		st.World.Stray = []netip.Addr{}
	}
	d.mu.Lock()
	st.ConfigLoaded = d.loaded
	if r := d.lastReload; r != nil {
		rc := *r
		st.LastReload = &rc
	}
	d.mu.Unlock()
	// The phase and its since come from one snapshot of the loop: the
	// watcher follows the snapshots a little behind, and a status that
	// took the phase from one and the since from the other showed a new
	// phase without its times under load.
	if !cs.PhaseSince.IsZero() {
		st.PhaseSince = cs.PhaseSince
		st.PhaseEndsBy, st.DrainEndsBy = phaseEnds(cs.Phase, cs.PhaseSince, cfg.Timers.WithdrawGrace, cfg.Timers.DrainTimeout, cfg.Timers.TableGrace)
	}
	d.stateStatus(&st)
	if withPeers {
		peers, err := d.adv.Peers(ctx)
		if err != nil {
			st.Peers = append(st.Peers, api.Peer{Name: cfg.Routing.Mode.String(), State: "unknown", LastError: err.Error()})
		}
		for _, p := range peers {
			st.Peers = append(st.Peers, apiPeer(p))
		}
	}
	dp := &api.Dataplane{Interface: cfg.Dataplane.Interface, Attach: cfg.Dataplane.Attach.String(),
		LoForwardingRestored: d.loRestored.Load()}
	if c, err := d.dp.Stats(); err != nil {
		dp.Error = err.Error()
	} else {
		dp.Counters = c
	}
	if m, err := d.memoryStatus(); err != nil {
		dp.Error = strings.TrimPrefix(dp.Error+"; ", "; ") + "memory: " + err.Error()
	} else {
		dp.Memory = m
	}
	st.Dataplane = dp
	if d.traffic != nil {
		if err := d.trafficStatus(ctx, &st); err != nil {
			dp.Error = strings.TrimPrefix(dp.Error+"; ", "; ") + "per-VIP counters: " + err.Error()
		}
	}
	return st, nil
}

// trafficStatus adds the dataplane's per-VIP counters to st.
func (d *Daemon) trafficStatus(ctx context.Context, st *api.Status) error {
	t, err := d.traffic(ctx)
	if err != nil {
		return err
	}
	for i := range st.VIPs {
		st.VIPs[i].Traffic = t[st.VIPs[i].Address]
	}
	return nil
}

// apiVIPs translates the controller's VIPs into the API's words.
func apiVIPs(vs []vip.VIPStatus) []api.VIPStatus {
	out := make([]api.VIPStatus, 0, len(vs))
	for _, v := range vs {
		a := api.VIPStatus{
			Address: v.Addr, Configured: v.Configured, Programmed: v.Programmed, Advertised: v.Advertised,
			Depreferred: v.Depreferred, Bound: v.Bound, Healthy: v.Healthy, Draining: v.Draining, Held: v.Held,
			Rebinds: v.Rebinds, ForeignOnLo: v.ForeignOnLo,
			ServeState: v.Serve.String(), Reason: v.Reason,
			Reasons: api.FacetReasons{
				Programmed: v.Reasons.Programmed, Advertised: v.Reasons.Advertised,
				Bound: v.Reasons.Bound, ServeState: v.Reasons.Serve,
			},
			Since: v.Since, LastError: v.LastError, Backends: []api.Backend{},
			Transitions: v.Transitions, Errors: v.Errors,
			Route: v.Route.String(), RouteReason: v.RouteReason,
			World: api.VIPWorld{Read: v.World.Read, Exported: v.World.Exported, Draining: v.World.Draining,
				Peers: append([]string{}, v.World.Peers...)},
			Diverged: v.Diverged, DivergedSince: v.DivergedSince, Divergences: v.Divergences,
		}
		for _, b := range v.Backends {
			a.Backends = append(a.Backends, apiBackend(b))
		}
		out = append(out, a)
	}
	return out
}

// VIPs implements api.Daemon.
func (d *Daemon) VIPs() []api.VIP {
	cfg := d.config()
	out := []api.VIP{}
	for _, v := range cfg.VIPs {
		a := api.VIP{Name: v.Name, Address: v.Addr, Check: checkString(v)}
		for _, s := range v.Services {
			a.Services = append(a.Services, s.String())
		}
		out = append(out, a)
	}
	return out
}

func checkString(v config.VIP) string {
	c := v.Check
	switch c.Type {
	case health.TypeTCP:
		return "tcp " + c.Target
	case health.TypeHTTP:
		return "http " + c.URL
	case health.TypeCommand:
		return fmt.Sprintf("command %q", c.Command)
	}
	return c.Type
}

// Drain implements api.Daemon: the drain is in the state directory when
// it returns.
func (d *Daemon) Drain(req api.DrainRequest) error { return d.setDrain(req, true) }

// Undrain implements api.Daemon, as Drain.
func (d *Daemon) Undrain(req api.DrainRequest) error { return d.setDrain(req, false) }

// Reload is SIGHUP: read and validate the file again and apply it. On any
// error the old config keeps running. systemd is told RELOADING=1 before
// and READY=1 after, with the outcome in STATUS=.
func (d *Daemon) Reload() error {
	d.notify.send(reloading()...)
	cfg, err := config.Load(d.path)
	if err == nil {
		err = d.apply(cfg)
	}
	now := time.Now()
	d.mu.Lock()
	d.lastReload = &api.Reload{At: now, OK: err == nil}
	if err != nil {
		d.lastReload.Error = err.Error()
	} else {
		d.loaded = now
	}
	n := len(d.cfg.VIPs)
	d.mu.Unlock()
	if err != nil {
		first := strings.SplitN(err.Error(), "\n", 2)[0]
		d.notify.send(sd.SdNotifyReady, sdStatus("reload refused, the previous config keeps running: %s", first))
		return err
	}
	d.notify.send(sd.SdNotifyReady, sdStatus("serving: config reloaded, %d VIPs", n))
	return nil
}

// apply takes a new, validated config, handing everything to the
// advertiser and the controller as a fresh start with it would. config.Diff
// alone decides what a reload may change: anything it lists under Restart
// refuses the reload. The controller's config is built and validated
// before anything is applied to anyone; then the advertiser learns the new
// VIPs and route attributes (before the controller could ask for one; a
// removed VIP stays announceable until the controller has drained and
// forgotten it), the controller gets its config and the drains kept for
// VIPs that come back, the checks and the poller follow.
func (d *Daemon) apply(cfg *config.Config) error {
	d.advMu.Lock()
	defer d.advMu.Unlock()
	old := d.config()
	ch := cfg.Diff(old)
	if len(ch.Restart) > 0 {
		return fmt.Errorf("%s: changes to %s need a restart of vipd; config not reloaded", d.path, strings.Join(ch.Restart, ", "))
	}
	vc := controllerConfig(cfg)
	if err := vc.Validate(); err != nil {
		return fmt.Errorf("%s: %w; config not reloaded", d.path, err)
	}
	// The key file is read at every reload (it may change under the same
	// path: a rotation step) and checked before anything is applied.
	keys, err := readKeys(cfg)
	if err != nil {
		return fmt.Errorf("%w; config not reloaded", err)
	}
	if cfg.Cluster.Backend == config.BackendEtcd && ch.SourceRestart() {
		if _, err := etcdConfig(cfg); err != nil {
			return fmt.Errorf("%w; config not reloaded", err)
		}
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	// The trust boundary first: a new member's GUE is accepted before
	// any table names it (SetTrust adds before it removes).
	if err := d.setTrust(ctx, cfg); err != nil {
		return fmt.Errorf("%s: %w; config not reloaded", d.path, err)
	}
	prevLeaving := d.leaving
	d.leaving = d.nowLeaving(cfg, old)
	if err := d.adv.SetVIPs(ctx, d.announceable(cfg)); err != nil {
		d.leaving = prevLeaving
		d.restoreTrust(ctx, old)
		return fmt.Errorf("setting the advertiser's VIPs: %w", err)
	}
	d.drainMu.Lock() // a drain request sees the old config or the new one, with its drains
	defer d.drainMu.Unlock()
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	d.owned.setConfig(cfg)
	if !d.skipChecks {
		// Hold a new IPv6 VIP before the controller could announce it.
		d.checkIPv6Route()
	}
	if err := d.ctrl.Reload(vc); err != nil {
		// Validated above: this is a bug, but keep the old config.
		d.mu.Lock()
		d.cfg = old
		d.mu.Unlock()
		d.owned.setConfig(old)
		d.restoreTrust(ctx, old)
		return err
	}
	// A drain kept for a VIP that left the config holds again (the
	// controller kept it by address).
	drains := d.state.Drains()
	for _, a := range sortedAddrs(drains.VIPs) {
		if d.configuredLocked(cfg, a) && !d.configuredLocked(old, a) {
			d.log.Warn("vip back in the config: its kept drain holds", "vip", a,
				"since", drains.VIPs[a].Since.Format(time.RFC3339))
		}
	}
	d.setChecks(cfg)
	d.cluster.setKeys(cfg, keys)
	if ch.SourceRestart() {
		if err := d.startSource(cfg); err != nil {
			// Checked above: this is a bug; the old source keeps running.
			d.log.Error("restarting the source of member states", "error", err)
		}
	}
	if slices.Contains(ch.Live, "cluster.probe") || slices.Contains(ch.Live, "cluster.member") {
		d.startProber(cfg)
	}
	d.log.Info("config reloaded", "vips", len(cfg.VIPs))
	return nil
}
