package daemon

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

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
	members := []api.Member{}
	for _, v := range d.members.Views() {
		members = append(members, api.Member{Name: v.Name, Up: v.Up, Generation: v.Generation})
	}
	cs := d.ctrl.Status()
	st := api.Status{
		Node: cs.Node, Phase: cs.Phase.String(), Stopping: cs.Stopping, Generation: cs.Generation,
		Config: d.path, Started: d.started, Routing: cfg.Routing.Mode.String(),
		VIPs: apiVIPs(cs.VIPs), Peers: []api.Peer{}, Members: members,
	}
	if withPeers {
		peers, err := d.adv.Peers(ctx)
		if err != nil {
			st.Peers = append(st.Peers, api.Peer{Name: cfg.Routing.Mode.String(), State: "unknown", LastError: err.Error()})
		}
		for _, p := range peers {
			st.Peers = append(st.Peers, api.Peer{
				Name: p.Name, Address: p.Address, ASN: p.ASN, State: p.State, Up: p.Up,
				UptimeSeconds: int64(p.Uptime / time.Second), RoutesAdvertised: p.Advertised, LastError: p.LastError,
			})
		}
	}
	dp := &api.Dataplane{Interface: cfg.Dataplane.Interface, Attach: cfg.Dataplane.Attach.String()}
	if c, err := d.dp.Stats(); err != nil {
		dp.Error = err.Error()
	} else {
		dp.Counters = c
	}
	st.Dataplane = dp
	return st, nil
}

// apiVIPs translates the controller's VIPs into the API's words.
func apiVIPs(vs []vip.VIPStatus) []api.VIPStatus {
	out := make([]api.VIPStatus, 0, len(vs))
	for _, v := range vs {
		a := api.VIPStatus{
			Address: v.Addr, Configured: v.Configured, Programmed: v.Programmed, Advertised: v.Advertised,
			Depreferred: v.Depreferred, Bound: v.Bound, Healthy: v.Healthy, Draining: v.Draining, Held: v.Held,
			ServeState: v.Serve.String(), Reason: v.Reason,
			Reasons: api.FacetReasons{
				Programmed: v.Reasons.Programmed, Advertised: v.Reasons.Advertised,
				Bound: v.Reasons.Bound, ServeState: v.Reasons.Serve,
			},
			Since: v.Since, LastError: v.LastError, Backends: []api.Backend{},
			Transitions: v.Transitions, Errors: v.Errors,
		}
		for _, b := range v.Backends {
			a.Backends = append(a.Backends, api.Backend{Name: b.Name, Address: b.Addr, Role: b.Role.String(), Local: b.Local})
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

// Drain implements api.Daemon.
func (d *Daemon) Drain(req api.DrainRequest) error { return d.ctrl.Drain(req.VIP) }

// Undrain implements api.Daemon.
func (d *Daemon) Undrain(req api.DrainRequest) error { return d.ctrl.Undrain(req.VIP) }

// Reload is SIGHUP: read and validate the file again and apply it. On any
// error the old config keeps running.
func (d *Daemon) Reload() error {
	cfg, err := config.Load(d.path)
	if err != nil {
		return err
	}
	return d.apply(cfg)
}

// apply takes a new, validated config. config.Diff alone decides what a
// reload may change: anything it lists under Restart refuses the reload.
// The controller's config is built and validated before anything is
// applied to anyone; then the advertiser learns the new VIPs (before the
// controller could ask for one), the controller gets its config, the
// checks and the poller follow.
func (d *Daemon) apply(cfg *config.Config) error {
	old := d.config()
	if ch := cfg.Diff(old); len(ch.Restart) > 0 {
		return fmt.Errorf("%s: changes to %s need a restart of vipd; config not reloaded", d.path, strings.Join(ch.Restart, ", "))
	}
	vc := controllerConfig(cfg)
	if err := vc.Validate(); err != nil {
		return fmt.Errorf("%s: %w; config not reloaded", d.path, err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if err := d.adv.SetVIPs(ctx, advertisedVIPs(cfg, old)); err != nil {
		return fmt.Errorf("setting the advertiser's VIPs: %w", err)
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	if !d.skipChecks {
		// Hold a new IPv6 VIP before the controller could announce it.
		d.checkIPv6Route()
	}
	if err := d.ctrl.Reload(vc); err != nil {
		// Validated above: this is a bug, but keep the old config.
		d.mu.Lock()
		d.cfg = old
		d.mu.Unlock()
		return err
	}
	d.setChecks(cfg)
	if !reflect.DeepEqual(old.Cluster, cfg.Cluster) {
		d.pollCancel()
		d.startPoller(cfg)
	}
	d.log.Info("config reloaded", "vips", len(cfg.VIPs))
	return nil
}
