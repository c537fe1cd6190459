package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/examples/lab/labconf"
)

// The lab's two VIPs (lab.sh's default config): both served by every node.
var (
	labVIP4 = labconf.DefaultVIP.Addr
	labVIP6 = labconf.DefaultVIP6.Addr
	labVIPs = []netip.Addr{labVIP4, labVIP6}
)

// guardTimeout is the lab's [routing.bird] guard_timeout (lab.sh's
// GUARD_TIMEOUT default): how long a node's BIRD may announce without vipd.
const guardTimeout = 10 * time.Second

var viaRE = regexp.MustCompile(`dev r-(n\d)`)

// via lists the nodes router r's kernel routes vip to (sorted).
func (l *lab) via(r string, vip netip.Addr) []string {
	argv := []string{"ip", "route", "show", vip.String()}
	if vip.Is6() {
		argv = []string{"ip", "-6", "route", "show", vip.String()}
	}
	out, _ := l.exec(r, argv...).CombinedOutput()
	var nodes []string
	for _, m := range viaRE.FindAllStringSubmatch(string(out), -1) {
		nodes = append(nodes, m[1])
	}
	sort.Strings(nodes)
	return nodes
}

// allVia reports whether both routers route every lab VIP to all of nodes.
func (l *lab) allVia(nodes ...string) bool {
	for _, r := range labconf.Routers {
		for _, v := range labVIPs {
			if !slices.Equal(l.via(r.Name, v), nodes) {
				return false
			}
		}
	}
	return true
}

