package bird

import (
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"text/template"

	"github.com/vipd/vipd/routing"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("bird").Funcs(template.FuncMap{
	"yesno": func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	},
}).ParseFS(templateFS, "templates/*.tmpl"))

// renderData is what the templates see.
type renderData struct {
	Mode     string
	RouterID string
	LogFile  string
	BFD      bool
	OSPF     []OSPF
	V4, V6   staticData
}

type staticData struct {
	Name    string
	Channel string
	Marker  string // printed by the template where the route lines go
}

// Markers the templates print where Render splices in the route lines:
// with 10,000 VIPs a template range (or fmt) costs more than BIRD's own
// parse of the file, so the lines are appended straight to the output.
var (
	staticV4 = staticData{Name: StaticV4, Channel: "ipv4", Marker: "\x00vipd-routes-v4\x00"}
	staticV6 = staticData{Name: StaticV6, Channel: "ipv6", Marker: "\x00vipd-routes-v6\x00"}
)

// appendRoute appends the line of one VIP route:
//
//	route 192.0.2.10/32 blackhole { ospf_metric2 = 20; ospf_tag = 7; }; # draining
//
// routesInFile parses it back.
func appendRoute(b []byte, p netip.Prefix, a RouteAttrs, metric uint32, draining bool) []byte {
	b = append(b, "\troute "...)
	b = p.AppendTo(b)
	if a.Type == 1 {
		b = append(b, " blackhole { ospf_metric1 = "...)
	} else {
		b = append(b, " blackhole { ospf_metric2 = "...)
	}
	b = strconv.AppendUint(b, uint64(metric), 10)
	b = append(b, ';')
	if a.Tag != 0 {
		b = append(b, " ospf_tag = "...)
		b = strconv.AppendUint(b, uint64(a.Tag), 10)
		b = append(b, ';')
	}
	b = append(b, " };"...)
	if draining {
		b = append(b, " # draining"...)
	}
	return append(b, '\n')
}

// renderer renders one configuration for varying routes. The skeleton (all
// but the route lines) and the VIP attributes are computed once, so an
// apply costs one pass over the routes.
type renderer struct {
	cfg   Config // with defaults
	attrs map[netip.Prefix]RouteAttrs
	// skel is the template output split at the two markers.
	skel [3][]byte
}

func newRenderer(cfg Config) (*renderer, error) {
	cfg = cfg.WithDefaults()
	r := &renderer{cfg: cfg, attrs: make(map[netip.Prefix]RouteAttrs, len(cfg.VIPs))}
	for _, v := range cfg.VIPs {
		r.attrs[v.Prefix] = v.Attrs
	}
	d := renderData{Mode: cfg.Mode, LogFile: cfg.LogFile, OSPF: cfg.OSPF, V4: staticV4, V6: staticV6}
	if cfg.RouterID.IsValid() {
		d.RouterID = cfg.RouterID.String()
	}
	for _, o := range cfg.OSPF {
		for _, a := range o.Areas {
			for _, ifc := range a.Interfaces {
				d.BFD = d.BFD || ifc.BFD
			}
		}
	}
	var buf bytes.Buffer
	if err := templates.ExecuteTemplate(&buf, cfg.Mode, d); err != nil {
		return nil, fmt.Errorf("rendering bird config: %w", err)
	}
	rest := buf.Bytes()
	for i, s := range []staticData{staticV4, staticV6} {
		before, after, ok := bytes.Cut(rest, []byte(s.Marker))
		if !ok {
			return nil, fmt.Errorf("rendering bird config: template lost the %s routes", s.Name)
		}
		r.skel[i], rest = before, after
	}
	r.skel[2] = rest
	return r, nil
}

// render returns the file announcing ann (from announced).
func (r *renderer) render(ann []routing.Route) ([]byte, error) {
	out := make([]byte, 0, len(r.skel[0])+len(r.skel[1])+len(r.skel[2])+80*len(ann))
	out = append(out, r.skel[0]...)
	v6 := false
	for _, rt := range ann {
		a, ok := r.attrs[rt.Prefix]
		if !ok {
			return nil, fmt.Errorf("rendering route %s: %w", rt.Prefix, routing.ErrUnknownPrefix)
		}
		a = a.WithDefaults()
		if !v6 && rt.Prefix.Addr().Is6() {
			// announced sorts IPv4 before IPv6.
			out = append(out, r.skel[1]...)
			v6 = true
		}
		metric := a.Metric
		if rt.Draining {
			metric = r.drainMetric()
		}
		out = appendRoute(out, rt.Prefix, a, metric, rt.Draining)
	}
	if !v6 {
		out = append(out, r.skel[1]...)
	}
	return append(out, r.skel[2]...), nil
}

// Render returns the BIRD configuration (mode full) or include file (mode
// include) announcing routes. Every route must be one of cfg.VIPs. A
// draining route is announced with DrainMetric. Render does not validate
// cfg; call Validate first.
func Render(cfg Config, routes []routing.Route) ([]byte, error) {
	r, err := newRenderer(cfg)
	if err != nil {
		return nil, err
	}
	return r.render(announced(routes))
}

// RenderAll renders the configuration announcing every configured VIP, as
// `vipctl bird-config` does offline.
func RenderAll(cfg Config) ([]byte, error) {
	routes := make([]routing.Route, 0, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		routes = append(routes, routing.Route{Prefix: v.Prefix})
	}
	return Render(cfg, routes)
}

// announced returns the routes BIRD will announce for the request, sorted
// and deduplicated.
func announced(routes []routing.Route) []routing.Route {
	out := slices.Clone(routes)
	slices.SortFunc(out, func(a, b routing.Route) int {
		if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
			return c
		}
		return a.Prefix.Bits() - b.Prefix.Bits()
	})
	// A prefix asked for twice: keep the normal announcement over a
	// draining one (the sort is not stable on Draining, so merge).
	res := out[:0]
	for _, r := range out {
		if n := len(res); n > 0 && res[n-1].Prefix == r.Prefix {
			res[n-1].Draining = res[n-1].Draining && r.Draining
			continue
		}
		res = append(res, r)
	}
	return res
}
