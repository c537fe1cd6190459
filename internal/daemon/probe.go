package daemon

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
)

// The data-path probes (docs/cluster.md, "Data-path probes"): one
// cluster.ProbePolicy for the daemon's life, and a cluster.Prober that a
// reload changing [cluster] probe_* or the members restarts. Demotions
// reach the controller as a cluster.Update of their own, the one path
// member states take, so a demotion is one table switch.

// probeState is the daemon's prober wiring.
type probeState struct {
	// send is Parts.Probe: nil, the node sends no probes (tests on fakes).
	send func(ctx context.Context, spec dataplane.ProbeSpec) (time.Duration, error)

	mu       sync.Mutex // guards the fields below; held across a restart
	policy   *cluster.ProbePolicy
	cancel   context.CancelFunc
	done     chan struct{}
	on       bool
	interval time.Duration
}

// startProber (re)starts the prober with cfg's settings, or stops it and
// lifts its demotions when cfg turns probes off. Runs and demotions are
// the policy's and survive a restart.
func (d *Daemon) startProber(cfg *config.Config) {
	p := &d.cluster.probes
	if p.send == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policy == nil {
		p.policy = cluster.NewProbePolicy(cfg.Node.Name, cfg.Cluster.ProbeFailures, cfg.Cluster.ProbeSuccesses)
	}
	p.policy.SetThresholds(cfg.Cluster.ProbeFailures, cfg.Cluster.ProbeSuccesses)
	if p.cancel != nil {
		p.cancel()
		<-p.done
		p.cancel = nil
	}
	if cfg.Cluster.ProbeInterval == 0 {
		if len(p.policy.Demoted()) > 0 {
			d.ctrl.SetPeers(cluster.Update{Demoted: map[string]string{}})
		}
		p.policy.Reset()
		if p.on {
			d.log.Info("data-path probes off: no member is demoted by them")
		}
		p.on = false
		return
	}
	ctx, cancel := context.WithCancel(d.ctx)
	done := make(chan struct{})
	prober := cluster.NewProber(d.log, cluster.ProberConfig{
		Interval: cfg.Cluster.ProbeInterval, Timeout: cfg.Cluster.ProbeTimeout,
		Targets: d.probeTargets(cfg), Probe: probeFunc(cfg, p.send),
		Demote: func(m map[string]string) { d.ctrl.SetPeers(cluster.Update{Demoted: m}) },
	}, p.policy)
	p.cancel, p.done, p.on, p.interval = cancel, done, true, cfg.Cluster.ProbeInterval
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer close(done)
		prober.Run(ctx)
	}()
}

// probeTargets lists the members to probe, at the underlay address of the
// family this node has (IPv4 first), and which members are up by their
// state.
func (d *Daemon) probeTargets(cfg *config.Config) func() ([]cluster.ProbeTarget, map[string]bool) {
	var targets []cluster.ProbeTarget
	for _, m := range cfg.Cluster.Members {
		if m.Name == cfg.Node.Name {
			continue
		}
		var a netip.Addr
		switch {
		case cfg.Node.UnderlayV4.IsValid() && m.UnderlayV4.IsValid():
			a = m.UnderlayV4
		case cfg.Node.UnderlayV6.IsValid() && m.UnderlayV6.IsValid():
			a = m.UnderlayV6
		default:
			continue
		}
		targets = append(targets, cluster.ProbeTarget{Name: m.Name, Addr: a})
	}
	return func() ([]cluster.ProbeTarget, map[string]bool) {
		return targets, d.membersUp()
	}
}

// membersUp says which members are up by their state.
func (d *Daemon) membersUp() map[string]bool {
	up := map[string]bool{}
	for _, v := range d.members.Views() {
		up[v.Name] = v.Up
	}
	return up
}

// probeFunc sends a probe the way GUE travels: from this node's underlay
// address and GUE port (the answer comes back through this node's uplink
// and program: its own inbound path), to the member's GUE port, padded to
// the uplink's MTU with DF (the largest GUE packet the director sends
// there: the XDP program's fib lookup takes the same MTU), checksum 0 as
// GUE is sent.
func probeFunc(cfg *config.Config, send func(context.Context, dataplane.ProbeSpec) (time.Duration, error)) cluster.ProbeFunc {
	port, iface := cfg.Dataplane.GUEPort, cfg.Dataplane.Interface
	src4, src6 := cfg.Node.UnderlayV4, cfg.Node.UnderlayV6
	return func(ctx context.Context, t cluster.ProbeTarget) (time.Duration, error) {
		src := src4
		if t.Addr.Is6() {
			src = src6
		}
		size := 0 // the smallest probe when the uplink is unknown
		if ifc, err := net.InterfaceByName(iface); err == nil {
			size = min(ifc.MTU, 65535)
		}
		return send(ctx, dataplane.ProbeSpec{Source: src, SourcePort: port, Target: netip.AddrPortFrom(t.Addr, port),
			Size: size, ZeroChecksum: true})
	}
}

// probeStatus is the probes for status: nil when this node sends none.
func (d *Daemon) probeStatus() *api.Probes {
	p := &d.cluster.probes
	if p.send == nil {
		return nil
	}
	up := d.membersUp()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.policy == nil {
		return nil
	}
	st := p.policy.Status(up, p.on)
	out := &api.Probes{On: p.on, Note: st.Note, Members: []api.MemberProbe{}}
	if p.on {
		out.IntervalSeconds = p.interval.Seconds()
	}
	for _, v := range st.Members {
		out.Members = append(out.Members, api.MemberProbe{Name: v.Name, Self: v.Self, State: v.State, Since: v.Since,
			RTTSeconds: v.RTT.Seconds(), Failures: v.Failures, LastError: v.LastError, Demoted: v.Demoted})
	}
	return out
}
