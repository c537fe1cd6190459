package e2e

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/internal/netnstest"
)

var (
	propSteps  = flag.Int("e2e.steps", 30, "steps of TestLabProperty")
	propSeed   = flag.Uint64("e2e.seed", 0, "seed of TestLabProperty (0: from the clock; the test prints it)")
	propSettle = flag.Duration("e2e.settle", 8*time.Second, "how long a claim may disagree with the world before it is a divergence")
	propKinds  = flag.String("e2e.kinds", "", "comma-separated step kinds TestLabProperty may pick (default all): "+strings.Join(stepKinds, ","))
)

// stepKinds are the kinds of step of TestLabProperty.
var stepKinds = []string{"reload-add", "reload-remove", "reload-change", "reload-members", "sighup",
	"drain", "undrain", "drain-vip", "undrain-vip", "upgrade", "kill", "link", "service"}

// propRun is the state of one property run.
type propRun struct {
	t     *testing.T
	l     *lab
	rng   *rand.Rand
	m     *model
	s     *sampler
	tr    *tracker
	ds    disruptions
	loads map[netip.Addr][2]*loadProc
	total loadResult
	steps map[string]int
	// notSettled are the steps after which the lab did not reach the
	// model's state, with what was off.
	notSettled []string
	settleMax  time.Duration
	settleSum  time.Duration
}