// goneTimes watches both routers' kernels for node's next hop for each lab
// VIP to go, from now, polling every 20 ms; wait returns the time each took
// ("r1 198.51.100.10" -> duration), or nothing for one still there at the
// timeout.
func (l *lab) goneTimes(node string, timeout time.Duration) (wait func() map[string]time.Duration) {
	t0 := time.Now()
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = map[string]time.Duration{}
	)
	for _, r := range labconf.Routers {
		for _, v := range labVIPs {
			wg.Go(func() {
				for time.Since(t0) < timeout {
					if !slices.Contains(l.via(r.Name, v), node) {
						mu.Lock()
						out[r.Name+" "+v.String()] = time.Since(t0)
						mu.Unlock()
						return
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
	return func() map[string]time.Duration {
		wg.Wait()
		return out
	}
}

func fmtTimes(m map[string]time.Duration) string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s %v", k, m[k].Round(time.Millisecond)))
	}
	return strings.Join(parts, ", ")
}

// loopCapture counts the VIP packets (either family) a node sends back
// towards the routers: tcpdump on each node's switch port, ingress.
type loopCapture struct {
	cmds  []*exec.Cmd
	files []string
}

func (l *lab) startLoopCapture(tag string) *loopCapture {
	l.t.Helper()
	c := &loopCapture{}
	for _, n := range nodeNames {
		f := filepath.Join(l.run, tag+"-"+n+"-loop.txt")
		cmd := l.exec("sw", "tcpdump", "-n", "-i", switchPort(n), "-Q", "in", "-w", "/dev/null",
			"dst", "host", labVIP4.String(), "or", "dst", "host", labVIP6.String())
		errf, err := os.Create(f)
		if err != nil {
			l.t.Fatal(err)
		}
		cmd.Stderr = errf
		if err := cmd.Start(); err != nil {
			l.t.Fatal(err)
		}
		l.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		c.cmds, c.files = append(c.cmds, cmd), append(c.files, f)
	}
	l.waitFor("tcpdump on the switch ports", 10*time.Second, func() bool {
		for _, f := range c.files {
			if data, _ := os.ReadFile(f); !strings.Contains(string(data), "listening on") {
				return false
			}
		}
		return true
	})
	return c
}

// stop ends the captures and returns the looped packets counted.
func (c *loopCapture) stop(t *testing.T) int {
	n := 0
	for i, cmd := range c.cmds {
		cmd.Process.Signal(syscall.SIGINT)
		cmd.Wait()
		n += captured(t, c.files[i])
	}
	return n
}

// loopGuardDrops sums drop_loop_guard over the nodes.
func (l *lab) loopGuardDrops() uint64 {
	var n uint64
	for _, node := range nodeNames {
		n += l.status(node).Dataplane.Counters["drop_loop_guard"]
	}
	return n
}

// readEvents reads one load's -events file.
func readEvents(file string) ([]broken, error) {
	data, err := os.ReadFile(file)
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	var out []broken
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if line == "" {
			continue
		}
		var b broken
		if err := json.Unmarshal([]byte(line), &b); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		out = append(out, b)
	}
	return out, nil
}

// breakCause names why a connection broke, from the client's error: a
// reset (a node without the flow's state answered: the flow was rehashed
// and second chance did not find its backend), a refusal (a node drew the
// VIP's traffic without the VIP bound), a timeout (packets lost: a dead
// path still used), or the error itself.
func breakCause(b broken) string {
	switch e := b.Error; {
	case strings.Contains(e, "connection refused"):
		return "refused (RST to a new connection: announced without the VIP bound)"
	case strings.Contains(e, "reset by peer"):
		return "reset (a node without the flow's state answered)"
	case strings.Contains(e, "timeout"):
		return b.Op + " timeout (packets lost on a dead path)"
	case strings.Contains(e, "no route") || strings.Contains(e, "unreachable"):
		return "unreachable (no route at a router)"
	case strings.Contains(e, "EOF"):
		return "closed by the server"
	default:
		return e
	}
}

// causes counts broken connections (switched ones apart) by breakCause.
func causes(bs []broken) map[string]int {
	out := map[string]int{}
	for _, b := range bs {
		if !b.Switched {
			out[breakCause(b)]++
		}
	}
	return out
}

// ospfKind is the traffic of the OSPF tests: connections that live 3 s and
// exchange a line every 100 ms, over both VIPs.
var ospfKind = loadKind{name: "ospf", conns: 12, lifetime: 3 * time.Second}

// startLoads runs ospfKind's traffic to both lab VIPs, tagged (each its own
// events file and client ports).
func (l *lab) startLoads(tag string, slot int) []*loadProc {
	k := ospfKind
	k.name = tag
	return []*loadProc{l.startLoad(labVIP4, k, slot), l.startLoad(labVIP6, k, slot+1)}
}

// endLoads finishes the loads and returns their results summed and every
// broken connection.
func endLoads(t *testing.T, ps []*loadProc) (loadResult, []broken) {
	t.Helper()
	sum := loadResult{ByBackend: map[string]int{}}
	var all []broken
	for _, p := range ps {
		res, err := p.finish()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("load to %s: %d connections, %d requests, %d broken, %d switched; by backend %v",
			p.vip, res.Connections, res.Requests, res.Broken, res.Switched, res.ByBackend)
		sum.Connections += res.Connections
		sum.Broken += res.Broken
		sum.Switched += res.Switched
		sum.Requests += res.Requests
		for k, v := range res.ByBackend {
			sum.ByBackend[k] += v
		}
		bs, err := readEvents(p.events)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, bs...)
	}
	return sum, all
}

// TestOSPF runs the lab in OSPF mode (BIRD on every node as user bird,
// OSPFv2 and OSPFv3 to r1 and r2) once, for these checks in order:
//
//   - cold bootstrap: with clients already sending, every node started
//     the documented way (bird-config, BIRD, guard, vipd): no connection
//     refused (nothing announced before vipd bound the VIPs);
//   - drain and undrain of n2 under IPv4 and IPv6 load: 0 broken, 0
//     switched, 0 looped, 0 loop-guard drops, n2's routes gone from both
//     routers' kernels (times logged);
//   - a router fails (r1's links down) under load: broken connections
//     counted by cause;
//   - kill -9 of a vipd: its routes stay while a restart may come, and
//     leave both routers within the guard's bound.
func TestOSPF(t *testing.T) {
	l := newLab(t)
	l.mode = labconf.ModeOSPF
	l.env = append(l.env, "NO_START=1")
	t0 := time.Now()
	if out, err := l.script("up"); err != nil {
		t.Fatalf("lab up: %v: %s", err, out)
	}
	ok := t.Run("ColdBootstrap", func(t *testing.T) { l.t = t; ospfColdBootstrap(t, l) })
	l.t = t
	if !ok {
		t.Fatal("the OSPF lab did not come up: the other checks need it")
	}
	t.Logf("the OSPF lab up and serving after %v", time.Since(t0).Round(time.Millisecond))
	t.Run("DrainUndrain", func(t *testing.T) { l.t = t; ospfDrainUndrain(t, l) })
	l.t = t
	t.Run("RouterFails", func(t *testing.T) { l.t = t; routerFails(t, l) })
	l.t = t
	t.Run("KillBound", func(t *testing.T) { l.t = t; ospfKillBound(t, l) })
	l.t = t
}

func ospfColdBootstrap(t *testing.T, l *lab) {
	// Clients send before any node announces: their connections fail
	// (no route) until the routes come, and none may be refused.
	loads := l.startLoads("cold", 0)
	time.Sleep(time.Second)
	start := time.Now()
	for _, n := range nodeNames {
		for _, step := range []string{"bird", "guard", "start"} {
			if out, err := l.script(step, n); err != nil {
				t.Fatalf("%s on %s: %v: %s", step, n, err, out)
			}
		}
	}
	l.waitFor("both VIPs from all three nodes at both routers", 60*time.Second, func() bool { return l.allVia(nodeNames...) })
	t.Logf("cold bootstrap: every route at both routers %v after the first BIRD started", time.Since(start).Round(time.Millisecond))
	for _, n := range nodeNames {
		for _, v := range l.status(n).VIPs {
			if !v.Advertised || !v.Bound || !v.Programmed {
				t.Errorf("%s: %s advertised=%v bound=%v programmed=%v (%s)", n, v.Address, v.Advertised, v.Bound, v.Programmed, v.Reason)
			}
		}
	}
	time.Sleep(4 * time.Second) // connections made on the announced routes
	res, bs := endLoads(t, loads)
	c := causes(bs)
	t.Logf("cold bootstrap: %d connections made, %d failed while nothing was announced, by cause %v", res.Connections, res.Broken, c)
	refused := 0
	for _, b := range bs {
		if strings.Contains(breakCause(b), "refused") || strings.Contains(breakCause(b), "reset") {
			refused++
		}
	}
	if refused != 0 {
		t.Errorf("%d connections refused or reset during the cold bootstrap, want 0: %v", refused, c)
	}
	if res.Connections == 0 {
		t.Errorf("no connection made after the bootstrap")
	}
}

func ospfDrainUndrain(t *testing.T, l *lab) {
	loops := l.startLoopCapture("drain")
	guardBefore := l.loopGuardDrops()
	loads := l.startLoads("drain", 2)
	time.Sleep(4 * time.Second)
	gone := l.goneTimes("n2", 15*time.Second)
	l.drain("n2", netip.Addr{}, false)
	times := gone()
	t.Logf("vipctl drain n2 -> n2's next hop gone from the routers' kernels: %s", fmtTimes(times))
	if len(times) != len(labconf.Routers)*len(labVIPs) {
		t.Errorf("n2's routes did not all leave the routers' kernels within 15s: %s", fmtTimes(times))
	}
	l.waitFor("n2 drained (unbound)", 30*time.Second, func() bool { return l.status("n2").Phase == "drained" })
	l.drain("n2", netip.Addr{}, true)
	back := time.Now()
	l.waitFor("n2's routes back at both routers", 30*time.Second, func() bool { return l.allVia(nodeNames...) })
	t.Logf("vipctl undrain n2 -> n2's routes back at both routers after %v", time.Since(back).Round(time.Millisecond))
	time.Sleep(4 * time.Second) // connections to n2 again
	res, bs := endLoads(t, loads)
	looped := loops.stop(t)
	guard := l.loopGuardDrops() - guardBefore
	t.Logf("drain and undrain, IPv4 and IPv6: %d connections, %d broken, %d switched, %d looped packets, %d loop-guard drops; by backend %v",
		res.Connections, res.Broken, res.Switched, looped, guard, res.ByBackend)
	if res.Broken != 0 || res.Switched != 0 {
		t.Errorf("%d broken and %d switched connections through drain and undrain, want 0: %v", res.Broken, res.Switched, causes(bs))
	}
	if looped != 0 {
		t.Errorf("%d VIP packets came back from the nodes towards the routers (looped), want 0", looped)
	}
	if guard != 0 {
		t.Errorf("loop guard dropped %d packets, want 0", guard)
	}
	for _, n := range nodeNames {
		if res.ByBackend[n] == 0 {
			t.Errorf("no connection served by %s: %v", n, res.ByBackend)
		}
	}
}

// routerFails takes r1's links down under IPv4 and IPv6 load (the edge
// moves its flows to r2, which may hash them to another node than r1 did:
// second chance must carry them to their backend), then brings r1 back
// (its flows move back). Every broken connection is counted by cause and
// placed in time against the failure and the return. A flow rehashed onto
// a node without its state would be reset or answered by another backend
// (switched): none may be. Connections that time out while the routers
// converge are counted, explained by the window they fell in, and logged;
// one outside both windows fails the test.
func routerFails(t *testing.T, l *lab) {
	l.waitFor("both VIPs from all three nodes at both routers", 60*time.Second, func() bool { return l.allVia(nodeNames...) })
	loads := l.startLoads("routerfail", 4)
	time.Sleep(4 * time.Second)
	// r2's view while r1 is away: the surviving router's next hops.
	stop := make(chan struct{})
	var (
		mu      sync.Mutex
		changes []string
	)
	t0 := time.Now()
	go func() {
		last := ""
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			now := fmt.Sprintf("v4 %v v6 %v", l.via("r2", labVIP4), l.via("r2", labVIP6))
			if now != last {
				mu.Lock()
				changes = append(changes, fmt.Sprintf("+%v %s", time.Since(t0).Round(100*time.Millisecond), now))
				mu.Unlock()
				last = now
			}
		}
	}()
	if out, err := l.script("router-down", "r1"); err != nil {
		t.Fatalf("r1 down: %v: %s", err, out)
	}
	down := time.Now()
	time.Sleep(6 * time.Second)
	up := time.Now()
	if out, err := l.script("router-up", "r1"); err != nil {
		t.Fatalf("r1 up: %v: %s", err, out)
	}
	l.waitFor("r1's routes back", 60*time.Second, func() bool { return l.allVia(nodeNames...) })
	back := time.Since(up)
	time.Sleep(3 * time.Second) // flows back on r1
	close(stop)
	res, bs := endLoads(t, loads)
	mu.Lock()
	t.Logf("r1 down for 6s, its routes back %v after it came up; r2's next hops from the failure on: %s", back.Round(time.Millisecond), strings.Join(changes, "; "))
	mu.Unlock()
	// A connection broke because of the failure if it was last answered
	// before it and failed within the convergence window after it (the
	// load gives up an exchange after 2s); the same for the return.
	const window = 8 * time.Second
	byWhen := map[string]int{}
	var unexplained, resets []broken
	for _, b := range bs {
		if b.Switched {
			continue
		}
		when := ""
		switch {
		case !b.At.Before(down) && b.At.Before(down.Add(window)) && b.LastOK.Before(down.Add(window)):
			when = fmt.Sprintf("r1 failed (+%.0fs)", b.At.Sub(down).Seconds())
		case !b.At.Before(up) && b.At.Before(up.Add(back+window)):
			when = fmt.Sprintf("r1 came back (+%.0fs)", b.At.Sub(up).Seconds())
		default:
			unexplained = append(unexplained, b)
			when = "UNEXPLAINED"
		}
		cause := breakCause(b)
		byWhen[cause+", "+when]++
		if strings.HasPrefix(cause, "reset") || strings.HasPrefix(cause, "refused") {
			resets = append(resets, b)
		}
	}
	t.Logf("a router fails (%s mode): %d connections, %d broken, %d switched; broken by cause and time: %v", l.mode, res.Connections, res.Broken, res.Switched, byWhen)
	for i, b := range bs {
		if i == 6 {
			break
		}
		t.Logf("  broken: %s port %d backend %q, last answer %+.3fs, failed %+.3fs from the failure: %s: %s", b.Target, b.Port, b.Backend,
			b.LastOK.Sub(down).Seconds(), b.At.Sub(down).Seconds(), b.Op, b.Error)
	}
	if res.Switched != 0 {
		t.Errorf("%d connections answered by another backend when r1 failed or came back: second chance did not carry a rehashed flow", res.Switched)
	}
	if len(resets) != 0 {
		t.Errorf("%d connections reset or refused when r1 failed or came back (a rehashed flow met a node without its state), want 0: %v", len(resets), causes(resets))
	}
	if len(unexplained) != 0 {
		t.Errorf("%d connections broke outside the failure and return windows: %v", len(unexplained), causes(unexplained))
	}
}

