package statuspage

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/api"
)

// view is everything the template shows, computed here so the template
// only lays it out.
type view struct {
	Node, Phase, Routing, Config string
	Generation                   uint64
	Started, Uptime, Now         string
	Stopping                     bool
	RefreshSeconds               int
	Error                        string

	Steps    []step
	Progress progress
	// Drain is the operator's node drain and how long the drain has
	// left: empty when there is none to tell.
	Drain   drainView
	VIPs    []vipView
	Peers   []peerView
	Members []api.Member
	DP      *dpView
}

// step is one phase of a node drain, in the order a drain runs them.
type step struct {
	Name, Hint string
	// State is "done", "current" or "todo".
	State string
}

// drainView says who drained the node, how long the phase has held and
// how long the step and the whole drain have left at most (by their
// timers; api.Status's phase_since, phase_ends_by, drain_ends_by).
type drainView struct {
	By, PhaseFor         string
	StepLeft, StepEnds   string
	DrainLeft, DrainEnds string
}

type progress struct {
	VIPs, Advertised, Bound          int
	Active, Draining, Inactive       int
	ActivePct, DrainingPct, InactPct int
}

type chip struct{ Label, Class string }

type reason struct{ Facet, Text string }

type vipView struct {
	Address, ServeState, Reason, Since, LastError, Held string
	Removed                                             bool
	Chips                                               []chip
	Reasons                                             []reason
	Backends                                            []api.Backend
	Transitions, Errors                                 uint64
}

type peerView struct {
	Name, State, Uptime, LastError string
	Up                             bool
	Routes                         int
}

type dpView struct {
	Interface, Attach, Error, Span string
	Counters                       []counterView
	Idle                           []string // counters that never moved
}

type counterView struct {
	Name, Total, Rate string
	Drop, Moving      bool
	Spark             spark
}

// spark is an SVG sparkline: a polyline over the rate samples and the area
// under it, in a Width x Height box.
type spark struct {
	Width, Height int
	Line, Area    string
	Peak          string
	Enough        bool // at least two rates to draw
}

// drainPhases are the node phases in drain order (docs/api.md).
var drainPhases = []struct{ name, hint string }{
	{"active", "serving"},
	{"withdrawing", "routes going, withdraw grace"},
	{"draining", "established flows only"},
	{"inactive", "out of the tables, table grace"},
	{"drained", "nothing bound"},
}

func buildView(st api.Status, err error, stale time.Time, ring []sample, opts Options) view {
	now := opts.Now()
	v := view{
		Node: st.Node, Phase: st.Phase, Routing: st.Routing, Config: st.Config,
		Generation: st.Generation, Stopping: st.Stopping,
		Now:            now.UTC().Format("2006-01-02 15:04:05 UTC"),
		RefreshSeconds: max(1, int(opts.Interval/time.Second)),
		Members:        st.Members,
	}
	if err != nil {
		v.Error = err.Error()
		if !stale.IsZero() {
			v.Error += "; showing the status last read " + ago(now.Sub(stale)) + " ago"
		}
	}
	if v.Node == "" {
		v.Node = "vipd"
	}
	if !st.Started.IsZero() {
		v.Started = st.Started.UTC().Format("2006-01-02 15:04 UTC")
		v.Uptime = ago(now.Sub(st.Started))
	}
	cur := slices.IndexFunc(drainPhases, func(p struct{ name, hint string }) bool { return p.name == st.Phase })
	for i, p := range drainPhases {
		s := step{Name: p.name, Hint: p.hint, State: "todo"}
		switch {
		case i < cur:
			s.State = "done"
		case i == cur:
			s.State = "current"
		}
		v.Steps = append(v.Steps, s)
	}
	v.Drain = drainOf(st, now)
	for _, x := range st.VIPs {
		v.VIPs = append(v.VIPs, vipOf(x, now))
		v.Progress.VIPs++
		if x.Advertised {
			v.Progress.Advertised++
		}
		if x.Bound {
			v.Progress.Bound++
		}
		switch x.ServeState {
		case "active":
			v.Progress.Active++
		case "draining":
			v.Progress.Draining++
		case "inactive":
			v.Progress.Inactive++
		}
	}
	if n := v.Progress.VIPs; n > 0 {
		v.Progress.ActivePct = 100 * v.Progress.Active / n
		v.Progress.DrainingPct = 100 * v.Progress.Draining / n
		v.Progress.InactPct = 100 - v.Progress.ActivePct - v.Progress.DrainingPct
	}
	for _, p := range st.Peers {
		pv := peerView{Name: p.Name, State: p.State, Up: p.Up, Routes: p.RoutesAdvertised, LastError: p.LastError, Uptime: "-"}
		if p.UptimeSeconds > 0 {
			pv.Uptime = ago(p.Uptime())
		}
		v.Peers = append(v.Peers, pv)
	}
	if st.Dataplane != nil {
		v.DP = dpOf(*st.Dataplane, ring, opts)
	}
	return v
}

func drainOf(st api.Status, now time.Time) drainView {
	var d drainView
	if n := st.NodeDrain; n != nil {
		d.By = "node drained " + ago(now.Sub(n.Since)) + " ago"
		if n.By != "" {
			d.By += " by " + n.By
		}
		if n.Restored {
			d.By += " (restored at start)"
		}
	}
	if st.Phase != "" && st.Phase != "active" && !st.PhaseSince.IsZero() {
		d.PhaseFor = ago(now.Sub(st.PhaseSince))
	}
	clock := func(t time.Time) string { return t.UTC().Format("15:04:05 UTC") }
	if !st.PhaseEndsBy.IsZero() {
		d.StepLeft, d.StepEnds = ago(max(st.PhaseEndsBy.Sub(now), 0)), clock(st.PhaseEndsBy)
	}
	if !st.DrainEndsBy.IsZero() {
		d.DrainLeft, d.DrainEnds = ago(max(st.DrainEndsBy.Sub(now), 0)), clock(st.DrainEndsBy)
	}
	return d
}

