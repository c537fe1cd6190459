package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/examples/lab/world"
	"github.com/vipd/vipd/internal/api"
)

// snapshot is one look at the lab: what every vipd says (its status) and
// what the world has: each node's lo and pinned maps, the router's BIRD
// table and sessions, the router's kernel routes.
type snapshot struct {
	at time.Time
	// status is what each vipd said just after the world was read (nil:
	// it did not answer); before, what it said just before. A claim is
	// compared with the world only if both say the same (see claims).
	status    map[string]*api.Status
	extra     map[string]*statusExtra
	statusErr map[string]error
	before    map[string]*api.Status
	beforeX   map[string]*statusExtra
	nodes     map[string]world.Node
	nodeErr   map[string]error
	// rib is the router's BIRD table: VIP -> session (node) -> route.
	rib    map[netip.Addr]map[string]birdRoute
	protos map[string]birdProto
	// routers is every router's sessions (router -> node -> protocol) and the
	// number of VIP routes it has from each node: a node's peers are
	// checked against the router each one is.
	routers map[string]routerView
	// kernel is the router's kernel table: VIP -> next-hop nodes (live).
	kernel    map[netip.Addr][]string
	routerErr error
}

var memlockOnce sync.Once

// look takes a snapshot. The parts are read concurrently, so they are
// apart by milliseconds: a difference that lasts is a divergence, one that
// does not is the world moving.
func (l *lab) look() *snapshot {
	memlockOnce.Do(func() { rlimit.RemoveMemlock() })
	s := &snapshot{
		at:        time.Now(),
		status:    map[string]*api.Status{},
		extra:     map[string]*statusExtra{},
		statusErr: map[string]error{},
		before:    map[string]*api.Status{},
		beforeX:   map[string]*statusExtra{},
		nodes:     map[string]world.Node{},
		nodeErr:   map[string]error{},
	}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	l.mu.Lock()
	spec := l.spec
	l.mu.Unlock()
	statuses := func(into map[string]*api.Status, intoX map[string]*statusExtra) {
		for _, n := range nodeNames {
			wg.Go(func() {
				st, x, err := l.statusDoc(n)
				mu.Lock()
				into[n], intoX[n], s.statusErr[n] = st, x, err
				mu.Unlock()
			})
		}
		wg.Wait()
	}
	statuses(s.before, s.beforeX)
	s.at = time.Now()
	for _, n := range nodeNames {
		wg.Go(func() {
			w, err := l.readNode(n, spec.PinPath(n))
			mu.Lock()
			s.nodes[n], s.nodeErr[n] = w, err
			mu.Unlock()
		})
	}
	wg.Go(func() {
		if err := l.readRouters(s); err != nil {
			s.routerErr = err
		}
	})
	wg.Wait()
	statuses(s.status, s.extra)
	return s
}

// asBefore returns s with the statuses read before the world.
func (s *snapshot) asBefore() *snapshot {
	c := *s
	c.status, c.extra = s.before, s.beforeX
	return &c
}

// readNode reads node's lo (netlink in its namespace) and pinned maps.
func (l *lab) readNode(node, pin string) (world.Node, error) {
	h, err := l.handle(node)
	if err != nil {
		return world.Node{}, err
	}
	w := world.ReadMaps(pin)
	lo, err := h.LinkByName("lo")
	if err != nil {
		return w, fmt.Errorf("finding lo on %s: %w", node, err)
	}
	addrs, err := h.AddrList(lo, netlink.FAMILY_ALL)
	if err != nil {
		return w, fmt.Errorf("listing lo on %s: %w", node, err)
	}
	for _, a := range addrs {
		ip, ok := netip.AddrFromSlice(a.IP)
		if ok && !ip.Unmap().IsLoopback() {
			w.Lo = append(w.Lo, ip.Unmap())
		}
	}
	slices.SortFunc(w.Lo, netip.Addr.Compare)
	return w, nil
}

