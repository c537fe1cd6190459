package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/vipd/vipd/examples/lab/labconf"
)

// model is what the test did to the lab: the operator's intent (configs,
// drains) and the truth it made (which vipd runs, which link and service
// is up). Claims are compared with the world; the model says what the
// world must come to once it settles. Safe for concurrent use.
type model struct {
	mu sync.Mutex
	m  modelState
}

type modelState struct {
	spec        labconf.Spec
	nodeDrained map[string]bool
	vipDrained  map[string]map[netip.Addr]bool
	vipdUp      map[string]bool
	linkUp      map[string]bool
	serviceUp   map[string]bool
}

func newModel(spec labconf.Spec) *model {
	m := &model{m: modelState{
		spec:        spec.Clone(),
		nodeDrained: map[string]bool{},
		vipDrained:  map[string]map[netip.Addr]bool{},
		vipdUp:      map[string]bool{},
		linkUp:      map[string]bool{},
		serviceUp:   map[string]bool{},
	}}
	for _, n := range nodeNames {
		m.m.vipDrained[n] = map[netip.Addr]bool{}
		m.m.vipdUp[n], m.m.linkUp[n], m.m.serviceUp[n] = true, true, true
	}
	return m
}

// view returns a copy to read without the lock.
func (m *model) view() modelState {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.m
	c.spec = m.m.spec.Clone()
	cp := func(x map[string]bool) map[string]bool {
		y := map[string]bool{}
		for k, v := range x {
			y[k] = v
		}
		return y
	}
	c.nodeDrained, c.vipdUp, c.linkUp, c.serviceUp = cp(m.m.nodeDrained), cp(m.m.vipdUp), cp(m.m.linkUp), cp(m.m.serviceUp)
	c.vipDrained = map[string]map[netip.Addr]bool{}
	for n, vs := range m.m.vipDrained {
		c.vipDrained[n] = map[netip.Addr]bool{}
		for a, v := range vs {
			c.vipDrained[n][a] = v
		}
	}
	return c
}