func vipOf(x api.VIPStatus, now time.Time) vipView {
	vv := vipView{
		Address: x.Address.String(), ServeState: x.ServeState, Reason: x.Reason, LastError: x.LastError,
		Held: x.Held, Removed: !x.Configured, Backends: x.Backends, Transitions: x.Transitions, Errors: x.Errors,
		Since: "-",
	}
	if !x.Since.IsZero() {
		vv.Since = ago(now.Sub(x.Since))
	}
	onOff := func(label string, on bool) chip {
		if on {
			return chip{label, "on"}
		}
		return chip{label, "off"}
	}
	adv := onOff("advertised", x.Advertised)
	if x.Advertised && x.Depreferred {
		adv = chip{"depreferred", "warn"}
	}
	vv.Chips = []chip{onOff("programmed", x.Programmed), adv, onOff("bound", x.Bound), onOff("healthy", x.Healthy)}
	if !x.Healthy {
		vv.Chips[3].Class = "bad"
	}
	if x.Draining {
		vv.Chips = append(vv.Chips, chip{"draining", "warn"})
	}
	if x.Held != "" {
		vv.Chips = append(vv.Chips, chip{"held", "bad"})
	}
	for _, r := range []reason{
		{"programmed", x.Reasons.Programmed}, {"advertised", x.Reasons.Advertised},
		{"bound", x.Reasons.Bound}, {"serves", x.Reasons.ServeState},
	} {
		if r.Text != "" {
			vv.Reasons = append(vv.Reasons, r)
		}
	}
	return vv
}

const sparkW, sparkH = 420, 30

func dpOf(d api.Dataplane, ring []sample, opts Options) *dpView {
	dv := &dpView{Interface: d.Interface, Attach: d.Attach, Error: d.Error}
	if len(ring) > 1 {
		dv.Span = fmt.Sprintf("last %s, a sample every %s", ago(ring[len(ring)-1].at.Sub(ring[0].at)), opts.Interval)
	}
	names := make([]string, 0, len(d.Counters))
	for k := range d.Counters {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, name := range names {
		rates := ratesOf(name, ring)
		c := counterView{
			Name: name, Total: thousands(d.Counters[name]), Drop: strings.HasPrefix(name, "drop_"),
			Spark: sparkOf(rates), Rate: "-",
		}
		if len(rates) > 0 {
			c.Rate = perSecond(rates[len(rates)-1])
		}
		c.Moving = slices.ContainsFunc(rates, func(r float64) bool { return r > 0 })
		if d.Counters[name] == 0 && !c.Moving {
			dv.Idle = append(dv.Idle, name)
			continue
		}
		dv.Counters = append(dv.Counters, c)
	}
	// What moves now first, then by name: the eye goes to the top.
	slices.SortStableFunc(dv.Counters, func(a, b counterView) int {
		switch {
		case a.Moving && !b.Moving:
			return -1
		case b.Moving && !a.Moving:
			return 1
		}
		return 0
	})
	return dv
}

// ratesOf returns the per-second rate of a counter between consecutive
// samples. A counter that went backwards (vipd restarted without its
// pinned maps) counts from zero, as Prometheus's rate() does.
func ratesOf(name string, ring []sample) []float64 {
	var out []float64
	for i := 1; i < len(ring); i++ {
		dt := ring[i].at.Sub(ring[i-1].at).Seconds()
		if dt <= 0 {
			continue
		}
		prev, cur := ring[i-1].counters[name], ring[i].counters[name]
		delta := float64(cur)
		if cur >= prev {
			delta = float64(cur - prev)
		}
		out = append(out, delta/dt)
	}
	return out
}

func sparkOf(rates []float64) spark {
	s := spark{Width: sparkW, Height: sparkH}
	if len(rates) < 2 {
		return s
	}
	s.Enough = true
	peak := slices.Max(rates)
	top := math.Max(peak, 1)
	const pad = 2.0
	step := float64(sparkW) / float64(len(rates)-1)
	var line strings.Builder
	for i, r := range rates {
		x := float64(i) * step
		y := pad + (float64(sparkH)-2*pad)*(1-r/top)
		fmt.Fprintf(&line, "%.1f,%.1f ", x, y)
	}
	s.Line = strings.TrimSpace(line.String())
	s.Area = fmt.Sprintf("0,%d %s %d,%d", sparkH, s.Line, sparkW, sparkH)
	s.Peak = perSecond(peak)
	return s
}

func perSecond(r float64) string {
	switch {
	case r >= 1e6:
		return strconv.FormatFloat(r/1e6, 'f', 1, 64) + "M/s"
	case r >= 1e3:
		return strconv.FormatFloat(r/1e3, 'f', 1, 64) + "k/s"
	case r >= 10 || r == 0:
		return strconv.FormatFloat(r, 'f', 0, 64) + "/s"
	}
	return strconv.FormatFloat(r, 'f', 1, 64) + "/s"
}

func thousands(n uint64) string {
	s := strconv.FormatUint(n, 10)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// ago writes a duration the way people read it on a status page: "42s",
// "3m20s", "5h12m", "3d4h".
func ago(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
}
