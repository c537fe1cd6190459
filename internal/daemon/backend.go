package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strconv"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
)

// Status implements api.Backend: the controller's snapshot plus the routing
// sessions, the cluster members and the dataplane counters.
func (d *Daemon) Status(ctx context.Context) (api.Status, error) {
	d.mu.Lock()
	cfg := d.cfg
	d.mu.Unlock()
	var members []api.Member
	for _, v := range d.members.Views() {
		members = append(members, api.Member{Name: v.Name, Up: v.Up, Generation: v.Generation})
	}

	cs := d.ctrl.Status()
	st := api.Status{
		Node: cs.Node, Phase: cs.Phase, Stopping: cs.Stopping, Generation: cs.Generation,
		Config: d.path, Started: d.started, Routing: string(cfg.Routing.Mode),
		VIPs: cs.VIPs, Members: members,
	}
	if d.speaker != nil {
		peers, err := d.speaker.Peers(ctx)
		if err != nil {
			st.Peers = append(st.Peers, api.Peer{Name: "bgp", State: "unknown", LastError: err.Error()})
		}
		for _, p := range peers {
			st.Peers = append(st.Peers, api.Peer{
				Name: p.Address.String() + " AS" + strconv.FormatUint(uint64(p.ASN), 10), State: p.State,
				Uptime: p.Uptime, Routes: int(p.Advertised), LastError: p.LastError,
			})
		}
	}
	dp := &api.Dataplane{Interface: cfg.Dataplane.Interface, Mode: string(cfg.Dataplane.Attach)}
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
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []api.VIP
	for _, v := range d.cfg.VIPs {
		a := api.VIP{Name: v.Name, Addr: v.Addr.String(), Check: checkString(v)}
		for _, s := range v.Services {
			a.Services = append(a.Services, serviceString(s.Proto, s.Port))
		}
		out = append(out, a)
	}
	return out
}

func serviceString(proto uint8, port uint16) string {
	p := strconv.Itoa(int(proto))
	switch proto {
	case 6:
		p = "tcp"
	case 17:
		p = "udp"
	}
	if port == 0 {
		return p + "/*"
	}
	return p + "/" + strconv.Itoa(int(port))
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

// Reload is SIGHUP: read and validate the file again; on success hand the
// new VIPs, members and timers to the controller and restart the checks and
// the poller; on failure keep running the old config. Sections that need a
// restart (node, dataplane, api, routing sessions) are reported, not applied.
func (d *Daemon) Reload() error {
	cfg, err := config.Load(d.path)
	if err != nil {
		return err
	}
	d.mu.Lock()
	old := d.cfg
	d.mu.Unlock()
	if ch := needsRestart(old, cfg); len(ch) > 0 {
		return fmt.Errorf("%s: changes to %v need a restart of vipd; config not reloaded", d.path, ch)
	}
	if err := d.setAdvertiserVIPs(old, cfg); err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg = cfg
	d.mu.Unlock()
	if !d.skipChecks {
		// Hold a new IPv6 VIP before the controller could announce it.
		d.checkIPv6Route()
	}
	if err := d.ctrl.Reload(controllerConfig(cfg, d.drainPolicy())); err != nil {
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

// appliedLive are the config items a reload applies in place, besides the
// VIPs; config.Diff calls more items live than this daemon can apply (the
// routing sessions, the hash seed the dataplane was opened with).
var appliedLive = map[string]bool{
	"node.allow_ip_forward": true, "node.client_prefixes": true,
	"cluster.polling": true, "cluster.member": true,
	"timers": true, "dataplane.switch_mtu": true,
}

// needsRestart names the items that changed in a way a reload cannot apply.
func needsRestart(old, cfg *config.Config) []string {
	ch := cfg.Diff(old)
	out := ch.Restart
	for _, item := range ch.Live {
		if appliedLive[item] {
			continue
		}
		if (item == "routing.bgp" || item == "routing.bird") && reflect.DeepEqual(routingSessions(old), routingSessions(cfg)) {
			continue // only the VIPs' attributes changed
		}
		out = append(out, item)
	}
	return out
}

// routingSessions is the routing section without its VIPs (which a reload
// applies).
func routingSessions(c *config.Config) any {
	switch {
	case c.Routing.BGP != nil:
		b := *c.Routing.BGP
		b.VIPs = nil
		return b
	case c.Routing.Bird != nil:
		b := *c.Routing.Bird
		b.VIPs = nil
		return b
	}
	return nil
}

// setAdvertiserVIPs tells the advertiser which VIPs it may announce (it
// refuses any other prefix) and with which attributes. Removed VIPs stay
// announceable until the controller has withdrawn them: the set is the union
// of the old and the new config, the new attributes winning.
func (d *Daemon) setAdvertiserVIPs(old, cfg *config.Config) error {
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	switch {
	case d.speaker != nil:
		return d.speaker.SetVIPs(ctx, union(cfg.Routing.BGP.VIPs, old.Routing.BGP.VIPs,
			func(v bgp.VIPRoute) netip.Prefix { return v.Prefix }))
	case d.birdAdv != nil:
		return d.birdAdv.SetVIPs(ctx, union(cfg.Routing.Bird.VIPs, old.Routing.Bird.VIPs,
			func(v bird.VIPRoute) netip.Prefix { return v.Prefix }))
	}
	return nil
}

// union returns a followed by the elements of b whose key is not in a.
func union[T any](a, b []T, key func(T) netip.Prefix) []T {
	seen := make(map[netip.Prefix]bool, len(a))
	out := append([]T(nil), a...)
	for _, x := range a {
		seen[key(x)] = true
	}
	for _, x := range b {
		if !seen[key(x)] {
			out = append(out, x)
		}
	}
	return out
}
