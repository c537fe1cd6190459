package config

import (
	"net/netip"
	"reflect"
	"slices"
)

// Changes is what a reload changes. It alone decides what a reload may
// apply: the daemon applies the VIP and Live changes, and keeps running on
// the old configuration (reporting Restart) when anything in Restart
// changed.
type Changes struct {
	// Added, Removed and Changed VIPs (services, check, name or route
	// attributes), by address, sorted.
	Added, Removed, Changed []netip.Addr
	// Live lists the other items that differ and can be applied in place
	// ("cluster.member", "cluster.polling", "timers", ...), in file order.
	Live []string
	// Restart lists the items that differ and need vipd to restart (node
	// identity, hash seed, dataplane attachment, listeners, routing mode,
	// drain policy and sessions), in file order.
	Restart []string
}

// Empty reports whether nothing changed.
func (ch *Changes) Empty() bool {
	return len(ch.Added)+len(ch.Removed)+len(ch.Changed)+len(ch.Live)+len(ch.Restart) == 0
}

// Diff returns what changes from old to c. A nil old is an empty
// configuration: every VIP is added and every item has changed.
func (c *Config) Diff(old *Config) *Changes {
	if old == nil {
		old = &Config{}
	}
	ch := &Changes{}
	was := map[netip.Addr]VIP{}
	for _, v := range old.VIPs {
		was[v.Addr] = v
	}
	now := map[netip.Addr]bool{}
	for _, v := range c.VIPs {
		now[v.Addr] = true
		o, ok := was[v.Addr]
		switch {
		case !ok:
			ch.Added = append(ch.Added, v.Addr)
		case !reflect.DeepEqual(o, v):
			ch.Changed = append(ch.Changed, v.Addr)
		}
	}
	for _, v := range old.VIPs {
		if !now[v.Addr] {
			ch.Removed = append(ch.Removed, v.Addr)
		}
	}
	for _, s := range [][]netip.Addr{ch.Added, ch.Removed, ch.Changed} {
		slices.SortFunc(s, netip.Addr.Compare)
	}

	items := []struct {
		name     string
		old, new any
		restart  bool
	}{
		{"node.name", old.Node.Name, c.Node.Name, true},
		{"node.router_id", old.Node.RouterID, c.Node.RouterID, true},
		{"node.underlay_v4", old.Node.UnderlayV4, c.Node.UnderlayV4, true},
		{"node.underlay_v6", old.Node.UnderlayV6, c.Node.UnderlayV6, true},
		{"node.allow_ip_forward", old.Node.AllowIPForward, c.Node.AllowIPForward, false},
		{"node.client_prefixes", old.Node.ClientPrefixes, c.Node.ClientPrefixes, false},
		// The running vipd holds its state directory.
		{"node.state_dir", old.Node.StateDir, c.Node.StateDir, true},
		// Read at start only: a reload records it for the next one.
		{"node.start_drained", old.Node.StartDrained, c.Node.StartDrained, false},
		// The dataplane hashes flows with the seed it was opened with.
		{"cluster.seed", old.Cluster.Seed, c.Cluster.Seed, true},
		{"cluster.polling", pollOf(old.Cluster), pollOf(c.Cluster), false},
		// A changed backend (or etcd section) restarts the source of member
		// states; the membership and its counters stay.
		{"cluster.backend", old.Cluster.Backend, c.Cluster.Backend, false},
		// The key file is read again at every reload, changed path or not,
		// and swapped in place (cluster.Keyring.Set).
		{"cluster.key_file", old.Cluster.KeyFile, c.Cluster.KeyFile, false},
		{"cluster.allow_unsigned", old.Cluster.AllowUnsigned, c.Cluster.AllowUnsigned, false},
		{"cluster.max_clock_skew", old.Cluster.MaxClockSkew, c.Cluster.MaxClockSkew, false},
		{"cluster.etcd", old.Cluster.Etcd, c.Cluster.Etcd, false},
		{"cluster.member", membersOf(old.Cluster), membersOf(c.Cluster), false},
		// Weights and slow start change tables in place: no restart of
		// the source of member states.
		{"cluster.weight", weightsOf(old.Cluster), weightsOf(c.Cluster), false},
		{"cluster.slow_start", old.Cluster.SlowStart, c.Cluster.SlowStart, false},
		// Read when vipd exits for an upgrade.
		{"cluster.restart_grace", old.Cluster.RestartGrace, c.Cluster.RestartGrace, false},
		// The prober restarts with the new settings; members keep their
		// states.
		{"cluster.probe", probeOf(old.Cluster), probeOf(c.Cluster), false},
		{"routing.mode", old.Routing.Mode, c.Routing.Mode, true},
		{"routing.drain", old.Routing.Drain, c.Routing.Drain, true},
		// The sessions (neighbors, OSPF instances, drain attributes) are
		// set up at start; the VIPs' own attributes apply live (Changed).
		{"routing.bgp", routeBGP(old), routeBGP(c), true},
		{"routing.bird", routeBird(old), routeBird(c), true},
		{"dataplane.interface", old.Dataplane.Interface, c.Dataplane.Interface, true},
		{"dataplane.attach", old.Dataplane.Attach, c.Dataplane.Attach, true},
		{"dataplane.gue_port", old.Dataplane.GUEPort, c.Dataplane.GUEPort, true},
		{"dataplane.pin_path", old.Dataplane.PinPath, c.Dataplane.PinPath, true},
		{"dataplane.switch_mtu", old.Dataplane.SwitchMTU, c.Dataplane.SwitchMTU, false},
		// The trust boundary changes in place (Dataplane.SetTrust); the
		// hop limit is set when the program is loaded.
		{"dataplane.allowed_sources", old.Dataplane.AllowedSources, c.Dataplane.AllowedSources, false},
		{"dataplane.max_hops", old.Dataplane.MaxHops, c.Dataplane.MaxHops, true},
		{"timers", old.Timers, c.Timers, false},
		{"api.socket", old.API.Socket, c.API.Socket, true},
		{"api.state_listen", old.API.StateListen, c.API.StateListen, true},
		{"api.metrics_listen", old.API.MetricsListen, c.API.MetricsListen, true},
	}
	for _, it := range items {
		if reflect.DeepEqual(it.old, it.new) {
			continue
		}
		if it.restart {
			ch.Restart = append(ch.Restart, it.name)
		} else {
			ch.Live = append(ch.Live, it.name)
		}
	}
	return ch
}

