package daemon

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/vip"
)

// The read-only views of the API (vipctl routes, table, lookup, events,
// config show).

// Routes implements api.Daemon: the routes vipd claims, and what the
// routing daemon exports to each session, read back now.
func (d *Daemon) Routes(ctx context.Context) (api.Routes, error) {
	cs := d.ctrl.Status()
	out := api.Routes{
		Routing: d.config().Routing.Mode.String(), Claimed: []api.Route{}, ClaimedKnown: cs.RoutesKnown,
		Sessions: []api.SessionRoutes{},
	}
	for _, r := range cs.Routes {
		out.Claimed = append(out.Claimed, api.Route{Prefix: r.Prefix, Draining: r.Draining})
	}
	sortRoutes(out.Claimed)
	var problems []string
	peers, err := d.adv.Peers(ctx)
	if err != nil {
		problems = append(problems, "listing the sessions: "+err.Error())
	}
	byPeer := map[string][]api.Route{}
	ex, err := d.adv.Exported(ctx)
	if err != nil {
		problems = append(problems, "reading the exported routes: "+err.Error())
	} else {
		out.ReadAt = ex.At
		for p, r := range ex.Routes {
			for _, name := range r.Peers {
				byPeer[name] = append(byPeer[name], api.Route{Prefix: p, Draining: r.Draining, Mismatch: r.Mismatch})
			}
		}
	}
	out.Error = strings.Join(problems, "; ")
	for _, p := range peers {
		rs := byPeer[p.Name]
		delete(byPeer, p.Name)
		if rs == nil {
			rs = []api.Route{}
		}
		sortRoutes(rs)
		out.Sessions = append(out.Sessions, api.SessionRoutes{Peer: apiPeer(p), Routes: rs})
	}
	// A session the export names but the list does not (it went down
	// between the two reads): still shown.
	var rest []string
	for name := range byPeer {
		rest = append(rest, name)
	}
	slices.Sort(rest)
	for _, name := range rest {
		rs := byPeer[name]
		sortRoutes(rs)
		out.Sessions = append(out.Sessions, api.SessionRoutes{Peer: api.Peer{Name: name, State: "unknown"}, Routes: rs})
	}
	return out, nil
}

