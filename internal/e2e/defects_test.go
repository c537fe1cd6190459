package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/examples/lab/labconf"
)

// The end-to-end tests of the defects issue 10 found by trying the lab as
// an operator would. Each failed on the code the issue was filed against;
// the failure it gave is in the commit that added it.

var (
	vipA = vipPool[0] // 198.51.100.10
	vipB = vipPool[1] // 198.51.100.11
	vipC = vipPool[2] // 198.51.100.12
)

// fastSpec is a lab with the property test's short timers and the VIPs as.
func fastSpec(as ...netip.Addr) labconf.Spec {
	s := labconf.Spec{Timers: labconf.FastTimers, StateDir: true}
	for _, a := range as {
		s.VIPs = append(s.VIPs, labconf.VIP{Addr: a, Services: []string{"tcp/80"}})
	}
	return s
}

// settleTo looks at the lab until every claim matches the world and the
// world is what m says, or max passes; it returns what was still off.
func (l *lab) settleTo(m *model, max time.Duration) []string {
	l.t.Helper()
	var d digestCache
	start := time.Now()
	for {
		snap := l.look()
		v := m.view()
		ms, exp := claims(snap, v, &d), v.expected(snap)
		if len(ms) == 0 && len(exp) == 0 {
			return nil
		}
		if time.Since(start) > max {
			var off []string
			for _, x := range ms {
				off = append(off, "claim: "+x.detail)
			}
			for _, e := range exp {
				off = append(off, "world: "+e)
			}
			return off
		}
		time.Sleep(300 * time.Millisecond)
	}
}

func (l *lab) mustSettle(m *model, max time.Duration, what string) {
	l.t.Helper()
	if off := l.settleTo(m, max); off != nil {
		l.t.Fatalf("%s: not settled within %v: %s", what, max, fmtList(off))
	}
}

// TestLabDrainSurvivesRestart (defect 1): a node drain and a VIP drain are
// operator intent; kill -9 and a restart, or SIGTERM and a start (a
// reboot), must not undo them. The router must never get the drained
// routes back, and vipd must still say drained.
func TestLabDrainSurvivesRestart(t *testing.T) {
	spec := fastSpec(vipA, vipB)
	l := startLabSpec(t, spec)
	m := newModel(l.specCopy())
	l.mustSettle(m, 60*time.Second, "bring-up")

	m.update(func(s *modelState) { s.nodeDrained["n2"] = true; s.vipDrained["n3"][vipB] = true })
	l.drain("n2", netip.Addr{}, false)
	l.drain("n3", vipB, false)
	l.mustSettle(m, 30*time.Second, "the drains")

	w := l.watchRoutes()
	forbidden := []routeKey{{vipA, "n2"}, {vipB, "n2"}, {vipB, "n3"}}
	for _, how := range []struct {
		name string
		sig  syscall.Signal
	}{{"kill -9 and restart", syscall.SIGKILL}, {"SIGTERM and start", syscall.SIGTERM}} {
		t0 := time.Now()
		for _, n := range []string{"n2", "n3"} {
			l.signalVipd(n, how.sig, 30*time.Second)
		}
		for _, n := range []string{"n2", "n3"} {
			l.startVipd(n)
		}
		// Back: the new vipds serve, and the router had every chance to
		// get what it must not (sessions up, peer wait over).
		l.waitFor("n3's "+vipA.String()+" back at the router", 30*time.Second, func() bool { return w.has("bird", vipA, "n3") })
		l.waitFor("n2's session up at the router", 30*time.Second, func() bool {
			text, err := l.bird.cmd("show protocols")
			return err == nil && parseProtocols(text)["n2"].established()
		})
		time.Sleep(3 * time.Second)
		var got []string
		for _, k := range forbidden {
			if es := w.changes(k.vip, k.node, t0); len(es) > 0 {
				got = append(got, fmt.Sprintf("%s from %s: %s", k.vip, k.node, fmtEvents(es, t0)))
			}
		}
		if len(got) > 0 {
			t.Errorf("after %s, the router got drained routes back: %s", how.name, fmtList(got))
		}
		for _, n := range []string{"n2", "n3"} {
			st, err := l.apiStatus(n)
			if err != nil {
				t.Fatalf("status of %s after %s: %v", n, how.name, err)
			}
			var draining []string
			for _, v := range st.VIPs {
				if v.Draining {
					draining = append(draining, v.Address.String())
				}
			}
			want := []string{vipA.String(), vipB.String()}
			if n == "n3" {
				want = []string{vipB.String()}
			}
			if !slices.Equal(draining, want) {
				t.Errorf("after %s, %s says draining %v (phase %s), want %v", how.name, n, draining, st.Phase, want)
			}
		}
		if off := l.settleTo(m, 15*time.Second); off != nil {
			t.Errorf("after %s, the lab did not settle with the drains in place: %s", how.name, fmtList(off))
		}
		t.Logf("%s: %s", how.name, w.summary())
	}
}

