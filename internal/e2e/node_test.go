package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/netnstest"
)

const vipAddr = "198.51.100.10"

// nodeRig is one vipd node in a namespace, peering over a veth with gobgpd
// in a router namespace.
type nodeRig struct {
	t          *testing.T
	bin        string
	dir        string
	router     *netnstest.NS
	node       *netnstest.NS
	cfg        string
	sock       string
	pin        string
	vipd       *exec.Cmd
	vipdLog    *os.File
	vipdExited chan error
}

func newNodeRig(t *testing.T) *nodeRig {
	t.Helper()
	netnstest.RequireRoot(t)
	bin, err := Binaries()
	if err != nil {
		t.Fatal(err)
	}
	r := &nodeRig{t: t, bin: bin, dir: t.TempDir()}
	r.router = netnstest.New(t, "r")
	r.node = netnstest.New(t, "n")
	rv, nv := netnstest.Veth(t, r.router, r.node)
	r.router.MustRun(t, "ip", "addr", "add", "192.0.2.1/30", "dev", rv)
	r.node.MustRun(t, "ip", "link", "set", nv, "name", "up0")
	r.node.MustRun(t, "ip", "link", "set", "up0", "up")
	r.node.MustRun(t, "ip", "addr", "add", "192.0.2.2/30", "dev", "up0")
	r.node.MustRun(t, "ip", "route", "add", "default", "via", "192.0.2.1")

	gobgpConf := filepath.Join(r.dir, "gobgpd.toml")
	os.WriteFile(gobgpConf, []byte(`[global.config]
  as = 65000
  router-id = "192.0.2.1"
  port = 179
  local-address-list = ["192.0.2.1"]
[[neighbors]]
  [neighbors.config]
    neighbor-address = "192.0.2.2"
    peer-as = 65001
  [neighbors.transport.config]
    passive-mode = true
  [[neighbors.afi-safis]]
    [neighbors.afi-safis.config]
      afi-safi-name = "ipv4-unicast"
`), 0o644)
	g := r.router.Cmd("gobgpd", "-f", gobgpConf, "--api-hosts", "127.0.0.1:50051", "--pprof-disable")
	glog, _ := os.Create(filepath.Join(r.dir, "gobgpd.log"))
	g.Stdout, g.Stderr = glog, glog
	if err := g.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Process.Kill(); g.Wait() })

	r.sock = filepath.Join(r.dir, "vipd.sock")
	r.pin = filepath.Join(netnstest.BPFFS(t), "vipd")
	r.cfg = filepath.Join(r.dir, "vipd.toml")
	r.writeConfig(false)
	return r
}