func sortRoutes(rs []api.Route) {
	slices.SortFunc(rs, func(a, b api.Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
}

func apiPeer(p routing.Peer) api.Peer {
	return api.Peer{
		Name: p.Name, Address: p.Address, ASN: p.ASN, State: p.State, Up: p.Up,
		UptimeSeconds: int64(p.Uptime / time.Second), RoutesAdvertised: p.Advertised, LastError: p.LastError,
	}
}

// vipStatus returns the controller's view of a.
func (d *Daemon) vipStatus(a netip.Addr) (vip.VIPStatus, bool) {
	for _, v := range d.ctrl.Status().VIPs {
		if v.Addr == a {
			return v, true
		}
	}
	return vip.VIPStatus{}, false
}

// Table implements api.Daemon: the programmed table's rows per member.
// The rows are those dataplane.BuildSharedTable gives for the programmed
// backends and the cluster seed, the function the dataplane programs the
// table with (one table per backend set, shared by its VIPs): same
// inputs, same table, on every director.
func (d *Daemon) Table(_ context.Context, a netip.Addr) (api.Table, error) {
	v, ok := d.vipStatus(a)
	if !ok {
		return api.Table{}, fmt.Errorf("%s: %w", a, api.ErrUnknownVIP)
	}
	t := api.Table{VIP: a, Rows: dataplane.TableRows, Members: []api.TableShare{}}
	if !v.Programmed || len(v.Backends) == 0 {
		return t, nil // no table on this node
	}
	rows, err := dataplane.BuildSharedTable(d.config().Cluster.Seed, v.Backends)
	if err != nil {
		return t, fmt.Errorf("building the table of %s: %w", a, err)
	}
	primary := make([]int, len(v.Backends))
	secondary := make([]int, len(v.Backends))
	for _, r := range rows {
		primary[r.Primary]++
		secondary[r.Secondary]++
	}
	cfg := d.config()
	for i, b := range v.Backends {
		ts := api.TableShare{Backend: apiBackend(b), PrimaryRows: primary[i], SecondaryRows: secondary[i],
			EffectiveWeight: int(b.EffectiveWeight()), Weight: int(b.EffectiveWeight())}
		if m, ok := cfg.Member(b.Name); ok {
			ts.Weight = m.Weight
		}
		t.Members = append(t.Members, ts)
	}
	slices.SortFunc(t.Members, func(x, y api.TableShare) int { return strings.Compare(x.Name, y.Name) })
	return t, nil
}

func apiBackend(b vip.Backend) api.Backend {
	return api.Backend{Name: b.Name, Address: b.Addr, Role: b.Role.String(), Local: b.Local}
}

// Lookup implements api.Daemon through the dataplane's FlowLooker: the
// program's own flow hash and pinned table decide, so the answer is what
// the next packet of that flow meets.
func (d *Daemon) Lookup(ctx context.Context, req api.LookupRequest) (api.Lookup, error) {
	v, ok := d.vipStatus(req.VIP)
	if !ok {
		return api.Lookup{}, fmt.Errorf("%s: %w", req.VIP, api.ErrUnknownVIP)
	}
	svc, err := lookupService(d.config(), req)
	if err != nil {
		return api.Lookup{}, err
	}
	out := api.Lookup{VIP: req.VIP, Client: req.Client, Port: svc.Port, Protocol: protoWord(svc.Proto)}
	if !v.Programmed {
		return out, fmt.Errorf("%s is not programmed on this node: its traffic is not forwarded here", req.VIP)
	}
	fl, ok := d.dp.(FlowLooker)
	if !ok {
		return out, fmt.Errorf("looking up a flow: %w by this dataplane (it does not expose the XDP program's flow hash; vipctl table shows the shares)", api.ErrNotSupported)
	}
	row, p, s, err := fl.LookupFlow(ctx, req.VIP, req.Client, svc.Proto, svc.Port)
	if err != nil {
		return out, fmt.Errorf("looking up the flow in the dataplane: %w", err)
	}
	out.Row = row
	out.Primary, out.Secondary = backendAt(v.Backends, p), backendAt(v.Backends, s)
	return out, nil
}

// lookupService fills in the port and protocol a lookup leaves out from
// the VIP's first service of that protocol.
func lookupService(cfg *config.Config, req api.LookupRequest) (vip.Service, error) {
	var svcs []vip.Service
	for _, c := range cfg.VIPs {
		if c.Addr == req.VIP {
			svcs = c.Services
		}
	}
	want := uint8(0)
	switch req.Protocol {
	case "tcp":
		want = vip.ProtoTCP
	case "udp":
		want = vip.ProtoUDP
	}
	for _, s := range svcs {
		if want != 0 && s.Proto != want {
			continue
		}
		if req.Port != 0 {
			if s.Port == 0 || s.Port == req.Port {
				return vip.Service{Proto: s.Proto, Port: req.Port}, nil
			}
			continue
		}
		if s.Port == 0 {
			return vip.Service{}, fmt.Errorf("%s forwards %s/* (any port): say which port", req.VIP, protoWord(s.Proto))
		}
		return s, nil
	}
	if want == 0 {
		want = vip.ProtoTCP
	}
	if req.Port == 0 {
		return vip.Service{}, fmt.Errorf("%s has no %s service: say which port and protocol", req.VIP, protoWord(want))
	}
	return vip.Service{}, fmt.Errorf("%s does not forward %s/%d: the program passes such packets to the stack untouched",
		req.VIP, protoWord(want), req.Port)
}

func protoWord(p uint8) string {
	switch p {
	case vip.ProtoTCP:
		return "tcp"
	case vip.ProtoUDP:
		return "udp"
	}
	return fmt.Sprintf("proto-%d", p)
}

// backendAt names the member at underlay address a in the VIP's table.
func backendAt(bs []vip.Backend, a netip.Addr) api.Backend {
	for _, b := range bs {
		if b.Addr == a {
			return apiBackend(b)
		}
	}
	return api.Backend{Name: "?", Address: a, Role: "unknown"}
}

// Events implements api.Daemon.
func (d *Daemon) Events(recent int) ([]api.Event, <-chan api.Event, func() bool) {
	past, s := d.watch.subscribe(recent)
	return past, s.ch, func() bool {
		d.watch.unsubscribe(s)
		return d.watch.lost(s)
	}
}

// Config implements api.Daemon: the running config, defaults filled in,
// secrets redacted.
func (d *Daemon) Config() (api.EffectiveConfig, error) {
	d.mu.Lock()
	cfg, loaded := d.cfg, d.loaded
	d.mu.Unlock()
	data, err := cfg.Effective(true)
	if err != nil {
		return api.EffectiveConfig{}, fmt.Errorf("rendering the running config: %w", err)
	}
	return api.EffectiveConfig{File: cfg.File, Loaded: loaded, TOML: string(data)}, nil
}
