package daemon

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
)

// The daemon is the API's backend: these methods answer vipctl.

// Status implements api.Backend: the controller's snapshot plus the routing
// sessions, the cluster members and the dataplane counters.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) { return d.status(ctx, true) }

// status builds the status; withPeers asks the advertiser for its sessions.
func (d *Daemon) status(ctx context.Context, withPeers bool) (api.Status, error) {
	cfg := d.config()
	var members []api.Member
	for _, v := range d.members.Views() {
		members = append(members, api.Member{Name: v.Name, Up: v.Up, Generation: v.Generation})
	}
	cs := d.ctrl.Status()
	st := api.Status{
		Node: cs.Node, Phase: cs.Phase, Stopping: cs.Stopping, Generation: cs.Generation,
		Config: d.path, Started: d.started, Routing: cfg.Routing.Mode.String(),
		VIPs: cs.VIPs, Members: members,
	}
	if withPeers {
		peers, err := d.adv.Peers(ctx)
		if err != nil {
			st.Peers = append(st.Peers, api.Peer{Name: cfg.Routing.Mode.String(), State: "unknown", LastError: err.Error()})
		}
		for _, p := range peers {
			st.Peers = append(st.Peers, api.Peer{
				Name: p.Name, State: p.State, Uptime: p.Uptime, Routes: p.Advertised, LastError: p.LastError,
			})
		}
	}
	dp := &api.Dataplane{Interface: cfg.Dataplane.Interface, Mode: cfg.Dataplane.Attach.String()}
	if c, err := d.dp.Stats(); err != nil {
		dp.Error = err.Error()
	} else {
		dp.Counters = c
	}
	st.Dataplane = dp
	return st, nil
}

// VIPs implements api.Backend.
func (d *Daemon) VIPs() []api.VIP {
	cfg := d.config()
	var out []api.VIP
	for _, v := range cfg.VIPs {
		a := api.VIP{Name: v.Name, Addr: v.Addr.String(), Check: checkString(v)}
		for _, s := range v.Services {
			a.Services = append(a.Services, serviceString(s.Proto, s.Port))
		}
		out = append(out, a)
	}
	return out
}

func serviceString(proto uint8, port uint16) string {
	p := fmt.Sprint(proto)
	switch proto {
	case 6:
		p = "tcp"
	case 17:
		p = "udp"
	}
	if port == 0 {
		return p + "/*"
	}
	return p + "/" + fmt.Sprint(port)
}

func checkString(v config.VIP) string {
	c := v.Check
	switch c.Type {
	case "tcp":
		return "tcp " + c.Target
	case "http":
		return "http " + c.URL
	case "command":
		return fmt.Sprintf("command %q", c.Command)
	}
	return c.Type
}

// Drain implements api.Backend.
func (d *Daemon) Drain(req api.DrainRequest) error { return d.ctrl.Drain(req.VIP) }

// Undrain implements api.Backend.
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
