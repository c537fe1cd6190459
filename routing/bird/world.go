package bird

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/routing"
)

// exportedAttrs are the OSPF attributes of one exported VIP route.
type exportedAttrs struct {
	typ    int // external type 1 or 2
	metric uint32
	tag    uint32
}

func (e exportedAttrs) String() string {
	s := fmt.Sprintf("E%d metric %d", e.typ, e.metric)
	if e.tag != 0 {
		s += fmt.Sprintf(" tag %d", e.tag)
	}
	return s
}

// exportedRoute is one route of `show route export PROTO all`.
type exportedRoute struct {
	prefix netip.Prefix
	proto  string // the protocol the route comes from
	attrs  exportedAttrs
}

// parseExport reads the reply to `show route export PROTO all`: a route
// line ("192.0.2.10/32  blackhole [vipd_vip4 12:00:00.000] * (200)"; a
// second route of the same prefix leaves the prefix out) followed by its
// attribute lines ("Type: static univ", "OSPF.metric2: 20",
// "OSPF.tag: 0x00000007").
func parseExport(lines []replyLine) []exportedRoute {
	var out []exportedRoute
	var cur *exportedRoute
	var m1, m2 *uint32
	flush := func() {
		if cur == nil {
			return
		}
		switch {
		case m2 != nil:
			cur.attrs.typ, cur.attrs.metric = 2, *m2
		case m1 != nil:
			cur.attrs.typ, cur.attrs.metric = 1, *m1
		}
		out = append(out, *cur)
		cur, m1, m2 = nil, nil, nil
	}
	var last netip.Prefix
	for _, l := range lines {
		t := l.text
		if strings.HasPrefix(t, "\t") {
			if cur == nil {
				continue
			}
			k, v, ok := strings.Cut(strings.TrimSpace(t), ": ")
			if !ok {
				continue
			}
			switch k {
			case "OSPF.metric1", "OSPF.metric2":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					continue
				}
				u := uint32(n)
				if k == "OSPF.metric1" {
					m1 = &u
				} else {
					m2 = &u
				}
			case "OSPF.tag":
				if n, err := strconv.ParseUint(strings.TrimPrefix(v, "0x"), 16, 32); err == nil {
					cur.attrs.tag = uint32(n)
				}
			}
			continue
		}
		open := strings.IndexByte(t, '[')
		if open < 0 {
			continue // "Table master4:" and the like
		}
		flush()
		if f := strings.Fields(t); len(f) > 0 {
			if p, err := netip.ParsePrefix(f[0]); err == nil {
				last = p
			}
		}
		if !last.IsValid() {
			continue
		}
		proto, _, _ := strings.Cut(t[open+1:], " ")
		cur = &exportedRoute{prefix: last, proto: proto}
	}
	flush()
	return out
}

// Exported implements routing.Advertiser: for each of vipd's OSPF
// protocols (mode full: those it configures; include: every OSPF protocol
// BIRD runs) that is up with at least one Full adjacency (`show ospf
// neighbors`), the VIP routes BIRD exports to it (`show route export PROTO
// all`, routes of vipd's static protocols only), attributed to that
// protocol's Full neighbours; SessionsUp counts the Full adjacencies, per
// family too, and NoSession4/6 say why a family has none. Draining is true
// when a route carries the drain metric, and Mismatch says when its type,
// metric or tag are neither the VIP's normal nor its drain ones. It talks
// to BIRD's control socket directly; when BIRD cannot be reached the error
// wraps ErrSocketMissing, ErrBirdDown or ErrSocketPermission.
func (a *Advertiser) Exported(ctx context.Context) (routing.Exported, error) {
	select {
	case <-a.stop:
		return routing.Exported{}, routing.ErrClosed
	default:
	}
	cc, err := dialControl(ctx, a.cfg.Socket)
	if err != nil {
		return routing.Exported{}, fmt.Errorf("reading back the exported routes: %w", err)
	}
	defer cc.Close()
	st, err := readState(ctx, cc, a.cfg)
	if err != nil {
		return routing.Exported{}, fmt.Errorf("reading back the exported routes: %w", err)
	}
	a.vipMu.RLock()
	r := a.r
	a.vipMu.RUnlock()
	ex := routing.Exported{At: time.Now(), Routes: map[netip.Prefix]routing.ExportedRoute{}}
	for _, p := range st.Protocols {
		full := p.Full()
		if !p.Up() || len(full) == 0 {
			continue
		}
		names := make([]string, 0, len(full))
		for _, n := range full {
			names = append(names, p.Name+" "+n.RouterID)
		}
		ex.SessionsUp += len(names)
		if p.family() == 6 {
			ex.SessionsUp6 += len(names)
		} else {
			ex.SessionsUp4 += len(names)
		}
		lines, err := cc.cmd(ctx, "show route export "+p.Name+" all")
		if err != nil {
			return routing.Exported{}, fmt.Errorf("listing the routes bird exports to %s: %w", p.Name, err)
		}
		for _, er := range parseExport(lines) {
			if er.proto != StaticV4 && er.proto != StaticV6 {
				continue // the operator's own routes (mode include)
			}
			draining, mismatch := r.classify(er)
			rt, seen := ex.Routes[er.prefix]
			if !seen {
				rt.Draining, rt.Mismatch = draining, mismatch
			} else if rt.Mismatch == "" && mismatch != "" {
				rt.Mismatch = p.Name + ": " + mismatch
			}
			rt.Peers = append(rt.Peers, names...)
			ex.Routes[er.prefix] = rt
		}
	}
	for p, rt := range ex.Routes {
		slices.Sort(rt.Peers)
		ex.Routes[p] = rt
	}
	why := st.noSession()
	ex.NoSession4, ex.NoSession6 = why[4], why[6]
	if len(st.Protocols) == 0 {
		ex.NoSession4 = "bird runs no OSPF protocol"
		ex.NoSession6 = ex.NoSession4
	}
	return ex, nil
}

// classify says whether an exported route carries its VIP's drain
// attributes, and how it differs when it carries neither the normal nor
// the drain ones.
func (r *renderer) classify(er exportedRoute) (draining bool, mismatch string) {
	a, ok := r.attrs[er.prefix]
	if !ok {
		return false, "exported, but not a configured VIP"
	}
	a = a.WithDefaults()
	normal := exportedAttrs{typ: a.Type, metric: a.Metric, tag: a.Tag}
	drain := normal
	drain.metric = r.drainMetric()
	switch er.attrs {
	case normal:
		return false, ""
	case drain:
		return true, ""
	}
	return false, fmt.Sprintf("exported with %s; want %s (normal) or %s (draining)", er.attrs, normal, drain)
}

// drainMetric is the metric of a draining route.
func (r *renderer) drainMetric() uint32 {
	if r.cfg.DrainMetric == 0 {
		return maxMetric
	}
	return r.cfg.DrainMetric
}

// Resync implements routing.Advertiser: it renders the file for the routes
// announced now, writes it and has BIRD reconfigure, even when the
// advertiser believes BIRD already runs it (the file may have been edited
// or replaced, or BIRD restarted with another one). A SetRoutes call in
// the same debounce window wins: its routes are the ones applied. Routes
// that BIRD already exported stay: a reconfigure that changes nothing for
// a route leaves it alone.
func (a *Advertiser) Resync(ctx context.Context) error {
	_, err := a.send(ctx, request{resync: true})
	if err != nil {
		return fmt.Errorf("resyncing bird: %w", err)
	}
	return nil
}