// ospfKillBound kills n2's vipd with SIGKILL: BIRD keeps announcing its
// VIPs (a restart within the bound changes nothing), and the guard
// withdraws them once no vipd has held the node for guard_timeout. Then
// vipd comes back and announces again.
func ospfKillBound(t *testing.T, l *lab) {
	l.waitFor("both VIPs from all three nodes at both routers", 60*time.Second, func() bool { return l.allVia(nodeNames...) })
	gone := l.goneTimes("n2", guardTimeout+20*time.Second)
	l.signalVipd("n2", syscall.SIGKILL, 5*time.Second)
	times := gone()
	t.Logf("kill -9 of n2's vipd -> n2's next hop gone from the routers' kernels: %s (guard_timeout %v)", fmtTimes(times), guardTimeout)
	if len(times) != len(labconf.Routers)*len(labVIPs) {
		t.Errorf("n2's routes still at the routers %v after kill -9 (guard_timeout %v): %s", guardTimeout+20*time.Second, guardTimeout, fmtTimes(times))
	}
	for k, d := range times {
		if d < guardTimeout-time.Second {
			t.Errorf("%s: n2's route gone %v after kill -9, before the guard's bound %v: a crash restart would flap", k, d.Round(time.Millisecond), guardTimeout)
		}
		if d > guardTimeout+10*time.Second {
			t.Errorf("%s: n2's route gone only %v after kill -9, the bound is %v", k, d.Round(time.Millisecond), guardTimeout)
		}
	}
	l.startVipd("n2")
	l.waitFor("n2's routes back after vipd restarted", 60*time.Second, func() bool { return l.allVia(nodeNames...) })
}
