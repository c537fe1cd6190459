package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/examples/lab/world"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/vip"
)

// mismatch is one claim of a vipd's status that the world (or, for the
// operator's intent, the test) does not bear out at one snapshot. key names
// the claim, so the same mismatch seen again is recognised.
type mismatch struct {
	key, detail string
}

// claims compares every claim of every status in snap with the world:
//
//   - bound: the VIP on the node's lo and in its bound set;
//   - programmed: in the pinned `vips` map with a table, and that table is
//     exactly the one the claimed backends and roles build;
//   - advertised: the router's BIRD has the node's route (while the
//     session is up; with every session down the status must say so), its
//     kernel uses it, and nothing the status does not claim is there;
//   - serve_state and healthy: what peers' programmed tables make of the
//     node, and whether its service runs;
//   - draining and phase: the operator's intent, as the test knows it;
//   - peers: session state and route count at the router;
//   - members: who really answers, and the generations they publish;
//   - where the vipd makes them (issue 10): the operator's drains it
//     reports, and each VIP's route as it read it back from its routing
//     daemon (route, world.exported).
//
// A claim counts only if the vipd made it both just before and just after
// the world was read: a claim that changed meanwhile may be about either
// side of the change.
func claims(snap *snapshot, m modelState, digests *digestCache) []mismatch {
	before := map[string]bool{}
	for _, x := range claimsAt(snap.asBefore(), m, digests) {
		before[x.key] = true
	}
	var out []mismatch
	for _, x := range claimsAt(snap, m, digests) {
		if before[x.key] {
			out = append(out, x)
		}
	}
	return out
}

