package e2e

import (
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cilium/ebpf/rlimit"
	"github.com/vishvananda/netlink"

	"github.com/vipd/vipd/examples/lab/labconf"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/netnstest"
)

// lab is the namespace lab of examples/lab (the one `make demo` shows),
// started with a prefix of its own.
type lab struct {
	t        *testing.T
	name     string
	run, bin string
	// mode is the lab's routing mode (labconf.ModeBGP or ModeOSPF), passed
	// to lab.sh as MODE.
	mode string
	// env is more of lab.sh's environment (ROUTER_MTU=3000, BIRD=...).
	env []string
	// bird is r1's BIRD ("the router" of the checks that read one router's
	// table and sessions: both routers learn the same routes); birds has
	// r1's and r2's.
	bird  *birdCLI
	birds map[string]*birdCLI

	mu      sync.Mutex // guards the fields below
	spec    labconf.Spec
	handles map[string]*netlink.Handle
}

// newLab prepares a lab (not up yet) and its cleanup: on failure the
// vipd logs' tails, then lab.sh down.
func newLab(t *testing.T) *lab {
	t.Helper()
	netnstest.RequireRoot(t)
	bin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	l := &lab{t: t, name: netnstest.UniqueName("lb"), run: t.TempDir(), bin: bin, mode: labconf.ModeBGP}
	if *vipdFlags != "" {
		l.env = append(l.env, "VIPD_FLAGS="+*vipdFlags)
	}
	l.birds = map[string]*birdCLI{}
	for _, r := range labconf.Routers {
		l.birds[r.Name] = &birdCLI{path: filepath.Join(l.run, r.Name+"-bird.ctl")}
	}
	l.bird = l.birds[routerName]
	// In OSPF mode the nodes' BIRD runs as user bird: it must get through
	// the test's temporary directory (0700) to its files in the run
	// directory.
	if err := os.Chmod(filepath.Dir(l.run), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range nodeNames {
				data, _ := os.ReadFile(filepath.Join(l.run, n+"-vipd.log"))
				t.Logf("%s vipd log (tail):\n%s", n, tail(string(data), 25))
				keepLog(t, n+"-vipd.log", data)
			}
			if *keepDir != "" {
				// The switch capture, for a look at the packets.
				if data, err := os.ReadFile(filepath.Join(l.run, "switch.pcap")); err == nil {
					keepLog(t, "switch.pcap", data)
				}
				// The routers' BIRD logs: what they learned and when.
				logs, _ := filepath.Glob(filepath.Join(l.run, "*-bird.log"))
				for _, f := range logs {
					if data, err := os.ReadFile(f); err == nil {
						keepLog(t, filepath.Base(f), data)
					}
				}
			}
		}
		for _, b := range l.birds {
			b.close()
		}
		l.closeHandles()
		if out, err := l.script("down"); err != nil {
			t.Logf("lab down: %v: %s", err, out)
		}
	})
	return l
}

// startLab starts the lab as lab.sh configures it, and vipd on every node;
// each of before runs between the two (to change the configs lab.sh wrote).
func startLab(t *testing.T, before ...func(*lab)) *lab {
	t.Helper()
	l := newLab(t)
	if out, err := l.script("up"); err != nil {
		t.Fatalf("lab up: %v: %s", err, out)
	}
	for _, f := range before {
		f(l)
	}
	for _, n := range nodeNames {
		l.startVipd(n)
	}
	return l
}