// TestLabProperty is the lab's real-world property test: a random sequence
// of operator actions and failures (reloads that add, remove and change
// VIPs and members, SIGHUP, node and VIP drains and undrains, upgrade
// restarts, SIGKILL and restart, a node's link down and up, a service
// stopped and started) under live TCP on every VIP. In the background,
// every claim of every vipd's status is compared with the world (the
// router's BIRD table, sessions and kernel routes, each node's lo and
// pinned maps, the peers' tables) and a claim that disagrees for longer
// than -e2e.settle is a divergence. After every step the lab must settle
// to what the model of the step says. At the end: 0 divergences, 0 looped
// packets at the router, and every broken connection explained by a node
// or service the test failed while it served that connection.
func TestLabProperty(t *testing.T) {
	seed := *propSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	netnstest.RequireRoot(t)
	if _, err := Binaries(); err != nil { // built before the clock starts
		t.Fatal(err)
	}
	t0 := time.Now()
	spec := labconf.Spec{
		VIPs: []labconf.VIP{
			{Name: "web", Addr: vipPool[0], Services: []string{"tcp/80"}},
			{Addr: vipPool[1], Services: []string{"tcp/80"}, MED: ptr[uint32](10), Communities: []string{"65000:11"}},
		},
		Timers:   labconf.FastTimers,
		StateDir: true,
	}
	l := startLabSpec(t, spec)
	r := &propRun{
		t: t, l: l, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		m: newModel(spec), tr: newTracker(*propSettle),
		loads: map[netip.Addr][2]*loadProc{}, steps: map[string]int{},
		total: loadResult{ByBackend: map[string]int{}},
	}
	r.m.update(func(s *modelState) { s.spec = l.specCopy() })
	capt := l.startCapture()
	r.s = l.startSampler(r.m, r.tr, 300*time.Millisecond)
	r.tr.setStep("bring-up")
	if took, off := r.s.settle(60 * time.Second); off != nil {
		t.Fatalf("the lab did not come up within %v: %s", took, fmtList(off))
	}
	t.Logf("bring-up waited for: %s", fmtList(r.s.waitedFor(5)))
	for _, v := range spec.VIPs {
		r.startLoads(v.Addr)
	}
	up := time.Since(t0)
	t.Logf("seed %d; lab up in %v", seed, up.Round(time.Millisecond))

	var (
		trail []string
		done  int
	)
	for i := 1; i <= *propSteps; i++ {
		name, do := r.pick()
		label := fmt.Sprintf("%d %s", i, name)
		r.tr.setStep(label)
		st := time.Now()
		do()
		took, off := r.s.settle(40 * time.Second)
		r.settleSum += took
		r.settleMax = max(r.settleMax, took)
		if off != nil {
			r.notSettled = append(r.notSettled, fmt.Sprintf("[%s] not settled after %v: %s", label, took.Round(time.Millisecond), fmtList(off)))
		}
		r.steps[strings.Fields(name)[0]]++
		done++
		trail = append(trail, fmt.Sprintf("%s (%v)", label, time.Since(st).Round(100*time.Millisecond)))
		t.Logf("step %s: %v, settled in %v", label, time.Since(st).Round(100*time.Millisecond), took.Round(time.Millisecond))
		if took > 5*time.Second {
			t.Logf("\twaited for: %s", fmtList(r.s.waitedFor(3)))
		}
		if len(r.notSettled) > 0 {
			// The lab is not where the model says: what follows would
			// only repeat it.
			t.Logf("stopping after step %s: the lab did not settle", label)
			break
		}
	}

	// The end: loads finish, the capture is read, and everything counted.
	r.tr.setStep("end")
	for a := range r.loads {
		r.stopLoads(a, false)
	}
	r.s.close()
	fl, err := l.stopCapture(capt)
	if err != nil {
		t.Fatal(err)
	}
	bs, err := l.readBroken()
	if err != nil {
		t.Fatal(err)
	}
	r.ds.mu.Lock()
	ds := slices.Clone(r.ds.list)
	r.ds.mu.Unlock()
	cls := classify(bs, fl, ds)
	byCause := map[string]int{}
	var unexpl []string
	for _, c := range cls {
		byCause[c.cause]++
		if c.cause == unexplained {
			unexpl = append(unexpl, c.String())
		}
	}
	divs, transient := r.tr.results()
	guard := uint64(0)
	for _, n := range nodeNames {
		if st, err := l.apiStatus(n); err == nil && st.Dataplane != nil {
			guard += st.Dataplane.Counters["drop_loop_guard"]
		}
	}
	samples, perSample := r.s.count()
	elapsed := time.Since(t0)
	summary := fmt.Sprintf("lab property test: %d steps (seed %d) in %v (lab up %v, settle mean %v max %v): %s; "+
		"%d connections (%d requests), broken by cause %s, %d unexplained; %d divergences, %d steps not settled (%d transient mismatches over %d samples of %v); "+
		"%d looped packets (%d captured), %d loop-guard drops",
		done, seed, elapsed.Round(time.Second), up.Round(100*time.Millisecond),
		(r.settleSum / time.Duration(max(1, done))).Round(10*time.Millisecond), r.settleMax.Round(10*time.Millisecond),
		fmtCountMap(r.steps), r.total.Connections, r.total.Requests, fmtCountMap(byCause), len(unexpl),
		len(divs), len(r.notSettled), transient, samples, perSample.Round(time.Millisecond), len(fl.looped), fl.packets, guard)
	fmt.Println(summary)
	t.Log(summary)
	t.Logf("steps: %s", fmtList(trail))
	if len(divs) > 0 {
		var ss []string
		for _, d := range divs {
			ss = append(ss, d.String())
		}
		t.Errorf("%d divergences (a claim disagreeing with the world for more than %v): %s", len(divs), *propSettle, fmtList(ss))
	}
	if len(r.notSettled) > 0 {
		t.Errorf("%d steps did not settle to the model's state: %s", len(r.notSettled), fmtList(r.notSettled))
	}
	if len(unexpl) > 0 {
		t.Errorf("%d broken connections no failed node or stopped service was serving: %s", len(unexpl), fmtList(first(unexpl, 30)))
	}
	if len(fl.looped) > 0 {
		t.Errorf("%d VIP packets came back from the nodes to the router (looped): %s", len(fl.looped), fmtList(first(fl.looped, 10)))
	}
	if guard > 0 {
		t.Errorf("the loop guard dropped %d packets, want 0", guard)
	}
	if r.total.Connections < 10*done {
		t.Errorf("only %d connections made in %d steps", r.total.Connections, done)
	}
}

// first returns the first n of ss, and says how many more there were.
func first(ss []string, n int) []string {
	if len(ss) <= n {
		return ss
	}
	return append(slices.Clone(ss[:n]), fmt.Sprintf("... and %d more", len(ss)-n))
}

func fmtCountMap(m map[string]int) string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	var parts []string
	for _, k := range ks {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return "{" + strings.Join(parts, " ") + "}"
}

// startLoads starts both kinds of traffic to a.
func (r *propRun) startLoads(a netip.Addr) {
	i := slices.Index(vipPool, a)
	r.loads[a] = [2]*loadProc{r.l.startLoad(a, longLived, 2*i), r.l.startLoad(a, newConns, 2*i+1)}
}

// stopLoads ends a's traffic: cleanly (finish) before the VIP goes away,
// or at once at the end of the test.
func (r *propRun) stopLoads(a netip.Addr, finish bool) {
	for _, p := range r.loads[a] {
		var (
			res loadResult
			err error
		)
		if finish {
			res, err = p.finish()
		} else {
			res, err = p.stop()
		}
		if err != nil {
			r.t.Error(err)
			continue
		}
		r.total.Connections += res.Connections
		r.total.Requests += res.Requests
		r.total.Broken += res.Broken
		for k, v := range res.ByBackend {
			r.total.ByBackend[k] += v
		}
	}
	delete(r.loads, a)
}