// nodeByAddr names the lab node (or router) at an address.
func nodeByAddr(a netip.Addr) string {
	if n, ok := labconf.NodeByAddr(a); ok {
		return n
	}
	return a.String()
}

// routerView is one router's sessions and route counts per node.
type routerView struct {
	protos map[string]birdProto
	routes map[string]int
}

// readRouters reads what every router has: the sessions and route counts
// (routerView), plus r1's table and kernel (readRouter).
func (l *lab) readRouters(s *snapshot) error {
	s.routers = map[string]routerView{}
	for _, r := range labconf.Routers {
		if r.Name == routerName {
			continue
		}
		v, err := l.readRouterView(l.birds[r.Name])
		if err != nil {
			return fmt.Errorf("%s: %w", r.Name, err)
		}
		s.routers[r.Name] = v
	}
	if err := l.readRouter(s); err != nil {
		return err
	}
	v := routerView{protos: s.protos, routes: map[string]int{}}
	for _, byNode := range s.rib {
		for n := range byNode {
			v.routes[n]++
		}
	}
	s.routers[routerName] = v
	return nil
}

func (l *lab) readRouterView(b *birdCLI) (routerView, error) {
	text, err := b.cmd("show route all")
	if err != nil {
		return routerView{}, err
	}
	routes, err := parseRoutes(text)
	if err != nil {
		return routerView{}, err
	}
	v := routerView{routes: map[string]int{}}
	for _, r := range routes {
		v.routes[r.Proto]++
	}
	text, err = b.cmd("show protocols")
	if err != nil {
		return routerView{}, err
	}
	v.protos = parseProtocols(text)
	return v, nil
}

// readRouter fills r1's part of s: its table, sessions and kernel.
func (l *lab) readRouter(s *snapshot) error {
	text, err := l.bird.cmd("show route all")
	if err != nil {
		return err
	}
	routes, err := parseRoutes(text)
	if err != nil {
		return err
	}
	s.rib = map[netip.Addr]map[string]birdRoute{}
	for _, r := range routes {
		a := r.Prefix.Addr()
		if s.rib[a] == nil {
			s.rib[a] = map[string]birdRoute{}
		}
		s.rib[a][r.Proto] = r
	}
	text, err = l.bird.cmd("show protocols")
	if err != nil {
		return err
	}
	s.protos = parseProtocols(text)
	s.kernel, err = l.kernelRoutes()
	return err
}

// kernelRoutes lists the router kernel's VIP routes and their live next
// hops (a next hop on a link that is down is not used: the lab sets
// ignore_routes_with_linkdown).
func (l *lab) kernelRoutes() (map[netip.Addr][]string, error) {
	h, err := l.handle(routerName)
	if err != nil {
		return nil, err
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return nil, fmt.Errorf("listing the router's routes: %w", err)
	}
	out := map[netip.Addr][]string{}
	for _, r := range routes {
		if r.Dst == nil {
			continue
		}
		ones, bits := r.Dst.Mask.Size()
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok || ones != bits || !vipNet.Contains(a.Unmap()) {
			continue
		}
		a = a.Unmap()
		add := func(gw []byte, flags int) {
			g, ok := netip.AddrFromSlice(gw)
			if !ok || flags&(unix.RTNH_F_LINKDOWN|unix.RTNH_F_DEAD) != 0 {
				return
			}
			out[a] = append(out[a], nodeByAddr(g.Unmap()))
		}
		if len(r.MultiPath) == 0 {
			add(r.Gw, r.Flags)
		}
		for _, nh := range r.MultiPath {
			add(nh.Gw, nh.Flags)
		}
		slices.Sort(out[a])
	}
	return out, nil
}

// routeFrom reports whether the router's BIRD has a route for a from node.
func (s *snapshot) routeFrom(a netip.Addr, node string) (birdRoute, bool) {
	r, ok := s.rib[a][node]
	return r, ok
}

// advertisers lists the nodes the router's BIRD has a route for a from.
func (s *snapshot) advertisers(a netip.Addr) []string {
	var out []string
	for n := range s.rib[a] {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}