func (l *lab) script(args ...string) (string, error) {
	cmd := exec.Command("bash", append([]string{filepath.Join(repoRoot(), "examples/lab/lab.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "LAB="+l.name, "RUN="+l.run, "BIN="+l.bin, "MODE="+l.mode)
	cmd.Env = append(cmd.Env, l.env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// switchPort is node's port in the switch namespace (sw): what the node
// sends to the routers comes in there.
func switchPort(node string) string { return "s" + strings.TrimPrefix(node, "n") + "-n" }

func (l *lab) ns(x string) string { return l.name + "-" + x }

func (l *lab) exec(x string, argv ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", l.ns(x)}, argv...)...)
}

// routerName is the router whose BIRD and kernel the checks of one
// router read (r2 learns the same routes).
const routerName = "r1"

// routerHops counts the next hops router r's kernel has for vip.
func (l *lab) routerHops(r, vip string) int {
	out, _ := l.exec(r, "ip", "route", "show", vip).CombinedOutput()
	return strings.Count(string(out), "nexthop")
}

// nextHops is the number of next hops both routers have for the VIP, or
// -1 while they differ.
func (l *lab) nextHops() int {
	return l.nextHopsOf(vipAddr)
}

func (l *lab) nextHopsOf(vip string) int {
	h := l.routerHops("r1", vip)
	if l.routerHops("r2", vip) != h {
		return -1
	}
	return h
}

// fewestHops is the fewest next hops either router has for vip.
func (l *lab) fewestHops(vip string) int {
	return min(l.routerHops("r1", vip), l.routerHops("r2", vip))
}

func (l *lab) vipctl(node string, args ...string) (string, error) {
	out, err := exec.Command(filepath.Join(l.bin, "vipctl"),
		append([]string{"--socket", filepath.Join(l.run, node+".sock")}, args...)...).CombinedOutput()
	return string(out), err
}

func (l *lab) status(node string) api.Status {
	l.t.Helper()
	out, err := l.vipctl(node, "status", "--json")
	if err != nil {
		l.t.Fatalf("vipctl status on %s: %v: %s", node, err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		l.t.Fatal(err)
	}
	return st
}

func (l *lab) waitFor(what string, timeout time.Duration, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type loadResult struct {
	Connections int            `json:"connections"`
	Broken      int            `json:"broken"`
	Switched    int            `json:"switched"`
	Requests    int64          `json:"requests"`
	ByBackend   map[string]int `json:"by_backend"`
	Errors      []string       `json:"errors"`
}

// TestLabDrainUndrain is the end-to-end test of the product: three
// symmetric vipd nodes behind a BIRD router with ECMP, a client holding
// long-lived TCP connections to the VIP, a live drain and undrain of n2.
// No connection may break, no packet may loop (a VIP packet coming back
// from a node to the router), and the loop guard must never have fired.
// A real Prometheus scrapes the nodes all along (prometheus_test.go): their
// live /metrics hold to monitoring/'s contract, the drain is read back
// from Prometheus, and the shipped alert rules evaluate without error.
func TestLabDrainUndrain(t *testing.T) {
	var p *prometheus
	// Prometheus boots while the nodes do.
	l := startLab(t, withMetrics, func(l *lab) { p = startPrometheus(t, l) })
	l.waitFor("the VIP from all three nodes at both routers (ECMP)", 60*time.Second, func() bool { return l.nextHops() == 3 })
	if p != nil {
		p.checkScraped(t)
	}

	// Looped packets: anything addressed to the VIP that a node sends back
	// to the routers (its switch port's ingress).
	var caps []*exec.Cmd
	for _, n := range []string{"n1", "n2", "n3"} {
		c := l.exec("sw", "tcpdump", "-n", "-i", switchPort(n), "-Q", "in", "-w", filepath.Join(l.run, n+".pcap"), "dst", "host", vipAddr)
		stderr, _ := os.Create(filepath.Join(l.run, n+"-tcpdump.txt"))
		c.Stderr = stderr
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		caps = append(caps, c)
		t.Cleanup(func() { c.Process.Kill(); c.Wait() })
	}
	time.Sleep(time.Second) // tcpdump attaching

	load := l.exec("client", filepath.Join(l.bin, "labtool"), "load", "-target", vipAddr+":80",
		"-conns", "30", "-duration", "24s", "-lifetime", "4s", "-progress", "0", "-json")
	var loadOut strings.Builder
	load.Stdout = &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	if out, err := l.vipctl("n2", "drain"); err != nil {
		t.Fatalf("drain: %v: %s", err, out)
	}
	l.waitFor("n2's route withdrawn at both routers", 10*time.Second, func() bool { return l.nextHops() == 2 })
	l.waitFor("n2 drained (unbound)", 20*time.Second, func() bool { return l.status("n2").Phase == "drained" })
	if p != nil {
		p.checkDrainedReadBack(t, "n2")
	}
	if out, err := l.vipctl("n2", "undrain"); err != nil {
		t.Fatalf("undrain: %v: %s", err, out)
	}
	l.waitFor("n2's route back at both routers", 30*time.Second, func() bool { return l.nextHops() == 3 })
	if err := load.Wait(); err != nil {
		t.Fatalf("load: %v", err)
	}
	var res loadResult
	if err := json.Unmarshal([]byte(loadOut.String()), &res); err != nil {
		t.Fatalf("decoding load result %q: %v", loadOut.String(), err)
	}
	t.Logf("load: %d connections, %d requests, %d broken, %d switched; by backend %v", res.Connections, res.Requests, res.Broken, res.Switched, res.ByBackend)

	looped := 0
	for i, c := range caps {
		c.Process.Signal(syscall.SIGINT)
		c.Wait()
		n := []string{"n1", "n2", "n3"}[i]
		looped += captured(t, filepath.Join(l.run, n+"-tcpdump.txt"))
	}
	counters := map[string]uint64{}
	for _, n := range []string{"n1", "n2", "n3"} {
		for k, v := range l.status(n).Dataplane.Counters {
			counters[k] += v
		}
	}
	t.Logf("dataplane counters, all nodes: %v", counters)

	if res.Broken != 0 || res.Switched != 0 {
		t.Errorf("%d broken and %d switched connections through drain and undrain, want 0: %v", res.Broken, res.Switched, res.Errors)
	}
	if looped != 0 {
		t.Errorf("%d VIP packets came back from the nodes to the routers (looped), want 0", looped)
	}
	if counters["drop_loop_guard"] != 0 {
		t.Errorf("loop guard dropped %d packets, want 0", counters["drop_loop_guard"])
	}
	for _, n := range []string{"n1", "n2", "n3"} {
		if res.ByBackend[n] == 0 {
			t.Errorf("no connection served by %s: %v", n, res.ByBackend)
		}
	}
	if p != nil {
		p.checkRules(t)
	}
	if res.Connections < 100 {
		t.Errorf("only %d connections made", res.Connections)
	}
}

var capturedRE = regexp.MustCompile(`(\d+) packets? captured`)

// captured reads tcpdump's "N packets captured" from its stderr file.
func captured(t *testing.T, file string) int {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m := capturedRE.FindSubmatch(data)
	if m == nil {
		t.Fatalf("no capture count in %s: %s", file, data)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// TestLabUpgradeRestart restarts n2's vipd for an upgrade (vipctl restart:
// exit without withdrawing) under live TCP load, and starts a new vipd that
// adopts the pinned XDP program, the VIP on lo and, through BGP graceful
// restart at the router, the route. No connection may break and the route
// must never leave the router.
func TestLabUpgradeRestart(t *testing.T) {
	l := startLab(t)
	l.waitFor("the VIP from all three nodes at both routers (ECMP)", 60*time.Second, func() bool { return l.nextHops() == 3 })
	before := l.status("n2")

	load := l.exec("client", filepath.Join(l.bin, "labtool"), "load", "-target", vipAddr+":80",
		"-conns", "30", "-duration", "16s", "-lifetime", "4s", "-progress", "0", "-json")
	var loadOut strings.Builder
	load.Stdout = &loadOut
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	// Watch the router's next hops all along: the route must never go.
	// And watch the other directors' tables in their pinned maps: an
	// upgrade restart is not a failure, so no row may move (a flow that
	// starts on a row moved away from n2 breaks when it moves back while
	// anything else changes).
	minHops := 3
	memlockOnce.Do(func() { rlimit.RemoveMemlock() })
	tablesOf := func() map[string]string {
		out := map[string]string{}
		for _, n := range []string{"n1", "n3"} {
			w, err := l.readNode(n, labconf.Spec{Run: l.run}.PinPath(n))
			if err != nil || w.Error != "" {
				continue
			}
			for _, v := range w.VIPs {
				if v.Table != nil {
					out[n+" "+v.Addr.String()] = v.Table.Digest
				}
			}
		}
		return out
	}
	tables0 := tablesOf()
	var tableChanges []string
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if n := l.fewestHops(vipAddr); n < minHops {
				minHops = n
			}
			for k, d := range tablesOf() {
				if d0, ok := tables0[k]; ok && d != d0 && !slices.Contains(tableChanges, k) {
					tableChanges = append(tableChanges, k)
				}
			}
		}
	}()

	time.Sleep(4 * time.Second)
	pidData, err := os.ReadFile(filepath.Join(l.run, "n2-vipd.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(pidData)))
	if out, err := l.vipctl("n2", "restart"); err != nil {
		t.Fatalf("vipctl restart: %v: %s", err, out)
	}
	l.waitFor("the old vipd on n2 to exit", 10*time.Second, func() bool {
		return syscall.Kill(pid, 0) != nil
	})
	if out, err := l.script("start", "n2"); err != nil {
		t.Fatalf("starting the new vipd on n2: %v: %s", err, out)
	}
	l.waitFor("the new vipd on n2 serving", 30*time.Second, func() bool {
		out, err := l.vipctl("n2", "status", "--json")
		if err != nil {
			return false
		}
		var st api.Status
		if json.Unmarshal([]byte(out), &st) != nil || len(st.VIPs) != len(labconf.Default("").VIPs) {
			return false
		}
		for _, v := range st.VIPs {
			if !v.Advertised || !v.Bound {
				return false
			}
		}
		return true
	})
	if err := load.Wait(); err != nil {
		t.Fatalf("load: %v", err)
	}
	close(stop)
	<-watched

	var res loadResult
	if err := json.Unmarshal([]byte(loadOut.String()), &res); err != nil {
		t.Fatalf("decoding load result %q: %v", loadOut.String(), err)
	}
	after := l.status("n2")
	t.Logf("load: %d connections, %d broken; by backend %v; fewest next hops at a router: %d; n2 generation %d -> %d",
		res.Connections, res.Broken, res.ByBackend, minHops, before.Generation, after.Generation)
	if res.Broken != 0 || res.Switched != 0 {
		t.Errorf("%d broken and %d switched connections across the upgrade restart, want 0: %v", res.Broken, res.Switched, res.Errors)
	}
	if len(tables0) == 0 {
		t.Errorf("read no table from n1 and n3")
	}
	if len(tableChanges) > 0 {
		t.Errorf("the tables of %s changed during n2's upgrade restart, want none changed", strings.Join(tableChanges, ", "))
	}
	if minHops < 3 {
		t.Errorf("a router lost n2's route during the upgrade restart (fewest next hops %d)", minHops)
	}
	if after.Generation <= before.Generation {
		t.Errorf("node state generation went from %d to %d: peers could take the new state for an old one", before.Generation, after.Generation)
	}
	if res.ByBackend["n2"] == 0 {
		t.Errorf("n2 served no connection: %v", res.ByBackend)
	}
}

// vipdFlags are more flags for every vipd of a lab test, e.g. "-log-level
// debug" to see GoBGP's decisions in the logs -e2e.keep copies.
var vipdFlags = flag.String("e2e.vipdflags", "", "more flags for every vipd a lab test starts (e.g. -log-level debug)")

// keepDir is where a failed test's whole vipd logs are copied (-e2e.keep):
// the failure message holds only their tails, and the lab's run directory
// is removed with the test.
var keepDir = flag.String("e2e.keep", "", "directory to copy a failed lab test's vipd logs into (kept after the test)")

// keepLog copies data to -e2e.keep as <test>-name, if the flag is set.
func keepLog(t *testing.T, name string, data []byte) {
	if *keepDir == "" {
		return
	}
	dst := filepath.Join(*keepDir, strings.ReplaceAll(t.Name(), "/", "_")+"-"+name)
	if err := os.MkdirAll(*keepDir, 0o755); err == nil {
		err = os.WriteFile(dst, data, 0o644)
		if err == nil {
			t.Logf("kept %s", dst)
			return
		}
	}
	t.Logf("keeping %s: failed", dst)
}