// pollOf is the polling keys of [cluster].
func pollOf(c Cluster) any {
	return [4]any{c.PollInterval, c.PollTimeout, c.Rise, c.Fall}
}

// membersOf is the member list without the weights (cluster.weight).
func membersOf(c Cluster) []Member {
	ms := slices.Clone(c.Members)
	for i := range ms {
		ms[i].Weight = 0
	}
	return ms
}

// weightsOf maps member names to weights.
func weightsOf(c Cluster) map[string]int {
	w := make(map[string]int, len(c.Members))
	for _, m := range c.Members {
		w[m.Name] = m.Weight
	}
	return w
}

// SourceRestart reports whether ch needs the source of member states (the
// poller or the etcd backend) restarted: a changed backend, etcd section,
// member list or polling. The signing keys and the skew tolerance apply in
// place.
func (ch *Changes) SourceRestart() bool {
	for _, it := range ch.Live {
		switch it {
		case "cluster.backend", "cluster.etcd", "cluster.member", "cluster.polling":
			return true
		}
	}
	return false
}

// routeBGP is the BGP section without its VIP list (VIP changes are
// reported per VIP).
func routeBGP(c *Config) any {
	if c.Routing.BGP == nil {
		return nil
	}
	b := *c.Routing.BGP
	b.VIPs = nil
	return b
}

func routeBird(c *Config) any {
	if c.Routing.Bird == nil {
		return nil
	}
	b := *c.Routing.Bird
	b.VIPs = nil
	return b
}