func claimsAt(snap *snapshot, m modelState, digests *digestCache) []mismatch {
	var out []mismatch
	bad := func(key, format string, args ...any) {
		out = append(out, mismatch{key: key, detail: fmt.Sprintf(format, args...)})
	}
	for _, n := range nodeNames {
		st := snap.status[n]
		if st == nil {
			continue // no claims: vipd is down (or did not answer)
		}
		w, werr := snap.nodes[n], snap.nodeErr[n]
		proto, protoOK := snap.protos[n]
		sessionUp := protoOK && proto.established()
		peersUp := false
		for _, p := range st.Peers {
			peersUp = peersUp || p.Up
		}
		claimed := map[netip.Addr]bool{}
		for _, vs := range st.VIPs {
			a := vs.Address
			claimed[a] = true
			k := n + " " + a.String() + " "
			if werr == nil {
				onLo, inSet := slices.Contains(w.Lo, a), slices.Contains(w.Bound, a)
				if vs.Bound != onLo {
					bad(k+"bound/lo", "%s claims %s bound=%v; on lo: %v", n, a, vs.Bound, onLo)
				}
				if w.Error == "" && vs.Bound != inSet {
					bad(k+"bound/set", "%s claims %s bound=%v; in the dataplane's bound set: %v", n, a, vs.Bound, inSet)
				}
			}
			if werr == nil && w.Error != "" {
				if vs.Programmed {
					bad(k+"programmed", "%s claims %s programmed; pinned maps unreadable: %s", n, a, w.Error)
				}
			} else if werr == nil {
				pv, ok := w.VIP(a)
				prog := ok && pv.Table != nil
				if vs.Programmed != prog {
					bad(k+"programmed", "%s claims %s programmed=%v; pinned vips/tables: %v", n, a, vs.Programmed, prog)
				}
				if vs.Programmed && prog {
					want, err := digests.digest(vs.Backends)
					switch {
					case err != nil:
						bad(k+"table", "%s %s: claimed backends %s: %v", n, a, fmtBackends(vs.Backends), err)
					case want != pv.Table.Digest:
						bad(k+"table", "%s claims the table of %s is %s; the pinned table is not (rows per primary %v, secondary %v)",
							n, a, fmtBackends(vs.Backends), pv.Table.Primary, pv.Table.Secondary)
					}
					var local []netip.Addr
					for _, b := range vs.Backends {
						if b.Local {
							local = append(local, b.Address)
						}
					}
					if !slices.Equal(local, pv.Table.Local) {
						bad(k+"table/local", "%s claims local backends %v for %s; pinned %v", n, local, a, pv.Table.Local)
					}
				}
			}
			if snap.routerErr == nil {
				r, has := snap.routeFrom(a, n)
				switch {
				case vs.Advertised && !has && sessionUp:
					bad(k+"advertised", "%s claims %s advertised; the router's session with it is up and has no route for it", n, a)
				case vs.Advertised && !has && peersUp:
					bad(k+"advertised", "%s claims %s advertised and its peer up; the router's session with it is %s %s", n, a, proto.State, proto.Info)
				case !vs.Advertised && has:
					bad(k+"advertised", "%s claims %s not advertised; the router has its route", n, a)
				}
				if has && m.linkUp[n] && !slices.Contains(snap.kernel[a], n) {
					bad(k+"kernel", "the router's BIRD has %s from %s, its kernel routes %s via %v", a, n, a, snap.kernel[a])
				}
				if has && vs.Depreferred {
					// The lab's drain policy is withdraw: nothing is
					// depreferred (a claim to check if it were).
					bad(k+"depreferred", "%s claims %s depreferred; the lab's drain policy is withdraw", n, a)
				}
				if v, ok := m.vip(a); ok && has && vs.Configured && !vs.Depreferred {
					if d := attrDiff(v, r); d != "" {
						bad(k+"attrs", "%s announces %s with %s", n, a, d)
					}
				}
			}
			if x, ok := snap.extra[n].vip(a); ok && snap.routerErr == nil {
				_, has := snap.routeFrom(a, n)
				switch x.Route {
				case "announced":
					if !has || !sessionUp {
						bad(k+"route", "%s says the route of %s is announced (%s); the router has it: %v, session %s %s", n, a, x.RouteReason, has, proto.State, proto.Info)
					}
				case "withdrawn":
					if has {
						bad(k+"route", "%s says the route of %s is withdrawn (%s); the router has it", n, a, x.RouteReason)
					}
				case "no-session":
					if sessionUp {
						bad(k+"route", "%s says %s has no session up (%s); the router's session is established", n, a, x.RouteReason)
					}
				case "diverged":
					// vipd itself finds its claim and the world apart: fine
					// for a moment (it resyncs), a divergence if it lasts.
					bad(k+"route", "%s says the route of %s diverged: %s", n, a, x.RouteReason)
				}
				if w := x.RouteWorld; w != nil && w.Read && w.Exported != (has && sessionUp) {
					bad(k+"world", "%s read %s back as exported=%v (to %v); the router has it: %v, session up: %v", n, a, w.Exported, w.Peers, has, sessionUp)
				}
			}
			if x := snap.extra[n]; x != nil && x.Drains {
				xv, _ := x.vip(a)
				if want := m.vipDrained[n][a]; (xv.Drain != nil) != want {
					bad(k+"drain", "%s reports a drain of %s: %v; the operator's intent: %v", n, a, xv.Drain != nil, want)
				}
			}
			if vs.Healthy != m.serviceUp[n] {
				bad(k+"healthy", "%s claims %s healthy=%v; its service runs: %v", n, a, vs.Healthy, m.serviceUp[n])
			}
			_, configured := m.vip(a)
			if vs.Configured != configured {
				bad(k+"configured", "%s claims %s configured=%v; the config says %v", n, a, vs.Configured, configured)
			}
			if want := m.draining(n, a); configured && vs.Draining != want && !st.Stopping {
				bad(k+"draining", "%s claims %s draining=%v; the operator's intent: %v", n, a, vs.Draining, want)
			}
			// What n publishes, as every peer's programmed table has it.
			wantRole := ""
			switch {
			case vs.ServeState == "active" && vs.Healthy:
				wantRole = "primary"
			case vs.ServeState == "active" || vs.ServeState == "draining":
				wantRole = "secondary"
			}
			for _, p := range nodeNames {
				sp := snap.status[p]
				// n's own table has n as n publishes it, too.
				if sp == nil || (p != n && !memberUp(sp, n)) {
					continue
				}
				pvs, ok := findVIP(sp, a)
				if !ok || !pvs.Programmed {
					continue
				}
				role := ""
				for _, b := range pvs.Backends {
					if b.Name == n {
						role = b.Role
					}
				}
				if role != wantRole {
					bad(k+"serve/"+p, "%s publishes %s %s (healthy %v); %s's table has it as %q", n, a, vs.ServeState, vs.Healthy, p, role)
				}
			}
		}
		// The world holds nothing the status does not claim.
		if werr == nil {
			for _, a := range w.Lo {
				if vipNet.Contains(a) && !claimed[a] {
					bad(n+" "+a.String()+" unclaimed/lo", "%s has %s on lo; its status does not list it", n, a)
				}
			}
			for _, a := range w.Bound {
				if !claimed[a] {
					bad(n+" "+a.String()+" unclaimed/bound", "%s has %s in its bound set; its status does not list it", n, a)
				}
			}
			for _, pv := range w.VIPs {
				if !claimed[pv.Addr] {
					bad(n+" "+pv.Addr.String()+" unclaimed/maps", "%s has %s in its pinned maps; its status does not list it", n, pv.Addr)
				}
			}
		}
		if snap.routerErr == nil {
			for a, byNode := range snap.rib {
				if _, ok := byNode[n]; ok && !claimed[a] {
					bad(n+" "+a.String()+" unclaimed/route", "the router has %s from %s; its status does not list it", a, n)
				}
			}
			routes := 0
			for _, byNode := range snap.rib {
				if _, ok := byNode[n]; ok {
					routes++
				}
			}
			for _, p := range st.Peers {
				// Each peer against the router it is (r1 or r2).
				up, pr, rs := sessionUp, proto, routes
				if r, ok := labconf.NodeByAddr(p.Address); ok && r != routerName {
					v, vok := snap.routers[r]
					if !vok {
						continue
					}
					pr, ok = v.protos[n]
					up, rs = ok && pr.established(), v.routes[n]
				}
				if p.Up != up {
					bad(n+" peer "+p.Name, "%s claims its peer %s up=%v (%s); the router's session: %s %s", n, p.Name, p.Up, p.State, pr.State, pr.Info)
				} else if p.Up && p.RoutesAdvertised != rs {
					bad(n+" peer "+p.Name+" routes", "%s claims %d routes advertised to %s; the router has %d from it", n, p.RoutesAdvertised, p.Name, rs)
				}
			}
		}
		// Operator intent: a drain is never lost.
		if x := snap.extra[n]; x != nil && x.Drains && (x.NodeDrain != nil) != m.nodeDrained[n] {
			bad(n+" node_drain", "%s reports a node drain: %v; the operator's intent: %v", n, x.NodeDrain != nil, m.nodeDrained[n])
		}
		if m.nodeDrained[n] && st.Phase == "active" {
			bad(n+" phase", "%s says phase active; it was drained", n)
		}
		if !m.nodeDrained[n] && st.Phase != "active" && !st.Stopping {
			bad(n+" phase", "%s says phase %s; it was not drained", n, st.Phase)
		}
		for _, mb := range st.Members {
			if mb.Name == labconf.Phantom.Name {
				if mb.Up {
					bad(n+" member "+mb.Name, "%s claims %s up; no such node runs", n, mb.Name)
				}
				continue
			}
			if want := m.memberUp(n, mb.Name); mb.Up != want {
				bad(n+" member "+mb.Name, "%s claims %s up=%v; its vipd runs %v, links up %v/%v", n, mb.Name, mb.Up, m.vipdUp[mb.Name], m.linkUp[n], m.linkUp[mb.Name])
			}
			if sm := snap.status[mb.Name]; mb.Up && sm != nil && mb.Generation != sm.Generation {
				bad(n+" member "+mb.Name+" generation", "%s has %s at generation %d; %s publishes %d", n, mb.Name, mb.Generation, mb.Name, sm.Generation)
			}
		}
	}
	return out
}