// TestLabReloadAddVIPBGP (defect 2): a VIP added by SIGHUP in BGP mode
// reaches the router from every node and serves connections, and what
// `vipctl status` claims about it is what the router has.
func TestLabReloadAddVIPBGP(t *testing.T) {
	l := startLabSpec(t, fastSpec(vipA))
	m := newModel(l.specCopy())
	l.mustSettle(m, 60*time.Second, "bring-up")

	spec := fastSpec(vipA, vipC)
	l.writeSpec(spec)
	m.update(func(s *modelState) { s.spec = l.specCopy() })
	t0 := time.Now()
	l.sighup(nodeNames...)
	var snap *snapshot
	deadline := time.Now().Add(15 * time.Second)
	for {
		snap = l.look()
		if slices.Equal(snap.advertisers(vipC), nodeNames) && slices.Equal(snap.kernel[vipC], nodeNames) {
			break
		}
		if time.Now().After(deadline) {
			var claimed []string
			for _, n := range nodeNames {
				if st := snap.status[n]; st != nil {
					if v, ok := findVIP(st, vipC); ok {
						claimed = append(claimed, fmt.Sprintf("%s advertised=%v (%s)", n, v.Advertised, v.Reason))
					}
				}
			}
			t.Fatalf("%s added by SIGHUP: the router has it from %v (kernel via %v) after 15s, want from %v; vipd says: %s",
				vipC, snap.advertisers(vipC), snap.kernel[vipC], nodeNames, strings.Join(claimed, "; "))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%s at the router from every node %v after the SIGHUP", vipC, time.Since(t0).Round(time.Millisecond))
	if off := l.settleTo(m, 10*time.Second); off != nil {
		t.Errorf("claims after the reload do not match the world: %s", fmtList(off))
	}

	load := l.startLoad(vipC, loadKind{name: "added", conns: 20, lifetime: time.Second}, 4)
	time.Sleep(5 * time.Second)
	res, err := load.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load on %s: %d connections, %d broken, by backend %v", vipC, res.Connections, res.Broken, res.ByBackend)
	if res.Broken != 0 {
		t.Errorf("%d of %d connections to the added VIP broke: %v", res.Broken, res.Connections+res.Broken, res.Errors)
	}
	if res.Connections < 50 {
		t.Errorf("only %d connections to the added VIP", res.Connections)
	}
	for _, n := range nodeNames {
		if res.ByBackend[n] == 0 {
			t.Errorf("%s served no connection to the added VIP: %v", n, res.ByBackend)
		}
	}
}

// TestLabReloadRemoveVIPUnderLoad (defect 3): a VIP removed from a node by
// SIGHUP (as a rollout does, node by node) is drained, not dropped: the
// connections it serves finish within the remove timeout, none is reset.
func TestLabReloadRemoveVIPUnderLoad(t *testing.T) {
	l := startLabSpec(t, fastSpec(vipA, vipB))
	m := newModel(l.specCopy())
	l.mustSettle(m, 60*time.Second, "bring-up")

	// Connections of 1 s, well within the remove timeout: every one
	// that n2 serves when the reload comes can finish.
	load := l.startLoad(vipB, loadKind{name: "removed", conns: 20, lifetime: time.Second}, 3)
	time.Sleep(3 * time.Second)
	without := l.specCopy()
	without.VIPs = slices.DeleteFunc(without.VIPs, func(v labconf.VIP) bool { return v.Addr == vipB })
	if err := without.Write("n2"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	l.sighup("n2")
	// Withdraw grace, remove timeout, table grace, and some.
	ft := labconf.FastTimers
	gone := false
	deadline := t0.Add(ft.WithdrawGrace + max(ft.RemoveTimeout, ft.DrainTimeout) + ft.TableGrace + 4*time.Second)
	for time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
		w, err := l.readNode("n2", l.specCopy().PinPath("n2"))
		if err == nil && !slices.Contains(w.Lo, vipB) && !slices.Contains(w.Bound, vipB) {
			if _, ok := w.VIP(vipB); !ok && !gone {
				gone = true
				t.Logf("%s gone from n2 (lo, bound set, maps) %v after the reload", vipB, time.Since(t0).Round(time.Millisecond))
			}
		}
	}
	res, err := load.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load on %s: %d connections, %d broken, by backend %v", vipB, res.Connections, res.Broken, res.ByBackend)
	if res.Broken != 0 {
		t.Errorf("%d connections to %s broke when n2's reload removed it, want 0: %v", res.Broken, vipB, res.Errors)
	}
	if res.ByBackend["n2"] == 0 {
		t.Errorf("n2 served no connection to %s: the test proves nothing", vipB)
	}
	if !gone {
		t.Errorf("%s still on n2 %v after the reload removed it", vipB, time.Since(t0).Round(time.Millisecond))
	}
	snap := l.look()
	if got := snap.advertisers(vipB); !slices.Equal(got, []string{"n1", "n3"}) {
		t.Errorf("the router has %s from %v after n2 removed it, want [n1 n3]", vipB, got)
	}
}

// TestLabCrashRestartKeepsRoute (defect 4): kill -9 and restart of a
// node's vipd under load. Its XDP program keeps forwarding and the router,
// a graceful-restart helper, keeps its route: watched every ~10 ms in
// BIRD's table and on every kernel route change, the route never leaves,
// and no connection breaks.
//
// The nodes poll each other with vipd's default timers, and the cluster
// lists a member that never answers: a restarted vipd then waits the
// whole peer wait (4.5 s) before it announces, so its BGP session is up
// before its routes are, the case where a speaker that is not a graceful
// restarter lets the router flush them.
func TestLabCrashRestartKeepsRoute(t *testing.T) {
	spec := fastSpec(vipA)
	spec.Phantom = true
	spec.Poll = labconf.Poll{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}
	spec.Timers.TableGrace = 4 * time.Second // vipd: at least poll_interval x fall + poll_timeout
	l := startLabSpec(t, spec)
	m := newModel(l.specCopy())
	l.mustSettle(m, 60*time.Second, "bring-up")

	w := l.watchRoutes()
	load := l.startLoad(vipA, loadKind{name: "crash", conns: 30, lifetime: 2 * time.Second}, 0)
	time.Sleep(3 * time.Second)
	t0 := time.Now()
	l.signalVipd("n2", syscall.SIGKILL, 5*time.Second)
	l.startVipd("n2")
	l.waitFor("the new vipd on n2 serving", 30*time.Second, func() bool {
		st, err := l.apiStatus("n2")
		if err != nil {
			return false
		}
		v, ok := findVIP(st, vipA)
		return ok && v.Advertised && v.Bound
	})
	t.Logf("n2 serving again %v after the kill", time.Since(t0).Round(time.Millisecond))
	// The restart is over when the router has had its End-of-RIB: give
	// it the peer wait and some.
	time.Sleep(4 * time.Second)
	res, err := load.stop()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %d connections, %d broken, by backend %v; router: %s", res.Connections, res.Broken, res.ByBackend, w.summary())
	for _, where := range []string{"bird", "kernel"} {
		if !w.has(where, vipA, "n2") {
			t.Errorf("the router's %s has no route for %s from n2 at the end", where, vipA)
		}
	}
	if es := w.changes(vipA, "n2", t0.Add(-time.Second)); len(es) > 0 {
		t.Errorf("the router's route for %s from n2 changed across the kill and restart (from the kill): %s", vipA, fmtEvents(es, t0))
	}
	if res.Broken != 0 {
		t.Errorf("%d connections broke across the kill and restart, want 0: %v", res.Broken, res.Errors)
	}
	if res.ByBackend["n2"] == 0 {
		t.Errorf("n2 served no connection: %v", res.ByBackend)
	}
}