func (r *nodeRig) writeConfig(broken bool) {
	extra := ""
	if broken {
		extra = "\n[bogus]\nkey = 1\n"
	}
	// A state directory of the test's own: the default, /var/lib/vipd, is
	// the host's (a vipd that predates the key has none).
	stateDir := ""
	dropped, err := unknownKeys(r.bin)
	if err != nil {
		r.t.Fatal(err)
	}
	if !slices.Contains(dropped, "node.state_dir") {
		stateDir = fmt.Sprintf("state_dir = %q\n", filepath.Join(r.dir, "state"))
	}
	cfg := fmt.Sprintf(`[node]
name = "n1"
underlay_v4 = "192.0.2.2"
%s
[cluster]
seed = 1
poll_interval = "200ms"
poll_timeout = "100ms"
[[cluster.member]]
name = "n1"
underlay_v4 = "192.0.2.2"
state_url = "http://192.0.2.2:9180/state"

[[vip]]
name = "web"
address = "%s"
services = ["tcp/80"]
[vip.check]
type = "none"

[routing]
mode = "bgp"
[routing.bgp]
asn = 65001
listen_port = -1
[[routing.bgp.neighbor]]
address = "192.0.2.1"
asn = 65000
local_address = "192.0.2.2"

[dataplane]
interface = "up0"
attach = "native"
pin_path = "%s"

[timers]
withdraw_grace = "1s"
table_grace = "1s"
drain_timeout = "1s"

[api]
socket = "%s"
%s`, stateDir, vipAddr, r.pin, r.sock, extra)
	if err := os.WriteFile(r.cfg, []byte(cfg), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *nodeRig) startVipd() {
	t := r.t
	t.Helper()
	r.vipd = r.node.Cmd(filepath.Join(r.bin, "vipd"), "-c", r.cfg, "-log-level", "debug")
	var err error
	r.vipdLog, err = os.OpenFile(filepath.Join(r.dir, "vipd.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	r.vipd.Stdout, r.vipd.Stderr = r.vipdLog, r.vipdLog
	if err := r.vipd.Start(); err != nil {
		t.Fatal(err)
	}
	r.vipdExited = make(chan error, 1)
	cmd := r.vipd
	go func() { r.vipdExited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		if t.Failed() {
			data, _ := os.ReadFile(filepath.Join(r.dir, "vipd.log"))
			t.Logf("vipd log:\n%s", tail(string(data), 60))
		}
	})
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// vipctl runs vipctl in the node namespace.
func (r *nodeRig) vipctl(args ...string) (string, error) {
	out, err := r.node.Cmd(append([]string{filepath.Join(r.bin, "vipctl"), "--socket", r.sock}, args...)...).CombinedOutput()
	return string(out), err
}

func (r *nodeRig) status() api.Status {
	r.t.Helper()
	out, err := r.vipctl("status", "--json")
	if err != nil {
		r.t.Fatalf("vipctl status: %v: %s", err, out)
	}
	var st api.Status
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		r.t.Fatalf("decoding status: %v: %s", err, out)
	}
	return st
}

func (r *nodeRig) routerHasVIP() bool {
	out, _ := r.router.Run("gobgp", "-u", "127.0.0.1", "-p", "50051", "global", "rib")
	return strings.Contains(out, vipAddr+"/32")
}

func (r *nodeRig) loHasVIP() bool {
	out, _ := r.node.Run("ip", "-4", "addr", "show", "dev", "lo")
	return strings.Contains(out, vipAddr+"/32")
}

// waitFor polls cond until it holds or the timeout passes.
func (r *nodeRig) waitFor(what string, timeout time.Duration, cond func() bool) {
	r.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case err := <-r.vipdExited:
			r.t.Fatalf("vipd exited (%v) while waiting for %s", err, what)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestNodeDrainUndrain runs the real vipd in a namespace with real GoBGP
// towards gobgpd, the netlink binder and XDP on its uplink: bring-up binds
// and announces; a drain withdraws at the router first and unbinds only
// after the grace periods; undrain restores both; vipctl status explains
// every step; SIGTERM drains and exits.
func TestNodeDrainUndrain(t *testing.T) {
	r := newNodeRig(t)
	r.startVipd()

	r.waitFor("the VIP at the router", 30*time.Second, r.routerHasVIP)
	if !r.loHasVIP() {
		t.Fatal("VIP announced but not bound on lo (invariant 2)")
	}
	st := r.status()
	if len(st.VIPs) != 1 || !st.VIPs[0].Programmed || !st.VIPs[0].Advertised || !st.VIPs[0].Bound {
		t.Fatalf("status after bring-up: %+v", st.VIPs)
	}
	t.Logf("up: reason %q", st.VIPs[0].Reason)

	// A second vipd on the same socket must refuse to start.
	second := r.node.Cmd(filepath.Join(r.bin, "vipd"), "-c", r.cfg)
	out, err := second.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already") {
		t.Fatalf("second vipd: err %v, output:\n%s", err, out)
	}

	// SIGHUP with a broken config: reported, the old config keeps running.
	r.writeConfig(true)
	r.vipd.Process.Signal(syscall.SIGHUP)
	time.Sleep(500 * time.Millisecond)
	if !r.routerHasVIP() || !r.loHasVIP() {
		t.Fatal("a bad reload changed the running state")
	}
	r.writeConfig(false)

	// Drain: the route goes first; the VIP stays bound through the grace
	// periods, then goes.
	t0 := time.Now()
	if out, err := r.vipctl("drain"); err != nil {
		t.Fatalf("vipctl drain: %v: %s", err, out)
	}
	r.waitFor("the route withdrawn at the router", 10*time.Second, func() bool { return !r.routerHasVIP() })
	withdrawn := time.Since(t0)
	if !r.loHasVIP() {
		t.Fatal("VIP unbound together with the withdraw: unbind must wait for the grace periods")
	}
	reasons := map[string]bool{}
	r.waitFor("the VIP unbound after the grace periods", 15*time.Second, func() bool {
		st := r.status()
		if len(st.VIPs) == 1 {
			reasons[st.Phase+": "+st.VIPs[0].Reason] = true
		}
		return !r.loHasVIP()
	})
	unbound := time.Since(t0)
	t.Logf("drain: withdrawn at the router after %v, unbound after %v; status showed %v", withdrawn, unbound, keys(reasons))
	// withdraw grace 1s + drain timeout 1s + table grace 1s
	if unbound < 2*time.Second {
		t.Errorf("unbound %v after the drain: sooner than the grace periods allow", unbound)
	}
	if len(reasons) < 2 {
		t.Errorf("status showed too few steps: %v", keys(reasons))
	}
	for r := range reasons {
		if strings.HasSuffix(r, ": ") {
			t.Errorf("a step without a reason: %q", r)
		}
	}

	// Undrain: bound again, announced again.
	if out, err := r.vipctl("undrain"); err != nil {
		t.Fatalf("vipctl undrain: %v: %s", err, out)
	}
	r.waitFor("the route back at the router", 30*time.Second, r.routerHasVIP)
	if !r.loHasVIP() {
		t.Fatal("announced again but not bound")
	}
	text, err := r.vipctl("status")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("vipctl status:\n%s", text)

	// SIGTERM: drain and exit; the route is gone at the router.
	r.vipd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.vipdExited:
		if err != nil {
			t.Errorf("vipd exit after SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vipd did not exit within 30s of SIGTERM")
	}
	if r.routerHasVIP() {
		t.Error("route still at the router after vipd drained and exited")
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