// reload writes spec to every node and sends SIGHUP to each, in a random
// order, a little apart as a rollout would.
func (r *propRun) reload(spec labconf.Spec) {
	r.l.writeSpec(spec)
	r.m.update(func(s *modelState) { s.spec = r.l.specCopy() })
	order := slices.Clone(nodeNames)
	r.rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	for _, n := range order {
		r.l.sighup(n)
		time.Sleep(time.Duration(r.rng.IntN(200)) * time.Millisecond)
	}
}

// pick chooses the next step among those the lab's state allows. Every
// step that fails a node (kill, link, service) puts it back before it
// returns, and no step leaves a VIP without a node to announce it or a
// node to serve it.
func (r *propRun) pick() (string, func()) {
	s := r.m.view()
	type cand struct {
		w    int
		name string
		do   func()
	}
	var cs []cand
	add := func(w int, name string, do func()) {
		kind := strings.Fields(name)[0]
		if *propKinds != "" && !slices.Contains(strings.Split(*propKinds, ","), kind) {
			return
		}
		cs = append(cs, cand{w, name, do})
	}
	node := func() string { return nodeNames[r.rng.IntN(len(nodeNames))] }
	spec := r.l.specCopy()

	// Could node n stop announcing (or serving) every VIP, and the lab
	// still announce and serve each from another node?
	spare := func(n string, serving bool) bool {
		for _, v := range spec.VIPs {
			other := false
			for _, m := range s.advertisers(v.Addr) {
				other = other || m != n
			}
			if !other {
				return false
			}
		}
		if serving {
			for _, m := range nodeNames {
				if m != n && !s.nodeDrained[m] {
					return true
				}
			}
			return false
		}
		return true
	}

	if free := freeVIPs(spec); len(spec.VIPs) < 3 && len(free) > 0 {
		a := free[r.rng.IntN(len(free))]
		add(2, "reload-add "+a.String(), func() {
			ns := spec.Clone()
			ns.VIPs = append(ns.VIPs, labconf.VIP{Addr: a, Services: []string{"tcp/80"}})
			r.reload(ns)
			// Traffic once the VIP is there (from every node the model
			// says): the settle below waits for it.
			if took, off := r.s.settle(30 * time.Second); off != nil {
				r.notSettled = append(r.notSettled, fmt.Sprintf("[add %s] not settled after %v: %s", a, took, fmtList(off)))
				return
			}
			r.startLoads(a)
		})
	}
	var removable []netip.Addr
	for _, v := range spec.VIPs {
		drained := false
		for _, n := range nodeNames {
			drained = drained || s.vipDrained[n][v.Addr]
		}
		// A VIP drained somewhere is not removed: its drain would stay on
		// record and come back with the VIP, which this test does not model.
		if !drained {
			removable = append(removable, v.Addr)
		}
	}
	if len(spec.VIPs) > 1 && len(removable) > 0 {
		a := removable[r.rng.IntN(len(removable))]
		add(2, "reload-remove "+a.String(), func() {
			// The clients go first: once the last node withdraws the VIP,
			// nothing can carry an open connection to it.
			r.stopLoads(a, true)
			ns := spec.Clone()
			ns.VIPs = slices.DeleteFunc(ns.VIPs, func(v labconf.VIP) bool { return v.Addr == a })
			r.reload(ns)
		})
	}
	{
		i := r.rng.IntN(len(spec.VIPs))
		ns := spec.Clone()
		v := &ns.VIPs[i]
		var what string
		switch r.rng.IntN(4) {
		case 0:
			if slices.Contains(v.Services, "tcp/8080") {
				v.Services = []string{"tcp/80"}
				what = "services tcp/80"
			} else {
				v.Services = []string{"tcp/80", "tcp/8080"}
				what = "services tcp/80,tcp/8080"
			}
		case 1:
			if v.MED != nil && r.rng.IntN(2) == 0 {
				v.MED = nil
				what = "no MED"
			} else {
				v.MED = ptr(uint32(r.rng.IntN(100)))
				what = fmt.Sprintf("MED %d", *v.MED)
			}
		case 2:
			v.Communities = []string{fmt.Sprintf("65000:%d", r.rng.IntN(1000))}
			if r.rng.IntN(3) == 0 {
				v.Communities = nil
			}
			what = fmt.Sprintf("communities %v", v.Communities)
		case 3:
			v.Prepend = r.rng.IntN(3)
			what = fmt.Sprintf("prepend %d", v.Prepend)
		}
		add(3, "reload-change "+v.Addr.String()+" "+what, func() { r.reload(ns) })
	}
	add(1, "reload-members phantom="+fmt.Sprint(!spec.Phantom), func() {
		ns := spec.Clone()
		ns.Phantom = !ns.Phantom
		r.reload(ns)
	})
	add(1, "sighup", func() { r.reload(spec) })

	drained := ""
	for _, n := range nodeNames {
		if s.nodeDrained[n] {
			drained = n
		}
	}
	if drained == "" {
		if n := node(); spare(n, true) {
			add(2, "drain "+n, func() {
				r.m.update(func(s *modelState) { s.nodeDrained[n] = true })
				r.l.drain(n, netip.Addr{}, false)
			})
		}
	} else {
		add(3, "undrain "+drained, func() {
			r.m.update(func(s *modelState) { s.nodeDrained[drained] = false })
			r.l.drain(drained, netip.Addr{}, true)
		})
	}
	{
		n := node()
		v := spec.VIPs[r.rng.IntN(len(spec.VIPs))].Addr
		if s.vipDrained[n][v] {
			add(2, "undrain-vip "+n+" "+v.String(), func() {
				r.m.update(func(s *modelState) { s.vipDrained[n][v] = false })
				r.l.drain(n, v, true)
			})
		} else if other := slices.DeleteFunc(s.advertisers(v), func(m string) bool { return m == n }); len(other) > 0 {
			add(2, "drain-vip "+n+" "+v.String(), func() {
				r.m.update(func(s *modelState) { s.vipDrained[n][v] = true })
				r.l.drain(n, v, false)
			})
		}
	}
	{
		n := node()
		add(2, "upgrade "+n, func() { r.l.upgrade(n) })
	}
	{
		n := node()
		pause := time.Duration(r.rng.IntN(1500)) * time.Millisecond
		add(3, fmt.Sprintf("kill %s (down %v)", n, pause), func() {
			d := r.ds.begin(causeKilled, n)
			r.m.update(func(s *modelState) { s.vipdUp[n] = false })
			r.l.signalVipd(n, syscall.SIGKILL, 5*time.Second)
			time.Sleep(pause)
			r.l.startVipd(n)
			r.m.update(func(s *modelState) { s.vipdUp[n] = true })
			r.settleThen(func() { r.ds.end(d) })
		})
	}
	if n := node(); spare(n, true) {
		hold := 1500*time.Millisecond + time.Duration(r.rng.IntN(1500))*time.Millisecond
		add(2, fmt.Sprintf("link %s (down %v)", n, hold), func() {
			d := r.ds.begin(causeLink, n)
			r.m.update(func(s *modelState) { s.linkUp[n] = false })
			r.l.linkDown(n)
			time.Sleep(hold)
			r.l.linkUp(n)
			r.m.update(func(s *modelState) { s.linkUp[n] = true })
			r.settleThen(func() { r.ds.end(d) })
		})
	}
	if n := node(); spare(n, true) {
		hold := 1500*time.Millisecond + time.Duration(r.rng.IntN(1500))*time.Millisecond
		add(2, fmt.Sprintf("service %s (stopped %v)", n, hold), func() {
			d := r.ds.begin(causeService, n)
			r.m.update(func(s *modelState) { s.serviceUp[n] = false })
			r.l.stopService(n)
			time.Sleep(hold)
			r.l.startService(n)
			r.m.update(func(s *modelState) { s.serviceUp[n] = true })
			r.settleThen(func() { r.ds.end(d) })
		})
	}

	if len(cs) == 0 {
		r.t.Fatalf("no step of kinds %q can run in this state", *propKinds)
	}
	total := 0
	for _, c := range cs {
		total += c.w
	}
	x := r.rng.IntN(total)
	for _, c := range cs {
		if x < c.w {
			return c.name, c.do
		}
		x -= c.w
	}
	panic("unreachable")
}

// settleThen waits for the lab to settle (the caller's settle then returns
// at once) and runs f: a failed node's disruption ends when the lab has
// recovered from it, not when the node is back.
func (r *propRun) settleThen(f func()) {
	if took, off := r.s.settle(40 * time.Second); off != nil {
		r.notSettled = append(r.notSettled, fmt.Sprintf("[recovery] not settled after %v: %s", took, fmtList(off)))
	}
	f()
}

func freeVIPs(spec labconf.Spec) []netip.Addr {
	var out []netip.Addr
	for _, a := range vipPool {
		if !slices.ContainsFunc(spec.VIPs, func(v labconf.VIP) bool { return v.Addr == a }) {
			out = append(out, a)
		}
	}
	return out
}