func memberUp(st *api.Status, name string) bool {
	for _, m := range st.Members {
		if m.Name == name {
			return m.Up
		}
	}
	return false
}

func findVIP(st *api.Status, a netip.Addr) (api.VIPStatus, bool) {
	for _, v := range st.VIPs {
		if v.Address == a {
			return v, true
		}
	}
	return api.VIPStatus{}, false
}

func fmtBackends(bs []api.Backend) string {
	var parts []string
	for _, b := range bs {
		s := b.Name + ":" + b.Role
		if b.Local {
			s += ",local"
		}
		parts = append(parts, s)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// digestCache computes the digest of the table a set of claimed backends
// builds (dataplane.BuildSharedTable, the lab's seed: the dataplane stores
// one table per backend set, shared by its VIPs), once per distinct set.
type digestCache struct {
	mu sync.Mutex
	m  map[string]string
}

func (c *digestCache) digest(bs []api.Backend) (string, error) {
	key := fmtBackends(bs)
	for _, b := range bs {
		key += b.Address.String()
	}
	c.mu.Lock()
	d, ok := c.m[key]
	c.mu.Unlock()
	if ok {
		return d, nil
	}
	var in []vip.Backend
	for _, b := range bs {
		role, err := vip.ParseBackendRole(b.Role)
		if err != nil {
			return "", err
		}
		in = append(in, vip.Backend{Name: b.Name, Addr: b.Address, Role: role, Local: b.Local})
	}
	rows, err := dataplane.BuildSharedTable(labconf.Seed, in)
	if err != nil {
		return "", err
	}
	wrows := make([]world.Row, len(rows))
	for i, r := range rows {
		wrows[i] = world.Row{Primary: in[r.Primary].Addr, Secondary: in[r.Secondary].Addr}
	}
	d = world.TableDigest(wrows)
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]string{}
	}
	c.m[key] = d
	c.mu.Unlock()
	return d, nil
}

