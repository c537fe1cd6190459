package bird

import (
	"bytes"
	"embed"
	"fmt"
	"net/netip"
	"slices"
	"text/template"

	"github.com/vipd/vipd/vip"
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
	Routes  []routeLine
}

type routeLine struct {
	Prefix     netip.Prefix
	MetricAttr string
	Metric     uint32
	Tag        uint32
	Draining   bool
}

// Render returns the BIRD configuration (mode full) or include file (mode
// include) announcing routes. Every route must be one of cfg.VIPs. A
// draining route is left out with drain = "withdraw" and announced with
// DrainMetric with drain = "deprefer". Render does not validate cfg; call
// Validate first.
func Render(cfg Config, routes []vip.Route) ([]byte, error) {
	cfg = cfg.WithDefaults()
	attrs := make(map[netip.Prefix]RouteAttrs, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		attrs[v.Prefix] = v.Attrs
	}
	d := renderData{
		Mode:    cfg.Mode,
		LogFile: cfg.LogFile,
		OSPF:    cfg.OSPF,
		V4:      staticData{Name: StaticV4, Channel: "ipv4"},
		V6:      staticData{Name: StaticV6, Channel: "ipv6"},
	}
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
	for _, r := range announced(cfg, routes) {
		a, ok := attrs[r.Prefix]
		if !ok {
			return nil, fmt.Errorf("rendering route %s: %w", r.Prefix, ErrUnknownVIP)
		}
		l := routeLine{Prefix: r.Prefix, MetricAttr: "ospf_metric2", Metric: a.Metric, Tag: a.Tag, Draining: r.Draining}
		if a.Type == 1 {
			l.MetricAttr = "ospf_metric1"
		}
		if r.Draining {
			l.Metric = cfg.DrainMetric
		}
		if r.Prefix.Addr().Is4() {
			d.V4.Routes = append(d.V4.Routes, l)
		} else {
			d.V6.Routes = append(d.V6.Routes, l)
		}
	}
	var buf bytes.Buffer
	buf.Grow(256 + 64*len(routes))
	if err := templates.ExecuteTemplate(&buf, cfg.Mode, d); err != nil {
		return nil, fmt.Errorf("rendering bird config: %w", err)
	}
	return buf.Bytes(), nil
}

// RenderAll renders the configuration announcing every configured VIP, as
// `vipctl bird-config` does offline.
func RenderAll(cfg Config) ([]byte, error) {
	routes := make([]vip.Route, 0, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		routes = append(routes, vip.Route{Prefix: v.Prefix})
	}
	return Render(cfg, routes)
}

// announced returns the routes BIRD will announce for the request, sorted
// and deduplicated: draining routes are dropped under the withdraw policy,
// and Draining is only kept under the deprefer policy.
func announced(cfg Config, routes []vip.Route) []vip.Route {
	out := make([]vip.Route, 0, len(routes))
	for _, r := range routes {
		if r.Draining && cfg.Drain != DrainDeprefer {
			continue
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b vip.Route) int {
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
