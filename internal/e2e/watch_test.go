package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// routeWatch follows the router's routes closely: BIRD's table polled
// every ~10 ms over its control socket, and every change of the kernel's
// table as it happens (netlink route events), so a gap of a millisecond in
// a node's route is seen.
type routeWatch struct {
	l    *lab
	stop chan struct{}
	done sync.WaitGroup

	mu     sync.Mutex
	events []routeEvent
	state  map[string]map[routeKey]bool // "bird", "kernel" -> present now
	polls  int
	errs   []string
}

type routeKey struct {
	vip  netip.Addr
	node string
}

// routeEvent is a node's route for a VIP appearing or going, in BIRD's
// table or the kernel's.
type routeEvent struct {
	at      time.Time
	where   string // "bird" or "kernel"
	key     routeKey
	present bool
}

func (e routeEvent) String() string {
	what := "gone"
	if e.present {
		what = "back"
	}
	return fmt.Sprintf("%s %s: %s from %s %s", e.at.Format("15:04:05.000000"), e.where, e.key.vip, e.key.node, what)
}

func (l *lab) watchRoutes() *routeWatch {
	l.t.Helper()
	w := &routeWatch{l: l, stop: make(chan struct{}), state: map[string]map[routeKey]bool{}}
	ns, err := netns.GetFromName(l.ns(routerName))
	if err != nil {
		l.t.Fatal(err)
	}
	ch := make(chan netlink.RouteUpdate, 1024)
	done := make(chan struct{})
	if err := netlink.RouteSubscribeWithOptions(ch, done, netlink.RouteSubscribeOptions{
		Namespace: &ns, ListExisting: true,
		ErrorCallback: func(err error) { w.note("kernel events: %v", err) },
	}); err != nil {
		ns.Close()
		l.t.Fatal(err)
	}
	ns.Close()
	// The kernel's table, from its events.
	kernel := map[netip.Addr][]string{}
	w.done.Add(2)
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				close(done)
				return
			case u := <-ch:
				a, hops, ok := vipRoute(u.Route)
				if !ok {
					continue
				}
				if u.Type == unix.RTM_DELROUTE {
					hops = nil
				}
				kernel[a] = hops
				set := map[routeKey]bool{}
				for v, hs := range kernel {
					for _, h := range hs {
						set[routeKey{v, h}] = true
					}
				}
				w.update("kernel", time.Now(), set)
			}
		}
	}()
	// BIRD's table, polled.
	go func() {
		defer w.done.Done()
		for {
			select {
			case <-w.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			text, err := l.bird.cmd("show route")
			at := time.Now()
			if err != nil {
				w.note("bird: %v", err)
				continue
			}
			routes, err := parseRoutes(text)
			if err != nil {
				w.note("bird: %v", err)
				continue
			}
			set := map[routeKey]bool{}
			for _, r := range routes {
				set[routeKey{r.Prefix.Addr(), r.Proto}] = true
			}
			w.mu.Lock()
			w.polls++
			w.mu.Unlock()
			w.update("bird", at, set)
		}
	}()
	l.t.Cleanup(w.close)
	return w
}

// vipRoute returns the VIP and the live next-hop nodes of a kernel route.
func vipRoute(r netlink.Route) (netip.Addr, []string, bool) {
	if r.Dst == nil || r.Table != unix.RT_TABLE_MAIN {
		return netip.Addr{}, nil, false
	}
	ones, bits := r.Dst.Mask.Size()
	a, ok := netip.AddrFromSlice(r.Dst.IP)
	if !ok || ones != bits || !vipNet.Contains(a.Unmap()) {
		return netip.Addr{}, nil, false
	}
	var hops []string
	add := func(gw []byte, flags int) {
		if g, ok := netip.AddrFromSlice(gw); ok && flags&(unix.RTNH_F_LINKDOWN|unix.RTNH_F_DEAD) == 0 {
			hops = append(hops, nodeByAddr(g.Unmap()))
		}
	}
	if len(r.MultiPath) == 0 {
		add(r.Gw, r.Flags)
	}
	for _, nh := range r.MultiPath {
		add(nh.Gw, nh.Flags)
	}
	slices.Sort(hops)
	return a.Unmap(), hops, true
}

func (w *routeWatch) note(format string, args ...any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) < 10 {
		w.errs = append(w.errs, fmt.Sprintf(format, args...))
	}
}

func (w *routeWatch) update(where string, at time.Time, set map[routeKey]bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old := w.state[where]
	if old != nil { // the first look is the starting state, not a change
		for k := range set {
			if !old[k] {
				w.events = append(w.events, routeEvent{at: at, where: where, key: k, present: true})
			}
		}
		for k := range old {
			if !set[k] {
				w.events = append(w.events, routeEvent{at: at, where: where, key: k, present: false})
			}
		}
	}
	w.state[where] = set
}

func (w *routeWatch) close() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
		w.done.Wait()
	}
}

// has reports whether where has node's route for vip now.
func (w *routeWatch) has(where string, vip netip.Addr, node string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state[where][routeKey{vip, node}]
}

// changes lists the events for node's route for vip since t, in order.
func (w *routeWatch) changes(vip netip.Addr, node string, since time.Time) []routeEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []routeEvent
	for _, e := range w.events {
		if e.key == (routeKey{vip, node}) && !e.at.Before(since) {
			out = append(out, e)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].at.Before(out[j].at) })
	return out
}

func (w *routeWatch) summary() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := fmt.Sprintf("%d polls of BIRD, %d route changes", w.polls, len(w.events))
	if len(w.errs) > 0 {
		s += "; errors: " + strings.Join(w.errs, "; ")
	}
	return s
}

func fmtEvents(es []routeEvent, since time.Time) string {
	var parts []string
	for _, e := range es {
		parts = append(parts, fmt.Sprintf("+%v %s %s", e.at.Sub(since).Round(100*time.Microsecond), e.where, map[bool]string{true: "back", false: "gone"}[e.present]))
	}
	return strings.Join(parts, ", ")
}