// divergence is a claim that disagreed with the world for longer than the
// settle bound.
type divergence struct {
	key, detail string
	since       time.Time
	lasted      time.Duration
	step        string
}

func (d divergence) String() string {
	return fmt.Sprintf("[%s] %s (for %v since %s)", d.step, d.detail, d.lasted.Round(100*time.Millisecond), d.since.Format("15:04:05.000"))
}

// tracker follows mismatches from snapshot to snapshot: one that lasts
// longer than bound becomes a divergence (reported once per episode); one
// that goes away in time was the world moving.
type tracker struct {
	bound time.Duration

	mu          sync.Mutex
	open        map[string]*divergence
	reported    map[string]bool
	divergences []divergence
	transient   int
	step        string
}

func newTracker(bound time.Duration) *tracker {
	return &tracker{bound: bound, open: map[string]*divergence{}, reported: map[string]bool{}}
}

func (t *tracker) setStep(s string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.step = s
}

// observe records the mismatches of the snapshot taken at at.
func (t *tracker) observe(at time.Time, ms []mismatch) {
	t.mu.Lock()
	defer t.mu.Unlock()
	seen := map[string]bool{}
	for _, m := range ms {
		seen[m.key] = true
		d := t.open[m.key]
		if d == nil {
			d = &divergence{key: m.key, since: at, step: t.step}
			t.open[m.key] = d
		}
		d.detail = m.detail
		d.lasted = at.Sub(d.since)
		if d.lasted > t.bound && !t.reported[m.key] {
			t.reported[m.key] = true
			t.divergences = append(t.divergences, *d)
		}
	}
	for k, d := range t.open {
		if seen[k] {
			continue
		}
		if t.reported[k] {
			// Record how long it lasted in the end.
			for i := range t.divergences {
				if t.divergences[i].key == k && t.divergences[i].since.Equal(d.since) {
					t.divergences[i].lasted = d.lasted
				}
			}
		} else {
			t.transient++
		}
		delete(t.open, k)
		delete(t.reported, k)
	}
}

// results returns the divergences so far, in order.
func (t *tracker) results() ([]divergence, int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := slices.Clone(t.divergences)
	sort.Slice(out, func(i, j int) bool { return out[i].since.Before(out[j].since) })
	return out, t.transient
}