// update changes the model under its lock.
func (m *model) update(f func(s *modelState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f(&m.m)
}

// vip returns the configured VIP a.
func (s modelState) vip(a netip.Addr) (labconf.VIP, bool) {
	for _, v := range s.spec.VIPs {
		if v.Addr == a {
			return v, true
		}
	}
	return labconf.VIP{}, false
}

// draining is the operator's intent for a on node: drained, by a node
// drain or a VIP drain.
func (s modelState) draining(node string, a netip.Addr) bool {
	return s.nodeDrained[node] || s.vipDrained[node][a]
}

// advertisers are the nodes that must announce a once the lab settles:
// configured, running (or restarting: routers keep its routes), link up,
// not drained.
func (s modelState) advertisers(a netip.Addr) []string {
	if _, ok := s.vip(a); !ok {
		return nil
	}
	var out []string
	for _, n := range nodeNames {
		if s.linkUp[n] && !s.draining(n, a) {
			out = append(out, n)
		}
	}
	return out
}

// memberUp is whether node's poller must see member up.
func (s modelState) memberUp(node, member string) bool {
	return s.vipdUp[member] && s.linkUp[member] && s.linkUp[node]
}

// expected lists how the world differs from what the model says it must
// come to: the router's routes and their attributes, each node's lo, maps
// and status. Empty once the lab has settled.
func (s modelState) expected(snap *snapshot) []string {
	var out []string
	bad := func(format string, args ...any) { out = append(out, fmt.Sprintf(format, args...)) }
	if snap.routerErr != nil {
		bad("router: %v", snap.routerErr)
		return out
	}
	configured := map[netip.Addr]bool{}
	for _, v := range s.spec.VIPs {
		configured[v.Addr] = true
		want := s.advertisers(v.Addr)
		if got := snap.advertisers(v.Addr); !slices.Equal(got, want) {
			bad("router BIRD: %s from %v, want from %v", v.Addr, got, want)
		}
		if got := snap.kernel[v.Addr]; !slices.Equal(got, want) {
			bad("router kernel: %s via %v, want via %v", v.Addr, got, want)
		}
		for n, r := range snap.rib[v.Addr] {
			if d := attrDiff(v, r); d != "" {
				bad("router BIRD: %s from %s: %s", v.Addr, n, d)
			}
		}
	}
	for a := range snap.rib {
		if !configured[a] {
			bad("router BIRD: %s (not configured) from %v", a, snap.advertisers(a))
		}
	}
	for a, nhs := range snap.kernel {
		if !configured[a] {
			bad("router kernel: %s (not configured) via %v", a, nhs)
		}
	}
	for _, n := range nodeNames {
		w, err := snap.nodes[n], snap.nodeErr[n]
		if err != nil {
			bad("%s: %v", n, err)
			continue
		}
		for _, a := range w.Lo {
			if vipNet.Contains(a) && !configured[a] {
				bad("%s: %s on lo, not configured", n, a)
			}
		}
		for _, v := range s.spec.VIPs {
			if want := !s.nodeDrained[n]; want != slices.Contains(w.Lo, v.Addr) {
				bad("%s: %s on lo: %v, want %v", n, v.Addr, !want, want)
			}
			if s.nodeDrained[n] {
				continue
			}
			pv, ok := w.VIP(v.Addr)
			if !ok || pv.Table == nil {
				bad("%s: %s not programmed", n, v.Addr)
			} else if want := sortedCopy(v.Services); !slices.Equal(pv.Services, want) {
				bad("%s: %s programmed with services %v, configured %v", n, v.Addr, pv.Services, want)
			}
		}
		for _, pv := range w.VIPs {
			if !configured[pv.Addr] {
				bad("%s: %s programmed, not configured", n, pv.Addr)
			}
		}
		st := snap.status[n]
		if st == nil {
			bad("%s: no status: %v", n, snap.statusErr[n])
			continue
		}
		wantPhase := "active"
		if s.nodeDrained[n] {
			wantPhase = "drained"
		}
		if st.Phase != wantPhase {
			bad("%s: phase %s, want %s", n, st.Phase, wantPhase)
		}
		var got []string
		for _, vs := range st.VIPs {
			got = append(got, vs.Address.String())
			if !configured[vs.Address] {
				bad("%s: status lists %s (configured %v), removed from the config", n, vs.Address, vs.Configured)
			}
		}
		for _, v := range s.spec.VIPs {
			if !slices.Contains(got, v.Addr.String()) {
				bad("%s: status does not list %s", n, v.Addr)
			}
		}
		var members []string
		for _, m := range st.Members {
			members = append(members, m.Name)
		}
		var want []string
		for _, m := range nodeNames {
			if m != n {
				want = append(want, m)
			}
		}
		if s.spec.Phantom {
			want = append(want, labconf.Phantom.Name)
		}
		if !slices.Equal(members, want) {
			bad("%s: members %v, want %v", n, members, want)
		}
	}
	return out
}

// attrDiff compares a route's BGP attributes at the router with v's
// configuration ("" when they agree).
func attrDiff(v labconf.VIP, r birdRoute) string {
	var d []string
	if (v.MED == nil) != (r.MED == nil) || (v.MED != nil && *v.MED != *r.MED) {
		d = append(d, fmt.Sprintf("MED %s, configured %s", fmtMED(r.MED), fmtMED(v.MED)))
	}
	if got, want := sortedCopy(r.Communities), sortedCopy(v.Communities); !slices.Equal(got, want) {
		d = append(d, fmt.Sprintf("communities %v, configured %v", got, want))
	}
	// The router sees vipd's AS once, plus the prepends.
	if len(r.ASPath) != 1+v.Prepend {
		d = append(d, fmt.Sprintf("AS path %v, configured prepend %d", r.ASPath, v.Prepend))
	}
	return strings.Join(d, "; ")
}

func fmtMED(m *uint32) string {
	if m == nil {
		return "none"
	}
	return fmt.Sprint(*m)
}

func sortedCopy(ss []string) []string {
	c := slices.Clone(ss)
	sort.Strings(c)
	if c == nil {
		c = []string{}
	}
	return c
}
